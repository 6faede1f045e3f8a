"""An event log in this process's memory: neither durable nor shared.

:class:`MemoryLog` is eventhub's stub backend, as dramatiq's ``StubBroker`` and
APScheduler's ``MemoryJobStore`` are theirs: for tests, and for applications whose
events need not outlive the process. It meets the same contract as the SQLite log
(``tests/test_eventlog_contract.py``) except what only a durable log can: its
events, cursors, retries and dead letters go with the object, and no other process
sees them::

    hub = Hub(eventlog=MemoryLog())

Events are kept as published and handed out as copies whose data is decoded from
the stored payload, as a log that stores them would: a handler that changes an
event's data changes only its own copy, and data reads back as the SQLite log reads
it (a tuple as a list, a JSON object's keys as text).
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ..errors import DeadLetterNotFound, SubscriptionNotFound
from ..events import Event, data_kind, decode_data
from .base import (
    UNDECODABLE_ERROR,
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
)


@dataclass(slots=True)
class _Subscription:
    cursor: int
    pattern: str


@dataclass(frozen=True, slots=True)
class _Letter:
    letter: DeadLetter
    key: str | None


class MemoryLog(EventLog):
    """The event log in memory: every method under one lock, so any thread may
    call it; :meth:`wait` is woken by appends at once (there is no other process
    to poll for)."""

    durable = False
    cross_process = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        self._last = 0
        self._sequences: list[int] = []  # of the stored events, ascending
        self._events: dict[int, Event] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._pending: dict[str, dict[int, Pending]] = {}
        self._letters: dict[int, _Letter] = {}
        self._letter_ids = itertools.count(1)
        self._claims: set[str] = set()

    # The log ----------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[Appended]:
        if not events:
            return []
        results = []
        with self._lock:
            for event in events:
                key = (event.source, event.id)
                stored = self._ids.get(key)
                if stored is not None:
                    results.append(Appended(_copy(self._events[stored]), True))
                    continue
                self._last += 1
                appended = event.with_sequence(self._last)
                self._events[self._last] = appended
                self._sequences.append(self._last)
                self._ids[key] = self._last
                results.append(Appended(appended, False))
            self._wake()
        return results

    def read(self, after: int, limit: int, match: TypeMatch | None = None) -> Batch:
        with self._lock:
            start = bisect.bisect_right(self._sequences, after)
            looked = self._sequences[start : start + limit]
            events = [
                _copy(e)
                for e in map(self._events.__getitem__, looked)
                if match is None or match(e.type)
            ]
            upto = looked[-1] if len(looked) == limit else max(after, self._last)
        return Batch(events, upto)

    def last_sequence(self) -> int:
        return self._last

    def wait(
        self,
        after: int,
        timeout: float,
        cancelled: Callable[[], bool] | None = None,
    ) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            generation = self._generation
            while True:
                if self._last > after:
                    return True
                if cancelled is not None and cancelled():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
                if self._generation != generation:
                    # Woken: by an append, or to notice a stop or a redrive.
                    return self._last > after

    def wake_waiters(self) -> None:
        with self._lock:
            self._wake()

    def wakeups(self) -> int:
        return self._generation

    def _wake(self) -> None:
        self._generation += 1
        self._changed.notify_all()

    def history(self, query: HistoryQuery) -> list[Event]:
        since = None if query.since is None else _utc(query.since)
        until = None if query.until is None else _utc(query.until)
        with self._lock:
            start = 0
            if query.after is not None:
                start = bisect.bisect_right(self._sequences, query.after)
            stop = len(self._sequences)
            if query.before is not None:
                stop = bisect.bisect_left(self._sequences, query.before)
            window = self._sequences[start:stop]
            if query.after is None:
                window.reverse()  # the latest first, until the limit
            found: list[Event] = []
            for sequence in window:
                if query.limit is not None and len(found) >= query.limit:
                    break
                event = self._events[sequence]
                if (
                    (query.type is None or query.type(event.type))
                    and (query.source is None or event.source == query.source)
                    and (query.subject is None or event.subject == query.subject)
                    and (since is None or event.time >= since)
                    and (until is None or event.time < until)
                ):
                    found.append(_copy(event))
        if query.after is None:
            found.reverse()
        return found

    def trim(self, rules: Iterable[RetentionRule], now: float) -> int:
        rules = list(rules)
        if not rules:
            return 0
        with self._lock:
            floor = min(
                (s.cursor for s in self._subscriptions.values()), default=self._last
            )
            doomed: set[int] = set()
            for rule in rules:
                if rule.max_age is not None:
                    cutoff = datetime.fromtimestamp(now - rule.max_age, UTC)
                    for sequence in self._sequences:
                        if sequence > floor:
                            break
                        event = self._events[sequence]
                        if event.time < cutoff and rule.match(event.type):
                            doomed.add(sequence)
                if rule.max_count is not None:
                    kept = 0
                    for sequence in reversed(self._sequences):
                        if rule.match(self._events[sequence].type):
                            kept += 1
                            if kept > rule.max_count and sequence <= floor:
                                doomed.add(sequence)
            for sequence in doomed:
                event = self._events.pop(sequence)
                del self._ids[(event.source, event.id)]
            if doomed:
                self._sequences = [s for s in self._sequences if s not in doomed]
        return len(doomed)

    # Subscriptions ----------------------------------------------------------

    def open_subscription(self, name: str, pattern: str, start: Start) -> int:
        with self._lock:
            existing = self._subscriptions.get(name)
            if existing is not None:
                existing.pattern = pattern
                return existing.cursor
            if start == "end":
                cursor = self._last
            elif start == "beginning":
                cursor = 0
            elif isinstance(start, datetime):
                cursor = self._sequence_at(_utc(start))
            else:
                cursor = max(int(start) - 1, 0)
            self._subscriptions[name] = _Subscription(cursor, pattern)
            self._pending.setdefault(name, {})
            return cursor

    def _sequence_at(self, moment: datetime) -> int:
        for sequence in self._sequences:
            if self._events[sequence].time >= moment:
                return sequence - 1
        return self._last

    def cursor(self, name: str) -> int:
        with self._lock:
            try:
                return self._subscriptions[name].cursor
            except KeyError:
                raise SubscriptionNotFound(name) from None

    def subscriptions(self) -> list[SubscriptionInfo]:
        with self._lock:
            letters = [entry.letter for entry in self._letters.values()]
            return [
                SubscriptionInfo(
                    name,
                    sub.cursor,
                    sub.pattern,
                    len(self._pending.get(name, ())),
                    sum(1 for d in letters if d.subscription == name),
                    sum(
                        1
                        for d in letters
                        if d.subscription == name
                        and d.error.startswith(UNDECODABLE_ERROR)
                    ),
                )
                for name, sub in sorted(self._subscriptions.items())
            ]

    def drop_subscription(self, name: str) -> None:
        with self._lock:
            self._pending.pop(name, None)
            self._subscriptions.pop(name, None)

    def claim(self, name: str) -> bool:
        # One log object is the whole store, so its claims exclude no one: as a
        # SQLite log's own claims, they are granted again to the log holding them.
        with self._lock:
            self._claims.add(name)
            return True

    def release(self, name: str) -> None:
        with self._lock:
            self._claims.discard(name)

    def due(self, name: str, now: float, limit: int) -> list[Pending]:
        with self._lock:
            pending = self._pending.get(name, {})
            heads: dict[str, int] = {}
            for sequence, p in pending.items():
                if p.key is not None and sequence < heads.get(p.key, sequence + 1):
                    heads[p.key] = sequence
            due = [
                p
                for sequence, p in pending.items()
                if p.due <= now and (p.key is None or heads[p.key] == sequence)
            ]
        due.sort(key=lambda p: (p.due, p.sequence))
        return [replace(p, event=_copy(p.event)) for p in due[:limit]]

    def pending_keys(self, name: str) -> set[str]:
        with self._lock:
            return {
                p.key for p in self._pending.get(name, {}).values() if p.key is not None
            }

    def commit(self, name: str, progress: StepOutcome) -> None:
        with self._lock:
            sub = self._subscriptions.get(name)
            if progress.cursor is not None and sub is not None:
                sub.cursor = max(sub.cursor, progress.cursor)
            pending = self._pending.setdefault(name, {})
            for p in progress.retry:
                held = pending.get(p.sequence)
                if held is None:
                    pending[p.sequence] = replace(p, subscription=name)
                else:
                    pending[p.sequence] = replace(
                        held, attempts=p.attempts, due=p.due, last_error=p.last_error
                    )
            for sequence in progress.done:
                pending.pop(sequence, None)
            failed_at = datetime.now(UTC)
            for p, error, tb in progress.dead:
                letter_id = next(self._letter_ids)
                letter = DeadLetter(
                    letter_id, name, p.event, error, tb, p.attempts, failed_at
                )
                self._letters[letter_id] = _Letter(letter, p.key)
                pending.pop(p.sequence, None)

    def schedule(self, name: str, deliveries: Sequence[Pending]) -> int:
        added = 0
        with self._lock:
            pending = self._pending.setdefault(name, {})
            for p in deliveries:
                if p.sequence not in pending:
                    pending[p.sequence] = replace(p, subscription=name)
                    added += 1
        return added

    # Dead letters -----------------------------------------------------------

    def dead_letters(
        self, subscription: str | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        with self._lock:
            letters = [
                entry.letter
                for _, entry in sorted(self._letters.items())
                if subscription is None or entry.letter.subscription == subscription
            ]
        return [replace(d, event=_copy(d.event)) for d in letters[:limit]]

    def redrive(self, ids: Sequence[int] | None, now: float) -> int:
        with self._lock:
            if ids is None:
                wanted = sorted(self._letters)
            else:
                wanted = sorted(set(ids))
                missing = [i for i in wanted if i not in self._letters]
                if missing:
                    raise DeadLetterNotFound(missing)
            for letter_id in wanted:
                entry = self._letters.pop(letter_id)
                letter = entry.letter
                sequence = letter.event.sequence or 0
                pending = self._pending.setdefault(letter.subscription, {})
                held = pending.get(sequence)
                if held is None:
                    pending[sequence] = Pending(
                        letter.subscription, letter.event, entry.key, 0, now
                    )
                else:
                    pending[sequence] = replace(
                        held, attempts=0, due=now, last_error=None
                    )
            self._wake()
        return len(wanted)

    def close(self) -> None:
        with self._lock:
            self._claims.clear()
            self._wake()


def _copy(event: Event) -> Event:
    """The event as a log that stores it would give it back: its data decoded
    afresh from the stored payload."""
    if event.data is None or isinstance(event.data, bytes | str):
        return event  # nothing a handler could change, nor JSON would
    payload = event.payload
    if payload is None:
        return event
    data = decode_data(
        payload, event.datacontenttype, data_kind(event.data, event.datacontenttype)
    )
    return replace(event, data=data, _payload=payload)


def _utc(moment: datetime) -> datetime:
    """``moment`` comparable with events' times (a naive one is local time, as
    :func:`eventhub.events.format_time` takes it)."""
    return moment if moment.tzinfo is not None else moment.astimezone(UTC)
