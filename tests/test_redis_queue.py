"""The ``redis_queue`` integration against a real redis-server (tests/servers.py)."""

from __future__ import annotations

import time

import orjson
import pytest
from eventhub.integrations.redis_queue import RedisQueueIntegration

from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .servers import REDIS_PASSWORD

pytest.importorskip("redis")


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def jobs(url, **options):
    settings = {
        "url": options.pop("url", url),
        "consume": [{"list": "jobs", "type": "job.requested"}],
        "publish": [{"pattern": "job.done", "list": "results"}],
        "block_timeout": 0.2,
        **options,
    }
    return RedisQueueIntegration(**settings)


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path) as hub:
        yield hub


def inbound(hub):
    return hub.bus.history("job.requested", limit=None)


def test_messages_become_events_and_leave_both_lists(hub, redis_server):
    r = redis_server.client()
    for n in range(5):
        r.lpush("jobs", orjson.dumps({"n": n}))
    hub.register_integration("jobs", jobs(redis_server.url))
    hub.start()
    wait_for(lambda: len(inbound(hub)) == 5)
    events = inbound(hub)
    assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]  # oldest first
    assert {e.source for e in events} == {"jobs/jobs"}
    wait_for(lambda: r.llen("jobs:processing:jobs") == 0)
    assert r.llen("jobs") == 0


def test_a_message_id_makes_a_redelivery_one_event(hub, redis_server):
    r = redis_server.client()
    r.lpush("jobs", b'{"id": "job-1", "n": 1}', b'{"id": "job-1", "n": 1}')
    hub.register_integration("jobs", jobs(redis_server.url, batch_size=1))
    hub.start()
    wait_for(lambda: r.llen("jobs") == 0 and r.llen("jobs:processing:jobs") == 0)
    events = inbound(hub)
    assert [e.id for e in events] == ["job-1"]


def test_messages_left_in_flight_by_a_crash_are_read_at_start(hub, redis_server):
    r = redis_server.client()
    # A consumer took 1 and 2 (in that order) and died; 3 is still queued.
    r.lpush("jobs:processing:jobs", b'{"n": 1}', b'{"n": 2}')
    r.lpush("jobs", b'{"n": 3}')
    hub.register_integration("jobs", jobs(redis_server.url))
    hub.start()
    wait_for(lambda: len(inbound(hub)) == 3)
    assert [e.data["n"] for e in inbound(hub)] == [1, 2, 3]
    assert r.llen("jobs:processing:jobs") == 0


def test_a_message_that_cannot_be_an_event_goes_to_the_dead_letters(hub, redis_server):
    r = redis_server.client()
    big = orjson.dumps({"blob": "x" * 5000})
    r.lpush("jobs", b"not json {", big, b'{"n": 1}')
    hub.register_integration("jobs", jobs(redis_server.url, max_bytes=1000))
    hub.start()
    wait_for(lambda: len(inbound(hub)) == 1)
    wait_for(lambda: r.llen("jobs:dead") == 2)
    assert set(r.lrange("jobs:dead", 0, -1)) == {b"not json {", big}
    assert r.llen("jobs:processing:jobs") == 0


def test_matching_events_are_pushed_as_cloudevents(hub, redis_server):
    r = redis_server.client()
    hub.register_integration("jobs", jobs(redis_server.url, consume=[]))
    hub.start()
    hub.bus.publish("job.done", {"job": 7}, subject="job/7")
    hub.bus.publish("job.failed", {"job": 8})
    hub.bus.drain()
    wait_for(lambda: r.llen("results") == 1)
    pushed = orjson.loads(r.rpop("results"))
    assert (pushed["type"], pushed["data"], pushed["specversion"]) == (
        "job.done",
        {"job": 7},
        "1.0",
    )


def test_an_outage_delays_outbound_events_and_loses_none(hub, redis_server):
    hub.register_integration("jobs", jobs(redis_server.url, consume=[]))
    hub.start()
    redis_server.kill()
    hub.bus.publish("job.done", {"job": 1})
    time.sleep(0.5)  # a delivery attempt fails and is scheduled again
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: (hub.bus.drain() or True) and r.llen("results") == 1, 60)
    assert orjson.loads(r.rpop("results"))["data"] == {"job": 1}


