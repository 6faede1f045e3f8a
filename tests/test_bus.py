import pytest

from eventhub import (
    DeadLetterNotFound,
    InvalidEvent,
    InvalidSubscription,
    RetryPolicy,
    SubscriptionNotFound,
    TransientError,
    signals,
)
from eventhub.eventlog import MemoryLog
from eventhub.testing import capture_events, make_hub

# Where workers are tested: the default log and the in-memory one.
BACKENDS = {"sqlite": dict, "memory": lambda: {"eventlog": MemoryLog()}}


def test_publish_returns_the_stored_event(hub):
    event = hub.bus.publish("user.created", {"id": 7}, source="/crm", subject="user/7")
    assert event.sequence == 1 and event.source == "/crm" and event.data == {"id": 7}
    assert hub.bus.history() == [event]


def test_invalid_event_stores_nothing(hub):
    with pytest.raises(InvalidEvent):
        hub.bus.publish("")
    with pytest.raises(InvalidEvent):
        hub.bus.publish_many([{"type": "ok.one"}, {"type": "ok.two", "data": {1, 2}}])
    assert hub.bus.history() == []


def test_inline_handlers_run_by_priority_then_registration_order(hub):
    calls = []
    hub.bus.subscribe("a.*", lambda e: calls.append("low"), priority=-1)
    hub.bus.subscribe("a.b", lambda e: calls.append("first"))
    hub.bus.subscribe("#", lambda e: calls.append("second"))
    hub.bus.subscribe("a.**", lambda e: calls.append("high"), priority=5)
    hub.bus.publish("a.b")
    assert calls == ["high", "first", "second", "low"]


def test_emit_returns_results_and_stores_nothing(hub):
    hub.bus.subscribe("calc.*", lambda e: e.data * 2)
    hub.bus.subscribe("calc.*", lambda e: 1 / 0)
    ok, failed = hub.bus.emit("calc.double", 21)
    assert ok.ok and ok.value == 42
    assert not failed.ok and isinstance(failed.error, ZeroDivisionError)
    assert hub.bus.history() == []


def test_duplicates_are_not_delivered_twice(hub):
    inline, durable = [], []
    hub.bus.subscribe("p.*", inline.append)
    hub.bus.subscribe("p.*", durable.append, name="d")
    first = hub.bus.publish("p.x", {"n": 1}, source="/gh", id="delivery-1")
    again = hub.bus.publish("p.x", {"n": 2}, source="/gh", id="delivery-1")
    hub.bus.drain()
    assert again == first and len(inline) == 1 and len(durable) == 1


def test_durable_subscription_starts_at_the_end_by_default(hub):
    hub.bus.publish("a.b", 1)
    late, backfill, from_two = [], [], []
    hub.bus.subscribe("a.b", late.append, name="late")
    hub.bus.subscribe("a.b", backfill.append, name="backfill", start="beginning")
    hub.bus.publish("a.b", 2)
    hub.bus.subscribe("a.b", from_two.append, name="from-two", start=2)
    hub.bus.drain()
    assert [e.data for e in late] == [2]
    assert [e.data for e in backfill] == [1, 2]
    assert [e.data for e in from_two] == [2]


def test_durable_subscription_resumes_from_its_cursor(tmp_path):
    with make_hub(tmp_path) as hub:
        hub.bus.subscribe("a.b", lambda e: None, name="s")
        hub.bus.publish("a.b", 1)
        hub.bus.drain()
        hub.bus.publish("a.b", 2)
    seen = []
    with make_hub(tmp_path) as hub:
        hub.bus.subscribe("a.b", seen.append, name="s", start="end")
        hub.bus.drain()
    assert [e.data for e in seen] == [2]


