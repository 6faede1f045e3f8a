"""What is particular to the SQLite log: upgrading a database written before the
log recorded dataschema and the data kind."""

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventhub import Event
from eventhub.eventlog import HistoryQuery
from eventhub.sqlitelog import SQLiteLog, m001_event_log
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
