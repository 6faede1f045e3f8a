"""The default event log: one SQLite file, shared by threads and processes.

Publishers are group-committed: concurrent ``append`` calls are written in one
transaction, one fsync, by whichever caller arrives first (the leader hands the role
to the next waiter when it is done). Consumers learn of appends from this process at
once; other processes are woken by a datagram after each commit
(:mod:`eventhub.wakeup`), and waiting consumers also poll the sequence counter, a
microsecond query, every ``poll_interval`` seconds, in case a wake-up is lost.

One publisher's bad event never fails the others: when a group transaction is refused
for a row (a constraint, a value SQLite cannot bind or store), it is rolled back and
each publisher's events are written again in a savepoint of their own, so that only
the one at fault gets the error. Failures of the database itself (I/O, disk full,
locked) still fail the whole group.

SQLite keeps no checksums of values, so a damaged row (data or extensions that are no
longer JSON, a time that no longer parses, text that is no longer UTF-8) is read as
:class:`~eventhub.errors.UndecodableEvent`: history raises it (or reports it), while
reads for delivery give a placeholder for the consumer to dead-letter.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlite_utils.migrations import Migrations

from .errors import (
    DeadLetterNotFound,
    InvalidEvent,
    SubscriptionNotFound,
    TransientError,
    UndecodableEvent,
)
from .eventlog import (
    UNDECODABLE_ERROR,
    UNDECODABLE_EXTENSION,
    Appended,
    Batch,
    DeadLetter,
    EventLog,
    HistoryQuery,
    Pending,
    Progress,
    RetentionRule,
    Start,
    SubscriptionInfo,
    TypeMatch,
    UndecodableRecord,
    undecodable_placeholder,
)
from .events import (
    Event,
    check_event,
    data_kind,
    decode_data,
    format_time,
    parse_time,
)
from .patterns import TypePattern
from .statedb import NamedLock, StateDB
from .wakeup import WakeChannel, wake_folder

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


_EVENT_COLUMNS = (
    "sequence, id, source, type, subject, time, datacontenttype, data,"
    " correlationid, causationid, extensions, dataschema, datakind"
)
_INSERT_EVENT = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (source, id) DO NOTHING"
)
_EVENT_COLUMN_NAMES = tuple(name.strip() for name in _EVENT_COLUMNS.split(","))
_SELECT_EVENTS = f"SELECT {_EVENT_COLUMNS} FROM events"
# Events read back are not held to a publisher's size limit.
_ANY_SIZE = sys.maxsize
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


class _AppendRequest:
    """One caller's events waiting to be written. ``ready`` is a lock held from the
    start and released once, when the result is in or the caller is to lead (a bare
    lock is the cheapest one-shot signal between threads)."""

    __slots__ = ("events", "ready", "lead", "result", "error")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        self.ready = threading.Lock()
        self.ready.acquire()
        self.lead = False
        self.result: list[Appended] | None = None
        self.error: BaseException | None = None


class SQLiteLog(EventLog):
    """The event log in a SQLite state database.

    Args:
        db: The state database (its file may be shared with other processes).
        poll_interval: How often a waiting consumer checks for appends made by other
            processes, in seconds.
    """

    def __init__(
        self, db: StateDB, *, poll_interval: float = 0.01, commit_delay: float = 0.0005
    ) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.commit_delay = commit_delay
        db.migrate(migrations)
        self._wake = (
            None
            if db.is_temporary
            else WakeChannel(wake_folder(db.path), self.wake_waiters)
        )
        self._queue: list[_AppendRequest] = []
        self._queue_lock = threading.Lock()
        self._gather = threading.Condition(self._queue_lock)
        self._gathering = False
        self._last_batch = 1
        self._committing = False
        self._appended = threading.Condition()
        self._generation = 0
        self._claims: dict[str, NamedLock] = {}

    # The log ----------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[Appended]:
        if not events:
            return []
        request = _AppendRequest(events)
        with self._queue_lock:
            self._queue.append(request)
            lead = not self._committing
            if lead:
                self._committing = True
            elif self._gathering:
                self._gather.notify()
        if not lead:
            request.ready.acquire()
            if not request.lead:
                if request.error is not None:
                    raise request.error
                return request.result  # type: ignore[return-value]
        self._lead(request)
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def _lead(self, leader: _AppendRequest) -> None:
        """Write everything queued in one transaction, then pass the role on.

        When the previous transaction carried several publishers, the leader first
        waits up to ``commit_delay`` for as many to queue again: the publishers it
        just released are on their way back, and one fsync for all of them beats a
        transaction of one followed by a transaction of the rest.
        """
        with self._queue_lock:
            target = self._last_batch
            if target > 1 and len(self._queue) < target and self.commit_delay > 0:
                self._gathering = True
                self._gather.wait_for(
                    lambda: len(self._queue) >= target, self.commit_delay
                )
                self._gathering = False
            batch, self._queue = self._queue, []
            self._last_batch = len(batch)
        committed = False
        try:
            results = self._write([e for r in batch for e in r.events])
        except BaseException as exc:
            if len(batch) > 1 and _is_row_error(exc):
                committed = self._write_each(batch)
            else:
                error = _explain(batch[0].events, exc) if len(batch) == 1 else exc
                for request in batch:
                    request.error = error
        else:
            committed = True
            offset = 0
            for request in batch:
                request.result = results[offset : offset + len(request.events)]
                offset += len(request.events)
        self.wake_waiters()
        with self._queue_lock:
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                successor.ready.release()
            else:
                self._committing = False
        for request in batch:
            if request is not leader:
                request.ready.release()
        if committed and self._wake is not None:
            # Other processes last: this one's publishers are on their way already.
            self._wake.ring()

    def _write(self, events: list[Event]) -> list[Appended]:
        with self.db.write() as conn:
            return self._insert(conn, events)

    def _write_each(self, batch: list[_AppendRequest]) -> bool:
        """Write a refused batch again, each request in a savepoint of one
        transaction: a request refused for its own events gets its own error, the
        others commit. True when some did."""
        try:
            with self.db.write() as conn:
                for request in batch:
                    conn.execute("SAVEPOINT eventhub_append")
                    try:
                        request.result = self._insert(conn, request.events)
                    except BaseException as exc:
                        conn.execute("ROLLBACK TO eventhub_append")
                        conn.execute("RELEASE eventhub_append")
                        if not _is_row_error(exc):
                            raise
                        request.error = _explain(request.events, exc)
                    else:
                        conn.execute("RELEASE eventhub_append")
        except BaseException as exc:
            for request in batch:
                if request.error is None:
                    request.result = None
                    request.error = exc
            return False
        return any(request.error is None for request in batch)

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
        if conn.total_changes - before == len(rows):
            return [
                Appended(e.with_sequence(base + i), False)
                for i, e in enumerate(events, 1)
            ]
        # Some were duplicates: find which, and what they duplicate.
        results = []
        for i, e in enumerate(events, 1):
            found, lenient = _select(
                conn,
                f"{_SELECT_EVENTS} WHERE source = ? AND id = ?",
                (e.source, e.id),
            )
            stored = found[0]
            if stored[0] == base + i:
                results.append(Appended(e.with_sequence(base + i), False))
            else:
                results.append(Appended(_decode(stored, lenient), True))
        return results

    def read(self, after: int, limit: int, match: TypeMatch | None = None) -> Batch:
        conn = self.db.connection()
        conn.execute("BEGIN")
        try:
            last = _last(conn)
            rows, lenient = _select(
                conn,
                f"{_SELECT_EVENTS} WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (after, limit),
            )
        finally:
            conn.execute("COMMIT")
        events: list[Event] = []
        undecodable: dict[int, UndecodableEvent] = {}
        for r in rows:
            # A type that cannot be read may be anyone's: it is not filtered out.
            if match is not None and type(r[3]) is str and not match(r[3]):
                continue
            try:
                events.append(_decode(r, lenient))
            except UndecodableEvent as exc:
                events.append(_placeholder(r, exc))
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
        with _snapshot(conn):
            found, skipped = self._history(conn, query)
        if query.after is None:
            found.reverse()  # the latest, read newest first
        for problem in skipped:
            query.on_undecodable(problem)  # type: ignore[misc]
        return found

    def _history(
        self, conn: sqlite3.Connection, query: HistoryQuery
    ) -> tuple[list[Event], list[UndecodableEvent]]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("source", query.source), ("subject", query.subject)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("time >= ?")
            params.append(format_time(query.since))
        if query.until is not None:
            where.append("time < ?")
            params.append(format_time(query.until))
        if query.after is not None:
            where.append("sequence > ?")
            params.append(query.after)
        if query.before is not None:
            where.append("sequence < ?")
            params.append(query.before)
        match = query.type
        if match is not None:
            names = _matching_types(conn, match)
            if names is not None:
                if not names:
                    return [], []
                where.append(f"type IN ({','.join('?' * len(names))})")
                params.extend(names)
                match = None
            else:
                condition = _type_condition(match)
                if condition is not None:
                    where.append(condition[0])
                    params.extend(condition[1])
                    if condition[2]:
                        match = None
        sql = _SELECT_EVENTS + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += (
            " ORDER BY sequence"
            if query.after is not None
            else " ORDER BY sequence DESC"
        )
        if match is None and query.limit is not None:
            # Only the rows returned are decoded; an undecodable one left out is
            # made up for by asking for as many more.
            sql_limit = query.limit
            while True:
                rows, lenient = _select(conn, f"{sql} LIMIT {int(sql_limit)}", params)
                found, skipped = _collect(rows, None, query, lenient)
                if len(found) >= query.limit or len(rows) < sql_limit:
                    return found, skipped
                sql_limit = query.limit + len(skipped)
        for lenient in (False, True):
            with _lenient_text(conn) if lenient else nullcontext():
                cursor = conn.execute(sql, params)
                try:
                    return _collect(cursor, match, query, lenient)
                except sqlite3.OperationalError as exc:
                    if lenient or not _is_not_utf8(exc):
                        raise
                    # Some text is not UTF-8: read again, such text marked.
                finally:
                    cursor.close()
        raise AssertionError("unreachable")

    def sequence_at(self, moment: datetime) -> int:
        row = (
            self.db.connection()
            .execute(
                "SELECT MIN(sequence) FROM events WHERE time >= ?",
                (format_time(moment),),
            )
            .fetchone()
        )
        if row[0] is None:
            return self.last_sequence()
        return int(row[0]) - 1

    def trim(self, rules: Iterable[RetentionRule], now: float) -> int:
        rules = list(rules)
        if not rules:
            return 0
        conn = self.db.connection()
        floor = conn.execute("SELECT MIN(cursor) FROM subscriptions").fetchone()[0]
        if floor is None:
            floor = self.last_sequence()
        doomed: set[int] = set()
        for rule in rules:
            if rule.max_age is not None:
                cutoff = format_time(datetime.fromtimestamp(now - rule.max_age, UTC))
                for sequence, type_name in conn.execute(
                    "SELECT sequence, type FROM events"
                    " WHERE time < ? AND sequence <= ?",
                    (cutoff, floor),
                ):
                    if rule.match(type_name):
                        doomed.add(sequence)
            if rule.max_count is not None:
                kept = 0
                for sequence, type_name in conn.execute(
                    "SELECT sequence, type FROM events ORDER BY sequence DESC"
                ):
                    if rule.match(type_name):
                        kept += 1
                        if kept > rule.max_count and sequence <= floor:
                            doomed.add(sequence)
        ordered = sorted(doomed)
        for start in range(0, len(ordered), 500):
            with self.db.write() as conn:
                conn.executemany(
                    "DELETE FROM events WHERE sequence = ?",
                    [(s,) for s in ordered[start : start + 500]],
                )
        return len(ordered)

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
        rows, _ = _select(
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
            event = Event.from_json(copy, max_data_bytes=_ANY_SIZE)
        except Exception:
            event = None
        if event is not None and UNDECODABLE_EXTENSION not in event.extensions:
            return event, None
        rows, lenient = _select(
            self.db.connection(), f"{_SELECT_EVENTS} WHERE sequence = ?", (sequence,)
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
            return _decode(rows[0], lenient), None
        except UndecodableEvent as exc:
            return _placeholder(rows[0], exc), exc

    def pending_keys(self, name: str) -> set[str]:
        rows = self.db.connection().execute(
            "SELECT DISTINCT key FROM pending"
            " WHERE subscription = ? AND key IS NOT NULL",
            (name,),
        )
        return {r[0] for r in rows}

    def next_due(self, name: str) -> float | None:
        row = (
            self.db.connection()
            .execute("SELECT MIN(due) FROM pending WHERE subscription = ?", (name,))
            .fetchone()
        )
        return row[0]

    def commit(self, name: str, progress: Progress) -> None:
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
        rows, _ = _select(self.db.connection(), sql, params)
        return [
            DeadLetter(
                r[0], r[1], _letter_event(r[7], r[2]), r[3], r[4], r[5], _when(r[6])
            )
            for r in rows
        ]

    def undecodable_events(self) -> list[UndecodableRecord]:
        rows, _ = _select(
            self.db.connection(),
            "SELECT sequence, subscription, event FROM dead_letters"
            " WHERE error GLOB ? ORDER BY sequence, id",
            (UNDECODABLE_ERROR + "*",),
        )
        found: dict[int, tuple[str, list[str]]] = {}
        for sequence, subscription, copy in rows:
            problem = _letter_event(sequence, copy).extensions.get(
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


def _row_event(row: Sequence[Any]) -> Event:
    """The event of a row of ``_SELECT_EVENTS``.

    Raises:
        UndecodableEvent: for a damaged row.
    """
    (
        sequence,
        id_,
        source,
        type_,
        subject,
        time_text,
        content_type,
        data,
        correlationid,
        causationid,
        extensions,
        dataschema,
        kind,
    ) = row
    if type(type_) is not str or type(source) is not str or type(id_) is not str:
        raise UndecodableEvent(sequence, "its type, source or id is not text")
    try:
        moment = datetime.fromisoformat(time_text)
    except (TypeError, ValueError) as exc:
        raise UndecodableEvent(
            sequence, f"its time {_excerpt(time_text)} is not a timestamp"
        ) from exc
    if moment.tzinfo is None:
        raise UndecodableEvent(
            sequence, f"its time {_excerpt(time_text)} has no time zone"
        )
    try:
        value = decode_data(data, content_type, kind)
    except (TypeError, ValueError) as exc:
        what = "UTF-8 text" if kind == "text" else "JSON"
        raise UndecodableEvent(
            sequence, f"its data is not valid {what} ({_excerpt(exc, 200)})"
        ) from exc
    attributes: Any = {}
    if extensions:
        try:
            attributes = orjson.loads(extensions)
        except (TypeError, ValueError) as exc:
            raise UndecodableEvent(
                sequence, f"its extensions are not valid JSON ({_excerpt(exc, 200)})"
            ) from exc
        if type(attributes) is not dict:
            raise UndecodableEvent(sequence, "its extensions are not a JSON object")
    return Event(
        type=type_,
        source=source,
        id=id_,
        time=moment,
        data=value,
        subject=subject,
        datacontenttype=content_type,
        dataschema=dataschema,
        sequence=sequence,
        correlationid=correlationid,
        causationid=causationid,
        extensions=attributes,
        _payload=data,
    )


def _decode(row: Sequence[Any], lenient: bool) -> Event:
    """:func:`_row_event`, after checking a leniently read row for text that is not
    UTF-8."""
    if lenient:
        bad = [
            name
            for name, value in zip(_EVENT_COLUMN_NAMES, row, strict=True)
            if type(value) is _NotUTF8
        ]
        if bad:
            raise UndecodableEvent(
                row[0],
                f"its {', '.join(bad)} {'is' if len(bad) == 1 else 'are'}"
                " not valid UTF-8 text",
            )
    return _row_event(row)


def _placeholder(row: Sequence[Any], problem: UndecodableEvent) -> Event:
    """The placeholder of an undecodable row (what could be read of it)."""
    try:
        moment: datetime | None = datetime.fromisoformat(row[5])
    except (TypeError, ValueError):
        moment = None
    return undecodable_placeholder(
        row[0],
        problem.problem,
        type=row[3],
        source=row[2],
        id=row[1],
        subject=row[4],
        time=moment,
        raw=row[7],
    )


def _collect(
    rows: Iterable[Sequence[Any]],
    match: TypeMatch | None,
    query: HistoryQuery,
    lenient: bool,
) -> tuple[list[Event], list[UndecodableEvent]]:
    """The events of history rows up to the query's limit, and the undecodable ones
    left out (raised at once when the query has no ``on_undecodable``)."""
    found: list[Event] = []
    skipped: list[UndecodableEvent] = []
    limit = query.limit
    for row in rows:
        if match is not None and type(row[3]) is str and not match(row[3]):
            continue
        try:
            found.append(_decode(row, lenient))
        except UndecodableEvent as exc:
            if query.on_undecodable is None:
                raise
            skipped.append(exc)
            continue
        if limit is not None and len(found) >= limit:
            break
    return found, skipped


def _letter_event(sequence: int, copy: Any) -> Event:
    """The event kept in a dead letter, or a placeholder if that copy is damaged."""
    try:
        return Event.from_json(copy, max_data_bytes=_ANY_SIZE)
    except Exception as exc:
        return undecodable_placeholder(
            sequence,
            f"the dead letter's copy of the event is damaged ({_excerpt(exc, 200)})",
            raw=copy,
        )


def _when(text: Any) -> datetime:
    try:
        return parse_time(text)
    except InvalidEvent:
        return datetime.fromtimestamp(0, UTC)


def _excerpt(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of a stored value or an error message."""
    if isinstance(value, BaseException):
        return str(value)[:limit]
    if isinstance(value, str):
        return repr(value[:limit])
    return f"of type {type(value).__name__}"