def test_the_consumer_comes_back_after_an_outage(hub, redis_server):
    hub.register_integration("jobs", jobs(redis_server.url))
    hub.start()
    redis_server.kill()
    time.sleep(0.5)
    redis_server.start()
    redis_server.client().lpush("jobs", b'{"n": 9}')
    wait_for(lambda: len(inbound(hub)) == 1, 60)


def test_enqueue_and_dequeue(redis_server):
    queue = jobs(redis_server.url, consume=[], publish=[])
    assert queue.enqueue("work", {"a": 1}) == 1
    queue.enqueue("work", b"raw bytes")
    assert queue.dequeue("work") == {"a": 1}
    assert queue.dequeue("work", timeout=0) == b"raw bytes"
    assert queue.dequeue("work", timeout=0.1) is None


def test_errors_do_not_show_the_password(redis_server, tmp_path):
    wrong = redis_server.url.replace(REDIS_PASSWORD, "wrong-Password-123")
    queue = jobs(wrong, consume=[], publish=[])
    with pytest.raises(Exception) as caught:
        queue.enqueue("work", {"a": 1})
    assert "wrong-Password-123" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://x"}, "redis://"),
        ({"consume": [{"list": "jobs"}]}, r"consume\[0\] needs type"),
        ({"consume": [{"list": "j", "type": "t", "queue": "x"}]}, "unknown keys"),
        ({"publish": [{"pattern": "a.*"}]}, r"publish\[0\] needs list"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings(options, message):
    with pytest.raises(ConfigError, match=message):
        jobs(options.pop("url", "redis://127.0.0.1:1/0"), **options)


@pytest.mark.slow
def test_sigkill_while_messages_flow_both_ways_loses_none(tmp_path, redis_server):
    """2,000 messages in (with ids) and 2,000 events out while the daemon is
    SIGKILLed: every one arrives; inbound duplicates none (ids), outbound at most
    the delivery batch in flight."""
    import textwrap

    from eventhub import Hub

    from .test_daemon import Daemon

    total = 2000
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            db = "hub.db"
            [log]
            level = "WARNING"
            [daemon]
            shutdown_timeout = 5
            [integrations.jobs]
            kind = "redis_queue"
            url = "{redis_server.url}"
            block_timeout = 0.2
            batch_size = 50
            consume = [{{ list = "jobs", type = "job.requested" }}]
            publish = [{{ pattern = "job.done", list = "results" }}]
            """
        )
    )
    r = redis_server.client()
    r.lpush("jobs", *[orjson.dumps({"id": f"m{n}", "n": n}) for n in range(total)])
    # The subscription begins when the daemon first starts: events after that.
    daemon = Daemon(tmp_path, config, log=tmp_path / "daemon.log").start()
    with Hub(tmp_path / "hub.db", load_entrypoints=False) as app:
        app.bus.publish_many(
            [{"type": "job.done", "data": {"n": n}} for n in range(total)]
        )
    try:
        wait_for(lambda: r.llen("jobs") < total - 200 and r.llen("results") > 200, 120)
        daemon.proc.send_signal(9)
        daemon.proc.wait(30)
        assert r.llen("jobs") > 0 or r.llen("results") < total  # stopped mid-flow
        daemon = Daemon(tmp_path, config, log=tmp_path / "daemon.log").start()
        wait_for(
            lambda: (
                r.llen("jobs") == 0
                and r.llen("jobs:processing:jobs") == 0
                and len({orjson.loads(m)["id"] for m in r.lrange("results", 0, -1)})
                == total
            ),
            180,
        )
    finally:
        daemon.close()
    with Hub(tmp_path / "hub.db", load_entrypoints=False) as app:
        inbound = app.bus.history("job.requested", limit=None)
        outbound_ids = {e.id for e in app.bus.history("job.done", limit=None)}
    assert sorted(e.id for e in inbound) == sorted(f"m{n}" for n in range(total))
    pushed = [orjson.loads(m)["id"] for m in r.lrange("results", 0, -1)]
    assert set(pushed) == outbound_ids  # lost: none
    assert len(pushed) - total <= 100  # duplicates: the delivery batch in flight
