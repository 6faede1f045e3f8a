"""The SQLite log's history plans and batched retention give what a plain filter over
every event gives, for every combination of filters; plans read about as many rows
as they return; a sweep lets publishers through; an older database upgrades."""

import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventhub import Event
from eventhub.eventlog import _history, _retention, _timeblocks
from eventhub.eventlog.base import HistoryQuery, RetentionRule
from eventhub.eventlog.sqlite import (
    SQLiteLog,
    m001_event_log,
    m002_dataschema_and_data_kind,
)
from eventhub.patterns import TypePattern
from eventhub.statedb import StateDB

from .test_sqlitelog import vm_steps

# Near the writer's clock, so that most events count in their block's bounds.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
TYPES = ["order.created", "order.paid", "user.signup", "user.profile.updated", "x"]
SOURCES = ["/shop", "/crm", "/import", "/rare"]
SUBJECTS = [f"s{i}" for i in range(25)] + [None] * 5
PATTERNS = ["order.created", "order.*", "user.**", "*.paid", "nomatch.*"]


def random_events(rng, count):
    """Events whose time mostly grows with their order, some far off either way."""
    events = []
    for i in range(count):
        moment = T0 + timedelta(seconds=i)
        if rng.random() < 0.03:  # off by a little (the block's bounds widen)
            moment = T0 + timedelta(seconds=rng.randrange(-3000, 2 * count))
        elif rng.random() < 0.03:  # off by days: an outlier
            moment = T0 + timedelta(seconds=rng.randrange(-3 * 86400, 3 * 86400))
        source = "/rare" if rng.random() < 0.01 else rng.choice(SOURCES[:3])
        events.append(
            Event.create(
                rng.choice(TYPES),
                {"i": i},
                source=source,
                subject=rng.choice(SUBJECTS),
                time=moment,
            )
        )
    return events


@pytest.fixture
def small_blocks(monkeypatch):
    # Blocks of 64 sequences, so that a few thousand events make many of them.
    monkeypatch.setattr(_timeblocks, "BLOCK_BITS", 6)


def fill(path):
    rng = random.Random(15)
    db = StateDB(path, synchronous="OFF")
    log = SQLiteLog(db)
    events = random_events(rng, 3000)
    stored = []
    for start in range(0, len(events), 250):
        stored += [a.event for a in log.append(events[start : start + 250])]
    return log, stored, rng


@pytest.fixture
def filled(tmp_path, small_blocks):
    log, stored, rng = fill(tmp_path / "hub.db")
    yield log, stored, rng
    log.close()
    log.db.close()


def brute_force(events, q):
    """What history returns, by filtering every event in Python."""
    hits = [
        e
        for e in events
        if (q.type is None or q.type(e.type))
        and (q.source is None or e.source == q.source)
        and (q.subject is None or e.subject == q.subject)
        and (q.since is None or e.time >= q.since)
        and (q.until is None or e.time < q.until)
        and (q.after is None or e.sequence > q.after)
        and (q.before is None or e.sequence < q.before)
    ]
    if q.limit is None:
        return hits
    return hits[: q.limit] if q.after is not None else hits[-q.limit :]


def random_value(rng, field, count):
    if field == "type":
        choice = rng.choice(PATTERNS + [["order.paid", "user.signup"]])
        return TypePattern(choice)
    if field == "source":
        return rng.choice(SOURCES + ["/none"])
    if field == "subject":
        return rng.choice(SUBJECTS[:25])
    if field in ("since", "until"):
        if rng.random() < 0.2:
            return T0 + timedelta(seconds=rng.randrange(-3 * 86400, 3 * 86400))
        return T0 + timedelta(seconds=rng.randrange(-100, count + 100))
    return rng.randrange(0, count + 2)


FIELDS = ["type", "source", "subject", "since", "until", "after", "before"]