def test_retries_follow_the_policy_then_dead_letter(hub, clock):
    attempts = []

    def flaky(event, delivery):
        attempts.append(delivery.attempt)
        raise ConnectionError("crm down")

    policy = RetryPolicy(max_attempts=3, wait=lambda state: 10)
    hub.bus.subscribe("user.*", flaky, name="crm", retry=policy)
    hub.bus.publish("user.created", {"id": 1})
    hub.bus.drain()
    assert attempts == [1]
    clock.advance(9)
    hub.bus.drain()
    assert attempts == [1]
    clock.advance(1)
    hub.bus.drain()
    clock.advance(10)
    hub.bus.drain()
    assert attempts == [1, 2, 3]
    (letter,) = hub.bus.dead_letters()
    assert letter.subscription == "crm" and letter.attempts == 3
    assert "ConnectionError: crm down" in letter.error and "flaky" in letter.traceback


def test_dead_lettering_publishes_a_notice(hub):
    hub.bus.subscribe("job.*", lambda e: 1 / 0, name="w", retry=RetryPolicy.never())
    failed = hub.bus.publish("job.run")
    hub.bus.drain()
    (notice,) = hub.bus.history("eventhub.delivery.dead_lettered")
    assert notice.data["event_id"] == failed.id and notice.data["subscription"] == "w"
    assert notice.causationid == failed.id


def test_a_permanent_error_is_not_retried(hub):
    from eventhub import ConfigError

    calls = []

    def handler(event):
        calls.append(1)
        raise ConfigError("bad mapping")

    hub.bus.subscribe("a.b", handler, name="s", retry=RetryPolicy(max_attempts=5))
    hub.bus.publish("a.b")
    hub.bus.drain()
    assert len(calls) == 1 and len(hub.bus.dead_letters()) == 1


def test_transient_errors_are_retried(hub, clock):
    calls = []

    def handler(event):
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("rate limited")

    hub.bus.subscribe("a.b", handler, name="s", retry=RetryPolicy(wait=lambda s: 1))
    hub.bus.publish("a.b")
    hub.bus.drain()
    clock.advance(1)
    hub.bus.drain()
    assert len(calls) == 2 and hub.bus.dead_letters() == []


def test_redrive_delivers_again(hub):
    outcomes = iter([ValueError("first"), None])

    def handler(event):
        error = next(outcomes)
        if error:
            raise error

    hub.bus.subscribe("a.b", handler, name="s", retry=RetryPolicy.never())
    hub.bus.publish("a.b")
    hub.bus.drain()
    (letter,) = hub.bus.dead_letters()
    assert hub.bus.redrive([letter.id]) == 1
    hub.bus.drain()
    assert hub.bus.dead_letters() == []
    with pytest.raises(DeadLetterNotFound):
        hub.bus.redrive([letter.id])


def test_a_poison_event_does_not_block_the_events_behind_it(hub, clock):
    handled = []

    def handler(event):
        if event.data == "poison":
            raise ValueError("cannot parse")
        handled.append(event.data)

    policy = RetryPolicy(max_attempts=3, wait=lambda s: 60)
    hub.bus.subscribe("m.*", handler, name="s", retry=policy)
    hub.bus.publish_many(
        [{"type": "m.x", "data": d} for d in ["a", "poison", "b", "c"]]
    )
    hub.bus.drain()
    assert handled == ["a", "b", "c"]
    for _ in range(3):
        clock.advance(60)
        hub.bus.drain()
    assert len(hub.bus.dead_letters()) == 1


def test_a_retry_holds_back_later_events_of_the_same_key(hub, clock):
    handled, fail_once = [], {"acct/1"}

    def handler(event):
        if event.subject in fail_once:
            fail_once.discard(event.subject)
            raise ConnectionError("later")
        handled.append((event.subject, event.data))

    hub.bus.subscribe("acct.*", handler, name="s", retry=RetryPolicy(wait=lambda s: 5))
    for n, subject in enumerate(["acct/1", "acct/2", "acct/1", "acct/2"]):
        hub.bus.publish("acct.changed", n, subject=subject)
    hub.bus.drain()
    assert handled == [("acct/2", 1), ("acct/2", 3)]
    clock.advance(5)
    hub.bus.drain()
    assert handled[2:] == [("acct/1", 0), ("acct/1", 2)]


