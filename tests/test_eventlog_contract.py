"""The contract every EventLog backend must meet: one suite run over each backend
(``eventlog``), and what only a durable, shared log can do run over those that say
they are (``storage``: the same storage opened by several log objects)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from eventhub import DeadLetterNotFound, Event, Hub, SubscriptionNotFound
from eventhub.eventlog import EventLog, MemoryLog, SQLiteLog
from eventhub.eventlog.base import HistoryQuery, Pending, RetentionRule, StepOutcome
from eventhub.patterns import TypePattern
from eventhub.statedb import StateDB


class Backend:
    """Opens a backend's log on storage in a folder; the same folder opens the
    same storage again (for a durable backend)."""

    def __init__(self, cls, open):
        self.cls = cls
        self._open = open

    def open(self, folder):
        return self._open(folder)


def open_sqlite(folder):
    db = StateDB(folder / "log.db", synchronous="NORMAL")
    return SQLiteLog(db), db.close


BACKENDS = {
    "sqlite": Backend(SQLiteLog, open_sqlite),
    "memory": Backend(MemoryLog, lambda folder: (MemoryLog(), lambda: None)),
}
DURABLE = sorted(n for n, b in BACKENDS.items() if b.cls.durable)
SHARED = sorted(n for n, b in BACKENDS.items() if b.cls.cross_process)


@pytest.fixture(params=sorted(BACKENDS))
def eventlog(request, tmp_path):
    log, close = BACKENDS[request.param].open(tmp_path)
    yield log
    log.close()
    close()


@pytest.fixture
def storage(request, tmp_path):
    """``storage()`` opens one more log on the same storage (closed at the end)."""
    opened = []

    def open_log():
        opened.append(BACKENDS[request.param].open(tmp_path))
        return opened[-1][0]

    yield open_log
    for log, close in reversed(opened):
        log.close()
        close()


def ev(type_name="a.b", subject=None, source="/test", id=None, time=None, data=None):
    return Event.create(
        type_name, data, source=source, subject=subject, id=id, time=time
    )


def test_append_numbers_events_in_order(eventlog):
    stored = eventlog.append([ev(), ev(), ev()])
    assert [a.event.sequence for a in stored] == [1, 2, 3]
    assert not any(a.duplicate for a in stored)
    assert eventlog.last_sequence() == 3


def test_same_source_and_id_is_stored_once(eventlog):
    first = eventlog.append([ev(id="x-1", data={"v": 1})])[0]
    again = eventlog.append([ev(id="x-1", data={"v": 2}), ev(id="x-2")])
    assert again[0].duplicate and again[0].event.sequence == first.event.sequence
    assert again[0].event.data == {"v": 1}
    assert not again[1].duplicate
    assert [e.id for e in eventlog.history(HistoryQuery())] == ["x-1", "x-2"]


def test_same_id_from_another_source_is_a_different_event(eventlog):
    results = eventlog.append([ev(id="x", source="/a"), ev(id="x", source="/b")])
    assert [r.duplicate for r in results] == [False, False]


def test_sequences_are_never_reused_after_deletion(eventlog):
    eventlog.append([ev("old.x") for _ in range(3)])
    deleted = eventlog.trim([RetentionRule(TypePattern("#"), max_count=0)], now=0)
    assert deleted == 3
    assert eventlog.append([ev()])[0].event.sequence == 4


def test_read_returns_events_after_a_sequence_and_how_far_it_looked(eventlog):
    eventlog.append([ev("a.x"), ev("b.x"), ev("a.y"), ev("b.y")])
    batch = eventlog.read(1, 2, TypePattern("b.*"))
    assert [e.type for e in batch.events] == ["b.x"] and batch.upto == 3
    rest = eventlog.read(batch.upto, 10, TypePattern("b.*"))
    assert [e.type for e in rest.events] == ["b.y"] and rest.upto == 4
    assert eventlog.read(4, 10).events == [] and eventlog.read(4, 10).upto == 4


def test_read_round_trips_every_attribute(eventlog):
    original = Event.create(
        "order.paid",
        {"n": [1, 2]},
        source="/shop",
        subject="o/1",
        correlationid="c",
        causationid="d",
        extensions={"tenant": "t"},
    )
    eventlog.append([original])
    (stored,) = eventlog.read(0, 10).events
    assert stored == original.with_sequence(1)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ({"n": 1}, None),
        ("hello", "application/json"),
        ("hello", "text/plain"),
        (b"\x00\xff", "image/png"),
        ({"a": 1}, "text/plain"),
    ],
)
def test_every_kind_of_data_round_trips(eventlog, data, content_type):
    original = Event.create(
        "a.b",
        data,
        source="/s",
        datacontenttype=content_type,
        dataschema="https://example.com/schema",
    )
    (appended,) = eventlog.append([original])
    (read,) = eventlog.read(0, 10).events
    (found,) = eventlog.history(HistoryQuery())
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(dead=[(Pending("s", read, None, 1, 0), "e", "t")]))
    (letter,) = eventlog.dead_letters()
    for event in (appended.event, read, found, letter.event):
        assert event == original.with_sequence(1) and event.data == data


def test_type_matching_is_case_sensitive_in_every_query(eventlog):
    eventlog.append([ev("Microsoft.Storage.BlobCreated"), ev("microsoft.storage.x")])
    for pattern in (
        "Microsoft.Storage.BlobCreated",
        "Microsoft.Storage.*",
        "Microsoft.**",
    ):
        match = TypePattern(pattern)
        found = eventlog.history(HistoryQuery(type=match))
        assert [e.type for e in found] == ["Microsoft.Storage.BlobCreated"], pattern
        read = eventlog.read(0, 10, match).events
        assert [e.type for e in read] == ["Microsoft.Storage.BlobCreated"], pattern
    assert eventlog.history(HistoryQuery(type=TypePattern("MICROSOFT.**"))) == []


# Types that put a translation of patterns to SQL to the test: empty segments, a
# prefix without the dot, GLOB's special characters, upper case, non-ASCII.
TRICKY_TYPES = [
    "a", "a.b", "a.b.c", "a.b.c.d", "a..b", "a.b.", ".a", "ab", "ab.c", "a.bc",
    "A.b", "b.a", "x[1].y", "x?.y", "x*.y", "é.b", "a.é", "a/b.c", "failed",
    "job.failed", "job.run.failed", "job.failed.not",
]  # fmt: skip
TRICKY_PATTERNS = [
    "a.*", "a.**", "a.*.c", "a.**.c", "*.b", "**.b", "*.*", "**", "#", "a.#",
    "**.failed", "job.**.failed", "*.failed", "x[1].*", "x?.*", "é.*",
    "*.é", "A.*", "ab.**", "nomatch.*", "nomatch.**", "**.nomatch", "a.b",
    "a.b.c.d.*", "*.*.*.*",
]  # fmt: skip


@pytest.mark.parametrize("pattern", TRICKY_PATTERNS)
def test_history_matches_a_pattern_as_the_pattern_does(eventlog, pattern):
    eventlog.append([ev(t) for t in TRICKY_TYPES])
    match = TypePattern(pattern)
    expected = [t for t in TRICKY_TYPES if match.matches(t)]
    found = eventlog.history(HistoryQuery(type=match, limit=None))
    assert [e.type for e in found] == expected
    latest = eventlog.history(HistoryQuery(type=match, limit=2))
    assert [e.type for e in latest] == expected[-2:]
    first = eventlog.history(HistoryQuery(type=match, after=0, limit=2))
    assert [e.type for e in first] == expected[:2]


def test_history_matches_patterns_over_thousands_of_distinct_types(eventlog):
    types = [f"t.{i:04d}.{'x' if i % 3 else 'y'}" for i in range(1500)] + ["u.x"]
    eventlog.append([ev(t) for t in types])
    for pattern in ("t.*.y", "t.**", "**.x", "*.x", "t.*.*.*"):
        match = TypePattern(pattern)
        found = eventlog.history(HistoryQuery(type=match, limit=None))
        assert [e.type for e in found] == [t for t in types if match.matches(t)]
    latest = eventlog.history(HistoryQuery(type=TypePattern("t.*.y"), limit=1))
    assert [e.type for e in latest] == ["t.1497.y"]


def test_history_returns_latest_matches_oldest_first(eventlog):
    eventlog.append([ev("user.created", subject=f"u{i}") for i in range(5)])
    eventlog.append([ev("order.paid")])
    found = eventlog.history(HistoryQuery(type=TypePattern("user.*"), limit=2))
    assert [e.subject for e in found] == ["u3", "u4"]


def test_history_filters_by_source_subject_time_and_sequence(eventlog):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    eventlog.append(
        [
            ev(source="/a", subject="s1", time=t0),
            ev(source="/b", subject="s1", time=t0 + timedelta(hours=1)),
            ev(source="/a", subject="s2", time=t0 + timedelta(hours=2)),
        ]
    )
    assert [e.sequence for e in eventlog.history(HistoryQuery(source="/a"))] == [1, 3]
    assert [e.sequence for e in eventlog.history(HistoryQuery(subject="s1"))] == [1, 2]
    window = HistoryQuery(
        since=t0 + timedelta(minutes=30), until=t0 + timedelta(hours=2)
    )
    assert [e.sequence for e in eventlog.history(window)] == [2]
    assert [e.sequence for e in eventlog.history(HistoryQuery(after=1, limit=1))] == [2]
    assert [e.sequence for e in eventlog.history(HistoryQuery(before=3))] == [1, 2]


@pytest.mark.parametrize(("start", "cursor"), [("end", 3), ("beginning", 0), (2, 1)])
def test_new_subscription_starts_where_asked(eventlog, start, cursor):
    eventlog.append([ev(), ev(), ev()])
    assert eventlog.open_subscription("s", "#", start) == cursor


def test_subscription_can_start_at_a_time(eventlog):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    eventlog.append([ev(time=t0 + timedelta(hours=h)) for h in range(4)])
    assert eventlog.open_subscription("s", "#", t0 + timedelta(minutes=90)) == 2


def test_existing_subscription_resumes_from_its_cursor(eventlog):
    eventlog.append([ev(), ev()])
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(cursor=1))
    assert eventlog.open_subscription("s", "#", "end") == 1
    assert eventlog.cursor("s") == 1


def test_cursor_never_moves_backwards(eventlog):
    eventlog.append([ev(), ev()])
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(cursor=2))
    eventlog.commit("s", StepOutcome(cursor=1))
    assert eventlog.cursor("s") == 2


def test_unknown_subscription_is_a_lookup_error(eventlog):
    with pytest.raises(SubscriptionNotFound):
        eventlog.cursor("nope")


def test_retries_become_due_at_their_time(eventlog):
    (a,) = [x.event for x in eventlog.append([ev(subject="k")])]
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(cursor=1, retry=[Pending("s", a, "k", 1, 100.0)]))
    assert eventlog.due("s", 99.0, 10) == []
    (due,) = eventlog.due("s", 100.0, 10)
    assert due.event == a and due.attempts == 1 and due.key == "k"
    assert eventlog.next_due("s") == 100.0 and eventlog.pending_keys("s") == {"k"}


def test_only_the_oldest_pending_delivery_of_a_key_is_due(eventlog):
    a, b, c = [
        x.event for x in eventlog.append([ev(subject="k"), ev(subject="k"), ev()])
    ]
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit(
        "s",
        StepOutcome(
            retry=[
                Pending("s", a, "k", 1, 5.0),
                Pending("s", b, "k", 0, 0.0),
                Pending("s", c, None, 1, 5.0),
            ]
        ),
    )
    assert [p.sequence for p in eventlog.due("s", 10.0, 10)] == [1, 3]
    eventlog.commit("s", StepOutcome(done=[1, 3]))
    assert [p.sequence for p in eventlog.due("s", 10.0, 10)] == [2]


def test_dead_letters_keep_the_event_and_redrive_puts_it_back(eventlog):
    (a,) = [x.event for x in eventlog.append([ev(subject="k", data={"x": 1})])]
    eventlog.open_subscription("s", "#", "beginning")
    failed = Pending("s", a, "k", 3, 0.0)
    eventlog.commit(
        "s", StepOutcome(cursor=1, dead=[(failed, "ValueError: boom", "tb")])
    )
    (letter,) = eventlog.dead_letters()
    assert (
        letter.event == a
        and letter.attempts == 3
        and letter.error == "ValueError: boom"
    )
    assert eventlog.redrive([letter.id], now=50.0) == 1
    assert eventlog.dead_letters() == []
    (due,) = eventlog.due("s", 50.0, 10)
    assert due.event == a and due.attempts == 0


def test_redrive_of_an_unknown_id_changes_nothing(eventlog):
    (a,) = [x.event for x in eventlog.append([ev()])]
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(dead=[(Pending("s", a, None, 1, 0.0), "E", "tb")]))
    (letter,) = eventlog.dead_letters()
    with pytest.raises(DeadLetterNotFound):
        eventlog.redrive([letter.id, 999], now=0.0)
    assert len(eventlog.dead_letters()) == 1


def test_schedule_adds_replays_once(eventlog):
    events = [x.event for x in eventlog.append([ev(), ev()])]
    eventlog.open_subscription("s", "#", "end")
    replays = [Pending("s", e, None, 0, 0.0, replay=True) for e in events]
    assert eventlog.schedule("s", replays) == 2
    assert eventlog.schedule("s", replays) == 0
    assert all(p.replay for p in eventlog.due("s", 0.0, 10))


def test_trim_keeps_what_a_subscription_has_not_handled(eventlog):
    eventlog.append([ev("log.line") for _ in range(6)])
    eventlog.open_subscription("slow", "#", "beginning")
    eventlog.commit("slow", StepOutcome(cursor=2))
    deleted = eventlog.trim([RetentionRule(TypePattern("log.*"), max_count=1)], now=0)
    assert deleted == 2
    assert [e.sequence for e in eventlog.history(HistoryQuery())] == [3, 4, 5, 6]


def test_trim_by_age_only_touches_matching_types(eventlog):
    old = datetime(2020, 1, 1, tzinfo=UTC)
    eventlog.append(
        [ev("log.line", time=old), ev("order.paid", time=old), ev("log.line")]
    )
    now = datetime.now(UTC).timestamp()
    assert eventlog.trim([RetentionRule(TypePattern("log.*"), max_age=86400)], now) == 1
    assert [e.type for e in eventlog.history(HistoryQuery())] == [
        "order.paid",
        "log.line",
    ]


def test_a_claim_can_be_retaken_after_release(eventlog):
    assert eventlog.claim("s")
    assert eventlog.claim("s")  # re-claiming one's own claim is fine
    eventlog.release("s")
    assert eventlog.claim("s")


def test_drop_subscription_forgets_cursor_and_pending(eventlog):
    (a,) = [x.event for x in eventlog.append([ev()])]
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(retry=[Pending("s", a, None, 1, 0.0)]))
    eventlog.drop_subscription("s")
    assert [s.name for s in eventlog.subscriptions()] == []
    assert eventlog.due("s", 10.0, 10) == []


def test_wait_returns_when_an_event_arrives(eventlog):
    import threading

    timer = threading.Timer(0.05, lambda: eventlog.append([ev()]))
    timer.start()
    assert eventlog.wait(0, timeout=10.0)
    timer.join()
    assert not eventlog.wait(1, timeout=0.01)


def test_next_due_is_not_that_of_deliveries_parked_behind_a_retry(eventlog):
    a, b = [x.event for x in eventlog.append([ev(subject="k"), ev(subject="k")])]
    eventlog.open_subscription("s", "#", "beginning")
    parked = Pending("s", b, "k", 0, 0.0)
    eventlog.commit("s", StepOutcome(retry=[Pending("s", a, "k", 1, 60.0), parked]))
    assert eventlog.next_due("s") == 60.0  # b waits behind a, due or not
    eventlog.commit("s", StepOutcome(done=[1]))
    assert eventlog.next_due("s") == 0.0
    eventlog.commit("s", StepOutcome(done=[2]))
    assert eventlog.next_due("s") is None


def test_a_retry_updates_a_pending_delivery_and_a_replay_does_not(eventlog):
    (a,) = [x.event for x in eventlog.append([ev(subject="k")])]
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit("s", StepOutcome(retry=[Pending("s", a, "k", 1, 10.0)]))
    eventlog.commit("s", StepOutcome(retry=[Pending("s", a, "k", 2, 20.0, False, "E")]))
    assert eventlog.schedule("s", [Pending("s", a, None, 0, 0.0, replay=True)]) == 0
    (due,) = eventlog.due("s", 20.0, 10)
    assert (due.attempts, due.due, due.last_error, due.replay) == (2, 20.0, "E", False)


def test_subscriptions_count_pending_deliveries_and_dead_letters(eventlog):
    a, b, c = [x.event for x in eventlog.append([ev(), ev(), ev()])]
    eventlog.open_subscription("t", "x.*", "end")
    eventlog.open_subscription("s", "#", "beginning")
    eventlog.commit(
        "s",
        StepOutcome(
            cursor=3,
            retry=[Pending("s", a, None, 1, 5.0)],
            dead=[(Pending("s", b, None, 1, 0), "E", "tb")],
        ),
    )
    eventlog.commit("t", StepOutcome(dead=[(Pending("t", c, None, 1, 0), "E", "tb")]))
    found = [
        (i.name, i.cursor, i.pattern, i.pending, i.dead_letters)
        for i in eventlog.subscriptions()
    ]
    assert found == [("s", 3, "#", 1, 1), ("t", 3, "x.*", 0, 1)]
    assert [d.event for d in eventlog.dead_letters("t")] == [c]
    assert [d.subscription for d in eventlog.dead_letters(limit=1)] == ["s"]


def test_redrive_of_all_dead_letters(eventlog):
    a, b = [x.event for x in eventlog.append([ev(), ev()])]
    eventlog.open_subscription("s", "#", "beginning")
    dead = [(Pending("s", e, None, 3, 0.0), "E", "tb") for e in (a, b)]
    eventlog.commit("s", StepOutcome(cursor=2, dead=dead))
    assert eventlog.redrive(None, now=7.0) == 2
    assert eventlog.dead_letters() == []
    assert [(p.sequence, p.attempts) for p in eventlog.due("s", 7.0, 10)] == [
        (1, 0),
        (2, 0),
    ]


def test_changing_an_event_read_back_changes_nothing_stored(eventlog):
    eventlog.append([ev(data={"items": [1, 2]})])
    eventlog.open_subscription("s", "#", "beginning")
    (first,) = eventlog.read(0, 10).events
    first.data["items"].append(3)
    eventlog.commit("s", StepOutcome(retry=[Pending("s", first, None, 1, 0.0)]))
    (again,) = eventlog.history(HistoryQuery())
    assert again.data == {"items": [1, 2]}
    assert eventlog.read(0, 10).events[0].data == {"items": [1, 2]}


def test_wake_waiters_ends_a_wait(eventlog):
    woken = eventlog.wakeups()
    ended = threading.Event()

    def waiter():
        eventlog.wait(0, 30.0, lambda: eventlog.wakeups() != woken)
        ended.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    eventlog.wake_waiters()
    assert ended.wait(10)
    thread.join()


def test_undecodable_events_are_none_in_a_healthy_log(eventlog):
    eventlog.append([ev()])
    assert eventlog.undecodable_events() == []


def test_every_backend_is_an_event_log_that_says_what_it_guarantees():
    for backend in BACKENDS.values():
        assert issubclass(backend.cls, EventLog)
        assert isinstance(backend.cls.durable, bool)
        assert isinstance(backend.cls.cross_process, bool)
    assert not MemoryLog.durable and not MemoryLog.cross_process
    with Hub(load_entrypoints=False) as hub:  # ":memory:": a private file
        assert not hub.log.durable and not hub.log.cross_process


# Durable backends only -------------------------------------------------------


@pytest.mark.parametrize("storage", DURABLE, indirect=True)
def test_a_log_opened_again_has_events_cursors_retries_and_dead_letters(storage):
    log = storage()
    a, b, c = [x.event for x in log.append([ev(subject="k"), ev(), ev()])]
    log.open_subscription("s", "#", "beginning")
    log.commit(
        "s",
        StepOutcome(
            cursor=3,
            retry=[Pending("s", a, "k", 1, 5.0)],
            dead=[(Pending("s", b, None, 2, 0.0), "E", "tb")],
        ),
    )
    log.close()
    again = storage()
    assert [e.id for e in again.history(HistoryQuery())] == [a.id, b.id, c.id]
    assert again.cursor("s") == 3 and again.pending_keys("s") == {"k"}
    assert [p.event for p in again.due("s", 5.0, 10)] == [a]
    assert [d.event for d in again.dead_letters()] == [b]


@pytest.mark.parametrize("storage", DURABLE, indirect=True)
def test_sequences_are_never_reused_after_opening_again(storage):
    log = storage()
    log.append([ev(), ev()])
    log.trim([RetentionRule(TypePattern("#"), max_count=0)], now=0)
    log.close()
    assert storage().append([ev()])[0].event.sequence == 3


@pytest.mark.parametrize("storage", SHARED, indirect=True)
def test_a_claim_excludes_every_other_log_on_the_storage(storage):
    first, second = storage(), storage()
    assert first.claim("s")
    assert not second.claim("s")
    first.release("s")
    assert second.claim("s") and not first.claim("s")


@pytest.mark.parametrize("storage", SHARED, indirect=True)
def test_a_wait_ends_for_an_event_appended_through_another_log(storage):
    waiting, publisher = storage(), storage()
    timer = threading.Timer(0.05, lambda: publisher.append([ev()]))
    timer.start()
    assert waiting.wait(0, timeout=10.0)
    timer.join()