@pytest.mark.parametrize("few", [2000, 2], ids=["outliers-read", "outliers-walked"])
def test_every_combination_of_filters_gives_what_a_plain_filter_gives(
    filled, monkeypatch, few
):
    monkeypatch.setattr(_history, "_FEW", few)
    log, stored, rng = filled
    checked = 0
    for size in range(len(FIELDS) + 1):
        for fields in itertools.combinations(FIELDS, size):
            for limit in (None, 1, 7, 100):
                for _ in range(2):
                    values = {f: random_value(rng, f, len(stored)) for f in fields}
                    query = HistoryQuery(limit=limit, **values)
                    expected = [e.sequence for e in brute_force(stored, query)]
                    found = [e.sequence for e in log.history(query)]
                    assert found == expected, (values, limit)
                    checked += 1
    assert checked == 2**7 * 4 * 2


def test_time_ranges_after_times_change_in_place_give_what_a_plain_filter_gives(
    filled,
):
    log, stored, rng = filled
    for sequence in rng.sample(range(1, len(stored) + 1), 40):
        moment = T0 + timedelta(seconds=rng.randrange(-5000, 5000))
        with log.db.write() as writer:
            writer.execute(
                "UPDATE events SET time = ? WHERE sequence = ?",
                (moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), sequence),
            )
    current = log.history(HistoryQuery(limit=None))
    for _ in range(60):
        since = T0 + timedelta(seconds=rng.randrange(-5000, 3000))
        query = HistoryQuery(since=since, until=since + timedelta(seconds=500))
        assert [e.sequence for e in log.history(query)] == [
            e.sequence for e in brute_force(current, query)
        ]


def test_a_start_time_finds_the_first_event_of_that_time_or_later(filled):
    log, stored, rng = filled
    for _ in range(50):
        moment = T0 + timedelta(seconds=rng.randrange(-4000, 7000))
        if rng.random() < 0.3:
            moment = T0 + timedelta(seconds=rng.randrange(-4 * 86400, 4 * 86400))
        later = [e.sequence for e in stored if e.time >= moment]
        expected = min(later) - 1 if later else log.last_sequence()
        assert log.sequence_at(moment) == expected


def reference_trim(events, rules, now, floor):
    """The sequences the rules delete, as trim() always chose them."""
    doomed = set()
    for rule in rules:
        matching = [e for e in events if rule.match(e.type)]
        if rule.max_age is not None:
            cutoff = datetime.fromtimestamp(now - rule.max_age, UTC)
            doomed |= {
                e.sequence for e in matching if e.time < cutoff and e.sequence <= floor
            }
        if rule.max_count is not None:
            beyond = sorted(matching, key=lambda e: -e.sequence)[rule.max_count :]
            doomed |= {e.sequence for e in beyond if e.sequence <= floor}
    return doomed


@pytest.mark.parametrize(
    "rules",
    [
        [RetentionRule(TypePattern("order.*"), max_age=2000)],
        [RetentionRule(TypePattern("#"), max_count=500)],
        [
            RetentionRule(TypePattern("user.**"), max_age=1000, max_count=300),
            RetentionRule(TypePattern(["x", "order.paid"]), max_count=0),
        ],
        [RetentionRule(lambda t: t.endswith("d"), max_age=500, max_count=100)],
    ],
)
def test_a_sweep_in_small_batches_deletes_what_trim_always_did(
    filled, monkeypatch, rules
):
    log, stored, _ = filled
    monkeypatch.setattr(_retention, "WINDOW", 100)
    log.open_subscription("behind", "#", 2001)
    now = (T0 + timedelta(seconds=2500)).timestamp()
    doomed = reference_trim(stored, rules, now, floor=2000)
    deleted = _retention.trim_log(log.db, rules, now, batch=37, pause=0)
    assert deleted == len(doomed)
    left = [e.sequence for e in log.history(HistoryQuery(limit=None))]
    assert left == [e.sequence for e in stored if e.sequence not in doomed]


def test_trim_keeps_what_a_subscription_opened_during_the_sweep_has_to_handle(
    filled, monkeypatch
):
    log, stored, _ = filled
    opened = []
    delete = _retention._Sweep._delete

    def delete_then_open(sweep, sequences):
        delete(sweep, sequences)
        if not opened:
            opened.append(log.open_subscription("late", "#", "beginning"))

    monkeypatch.setattr(_retention._Sweep, "_delete", delete_then_open)
    rule = RetentionRule(TypePattern("#"), max_count=0)
    deleted = _retention.trim_log(log.db, [rule], T0.timestamp(), batch=100, pause=0)
    assert deleted == 100
    assert len(log.history(HistoryQuery(limit=None))) == len(stored) - 100


