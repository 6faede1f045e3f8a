"""The event log contract: what the bus needs from a storage backend.

The interface is deliberately small, so that a Redis Streams backend can implement
the same contract as :class:`~eventhub.eventlog.sqlite.SQLiteLog` and
:class:`~eventhub.eventlog.memory.MemoryLog`; ``tests/test_eventlog_contract.py``
runs one suite over every backend, and a part of it over the durable ones only.

A backend declares what it guarantees as class attributes (kombu's transports do
the same): :attr:`EventLog.durable` and :attr:`EventLog.cross_process`. Code that
needs a guarantee asks for it there, never by the backend's class.

Vocabulary: the *log* is an append-only sequence of events, numbered by ``sequence``
(increasing, never reused). A *subscription* is a named cursor: every event at or
below it has been handled, filtered out, scheduled for a retry or dead-lettered.
*Pending* deliveries are retries waiting for their due time, and events parked behind
a retry of the same partition key. *Dead letters* hold events whose last attempt failed.

A stored event that cannot be decoded (a damaged row) never stops the log: reads give
a placeholder (:func:`undecodable_placeholder`) flagged in :attr:`Batch.undecodable`
or :attr:`Pending.undecodable`, which a consumer dead-letters at once; history raises
:class:`~eventhub.errors.UndecodableEvent` or reports it to ``on_undecodable``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from ..errors import UndecodableEvent
from ..events import Event, is_valid_text

Start: TypeAlias = Literal["end", "beginning"] | int | datetime
TypeMatch: TypeAlias = Callable[[str], bool]

#: The extension attribute marking a placeholder for an undecodable stored event; its
#: value says what is wrong.
UNDECODABLE_EXTENSION = "eventhubundecodable"
#: The type of a placeholder whose stored type could not be read.
UNDECODABLE_TYPE = "eventhub.undecodable"
#: The prefix of a dead letter's ``error`` when its event could not be decoded.
UNDECODABLE_ERROR = UndecodableEvent.__name__ + ":"


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of appending one event: the stored event, and whether an event
    with the same ``(source, id)`` was already in the log (then nothing was stored)."""

    event: Event
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Batch:
    """Events read from the log, and the highest sequence that was looked at.
    ``undecodable`` maps the sequence of each placeholder in ``events`` (a stored
    event that could not be decoded) to what is wrong with it."""

    events: list[Event]
    upto: int
    undecodable: Mapping[int, UndecodableEvent] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivery waiting for its due time: a retry, a replay, or an event parked
    behind an earlier failure of the same partition key. ``undecodable`` is set
    when the stored event could not be decoded (``event`` is then a placeholder)."""

    subscription: str
    event: Event
    key: str | None
    attempts: int
    due: float
    replay: bool = False
    last_error: str | None = None
    undecodable: UndecodableEvent | None = None

    @property
    def sequence(self) -> int:
        return self.event.sequence  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event whose last delivery attempt to a subscription failed."""

    id: int
    subscription: str
    event: Event
    error: str
    traceback: str
    attempts: int
    failed_at: datetime


