"""Group commit: concurrent appends written in one transaction, one fsync.

Whichever caller arrives first leads: it writes everything queued meanwhile in one
batch, then hands the role to the next waiter. Callers queue while it writes, so the
next batch carries them all. A batch is written by the log's ``write`` callable,
which gives each caller's events their own outcome: one caller's bad event fails
that caller only (:class:`~eventhub.eventlog.sqlite.SQLiteLog` rolls back and
writes each caller in a savepoint when a row is refused).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence

from ..errors import InvalidEvent, StorageError, TransientError
from ..events import Event, check_event
from .base import Appended

#: Writes a batch: one sequence of events per caller, in one transaction; returns
#: each caller's outcome, its appended events or the error it is to raise.
BatchWriter = Callable[
    [list[Sequence[Event]]], Sequence["list[Appended] | BaseException"]
]


class _Request:
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


class GroupCommit:
    """Appends of concurrent callers, written together.

    Args:
        write: Writes one batch (see :data:`BatchWriter`).
        written: Called after each batch, before the callers are released.
        committed: Called after a batch that committed something, once the
            callers are released (to tell other processes).
        commit_delay: Seconds a leader may wait for callers to queue again, after
            a batch of several.
    """

    def __init__(
        self,
        write: BatchWriter,
        *,
        written: Callable[[], None],
        committed: Callable[[], None],
        commit_delay: float = 0.0005,
    ) -> None:
        self.write = write
        self.written = written
        self.committed = committed
        self.commit_delay = commit_delay
        self._queue: list[_Request] = []
        self._queue_lock = threading.Lock()
        self._gather = threading.Condition(self._queue_lock)
        self._gathering = False
        self._last_batch = 1
        self._committing = False

    def append(self, events: Sequence[Event]) -> list[Appended]:
        """Write ``events`` (in one transaction with those of other callers) and
        return their outcomes, or raise this caller's error."""
        request = _Request(events)
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

    def _lead(self, leader: _Request) -> None:
        """Write everything queued in one transaction, then pass the role on.

        When the previous transaction carried several callers, the leader first
        waits up to ``commit_delay`` for as many to queue again: the callers it
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
            outcomes = self.write([r.events for r in batch])
        except BaseException as exc:
            for request in batch:
                request.error = exc
        else:
            for request, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    request.error = outcome
                else:
                    request.result = outcome
                    committed = True
        self.written()
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
        if committed:
            # Other processes last: this one's callers are on their way already.
            self.committed()


# Failures of the database rather than of a row: they fail a whole group commit.
_DATABASE_FAULTS = (
    sqlite3.OperationalError,
    sqlite3.InternalError,
    sqlite3.NotSupportedError,
    StorageError,  # full, damaged, I/O error, read-only (eventhub.statedb)
    TransientError,
    MemoryError,
)


def is_refusal(exc: BaseException) -> bool:
    """Whether an append may have failed for one of its events (a constraint, a
    value SQLite cannot bind, encode or store, an event that is not valid) rather
    than for the database (I/O, disk full, locked, corrupt)."""
    if not isinstance(exc, Exception) or isinstance(exc, _DATABASE_FAULTS):
        return False
    return type(exc) is not sqlite3.DatabaseError  # SQLITE_CORRUPT, SQLITE_NOTADB


def explain_refusal(events: Sequence[Event], exc: BaseException) -> BaseException:
    """The error to give a publisher whose events were refused: which attribute is
    wrong, when an event was made without :meth:`Event.create`'s checks."""
    if not is_refusal(exc):
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