class _NotUTF8(str):
    """A TEXT value that is not valid UTF-8, its bad bytes shown as escapes."""


def _lenient_text_factory(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _NotUTF8(raw.decode("utf-8", "backslashreplace"))


@contextmanager
def _lenient_text(conn: sqlite3.Connection) -> Iterator[None]:
    """Read TEXT that is not UTF-8 as :class:`_NotUTF8` (instead of failing the
    query) on this thread's connection, for the time of a query."""
    conn.text_factory = _lenient_text_factory
    try:
        yield
    finally:
        conn.text_factory = str


def _is_not_utf8(exc: sqlite3.OperationalError) -> bool:
    return str(exc).startswith("Could not decode to UTF-8")


def _select(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
) -> tuple[list[Any], bool]:
    """All rows of a query, and whether they were read leniently: when some TEXT
    value is not UTF-8 (a damaged row), the query runs again with such values
    read as :class:`_NotUTF8`."""
    try:
        return conn.execute(sql, params).fetchall(), False
    except sqlite3.OperationalError as exc:
        if not _is_not_utf8(exc):
            raise
    with _lenient_text(conn):
        return conn.execute(sql, params).fetchall(), True


# Failures of the database rather than of a row: they fail a whole group commit.
_DATABASE_FAULTS = (
    sqlite3.OperationalError,
    sqlite3.InternalError,
    sqlite3.NotSupportedError,
    TransientError,
    MemoryError,
)


def _is_row_error(exc: BaseException) -> bool:
    """Whether an append may have failed for one of its events (a constraint, a
    value SQLite cannot bind, encode or store, an event that is not valid) rather
    than for the database (I/O, disk full, locked, corrupt)."""
    if not isinstance(exc, Exception) or isinstance(exc, _DATABASE_FAULTS):
        return False
    return type(exc) is not sqlite3.DatabaseError  # SQLITE_CORRUPT, SQLITE_NOTADB


def _explain(events: Sequence[Event], exc: BaseException) -> BaseException:
    """The error to give a publisher whose events were refused: which attribute is
    wrong, when an event was made without :meth:`Event.create`'s checks."""
    if not _is_row_error(exc):
        return exc
    for event in events:
        try:
            check_event(event)
        except InvalidEvent as invalid:
            invalid.__cause__ = exc
            return invalid
        except Exception:
            continue
    return exc


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


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Queries in one read transaction (one snapshot of the log), unless the
    connection is in a transaction already."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


# The most distinct types a wildcard pattern is resolved into (else GLOB narrows).
_MAX_TYPES = 1000


def _matching_types(conn: sqlite3.Connection, match: TypeMatch) -> list[str] | None:
    """The stored types that a :class:`~eventhub.patterns.TypePattern` matches,
    so that SQL looks them up in the ``events_type`` index. A wildcard pattern is
    matched against the distinct types within the range of its literal prefix
    (``nomatch.*``: from ``'nomatch.'`` up to ``'nomatch/'``), found by skipping
    through the index: as many index lookups as distinct types, whatever the
    number of events. None when there are more than ``_MAX_TYPES`` of them, or
    for a matcher that is not a TypePattern."""
    if not isinstance(match, TypePattern):
        return None
    if match.exact_types is not None:
        return list(match.exact_types)
    names: set[str] = set()
    for pattern in match.patterns:
        segments = pattern.split(".")
        if not _WILDCARDS.intersection(segments):
            names.add(pattern)
            continue
        low, high = _literal_range(segments)
        stored = _distinct_types(conn, low, high)
        if stored is None:
            return None
        names.update(t for t in stored if match.matches(t))
    return sorted(names)


def _distinct_types(
    conn: sqlite3.Connection, low: str, high: str | None
) -> list[str] | None:
    """The distinct stored types in ``[low, high)``, at most ``_MAX_TYPES`` (None
    beyond). Types that are not valid UTF-8 are left out: no pattern can tell."""
    bound = "" if high is None else " AND type < :high"
    rows, _ = _select(
        conn,
        f"""
        WITH RECURSIVE t(type) AS (
            SELECT (SELECT MIN(type) FROM events WHERE type >= :low{bound})
            UNION ALL
            SELECT (SELECT MIN(type) FROM events WHERE type > t.type{bound})
            FROM t WHERE t.type IS NOT NULL
            LIMIT :cap
        )
        SELECT type FROM t WHERE type IS NOT NULL
        """,
        {"low": low, "high": high, "cap": _MAX_TYPES + 2},
    )
    if len(rows) > _MAX_TYPES:
        return None
    return [r[0] for r in rows if type(r[0]) is str]


def _literal_range(segments: list[str]) -> tuple[str, str | None]:
    """The range of types that a wildcard pattern's literal prefix allows."""
    literal: list[str] = []
    for segment in segments:
        if segment in _WILDCARDS:
            break
        literal.append(segment)
    prefix = ".".join(literal)
    if literal and segments[len(literal)] == "*":
        prefix += "."  # '*' stands for one segment at least
    return prefix, _successor(prefix) if prefix else None


def _type_condition(match: TypeMatch) -> tuple[str, list[Any], bool] | None:
    """A SQL condition on ``type`` for a :class:`~eventhub.patterns.TypePattern`
    whose stored types are too many to list (:func:`_matching_types`), its
    parameters, and whether it is exact (else it selects a superset, which the
    pattern itself narrows). None when SQL cannot narrow it down.

    A wildcard pattern's literal prefix becomes a range on the ``events_type``
    index, and GLOB narrows the range: ``*`` is ``?*`` with the count of dots
    fixed, which makes patterns without ``**`` exact. SQLite compares with its
    BINARY collation and GLOB is case-sensitive, as patterns match."""
    if not isinstance(match, TypePattern):
        return None
    names: list[str] = []
    terms: list[str] = []
    params: list[Any] = []
    exact = True
    for pattern in match.patterns:
        segments = pattern.split(".")
        if not any(s in _WILDCARDS for s in segments):
            names.append(pattern)
            continue
        term = _wildcard_condition(segments)
        if term is None:
            return None  # matches (nearly) everything: nothing to narrow
        sql, values, term_exact = term
        terms.append(sql)
        params.extend(values)
        exact = exact and term_exact
    if names:
        terms.insert(0, f"type IN ({','.join('?' * len(names))})")
        params[:0] = names
    if len(terms) == 1:
        return terms[0], params, exact
    return "(" + " OR ".join(f"({t})" for t in terms) + ")", params, exact


_WILDCARDS = frozenset({"*", "**", "#"})
_DEEP = frozenset({"**", "#"})
_GLOB_SPECIAL = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})