@dataclass(slots=True)
class StepOutcome:
    """What one delivery step did; :meth:`EventLog.commit` records it atomically.

    Attributes:
        cursor: The new cursor, or None to leave it.
        retry: Deliveries to (re)schedule: inserted, or updated when already pending.
        done: Sequences of pending deliveries that are finished.
        dead: Deliveries that failed for the last time: (pending, error, traceback).
    """

    cursor: int | None = None
    retry: list[Pending] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    dead: list[tuple[Pending, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.cursor is not None or bool(self.retry or self.done or self.dead)


#: The name :class:`StepOutcome` had before 0.1.0.
Progress = StepOutcome


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """A durable subscription as the log knows it. ``undecodable`` counts the dead
    letters of stored events that could not be decoded."""

    name: str
    cursor: int
    pattern: str
    pending: int
    dead_letters: int
    undecodable: int = 0


@dataclass(frozen=True, slots=True)
class UndecodableRecord:
    """A stored event that could not be decoded, as its dead letters record it."""

    sequence: int
    problem: str
    subscriptions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which events :meth:`EventLog.history` returns. ``limit`` events at most, oldest
    first: the latest matching ones, or the first ones after ``after`` when given.

    A stored event that cannot be decoded raises
    :class:`~eventhub.errors.UndecodableEvent`; with ``on_undecodable``, it is
    passed the error instead and left out (the limit counts decoded events only).
    """

    type: TypeMatch | None = None
    source: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    before: int | None = None
    limit: int | None = 100
    on_undecodable: Callable[[UndecodableEvent], None] | None = None


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Keep events of types matching ``pattern`` at most ``max_age`` seconds old and
    at most ``max_count`` of them (the newest)."""

    match: TypeMatch
    max_age: float | None = None
    max_count: int | None = None


class EventLog(abc.ABC):
    """An ordered, deduplicating event log with subscription cursors.

    Nineteen abstract methods are the contract; :meth:`next_due`,
    :meth:`undecodable_events`, :meth:`wake_waiters` and :meth:`wakeups` have
    defaults written over them, which a backend may override to be faster.

    Attributes:
        durable: Events, cursors, retries and dead letters survive the process
            and :meth:`close`: a log opened again on the same storage has them.
        cross_process: Several processes share the log: each sees the others'
            events (:meth:`wait` wakes for them), and a claim excludes them all.
    """

    durable: bool = False
    cross_process: bool = False

    # The log ----------------------------------------------------------------

    @abc.abstractmethod
    def append(self, events: Sequence[Event]) -> list[Appended]:
        """Store events durably and number them; duplicates of ``(source, id)`` are
        reported, not stored. Returns only after the events are durable."""

    @abc.abstractmethod
    def read(self, after: int, limit: int, match: TypeMatch | None = None) -> Batch:
        """Events with sequence greater than ``after``, in order, at most ``limit``
        looked at; ``match`` keeps only the types it accepts."""

    @abc.abstractmethod
    def last_sequence(self) -> int:
        """The highest sequence ever assigned (0 for an empty log)."""

    @abc.abstractmethod
    def wait(
        self,
        after: int,
        timeout: float,
        cancelled: Callable[[], bool] | None = None,
    ) -> bool:
        """Block until an event beyond ``after`` exists, from any process, or the
        timeout passes, or ``cancelled()`` is true after :meth:`wake_waiters`.
        True when there is one."""

    @abc.abstractmethod
    def history(self, query: HistoryQuery) -> list[Event]:
        """Stored events matching a query, oldest first.

        Raises:
            UndecodableEvent: for a damaged stored event, unless the query has
                ``on_undecodable``.
        """

    @abc.abstractmethod
    def trim(self, rules: Iterable[RetentionRule], now: float) -> int:
        """Delete events the rules no longer keep, except those a subscription has yet
        to handle. Returns the number deleted."""

    # Subscriptions ----------------------------------------------------------

    @abc.abstractmethod
    def open_subscription(self, name: str, pattern: str, start: Start) -> int:
        """Create the named cursor at ``start`` unless it exists; return the cursor.

        ``start`` is ``"end"`` (the last sequence), ``"beginning"`` (0), a sequence
        (the cursor is just before it) or a datetime (just before the first event
        of that time or later; the end when there is none)."""

    @abc.abstractmethod
    def cursor(self, name: str) -> int:
        """The subscription's cursor. Raises SubscriptionNotFound."""

    @abc.abstractmethod
    def subscriptions(self) -> list[SubscriptionInfo]:
        """Every durable subscription known to the log."""

    @abc.abstractmethod
    def drop_subscription(self, name: str) -> None:
        """Forget a cursor and its pending deliveries (dead letters are kept)."""

    @abc.abstractmethod
    def claim(self, name: str) -> bool:
        """Become the only consumer of a subscription, if no live one is; the claim
        ends with :meth:`release` or with the process."""

    @abc.abstractmethod
    def release(self, name: str) -> None:
        """Give up a claim."""

    @abc.abstractmethod
    def due(self, name: str, now: float, limit: int) -> list[Pending]:
        """Pending deliveries due at ``now``, at most one per partition key (the
        oldest: a key's later events wait behind it), oldest due first."""

    @abc.abstractmethod
    def pending_keys(self, name: str) -> set[str]:
        """Partition keys with pending deliveries (their new events must park)."""

    def next_due(self, name: str) -> float | None:
        """When :meth:`due` next has something to give: the earliest due time among
        the pending deliveries it can give (the oldest of each partition key; the
        others wait behind it, whatever their own due time), or None."""
        head = self.due(name, math.inf, 1)
        return head[0].due if head else None

    @abc.abstractmethod
    def commit(self, name: str, progress: StepOutcome) -> None:
        """Record one delivery step atomically."""

    @abc.abstractmethod
    def schedule(self, name: str, deliveries: Sequence[Pending]) -> int:
        """Add deliveries (replays, redrives) to a subscription; returns how many."""

    # Dead letters -----------------------------------------------------------

    @abc.abstractmethod
    def dead_letters(
        self, subscription: str | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        """Dead letters, oldest first."""

    @abc.abstractmethod
    def redrive(self, ids: Sequence[int] | None, now: float) -> int:
        """Move dead letters (all when ``ids`` is None) back to their subscriptions as
        due deliveries with a fresh attempt count. Raises DeadLetterNotFound."""

    def undecodable_events(self) -> list[UndecodableRecord]:
        """Stored events that could not be decoded, from their dead letters, by
        sequence."""
        found: dict[int, tuple[str, list[str]]] = {}
        for letter in self.dead_letters():
            if letter.error.startswith(UNDECODABLE_ERROR):
                sequence = letter.event.sequence or 0
                problem = str(letter.event.extensions.get(UNDECODABLE_EXTENSION, ""))
                found.setdefault(sequence, (problem, []))[1].append(letter.subscription)
        return [
            UndecodableRecord(seq, problem, tuple(subs))
            for seq, (problem, subs) in sorted(found.items())
        ]

    @abc.abstractmethod
    def close(self) -> None:
        """Release claims and connections."""

    def wake_waiters(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Wake threads blocked in :meth:`wait` (so that they notice a stop)."""

    def wakeups(self) -> int:
        """How many times :meth:`wake_waiters` has run (a consumer compares it
        before and during a wait, so that a wake-up between the two is not lost)."""
        return 0


def undecodable_placeholder(
    sequence: int,
    problem: str,
    *,
    type: Any = None,
    source: Any = None,
    id: Any = None,
    subject: Any = None,
    time: Any = None,
    raw: Any = None,
) -> Event:
    """An event standing for a stored one that cannot be decoded: the attributes
    that could still be read (others replaced), the stored data as raw bytes, and
    the :data:`UNDECODABLE_EXTENSION` saying what is wrong. It round-trips through
    JSON, so dead letters and pending deliveries can hold it."""
    if raw is not None and not isinstance(raw, bytes):
        raw = str(raw).encode("utf-8", "backslashreplace")
    return Event.create(
        type if _readable(type) else UNDECODABLE_TYPE,
        raw or None,
        source=source if _readable(source) else "eventhub/undecodable",
        id=id if _readable(id) else f"undecodable-{sequence}",
        subject=subject if _readable(subject) else None,
        time=time
        if isinstance(time, datetime) and time.tzinfo is not None
        else datetime.fromtimestamp(0, UTC),
        extensions={UNDECODABLE_EXTENSION: _printable(problem)},
        max_data_bytes=len(raw) if raw else 0,
    ).with_sequence(sequence)


def _readable(value: Any) -> bool:
    # A str subclass is a value that was read leniently (not valid UTF-8).
    return type(value) is str and is_valid_text(value)


def _printable(text: str, limit: int = 500) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return cleaned or "?"