def test_replay_delivers_a_range_again_flagged_as_replay(hub):
    deliveries = []
    hub.bus.subscribe(
        "r.*", lambda e, d: deliveries.append((e.data, d.replay)), name="s"
    )
    for n in range(4):
        hub.bus.publish("r.x", n)
    hub.bus.drain()
    assert hub.bus.replay("s", after=1, before=4) == 2
    hub.bus.drain()
    assert deliveries == [
        (0, False),
        (1, False),
        (2, False),
        (3, False),
        (1, True),
        (2, True),
    ]


def test_idempotency_key_is_stable_per_event_and_subscription(hub):
    keys = []
    hub.bus.subscribe("r.*", lambda e, d: keys.append(d.idempotency_key), name="s")
    event = hub.bus.publish("r.x", source="/src")
    hub.bus.drain()
    hub.bus.replay("s")
    hub.bus.drain()
    assert keys == [f"s:/src:{event.id}"] * 2


def test_events_published_by_a_handler_carry_causation_and_correlation(hub):
    hub.bus.subscribe("order.placed", lambda e: hub.bus.publish("invoice.created"))
    hub.bus.subscribe(
        "invoice.created", lambda e: hub.bus.publish("mail.sent"), name="m"
    )
    order = hub.bus.publish("order.placed")
    hub.bus.drain()
    invoice, mail = hub.bus.history(["invoice.*", "mail.*"])
    assert invoice.causationid == order.id and invoice.correlationid == order.id
    assert mail.causationid == invoice.id and mail.correlationid == order.id


def test_unsubscribe_by_subscription_name_or_handler(hub):
    seen = []
    sub = hub.bus.subscribe("a.b", seen.append)
    hub.bus.subscribe("a.b", seen.append, name="d")
    hub.bus.unsubscribe(sub)
    hub.bus.unsubscribe("d", forget=True)
    hub.bus.publish("a.b")
    hub.bus.drain()
    assert seen == [] and hub.bus.durable_status() == []
    with pytest.raises(SubscriptionNotFound):
        hub.bus.unsubscribe("d")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "durable"},
        {"mode": "sometimes"},
        {"name": "   "},
        {"name": "s", "start": "middle"},
        {"name": "s", "start": -1},
        {"filter": {"regex": {"subject": ".*"}}},
    ],
)
def test_bad_subscriptions_are_rejected(hub, kwargs):
    with pytest.raises(InvalidSubscription):
        hub.bus.subscribe("a.b", print, **kwargs)


def test_a_durable_name_is_unique_on_a_bus(hub):
    hub.bus.subscribe("a.b", print, name="s")
    with pytest.raises(InvalidSubscription, match="already subscribed"):
        hub.bus.subscribe("a.c", print, name="s")


def test_history_by_pattern_and_limit(hub):
    for n in range(5):
        hub.bus.publish("user.created" if n % 2 else "order.paid", n)
    assert [e.data for e in hub.bus.history("user.*")] == [1, 3]
    assert [e.data for e in hub.bus.history(limit=2)] == [3, 4]
    assert [e.data for e in hub.bus.history(after=1, limit=2)] == [1, 2]


def test_lifecycle_signals_reach_receivers_held_strongly(hub):
    seen = []
    receivers = {
        signals.event_published: lambda bus, event: seen.append(
            ("published", event.type)
        ),
        signals.event_delivered: lambda bus, **kw: seen.append(
            ("delivered", kw["subscription"])
        ),
        signals.delivery_failed: lambda bus, **kw: seen.append(
            ("failed", kw["subscription"])
        ),
        signals.event_dead_lettered: lambda bus, **kw: seen.append(
            ("dead", kw["subscription"])
        ),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)  # lambdas: a weak reference would drop them
    del receiver
    try:
        hub.bus.subscribe("a.b", lambda e: None, name="ok")
        hub.bus.subscribe("a.b", lambda e: 1 / 0, name="bad", retry=RetryPolicy.never())
        hub.bus.publish("a.b")
        hub.bus.drain()
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert ("published", "a.b") in seen and ("delivered", "ok") in seen
    assert ("failed", "bad") in seen and ("dead", "bad") in seen


