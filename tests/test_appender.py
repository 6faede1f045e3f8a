"""The batch appender: the requests of one event-loop turn share one append."""

import asyncio

from eventhub.errors import InvalidEvent
from eventhub.webhooks.appender import BatchAppender


def run(coroutines):
    async def main():
        return await asyncio.gather(*coroutines, return_exceptions=True)

    return asyncio.run(main())


def test_one_turn_is_one_transaction(hub):
    appends = []
    original = hub.log.append
    hub.log.append = lambda events: appends.append(len(events)) or original(events)
    writer = BatchAppender(hub.bus)
    results = run(writer.publish([{"type": "a.b", "data": {"n": n}}]) for n in range(5))
    assert appends == [5]
    assert [r[0].data["n"] for r in results] == list(range(5))
    assert [e.sequence for e in hub.bus.history()] == [1, 2, 3, 4, 5]


def test_a_bad_delivery_fails_alone(hub):
    writer = BatchAppender(hub.bus)
    good, bad = run(
        [
            writer.publish([{"type": "a.b", "data": 1}]),
            writer.publish([{"type": "a.c"}, {"type": ""}]),
        ]
    )
    assert isinstance(bad, InvalidEvent)
    assert good[0].type == "a.b"
    assert [e.type for e in hub.bus.history()] == ["a.b"]


def test_the_same_delivery_twice_in_one_batch_is_stored_once(hub):
    writer = BatchAppender(hub.bus)
    spec = {"type": "a.b", "id": "delivery-1", "source": "test"}
    first, second = run([writer.publish([spec]), writer.publish([spec])])
    assert first[0].sequence == second[0].sequence == 1
    assert len(hub.bus.history()) == 1


def test_a_failed_append_fails_every_delivery_of_the_batch(hub):
    writer = BatchAppender(hub.bus)

    def broken(events):
        raise OSError("disk full")

    hub.bus.publish_many = broken
    results = run(writer.publish([{"type": "a.b"}]) for _ in range(3))
    assert [str(r) for r in results] == ["disk full"] * 3


def test_a_request_the_database_refuses_fails_alone_in_its_batch(hub):
    # Built without Event.create's checks, as a bridge or a bug might: SQLite
    # refuses the lone surrogate, and only that request of the batch fails.
    from dataclasses import replace

    writer = BatchAppender(hub.bus)
    good = hub.bus.prepare({"type": "a.b", "data": 1})
    bad = replace(hub.bus.prepare({"type": "a.c"}), subject="\ud800")
    later = hub.bus.prepare({"type": "a.d", "data": 2})
    first, refused, last = run(
        [writer.publish([good]), writer.publish([bad]), writer.publish([later])]
    )
    assert isinstance(refused, InvalidEvent) and refused.field == "subject"
    assert [first[0].type, last[0].type] == ["a.b", "a.d"]
    assert [e.type for e in hub.bus.history()] == ["a.b", "a.d"]