def _wildcard_condition(segments: list[str]) -> tuple[str, list[Any], bool] | None:
    prefix, upper = _literal_range(segments)
    conditions: list[str] = []
    params: list[Any] = []
    if prefix:
        conditions.append("type >= ?")
        params.append(prefix)
        if upper is not None:
            conditions.append("type < ?")
            params.append(upper)
    # Over "." + type, as the pattern's regex: each segment is "." and its text,
    # '*' is one or more characters, '**' any characters.
    glob = "".join(
        "*" if s in _DEEP else "." + ("?*" if s == "*" else s.translate(_GLOB_SPECIAL))
        for s in segments
    )
    deep = any(s in _DEEP for s in segments)
    if deep:
        if not prefix and set(glob) <= {"*"}:
            return None
        conditions.append("('.' || type) GLOB ?")
        params.append(glob)
        return " AND ".join(conditions), params, False
    conditions.append("type GLOB ?")
    params.append(glob[1:])
    # With as many dots as the pattern, no '*' can span a dot: exact.
    conditions.append("length(type) - length(replace(type, '.', '')) = ?")
    params.append(len(segments) - 1)
    return " AND ".join(conditions), params, True


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``."""
    last = ord(prefix[-1]) + 1
    if last > sys.maxunicode:
        return _successor(prefix[:-1]) if len(prefix) > 1 else None
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000  # surrogates are not text: the next code point that is
    return prefix[:-1] + chr(last)
