"""The default event log: one SQLite file, shared by threads and processes.

Publishers are group-committed (:mod:`eventhub.eventlog._groupcommit`): concurrent
``append`` calls are written in one transaction, one fsync, by whichever caller
arrives first.
Consumers learn of appends from this process at once; other processes are woken by a
datagram after each commit (:mod:`eventhub._wakeup`), and waiting consumers also poll
the sequence counter, a microsecond query, every ``poll_interval`` seconds, in case a
wake-up is lost.

One publisher's bad event never fails the others: when a group transaction is refused
for a row (a constraint, a value SQLite cannot bind or store), it is rolled back and
each publisher's events are written again in a savepoint of their own, so that only
the one at fault gets the error. Failures of the database itself (I/O, disk full,
locked) still fail the whole group.

A damaged row (:mod:`eventhub.eventlog._rows`) is read as
:class:`~eventhub.errors.UndecodableEvent`: history raises it (or reports it), while
reads for delivery give a placeholder for the consumer to dead-letter. History looks
types up in the type index (:mod:`eventhub.eventlog._types`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlite_utils.migrations import Migrations

from .._wakeup import WakeChannel, wake_folder
from ..errors import (
    DeadLetterNotFound,
    SubscriptionNotFound,
    UndecodableEvent,
)
from ..events import (
    Event,
    data_kind,
    format_time,
)
from ..statedb import NamedLock, StateDB
from . import _timeblocks as timeblocks
from ._groupcommit import GroupCommit, explain_refusal, is_refusal
from ._history import run_history
from ._retention import trim_log
from ._rows import (
    ANY_SIZE,
    EVENT_COLUMNS,
    SELECT_EVENTS,
    decode_row,
    letter_event,
    placeholder,
    row_decoder,
    select,
    snapshot,
    stored_time,
)
from ._timeblocks import note_times, sequence_runs
from .base import (
    UNDECODABLE_ERROR,
    UNDECODABLE_EXTENSION,
    Appended,
    Batch,
    DeadLetter,
    EventLog,
    HistoryQuery,
    Pending,
    RetentionRule,
    Start,
    StepOutcome,
    SubscriptionInfo,
    TypeMatch,
    UndecodableRecord,
    undecodable_placeholder,
)

log = structlog.get_logger(__name__)
migrations = Migrations("eventhub.log")


@migrations()
def m001_event_log(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE events (
            sequence INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL,
            source TEXT NOT NULL,
            type TEXT NOT NULL,
            subject TEXT,
            time TEXT NOT NULL,
            datacontenttype TEXT,
            data BLOB,
            correlationid TEXT,
            causationid TEXT,
            extensions TEXT
        );
        CREATE UNIQUE INDEX events_source_id ON events (source, id);
        CREATE INDEX events_type ON events (type, sequence);
        CREATE TABLE subscriptions (
            name TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL,
            pattern TEXT NOT NULL,
            created TEXT NOT NULL
        );
        CREATE TABLE pending (
            subscription TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            key TEXT,
            attempts INTEGER NOT NULL,
            due REAL NOT NULL,
            replay INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            event BLOB NOT NULL,
            PRIMARY KEY (subscription, sequence)
        );
        CREATE INDEX pending_key ON pending (subscription, key, sequence);
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            subscription TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            key TEXT,
            event BLOB NOT NULL,
            error TEXT NOT NULL,
            traceback TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            failed_at TEXT NOT NULL
        );
        CREATE INDEX dead_letters_subscription ON dead_letters (subscription, id);
        """
    )


@migrations()
def m002_dataschema_and_data_kind(db: Any) -> None:
    # datakind: "json", "text" or "binary" (eventhub.events.data_kind); NULL in rows
    # stored before, which are read as they always were.
    db.execute("ALTER TABLE events ADD COLUMN dataschema TEXT")
    db.execute("ALTER TABLE events ADD COLUMN datakind TEXT")


@migrations()
def m003_history_indexes(db: Any) -> None:
    # The indexes of history's plans (eventhub.eventlog._history): a source's and a
    # subject's events in sequence order, and the time blocks. On a large log this
    # reads every event once, under the write lock: logged, with the time taken.
    events = db.execute("SELECT MAX(sequence) FROM events").fetchone()[0] or 0
    started = time.monotonic()
    if events:
        log.info("building the event log's history indexes", events=events)
    for statement in (
        "CREATE INDEX IF NOT EXISTS events_source_type"
        " ON events (source, type, sequence)",
        "CREATE INDEX IF NOT EXISTS events_subject"
        " ON events (subject, sequence) WHERE subject IS NOT NULL",
        *timeblocks.CREATE,
        timeblocks.REBUILD,
    ):
        db.execute(statement)
    if events:
        log.info(
            "built the event log's history indexes",
            events=events,
            seconds=round(time.monotonic() - started, 1),
        )


_INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (source, id) DO NOTHING"
)
_LAST_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
_INSERT_PENDING = (
    "INSERT INTO pending"
    " (subscription, sequence, key, attempts, due, replay, last_error, event)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subscription, sequence) DO "
)
# A retry (or a redrive) replaces the attempt count and due time of a pending delivery.
_UPSERT_PENDING = _INSERT_PENDING + (
    "UPDATE SET attempts = excluded.attempts, due = excluded.due,"
    " last_error = excluded.last_error"
)
# A replay never disturbs a delivery that is already pending.
_ADD_PENDING = _INSERT_PENDING + "NOTHING"


class SQLiteLog(EventLog):
    """The event log in a SQLite state database.

    Durable and shared by processes, unless its database is a ``":memory:"`` one
    (a private file deleted on close): then neither.

    Args:
        db: The state database (its file may be shared with other processes).
        poll_interval: How often a waiting consumer checks for appends made by other
            processes, in seconds.
    """

    durable = True
    cross_process = True

    def __init__(
        self, db: StateDB, *, poll_interval: float = 0.01, commit_delay: float = 0.0005
    ) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.commit_delay = commit_delay
        db.migrate(migrations)
        if db.is_temporary:
            self.durable = self.cross_process = False
        self._wake = (
            None
            if db.is_temporary
            else WakeChannel(wake_folder(db.path), self.wake_waiters)
        )
        self._group = GroupCommit(
            self._write_batch,
            written=self.wake_waiters,
            committed=self._ring,
            commit_delay=commit_delay,
        )
        self._appended = threading.Condition()
        self._generation = 0
        self._claims: dict[str, NamedLock] = {}

    # The log ----------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[Appended]:
        if not events:
            return []
        return self._group.append(events)

    def _write_batch(
        self, batch: list[Sequence[Event]]
    ) -> Sequence[list[Appended] | BaseException]:
        """The events of several callers in one transaction; when it is refused for
        a row, each caller's again in a savepoint of one transaction, so that only
        the caller at fault gets the error."""
        try:
            with self.db.write() as conn:
                results = self._insert(conn, [e for events in batch for e in events])
        except BaseException as exc:
            if len(batch) > 1 and is_refusal(exc):
                return self._write_each(batch)
            error = explain_refusal(batch[0], exc) if len(batch) == 1 else exc
            return [error] * len(batch)
        if len(batch) == 1:
            return [results]
        outcomes: list[list[Appended] | BaseException] = []
        offset = 0
        for events in batch:
            outcomes.append(results[offset : offset + len(events)])
            offset += len(events)
        return outcomes

    def _write_each(
        self, batch: list[Sequence[Event]]
    ) -> list[list[Appended] | BaseException]:
        outcomes: list[list[Appended] | BaseException] = []
        try:
            with self.db.write() as conn:
                for events in batch:
                    conn.execute("SAVEPOINT eventhub_append")
                    try:
                        outcomes.append(self._insert(conn, events))
                    except BaseException as exc:
                        conn.execute("ROLLBACK TO eventhub_append")
                        conn.execute("RELEASE eventhub_append")
                        if not is_refusal(exc):
                            raise
                        outcomes.append(explain_refusal(events, exc))
                    else:
                        conn.execute("RELEASE eventhub_append")
        except BaseException as exc:
            # Nothing committed: a caller refused for its own events keeps that
            # error, the others get the transaction's.
            failed: list[list[Appended] | BaseException] = [
                o if isinstance(o, BaseException) else exc for o in outcomes
            ]
            return failed + [exc] * (len(batch) - len(failed))
        return outcomes

    def _ring(self) -> None:
        if self._wake is not None:
            self._wake.ring()

    def _insert(
        self, conn: sqlite3.Connection, events: Sequence[Event]
    ) -> list[Appended]:
        """Insert events in the open transaction; duplicates are reported."""
        row = conn.execute(_LAST_SEQUENCE).fetchone()
        base = row[0] if row else 0
        rows = [
            (
                base + i,
                e.id,
                e.source,
                e.type,
                e.subject,
                format_time(e.time),
                e.datacontenttype,
                e.payload,
                e.correlationid,
                e.causationid,
                orjson.dumps(e.extensions) if e.extensions else None,
                e.dataschema,
                data_kind(e.data, e.datacontenttype),
            )
            for i, e in enumerate(events, 1)
        ]
        before = conn.total_changes
        conn.executemany(_INSERT_EVENT, rows)
        inserted = conn.total_changes - before
        note_times(conn, rows, time.time())
        if inserted == len(rows):
            return [
                Appended(e.with_sequence(base + i), False)
                for i, e in enumerate(events, 1)
            ]
        # Some were duplicates: find which, and what they duplicate.
        results = []
        for i, e in enumerate(events, 1):
            found, lenient = select(
                conn,
                f"{SELECT_EVENTS} WHERE source = ? AND id = ?",
                (e.source, e.id),
            )
            stored = found[0]
            if stored[0] == base + i:
                results.append(Appended(e.with_sequence(base + i), False))
            else:
                results.append(Appended(decode_row(stored, lenient), True))
        return results

    def read(self, after: int, limit: int, match: TypeMatch | None = None) -> Batch:
        conn = self.db.connection()
        conn.execute("BEGIN")
        try:
            last = _last(conn)
            rows, lenient = select(
                conn,
                f"{SELECT_EVENTS} WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (after, limit),
            )
        finally:
            conn.execute("COMMIT")
        events: list[Event] = []
        undecodable: dict[int, UndecodableEvent] = {}
        decode = row_decoder(lenient)
        for r in rows:
            # A type that cannot be read may be anyone's: it is not filtered out.
            if match is not None and type(r[3]) is str and not match(r[3]):
                continue
            try:
                events.append(decode(r))
            except UndecodableEvent as exc:
                events.append(placeholder(r, exc))
                undecodable[r[0]] = exc
        if len(rows) < limit:
            upto = max(after, last)
        else:
            upto = rows[-1][0]
        return Batch(events, upto, undecodable)

    def last_sequence(self) -> int:
        return _last(self.db.connection())

    def wait(
        self,
        after: int,
        timeout: float,
        cancelled: Callable[[], bool] | None = None,
    ) -> bool:
        if self._wake is not None:
            self._wake.listen()
        deadline = time.monotonic() + timeout
        while True:
            generation = self._generation
            # Checked after reading the generation: a stop requested before this
            # point is seen here, one requested after it bumps the generation.
            if cancelled is not None and cancelled():
                return self.last_sequence() > after
            if self.last_sequence() > after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._appended:
                if self._generation == generation:
                    self._appended.wait(min(remaining, self.poll_interval))
                if self._generation != generation:
                    # Woken: by an append here, or to notice a stop or a redrive.
                    return self.last_sequence() > after

    def wake_waiters(self) -> None:
        with self._appended:
            self._generation += 1
            self._appended.notify_all()

    def wakeups(self) -> int:
        return self._generation

    def history(self, query: HistoryQuery) -> list[Event]:
        conn = self.db.connection()
        with snapshot(conn):
            found, skipped = run_history(conn, query)
        if query.after is None:
            found.reverse()  # the latest, read newest first
        for problem in skipped:
            query.on_undecodable(problem)  # type: ignore[misc]
        return found

    def sequence_at(self, moment: datetime) -> int:
        """The highest sequence of events older than ``moment`` (a start position)."""
        conn = self.db.connection()
        with snapshot(conn):
            when = format_time(moment)
            outliers, params = timeblocks.outlier_select(when, None)
            first_outlier = conn.execute(
                "SELECT MIN(sequence) FROM events WHERE time >= ?"
                f" AND sequence IN ({outliers})",
                (when, *params),
            ).fetchone()[0]
            for first, last in sequence_runs(conn, when, None, None, None, False):
                if first_outlier is not None and first_outlier < first:
                    break
                row = conn.execute(
                    "SELECT MIN(sequence) FROM events"
                    " WHERE time >= ? AND sequence BETWEEN ? AND ?",
                    (when, first, last),
                ).fetchone()
                if row[0] is not None:
                    found = int(row[0])
                    if first_outlier is None or found < first_outlier:
                        return found - 1
                    break
            if first_outlier is not None:
                return first_outlier - 1
            return _last(conn)

    def trim(self, rules: Iterable[RetentionRule], now: float) -> int:
        """Delete what the rules no longer keep, in batches of a write transaction
        each (:mod:`eventhub.eventlog._retention`)."""
        return trim_log(self.db, rules, now)

    # Subscriptions ----------------------------------------------------------

    def open_subscription(self, name: str, pattern: str, start: Start) -> int:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT cursor, pattern FROM subscriptions WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                if row[1] != pattern:
                    conn.execute(
                        "UPDATE subscriptions SET pattern = ? WHERE name = ?",
                        (pattern, name),
                    )
                return int(row[0])
            if start == "end":
                cursor = _last(conn)
            elif start == "beginning":
                cursor = 0
            elif isinstance(start, datetime):
                cursor = self.sequence_at(start)
            else:
                cursor = max(int(start) - 1, 0)
            conn.execute(
                "INSERT INTO subscriptions (name, cursor, pattern, created)"
                " VALUES (?, ?, ?, ?)",
                (name, cursor, pattern, format_time(datetime.now(UTC))),
            )
            return cursor

    def cursor(self, name: str) -> int:
        row = (
            self.db.connection()
            .execute("SELECT cursor FROM subscriptions WHERE name = ?", (name,))
            .fetchone()
        )
        if row is None:
            raise SubscriptionNotFound(name)
        return int(row[0])

    def subscriptions(self) -> list[SubscriptionInfo]:
        rows = (
            self.db.connection()
            .execute(
                """
            SELECT s.name, s.cursor, s.pattern,
                (SELECT COUNT(*) FROM pending p WHERE p.subscription = s.name),
                (SELECT COUNT(*) FROM dead_letters d WHERE d.subscription = s.name),
                (SELECT COUNT(*) FROM dead_letters d WHERE d.subscription = s.name
                    AND d.error GLOB ?)
            FROM subscriptions s ORDER BY s.name
            """,
                (UNDECODABLE_ERROR + "*",),
            )
            .fetchall()
        )
        return [SubscriptionInfo(*row) for row in rows]

    def drop_subscription(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM pending WHERE subscription = ?", (name,))
            conn.execute("DELETE FROM subscriptions WHERE name = ?", (name,))

    def claim(self, name: str) -> bool:
        lock = self._claims.get(name)
        if lock is None:
            lock = self._claims[name] = NamedLock(self.db.lock_file(), "sub:" + name)
        return lock.acquire()

    def release(self, name: str) -> None:
        lock = self._claims.pop(name, None)
        if lock is not None:
            lock.release()

    def due(self, name: str, now: float, limit: int) -> list[Pending]:
        rows, _ = select(
            self.db.connection(),
            """
            SELECT p.key, p.attempts, p.due, p.replay, p.last_error, p.event, p.sequence
            FROM pending p
            WHERE p.subscription = ? AND p.due <= ? AND (p.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM pending q WHERE q.subscription = p.subscription
                AND q.key = p.key AND q.sequence < p.sequence))
            ORDER BY p.due, p.sequence LIMIT ?
            """,
            (name, now, limit),
        )
        due = []
        for key, attempts, at, replay, last_error, copy, sequence in rows:
            event, problem = self._pending_event(sequence, copy)
            due.append(
                Pending(
                    name, event, key, attempts, at, bool(replay), last_error, problem
                )
            )
        return due

    def _pending_event(
        self, sequence: int, copy: Any
    ) -> tuple[Event, UndecodableEvent | None]:
        """The event of a pending delivery, from its copy; from the log when the copy
        is damaged or stands for an undecodable event (redriven: the row may have
        been repaired since)."""
        event: Event | None
        try:
            event = Event.from_json(copy, max_data_bytes=ANY_SIZE)
        except Exception:
            event = None
        if event is not None and UNDECODABLE_EXTENSION not in event.extensions:
            return event, None
        rows, lenient = select(
            self.db.connection(), f"{SELECT_EVENTS} WHERE sequence = ?", (sequence,)
        )
        if not rows:
            problem = UndecodableEvent(
                sequence,
                "the copy of a pending delivery is damaged, and the log no longer"
                " holds the event",
            )
            if event is None:
                event = undecodable_placeholder(sequence, problem.problem, raw=copy)
            return event, problem
        try:
            return decode_row(rows[0], lenient), None
        except UndecodableEvent as exc:
            return placeholder(rows[0], exc), exc

    def pending_keys(self, name: str) -> set[str]:
        rows = self.db.connection().execute(
            "SELECT DISTINCT key FROM pending"
            " WHERE subscription = ? AND key IS NOT NULL",
            (name,),
        )
        return {r[0] for r in rows}

    def next_due(self, name: str) -> float | None:
        # Deliveries parked behind an earlier one of their key (due 0) are not due
        # before it: counting them would make an idle consumer spin.
        row = (
            self.db.connection()
            .execute(
                "SELECT MIN(p.due) FROM pending p WHERE p.subscription = ?"
                " AND (p.key IS NULL OR NOT EXISTS (SELECT 1 FROM pending q"
                " WHERE q.subscription = p.subscription AND q.key = p.key"
                " AND q.sequence < p.sequence))",
                (name,),
            )
            .fetchone()
        )
        return row[0]

    def commit(self, name: str, progress: StepOutcome) -> None:
        with self.db.write() as conn:
            if progress.cursor is not None:
                conn.execute(
                    "UPDATE subscriptions SET cursor = ? WHERE name = ? AND cursor < ?",
                    (progress.cursor, name, progress.cursor),
                )
            if progress.retry:
                conn.executemany(
                    _UPSERT_PENDING, [_pending_row(name, p) for p in progress.retry]
                )
            if progress.done:
                conn.executemany(
                    "DELETE FROM pending WHERE subscription = ? AND sequence = ?",
                    [(name, s) for s in progress.done],
                )
            if progress.dead:
                failed_at = format_time(datetime.now(UTC))
                conn.executemany(
                    """
                    INSERT INTO dead_letters (subscription, sequence, key, event, error,
                        traceback, attempts, failed_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        (
                            name,
                            p.sequence,
                            p.key,
                            p.event.to_json(),
                            error,
                            tb,
                            p.attempts,
                            failed_at,
                        )
                        for p, error, tb in progress.dead
                    ],
                )
                conn.executemany(
                    "DELETE FROM pending WHERE subscription = ? AND sequence = ?",
                    [(name, p.sequence) for p, _, _ in progress.dead],
                )

    def schedule(self, name: str, deliveries: Sequence[Pending]) -> int:
        with self.db.write() as conn:
            before = conn.total_changes
            conn.executemany(_ADD_PENDING, [_pending_row(name, p) for p in deliveries])
            return conn.total_changes - before

    # Dead letters -----------------------------------------------------------

    def dead_letters(
        self, subscription: str | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        sql = (
            "SELECT id, subscription, event, error, traceback, attempts, failed_at,"
            " sequence FROM dead_letters"
        )
        params: list[Any] = []
        if subscription is not None:
            sql += " WHERE subscription = ?"
            params.append(subscription)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows, _ = select(self.db.connection(), sql, params)
        return [
            DeadLetter(
                r[0],
                r[1],
                letter_event(r[7], r[2]),
                r[3],
                r[4],
                r[5],
                stored_time(r[6]),
            )
            for r in rows
        ]

    def undecodable_events(self) -> list[UndecodableRecord]:
        rows, _ = select(
            self.db.connection(),
            "SELECT sequence, subscription, event FROM dead_letters"
            " WHERE error GLOB ? ORDER BY sequence, id",
            (UNDECODABLE_ERROR + "*",),
        )
        found: dict[int, tuple[str, list[str]]] = {}
        for sequence, subscription, copy in rows:
            problem = letter_event(sequence, copy).extensions.get(
                UNDECODABLE_EXTENSION, "?"
            )
            found.setdefault(sequence, (str(problem), []))[1].append(subscription)
        return [
            UndecodableRecord(sequence, problem, tuple(subscriptions))
            for sequence, (problem, subscriptions) in found.items()
        ]

    def redrive(self, ids: Sequence[int] | None, now: float) -> int:
        with self.db.write() as conn:
            if ids is None:
                rows = conn.execute(
                    "SELECT id, subscription, sequence, key, event FROM dead_letters"
                ).fetchall()
            else:
                wanted = sorted(set(ids))
                rows = conn.execute(
                    "SELECT id, subscription, sequence, key, event FROM dead_letters"
                    f" WHERE id IN ({','.join('?' * len(wanted))})",
                    wanted,
                ).fetchall()
                missing = sorted(set(wanted) - {r[0] for r in rows})
                if missing:
                    raise DeadLetterNotFound(missing)
            conn.executemany(
                _UPSERT_PENDING,
                [(r[1], r[2], r[3], 0, now, 0, None, r[4]) for r in rows],
            )
            conn.executemany(
                "DELETE FROM dead_letters WHERE id = ?", [(r[0],) for r in rows]
            )
        if self._wake is not None:
            self._wake.ring()  # their consumer may wait in another process
        return len(rows)

    def close(self) -> None:
        for name in list(self._claims):
            self.release(name)
        if self._wake is not None:
            self._wake.close()


def _last(conn: Any) -> int:
    row = conn.execute(_LAST_SEQUENCE).fetchone()
    return int(row[0]) if row else 0


def _pending_row(name: str, p: Pending) -> tuple[Any, ...]:
    return (
        name,
        p.sequence,
        p.key,
        p.attempts,
        p.due,
        int(p.replay),
        p.last_error,
        p.event.to_json(),
    )
