"""What is particular to the SQLite log: upgrading a database written before the
log recorded dataschema and the data kind; history queries that SQL answers from the
type index, whatever the size of the log."""

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventhub import Event
from eventhub.eventlog.base import HistoryQuery
from eventhub.eventlog.sqlite import SQLiteLog, m001_event_log
from eventhub.patterns import TypePattern
from eventhub.statedb import StateDB

OLD_ROWS = [
    # What the log wrote before: JSON, raw bytes, and text encoded as JSON.
    ("1", "application/json", b'{"a":1}'),
    ("2", "application/octet-stream", b"\x00\xff"),
    ("3", "text/plain", b'"hello"'),
]


def old_database(path):
    before = Migrations("eventhub.log")
    before()(m001_event_log)
    db = sqlite_utils.Database(path)
    before.apply(db)
    db.conn.executemany(
        "INSERT INTO events (id, source, type, time, datacontenttype, data)"
        " VALUES (?, '/old', 'old.event', '2025-01-01T00:00:00.000000Z', ?, ?)",
        OLD_ROWS,
    )
    db.conn.commit()
    db.conn.close()


def test_rows_from_before_the_upgrade_read_back_as_they_always_did(tmp_path):
    old_database(tmp_path / "hub.db")
    db = StateDB(tmp_path / "hub.db")
    log = SQLiteLog(db)
    found = log.history(HistoryQuery())
    assert [e.data for e in found] == [{"a": 1}, b"\x00\xff", b'"hello"']
    assert all(e.dataschema is None for e in found)
    text = Event.create(
        "new.event", "hello", source="/new", datacontenttype="text/plain"
    )
    log.append([text])
    assert log.history(HistoryQuery(source="/new"))[0].data == "hello"
    log.close()
    db.close()


def vm_steps(conn, action):
    """What ``action`` costs SQLite, in thousands of virtual machine steps (a
    measure of work that does not depend on the machine's speed)."""
    steps = []
    conn.set_progress_handler(lambda: steps.append(1) and 0, 1000)
    try:
        result = action()
    finally:
        conn.set_progress_handler(None, 1000)
    return result, len(steps)


def test_a_wildcard_history_query_does_not_scan_the_log(tmp_path):
    db = StateDB(tmp_path / "hub.db", synchronous="OFF")
    log = SQLiteLog(db)
    for _ in range(10):
        log.append(
            [Event.create(f"order.{i % 4}", {"i": i}, source="/s") for i in range(2000)]
        )
    conn = db.connection()
    # One look at the type of every event, in SQL: the cost of a scan.
    scan = "SELECT count(*) FROM events NOT INDEXED WHERE type GLOB 'nomatch.*'"
    _, whole_log = vm_steps(conn, lambda: conn.execute(scan).fetchone())
    for pattern, expected in [
        ("nomatch.*", []),
        ("**.nomatch", []),
        ("nomatch.**", []),
        ("order.*", ["order.3"]),
        ("*.2", ["order.2"]),
        ("order.**", ["order.3"]),
    ]:
        query = HistoryQuery(type=TypePattern(pattern), limit=1)
        found, steps = vm_steps(conn, lambda q=query: log.history(q))
        assert [e.type for e in found] == expected, pattern
        assert steps * 10 < whole_log, (pattern, steps, whole_log)
    log.close()
    db.close()
