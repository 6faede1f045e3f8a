"""Appends for an asyncio server, one transaction per batch, off the loop.

Every webhook delivery (and every ``POST /events``) must be durable before it is
answered. Handing each one to a thread pool costs a thread hop and a transaction
per request. Instead a request's events are queued and the request awaits a
future; the first request of a turn of the event loop schedules a hand-over with
``loop.call_soon``, so every request the loop reads in that turn goes to the
writer thread together. The writer appends everything handed over since its last
commit in one transaction (one fsync), and resolves the futures on their loop.
The busier the server, the larger the batches; the loop goes on reading requests
while a batch commits.

The loop never waits for the database: while another process holds the write
lock, the writer waits and the loop answers everything else (``/health``
included). With a ``timeout``, a request fails with
:class:`~eventhub.errors.StorageBusy` (the server answers 503 with
``Retry-After``) and nothing of it is stored when the database stays busy past it:

* before the writer appends a batch, it waits for the write lock on a connection
  of its own, until the batch's oldest request has waited ``timeout`` seconds;
  if the lock does not come, the batch fails unwritten;
* a request queued behind a batch being written is withdrawn at its ``timeout``.

An append itself is not interrupted, and while appends go through at once the
writer does not ask for the lock first (asking costs each batch a few SQLite
calls, each a hand-over of the GIL between the writer and the loop); it asks
again once the database has been idle for a second, or an append was slow. So
when another process takes the lock while the server is busy, or in the moment
between the writer seeing the lock free and its append taking it, one batch
waits for the outcome of its append (which the state database bounds with its
write deadline, then ``StorageBusy`` too); the requests behind it get their 503.

A request whose events are invalid fails alone: events are built and checked one
request at a time, on the loop, before they are queued. Inline subscribers run on
the writer thread, after the commit.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from ..bus import EventBus
from ..errors import StorageBusy, StorageError, TransientError
from ..events import Event

if TYPE_CHECKING:
    from ..statedb import StateDB

log = structlog.get_logger(__name__)

#: An append this quick (seconds) says the database is not contended: for
#: _RECHECK_AFTER seconds, the writer appends without waiting for the lock first.
_QUICK_APPEND = 0.05
_RECHECK_AFTER = 1.0
_Item = tuple[list[Event], asyncio.Future[list[Event]]]


@dataclass(eq=False)
class _Batch:
    """The requests of one turn of one event loop, handed to the writer at once."""

    loop: asyncio.AbstractEventLoop
    items: list[_Item]
    deadline: float = math.inf  # time.monotonic() when its requests give up
    taken: bool = False  # by the writer: from now on, the writer settles it
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class BatchAppender:
    """Appends the requests of each event-loop turn on a writer thread, together
    with whatever else queued while it committed: one transaction per batch.

    Args:
        bus: The bus to publish on (inline subscribers run on the writer thread).
        timeout: Seconds a request may wait for the database before it fails with
            :class:`StorageBusy` (None: as long as it takes).
        db: The state database the bus's log is in: the writer waits for its write
            lock (at most ``timeout``) before it appends.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        timeout: float | None = None,
        db: StateDB | None = None,
    ) -> None:
        self.bus = bus
        self.timeout = timeout
        self.db = db
        self.database = str(db.path) if db is not None else "(the state database)"
        #: Requests queued or being written, not yet answered.
        self.waiting = 0
        self._probe: sqlite3.Connection | None = None
        self._lock_known_free_until = 0.0  # time.monotonic()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: list[_Batch] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    async def publish(self, events: Sequence[Event | Mapping[str, Any]]) -> list[Event]:
        """Store one request's events durably (in one transaction); returns them
        once committed.

        Raises:
            InvalidEvent: if one of these events is invalid (none of them stored).
            StorageBusy: if the writer did not take them within ``timeout`` (none
                of them stored), or the database stayed locked past its deadline.
        """
        built = [e if isinstance(e, Event) else self.bus.prepare(e) for e in events]
        if not built:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Event]] = loop.create_future()
        pending = self._pending.setdefault(loop, [])
        pending.append((built, future))
        self.waiting += 1
        if len(pending) == 1:
            loop.call_soon(self._hand_over, loop)
        return await future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer thread once it has written what it was given."""
        with self._lock:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # On the loop ----------------------------------------------------------------

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = _Batch(loop, self._pending.pop(loop, []))
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._queue.append(batch)
                self._ready.notify()
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="eventhub-appender", daemon=True
                    )
                    self._thread.start()
        if closed:
            self._settle(batch, error=RuntimeError("the batch appender is closed"))
        elif self.timeout is not None:
            batch.deadline = time.monotonic() + self.timeout
            batch.timer = loop.call_later(self.timeout, self._expire, batch)

    def _expire(self, batch: _Batch) -> None:
        with self._lock:
            if batch.taken:
                return  # being written: its transaction decides
            self._queue.remove(batch)
        self._settle(batch, error=self._busy(len(batch.items)))

    def _busy(self, requests: int) -> StorageBusy:
        log.warning(
            "HTTP writes gave up waiting for the state database",
            requests=requests,
            seconds=self.timeout,
        )
        return StorageBusy(self.database, self.timeout or 0)

    def _settle(self, batch: _Batch, *, error: BaseException) -> None:
        """Fail every request of a batch that was never written."""
        self._settle_each(batch, [error] * len(batch.items))

    # On the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    self._thread = None
                    if self._probe is not None:
                        self._probe.close()
                        self._probe = None
                    return
                batches, self._queue = self._queue, []
                for batch in batches:
                    batch.taken = True
            self._write(batches)

    def _write(self, batches: list[_Batch]) -> None:
        requests = [built for b in batches for built, _f in b.items]
        outcomes: list[list[Event] | BaseException]
        try:
            if self._lock_within(min(b.deadline for b in batches)):
                began = time.monotonic()
                stored = self.bus.publish_many([e for built in requests for e in built])
                ended = time.monotonic()
                if ended - began < _QUICK_APPEND:
                    self._lock_known_free_until = ended + _RECHECK_AFTER
                outcomes = []
                for built in requests:
                    outcomes.append(stored[: len(built)])
                    stored = stored[len(built) :]
            else:
                outcomes = [self._busy(len(requests))] * len(requests)
        except Exception as exc:
            if isinstance(exc, TransientError | StorageError) or len(requests) == 1:
                outcomes = [exc] * len(requests)
                if isinstance(exc, TransientError):
                    log.warning(
                        "batch append failed", requests=len(requests), error=str(exc)
                    )
                else:
                    log.error(
                        "batch append failed", requests=len(requests), exc_info=exc
                    )
            else:
                # One request's events were refused (nothing of the batch is
                # stored): each request on its own, so only that one fails.
                outcomes = [self._write_alone(built) for built in requests]
        for batch in batches:
            mine, outcomes = outcomes[: len(batch.items)], outcomes[len(batch.items) :]
            try:
                batch.loop.call_soon_threadsafe(self._settle_each, batch, mine)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    def _write_alone(self, built: list[Event]) -> list[Event] | BaseException:
        try:
            return self.bus.publish_many(built)
        except Exception as exc:
            log.warning("request refused", events=len(built), error=str(exc))
            return exc

    def _settle_each(
        self, batch: _Batch, outcomes: list[list[Event] | BaseException]
    ) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        for (_events, future), outcome in zip(batch.items, outcomes, strict=True):
            self.waiting -= 1
            if isinstance(outcome, BaseException):
                _settle(future, error=outcome)
            else:
                _settle(future, result=outcome)

    def _lock_within(self, deadline: float) -> bool:
        """Whether the database's write lock can be had before ``deadline`` (then
        let go at once): ``BEGIN IMMEDIATE`` on the writer's own connection, with
        SQLite's busy timeout set to the time left."""
        if self.db is None or deadline == math.inf:
            return True
        if time.monotonic() < self._lock_known_free_until:
            return True  # the last append went through at once, moments ago
        if self._probe is None:
            self._probe = self.db.connect()
        left = max(1, int((deadline - time.monotonic()) * 1000))
        self._probe.execute(f"PRAGMA busy_timeout={left}")
        try:
            self._probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise
        self._probe.execute("ROLLBACK")
        return True


def _settle(
    future: asyncio.Future[list[Event]],
    *,
    result: list[Event] | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return  # the request was cancelled (the client went away): stored anyway
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])
