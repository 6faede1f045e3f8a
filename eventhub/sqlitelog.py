"""The default event log: one SQLite file, shared by threads and processes.

Publishers are group-committed: concurrent ``append`` calls are written in one
transaction, one fsync, by whichever caller arrives first (the leader hands the role
to the next waiter when it is done). Consumers learn of appends from this process at
once; other processes are woken by a datagram after each commit
(:mod:`eventhub.wakeup`), and waiting consumers also poll the sequence counter, a
microsecond query, every ``poll_interval`` seconds, in case a wake-up is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlite_utils.migrations import Migrations

from .errors import DeadLetterNotFound, SubscriptionNotFound
from .eventlog import (
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
)
from .events import Event, data_kind, decode_data, format_time, parse_time
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
_SELECT_EVENTS = f"SELECT {_EVENT_COLUMNS} FROM events"
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
            for request in batch:
                request.error = exc
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
                stored = conn.execute(
                    f"{_SELECT_EVENTS} WHERE source = ? AND id = ?", (e.source, e.id)
                ).fetchone()
                if stored[0] == base + i:
                    results.append(Appended(e.with_sequence(base + i), False))
                else:
                    results.append(Appended(_row_event(stored), True))
            return results

    def read(self, after: int, limit: int, match: TypeMatch | None = None) -> Batch:
        conn = self.db.connection()
        conn.execute("BEGIN")
        try:
            last = _last(conn)
            rows = conn.execute(
                f"{_SELECT_EVENTS} WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (after, limit),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        events = [_row_event(r) for r in rows if match is None or match(r[3])]
        if len(rows) < limit:
            upto = max(after, last)
        else:
            upto = rows[-1][0]
        return Batch(events, upto)

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

    def history(self, query: HistoryQuery) -> list[Event]:
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
        exact = _exact_types(match)
        if exact is not None:
            where.append(f"type IN ({','.join('?' * len(exact))})")
            params.extend(exact)
            match = None
        sql = _SELECT_EVENTS + (f" WHERE {' AND '.join(where)}" if where else "")
        newest_first = query.after is None
        sql += " ORDER BY sequence DESC" if newest_first else " ORDER BY sequence"
        if match is None and query.limit is not None:
            sql += f" LIMIT {int(query.limit)}"
        found: list[Event] = []
        for row in self.db.connection().execute(sql, params):
            if match is not None and not match(row[3]):
                continue
            found.append(_row_event(row))
            if query.limit is not None and len(found) >= query.limit:
                break
        if newest_first:
            found.reverse()
        return found

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
                (SELECT COUNT(*) FROM dead_letters d WHERE d.subscription = s.name)
            FROM subscriptions s ORDER BY s.name
            """
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
        rows = (
            self.db.connection()
            .execute(
                """
            SELECT p.key, p.attempts, p.due, p.replay, p.last_error, p.event
            FROM pending p
            WHERE p.subscription = ? AND p.due <= ? AND (p.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM pending q WHERE q.subscription = p.subscription
                AND q.key = p.key AND q.sequence < p.sequence))
            ORDER BY p.due, p.sequence LIMIT ?
            """,
                (name, now, limit),
            )
            .fetchall()
        )
        return [
            Pending(name, Event.from_json(r[5]), r[0], r[1], r[2], bool(r[3]), r[4])
            for r in rows
        ]

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
            "SELECT id, subscription, event, error, traceback, attempts, failed_at"
            " FROM dead_letters"
        )
        params: list[Any] = []
        if subscription is not None:
            sql += " WHERE subscription = ?"
            params.append(subscription)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            DeadLetter(
                r[0], r[1], Event.from_json(r[2]), r[3], r[4], r[5], parse_time(r[6])
            )
            for r in self.db.connection().execute(sql, params)
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
    return Event(
        type=type_,
        source=source,
        id=id_,
        time=datetime.fromisoformat(time_text),
        data=decode_data(data, content_type, kind),
        subject=subject,
        datacontenttype=content_type,
        dataschema=dataschema,
        sequence=sequence,
        correlationid=correlationid,
        causationid=causationid,
        extensions=orjson.loads(extensions) if extensions else {},
        _payload=data,
    )


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


def _exact_types(match: TypeMatch | None) -> list[str] | None:
    """The plain type names of a wildcard-free pattern (then SQL can use its index).

    ``type IN (...)`` compares with SQLite's default BINARY collation: case-sensitive,
    as :class:`~eventhub.patterns.TypePattern` matches."""
    if isinstance(match, TypePattern) and match.exact_types is not None:
        return list(match.exact_types)
    return None
