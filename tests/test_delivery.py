"""One delivery path: every test runs over inline and durable subscriptions alike
(and over each event log backend), so the two modes cannot drift apart again."""

import pytest
from structlog.testing import capture_logs

from eventhub import Delivery, Event, RetryPolicy, SkipEvent, signals
from eventhub.delivery import Consumer
from eventhub.eventlog import MemoryLog
from eventhub.patterns import TypePattern
from eventhub.subscriptions import Subscription, current_event, subject_key
from eventhub.testing import make_hub

MODES = ["inline", "durable"]


@pytest.fixture(params=["sqlite", "memory"])
def hub(request, tmp_path, clock):
    options = {"eventlog": MemoryLog()} if request.param == "memory" else {}
    with make_hub(tmp_path, clock=clock, **options) as hub:
        yield hub


@pytest.fixture
def signalled():
    """The signals sent meanwhile, as (signal name, subscription)."""
    seen = []
    receivers = {
        signal: (lambda _s, name=signal.name, **kw: seen.append((name, kw)))
        for signal in (
            signals.event_delivered,
            signals.delivery_failed,
            signals.event_dead_lettered,
        )
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def skip(event):
    raise SkipEvent()


def subscribe(hub, mode, handler, **options):
    name = f"{mode}-sub"
    if mode == "durable":
        options.setdefault("retry", RetryPolicy(max_attempts=2, wait=lambda s: 10))
    return hub.bus.subscribe("order.*", handler, name=name, mode=mode, **options)


def publish(hub, *events):
    stored = [hub.bus.publish("order.placed", data) for data in events]
    assert hub.bus.drain()
    return stored


def names(signalled, kind):
    return [kw["subscription"] for name, kw in signalled if name == kind]


@pytest.mark.parametrize("mode", MODES)
def test_a_handler_gets_the_event_and_its_delivery(hub, mode):
    seen = []
    subscribe(hub, mode, lambda event, delivery: seen.append((event, delivery)))
    (event,) = publish(hub, {"n": 1})
    ((got, delivery),) = seen
    assert got.id == event.id and got.data == {"n": 1}
    assert delivery == Delivery(f"{mode}-sub", 1, False, got)


@pytest.mark.parametrize("mode", MODES)
def test_event_delivered_is_sent_once_per_handler_that_returned(hub, mode, signalled):
    subscribe(hub, mode, lambda event: event.data["n"] * 2)
    (event,) = publish(hub, {"n": 21})
    ((name, sent),) = [s for s in signalled if s[0] == "event-delivered"]
    assert sent["subscription"] == f"{mode}-sub" and sent["result"] == 42
    assert sent["attempt"] == 1 and sent["event"].id == event.id


@pytest.mark.parametrize("mode", MODES)
def test_an_event_filtered_out_is_neither_handled_nor_signalled(hub, mode, signalled):
    seen = []
    subscribe(hub, mode, seen.append, filter={"exact": {"subject": "keep"}})
    hub.bus.publish("order.placed", 1, subject="drop")
    hub.bus.publish("order.placed", 2, subject="keep")
    assert hub.bus.drain()
    assert [e.data for e in seen] == [2]
    assert names(signalled, "event-delivered") == [f"{mode}-sub"]


@pytest.mark.parametrize("mode", MODES)
def test_skip_event_acknowledges_the_event_without_a_delivery(
    hub, mode, signalled, clock
):
    calls = []

    def handler(event):
        calls.append(event.data)
        if event.data == "skip":
            raise SkipEvent()

    subscribe(hub, mode, handler)
    publish(hub, "skip", "next")
    clock.advance(3600)
    assert hub.bus.drain()
    assert calls == ["skip", "next"]  # acknowledged: never attempted again
    assert names(signalled, "event-delivered") == [f"{mode}-sub"]  # "next" only
    assert names(signalled, "delivery-failed") == []
    assert hub.bus.dead_letters() == []


@pytest.mark.parametrize("mode", MODES)
def test_a_failure_is_logged_and_signalled_once(hub, mode, signalled):
    subscribe(hub, mode, lambda event: 1 / 0)
    with capture_logs() as logs:
        (event,) = publish(hub, 1)
    (line,) = [entry for entry in logs if entry["event"] == "delivery failed"]
    assert line["event_id"] == event.id and line["subscription"] == f"{mode}-sub"
    assert line["mode"] == mode and line["attempt"] == 1
    assert line["log_level"] == "error"
    assert isinstance(line["exc_info"], ZeroDivisionError)
    assert line["retry_in"] == (10 if mode == "durable" else None)
    assert names(signalled, "delivery-failed") == [f"{mode}-sub"]
    assert names(signalled, "event-delivered") == []


@pytest.mark.parametrize("mode", MODES)
def test_a_filter_that_raises_is_a_failure(hub, mode, signalled):
    seen = []

    def broken(event):
        raise KeyError("tenant")

    subscribe(hub, mode, seen.append, filter=broken)
    publish(hub, 1)
    assert seen == [] and names(signalled, "delivery-failed") == [f"{mode}-sub"]


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_handler_stops_neither_the_others_nor_the_publisher(hub, mode):
    seen = []
    subscribe(hub, mode, lambda event: 1 / 0)
    hub.bus.subscribe("order.*", seen.append, name="other", mode=mode)
    (event,) = publish(hub, 1)
    assert event.sequence == 1 and [e.id for e in seen] == [event.id]


@pytest.mark.parametrize("mode", MODES)
def test_current_event_is_the_event_being_handled(hub, mode):
    during = []
    subscribe(hub, mode, lambda event: during.append(current_event.get()))
    (event,) = publish(hub, 1)
    assert [e.id for e in during] == [event.id]
    assert current_event.get() is None


@pytest.mark.parametrize("mode", MODES)
def test_events_published_by_a_handler_are_its_effects(hub, mode):
    subscribe(hub, mode, lambda event: hub.bus.publish("invoice.created"))
    (order,) = publish(hub, 1)
    (invoice,) = hub.bus.history("invoice.*")
    assert invoice.causationid == order.id and invoice.correlationid == order.id


def test_a_durable_failure_is_retried_then_dead_lettered(hub, clock, signalled):
    attempts = []

    def handler(event, delivery):
        attempts.append(delivery.attempt)
        raise ConnectionError("down")

    subscribe(hub, "durable", handler)
    publish(hub, 1)
    clock.advance(10)
    assert hub.bus.drain()
    assert attempts == [1, 2] and len(hub.bus.dead_letters()) == 1
    assert names(signalled, "event-dead-lettered") == ["durable-sub"]


def test_an_inline_failure_is_not_retried(hub, clock):
    attempts = []
    subscribe(hub, "inline", lambda event: attempts.append(1) or 1 / 0)
    publish(hub, 1)
    clock.advance(3600)
    assert hub.bus.drain()
    assert attempts == [1] and hub.bus.dead_letters() == []


def test_emit_returns_what_each_handler_did(hub):
    hub.bus.subscribe("calc.*", lambda event: event.data * 2)
    hub.bus.subscribe("calc.*", lambda event: 1 / 0)
    hub.bus.subscribe("calc.*", skip)
    ok, failed = hub.bus.emit("calc.double", 21)
    assert (ok.ok, ok.value, ok.error) == (True, 42, None)
    assert not failed.ok and isinstance(failed.error, ZeroDivisionError)
    assert failed.retry_in is None


def test_metrics_count_deliveries_alike_in_both_modes(hub):
    pytest.importorskip("prometheus_client")
    from eventhub.server.metrics import HubMetrics

    metrics = HubMetrics(hub)
    metrics.connect()
    try:
        for mode in MODES:
            subscribe(hub, mode, lambda event: None)
            hub.bus.subscribe("order.*", skip, name=f"{mode}-skips", mode=mode)
        publish(hub, 1, 2)
    finally:
        metrics.disconnect()

    def delivered(name):
        value = metrics.registry.get_sample_value(
            "eventhub_events_delivered_total", {"subscription": name}
        )
        return value or 0

    assert [delivered(f"{m}-sub") for m in MODES] == [2, 2]
    assert [delivered(f"{m}-skips") for m in MODES] == [0, 0]


def test_a_consumer_needs_only_a_log_and_a_dead_letter_callback():
    log = MemoryLog()
    dead = []
    subscription = Subscription(
        name="s",
        patterns=TypePattern("a.*"),
        filter=None,
        handler=lambda event: 1 / 0,
        mode="durable",
        retry=RetryPolicy.never(),
        priority=0,
        order=0,
        partition_key=subject_key,
        start="beginning",
    )
    log.open_subscription("s", "a.*", "beginning")
    log.append([Event.create("a.b", {"n": 1}, source="/test")])
    consumer = Consumer(
        log,
        subscription,
        10,
        dead_lettered=lambda p, error: dead.append((p.sequence, error)),
        sender=object(),
    )
    assert consumer.step(now=0.0) == 1
    assert dead == [(1, "ZeroDivisionError: division by zero")]
    assert log.cursor("s") == 1 and len(log.dead_letters("s")) == 1