def test_retention_trims_old_events_but_not_unhandled_ones(hub):
    hub.bus.subscribe("log.*", lambda e: None, name="reader")
    hub.bus.retain("log.*", max_count=2)
    hub.bus.publish_many([{"type": "log.line", "data": n} for n in range(5)])
    assert hub.bus.trim() == 0  # the reader has not handled them yet
    hub.bus.drain()
    assert hub.bus.trim() == 3
    assert [e.data for e in hub.bus.history()] == [3, 4]


def test_capture_events_collects_published_events(hub):
    with capture_events(hub.bus, "user.*") as seen:
        hub.bus.publish("user.created")
        hub.bus.publish("order.paid")
    hub.bus.publish("user.deleted")
    assert [e.type for e in seen] == ["user.created"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_workers_deliver_without_drain(tmp_path, backend):
    import threading

    done = threading.Event()
    with make_hub(tmp_path, **BACKENDS[backend]()) as hub:
        hub.bus.subscribe("a.b", lambda e: done.set(), name="s")
        hub.start()
        hub.bus.publish("a.b")
        assert done.wait(10)
        assert hub.stop()


def test_stop_leaves_unfinished_deliveries_for_next_time(tmp_path):
    import threading

    started, release = threading.Event(), threading.Event()
    seen = []

    def slow(event):
        seen.append(event.data)
        if event.data == 0:
            started.set()
            release.wait(10)

    with make_hub(tmp_path) as hub:
        hub.bus.subscribe("job.*", slow, name="s")
        hub.bus.publish_many([{"type": "job.run", "data": n} for n in range(50)])
        hub.start()
        assert started.wait(10)
        stopper = threading.Thread(target=hub.stop)
        stopper.start()
        release.set()
        stopper.join(10)
        assert seen == [0]  # the in-flight handler finished; nothing new started
    with make_hub(tmp_path) as hub:
        hub.bus.subscribe("job.*", seen.append, name="s")
        hub.bus.drain()
    assert [e.data for e in seen[1:]] == list(range(1, 50))


def test_concurrent_publishers_share_commits(hub, monkeypatch):
    import threading

    group = hub.bus.log._group
    transactions = []
    write = group.write
    monkeypatch.setattr(
        group, "write", lambda batch: transactions.append(1) or write(batch)
    )

    def publisher(p):
        for n in range(200):
            hub.bus.publish("load.item", {"p": p, "n": n})

    threads = [threading.Thread(target=publisher, args=(p,)) for p in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = hub.bus.history(limit=None)
    assert [e.sequence for e in events] == list(range(1, 1601))
    for p in range(8):
        assert [e.data["n"] for e in events if e.data["p"] == p] == list(range(200))
    assert len(transactions) < 1600  # group commit: several events per transaction


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_stopping_idle_workers_wakes_them(tmp_path, monkeypatch, backend):
    from eventhub.delivery import Worker

    monkeypatch.setattr(Worker, "IDLE_WAIT", 60.0)  # only a wake-up can end the wait
    with make_hub(tmp_path, **BACKENDS[backend]()) as hub:
        hub.bus.subscribe("a.b", print, name="s")
        hub.start()
        hub.bus.drain()
        assert hub.stop(timeout=5)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_redriven_dead_letter_wakes_an_idle_worker(tmp_path, monkeypatch, backend):
    import threading

    from eventhub.delivery import Worker

    monkeypatch.setattr(Worker, "IDLE_WAIT", 60.0)
    outcomes = iter([ValueError("first"), None])
    delivered = threading.Event()

    def handler(event):
        error = next(outcomes)
        if error:
            raise error
        delivered.set()

    with make_hub(tmp_path, **BACKENDS[backend]()) as hub:
        hub.bus.subscribe("a.b", handler, name="s", retry=RetryPolicy.never())
        hub.bus.publish("a.b")
        hub.bus.drain()
        hub.start()
        hub.bus.redrive(all=True)
        assert delivered.wait(10)