def test_publishers_keep_publishing_during_a_sweep(filled, monkeypatch):
    log, stored, _ = filled
    published = []
    failures = []
    sweeping = threading.Event()
    done = threading.Event()

    def publisher():
        sweeping.wait(10)
        try:
            while not done.is_set() or len(published) < 20:
                late = Event.create("late.event", None, source="/late")
                published.append(log.append([late])[0])
        except BaseException as exc:
            failures.append(exc)

    delete = _retention._Sweep._delete

    def signal_then_delete(sweep, sequences):
        sweeping.set()
        delete(sweep, sequences)

    monkeypatch.setattr(_retention._Sweep, "_delete", signal_then_delete)
    thread = threading.Thread(target=publisher)
    thread.start()
    rule = RetentionRule(TypePattern("#"), max_age=1)
    now = (T0 + timedelta(days=30)).timestamp()
    try:
        deleted = _retention.trim_log(log.db, [rule], now, batch=50, pause=0.001)
    finally:
        done.set()
        thread.join(30)
    assert not failures and len(published) >= 20
    assert deleted == len(stored)
    left = log.history(HistoryQuery(limit=None))
    assert [e.id for e in left] == [a.event.id for a in published]
    assert all(not a.duplicate for a in published)


def test_filters_read_about_as_many_rows_as_they_return(tmp_path, small_blocks):
    base = datetime.now(UTC) - timedelta(minutes=30)

    def at(k):  # 40000 events over 27 minutes, all near the writer's clock
        return base + timedelta(milliseconds=40 * k)

    db = StateDB(tmp_path / "hub.db", synchronous="OFF")
    log = SQLiteLog(db)
    for batch in range(20):
        log.append(
            [
                Event.create(
                    f"order.{i % 4}",
                    {"i": i},
                    source="/rare" if i == 7 else f"/s{i % 3}",
                    subject=f"order/{batch}/{i % 50}",
                    time=at(batch * 2000 + i),
                )
                for i in range(2000)
            ]
        )
    conn = db.connection()
    scan = "SELECT count(*) FROM events NOT INDEXED WHERE subject = 'none'"
    _, whole_log = vm_steps(conn, lambda: conn.execute(scan).fetchone())
    for query in [
        HistoryQuery(source="/rare"),
        HistoryQuery(source="/s1"),
        HistoryQuery(subject="order/3/7"),
        HistoryQuery(type=TypePattern("order.*"), source="/s2"),
        HistoryQuery(since=at(5000)),
        HistoryQuery(until=at(5000)),
        HistoryQuery(since=at(3000), until=at(9000)),
        HistoryQuery(source="/s0", until=at(7000), after=100),
    ]:
        found, steps = vm_steps(conn, lambda q=query: log.history(q))
        assert found, query
        assert steps * 10 < whole_log, (query, steps, whole_log)
    log.close()
    db.close()


def test_an_older_log_gets_the_history_indexes_when_opened(tmp_path):
    before = Migrations("eventhub.log")
    before()(m001_event_log)
    before()(m002_dataschema_and_data_kind)
    old = sqlite_utils.Database(tmp_path / "hub.db")
    before.apply(old)
    old.conn.executemany(
        "INSERT INTO events (id, source, type, time) VALUES (?, '/old', 'a.b', ?)",
        [(str(i), f"2025-01-01T00:00:{i:02d}.000000Z") for i in range(50)],
    )
    old.conn.commit()
    old.conn.close()
    db = StateDB(tmp_path / "hub.db")
    log = SQLiteLog(db)
    names = {r[0] for r in db.connection().execute("SELECT name FROM sqlite_master")}
    assert {"events_source_type", "events_subject", "events_time_blocks"} <= names
    since = datetime(2025, 1, 1, 0, 0, 45, tzinfo=UTC)
    assert [e.id for e in log.history(HistoryQuery(since=since))] == [
        "45",
        "46",
        "47",
        "48",
        "49",
    ]
    log.close()
    db.close()
