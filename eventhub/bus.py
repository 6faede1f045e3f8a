"""The event bus: publish, subscribe, history, replay, dead letters.

Every published event is appended to the log first (durable, deduplicated on
``(source, id)``, numbered). Then:

* **inline** subscriptions run in the publisher's thread, by priority then
  registration order, each isolated from the others' failures (at-most-once);
* **durable** subscriptions are named cursors in the log, delivered by a
  :class:`~eventhub.delivery.Consumer` from a worker thread (``Hub.start``) or by
  :meth:`EventBus.drain` (at-least-once, retried, dead-lettered, resumable).

Both go through :func:`eventhub.delivery.deliver`, so filters, ``SkipEvent``, failure
reports and signals mean the same in both modes. :meth:`EventBus.emit` is the
ephemeral variant: inline handlers only, nothing stored.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from . import signals
from .delivery import Clock, Consumer, Worker, deliver
from .errors import (
    InvalidSubscription,
    SubscriptionNotFound,
    UndecodableEvent,
)
from .eventlog.base import (
    DeadLetter,
    EventLog,
    HistoryQuery,
    Pending,
    RetentionRule,
    Start,
    SubscriptionInfo,
)
from .events import DEFAULT_MAX_DATA_BYTES, Event
from .patterns import FilterSpec, TypePattern, compile_filter
from .retry import DEFAULT_RETRY, RetryPolicy
from .subscriptions import (
    HandlerResult,
    Mode,
    Subscription,
    current_event,
    subject_key,
)

log = structlog.get_logger(__name__)

DEAD_LETTERED = "eventhub.delivery.dead_lettered"
DEFAULT_SOURCE = "eventhub"


class EventBus:
    """Routes events between publishers and subscribers through a durable log.

    Args:
        log: Where events, cursors and dead letters are kept.
        source: The default ``source`` of events published here.
        clock: Wall-clock seconds (``time.time``); tests pass a fake one.
        batch_size: Events a durable consumer handles per step; also the most events
            redelivered to a subscription after a crash.
        max_data_bytes: Largest payload accepted by :meth:`publish`.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        source: str = DEFAULT_SOURCE,
        clock: Clock = time.time,
        batch_size: int = 100,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ) -> None:
        self.log = log
        self.source = source
        self.clock = clock
        self.batch_size = batch_size
        self.max_data_bytes = max_data_bytes
        self._inline: list[Subscription] = []
        self._inline_by_type: dict[str, tuple[Subscription, ...]] = {}
        self._consumers: dict[str, Consumer] = {}
        self._workers: dict[str, Worker] = {}
        self._order = itertools.count()
        self._lock = threading.RLock()
        self._running = False
        self._retention: list[RetentionRule] = []

    # Publishing -------------------------------------------------------------

    def publish(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> Event:
        """Store an event durably, then run the inline subscribers.

        Returns only once the event is durable. An event whose ``(source, id)`` is
        already in the log is not stored or delivered again; the stored one is
        returned.

        Args:
            type: Lowercase dotted type, e.g. ``user.created``.
            data: JSON-serialisable payload (or ``bytes``).
            source: Defaults to the bus's source.
            subject: What the event is about; the default partition key.
            id: Defaults to a new UUIDv7; pass a stable one to deduplicate.
            time: Defaults to now.
            correlationid: Defaults to that of the event being handled, if any.
            causationid: Defaults to the id of the event being handled, if any.
            extensions: Further CloudEvents extension attributes.

        Returns:
            The stored event, carrying ``id`` and ``sequence``.

        Raises:
            InvalidEvent: naming the attribute that is wrong; nothing is stored.
        """
        event = self._create(
            type,
            data,
            source=source,
            subject=subject,
            id=id,
            time=time,
            correlationid=correlationid,
            causationid=causationid,
            extensions=extensions,
        )
        (appended,) = self.log.append([event])
        if not appended.duplicate:
            self._published(appended.event)
        return appended.event

    def publish_many(self, events: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
        """Store several events in one transaction, then run inline subscribers.

        Args:
            events: :class:`Event` objects, or mappings of :meth:`publish` arguments
                (``{"type": "user.created", "data": {...}}``).

        Returns:
            The stored events in order (for duplicates, the event stored before).

        Raises:
            InvalidEvent: if any event is invalid; then none is stored (events
                published meanwhile by others are stored all the same).
        """
        prepared = [e if isinstance(e, Event) else self.prepare(e) for e in events]
        appended = self.log.append(prepared)
        for item in appended:
            if not item.duplicate:
                self._published(item.event)
        return [item.event for item in appended]

    def emit(
        self, type: str, data: Any = None, **attributes: Any
    ) -> list[HandlerResult]:
        """Run the inline subscribers on an ephemeral event: not stored, not seen by
        durable subscriptions or other processes. Returns the handlers' results.

        Takes the same arguments as :meth:`publish`."""
        event = self._create(type, data, **attributes)
        return self._dispatch(event, collect=True) or []

    def _create(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        datacontenttype: str | None = None,
    ) -> Event:
        cause = current_event.get()
        if cause is not None:
            causationid = causationid or cause.id
            correlationid = correlationid or cause.correlationid or cause.id
        return Event.create(
            type,
            data,
            source=self.source if source is None else source,
            subject=subject,
            id=id,
            time=time,
            correlationid=correlationid,
            causationid=causationid,
            extensions=extensions,
            datacontenttype=datacontenttype,
            max_data_bytes=self.max_data_bytes,
        )

    def prepare(self, spec: Mapping[str, Any]) -> Event:
        """Build and check an event from :meth:`publish` arguments without storing
        it (for :meth:`publish_many`, e.g. to check each of several batches first).

        Raises:
            InvalidEvent: naming the attribute that is wrong.
        """
        fields = dict(spec)
        if "type" not in fields:
            raise TypeError("an event mapping needs a 'type'")
        return self._create(fields.pop("type"), fields.pop("data", None), **fields)

    def _published(self, event: Event) -> None:
        if signals.event_published.receivers:
            signals.event_published.send(self, event=event)
        if self._inline:
            self._dispatch(event, collect=False)

    def _dispatch(self, event: Event, collect: bool) -> list[HandlerResult] | None:
        subs = self._inline_by_type.get(event.type)
        if subs is None:
            subs = self._inline_for(event.type)
        results: list[HandlerResult] | None = [] if collect else None
        if subs:
            deliver(self, event, subs, results)
        return results

    def _inline_for(self, type_name: str) -> tuple[Subscription, ...]:
        with self._lock:
            subs = tuple(s for s in self._inline if s.patterns.matches(type_name))
            if len(self._inline_by_type) > 4096:
                self._inline_by_type.clear()
            self._inline_by_type[type_name] = subs
            return subs

    def _dead_lettered(self, failed: Pending, error: str) -> None:
        event = failed.event
        if signals.event_dead_lettered.receivers:
            signals.event_dead_lettered.send(
                self, event=event, subscription=failed.subscription, error=error
            )
        if event.type == DEAD_LETTERED:
            return  # never a chain of notices about notices
        self.publish(
            DEAD_LETTERED,
            {
                "subscription": failed.subscription,
                "event_id": event.id,
                "event_source": event.source,
                "event_type": event.type,
                "sequence": event.sequence,
                "attempts": failed.attempts,
                "error": error,
            },
            subject=failed.subscription,
            causationid=event.id,
            correlationid=event.correlationid or event.id,
        )

    # Subscribing ------------------------------------------------------------

    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: Callable[..., Any],
        *,
        name: str | None = None,
        filter: FilterSpec = None,
        mode: Mode | None = None,
        retry: RetryPolicy | None = None,
        priority: int = 0,
        partition_key: Callable[[Event], str | None] = subject_key,
        start: Start = "end",
    ) -> Subscription:
        """Subscribe a handler to events whose type matches a pattern.

        Args:
            pattern: A type pattern (``user.*``, ``document.**``, ``#``) or a list.
            handler: Called with the :class:`Event`; a handler taking two arguments
                also gets a :class:`~eventhub.subscriptions.Delivery`. Raising
                :class:`~eventhub.errors.SkipEvent` acknowledges the event without
                handling it (no retry, no ``event_delivered``).
            name: Names the subscription. A named subscription is durable unless
                ``mode="inline"``; an unnamed one is inline.
            filter: CloudEvents filter dialects (``{"prefix": {"subject": "a/"}}``),
                a list of them, or a predicate ``(event) -> bool``.
            mode: ``"inline"`` (in the publisher's thread, at-most-once) or
                ``"durable"`` (from the log, at-least-once, resumable).
            retry: Durable only: attempts and backoff; then the event is dead-lettered.
            priority: Inline only: higher runs first; ties run in registration order.
            partition_key: Durable only: events with the same key are delivered in
                order, a retry holding back the key's later events. Default: subject.
            start: Durable only, for a new subscription: ``"end"`` (default),
                ``"beginning"``, a sequence number, or a datetime. An existing one
                resumes from its cursor.

        Returns:
            The subscription, which :meth:`unsubscribe` accepts.

        Raises:
            InvalidSubscription: for a bad pattern, filter, name or option.
        """
        if not callable(handler):
            raise InvalidSubscription("handler", f"{handler!r} is not callable")
        if mode is None:
            mode = "durable" if name is not None else "inline"
        if mode not in ("inline", "durable"):
            raise InvalidSubscription(
                "mode", f"must be 'inline' or 'durable', not {mode!r}"
            )
        if mode == "durable" and not name:
            raise InvalidSubscription("name", "a durable subscription needs a name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidSubscription("name", f"{name!r} is not a usable name")
        if isinstance(start, str) and start not in ("end", "beginning"):
            raise InvalidSubscription("start", f"{start!r} is not 'end' or 'beginning'")
        if isinstance(start, int) and start < 0:
            raise InvalidSubscription("start", "a start sequence cannot be negative")
        sub = Subscription(
            name=name or _handler_name(handler),
            patterns=TypePattern(pattern),
            filter=compile_filter(filter),
            handler=handler,
            mode=mode,
            retry=retry or DEFAULT_RETRY,
            priority=priority,
            order=next(self._order),
            partition_key=partition_key,
            start=start,
        )
        with self._lock:
            if mode == "inline":
                self._inline.append(sub)
                self._inline.sort(key=lambda s: (-s.priority, s.order))
                self._inline_by_type.clear()
                return sub
            if sub.name in self._consumers:
                raise InvalidSubscription(
                    "name", f"{sub.name!r} is already subscribed on this bus"
                )
            self.log.open_subscription(sub.name, ",".join(sub.patterns.patterns), start)
            consumer = Consumer(
                self.log,
                sub,
                self.batch_size,
                dead_lettered=self._dead_lettered,
                sender=self,
            )
            self._consumers[sub.name] = consumer
            if self._running:
                self._start_worker(consumer)
        return sub

    def on(self, pattern: str | Sequence[str], **options: Any) -> Callable[[Any], Any]:
        """Decorator form of :meth:`subscribe`: ``@bus.on("user.*")``."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.subscribe(pattern, handler, **options)
            return handler

        return register

    def unsubscribe(
        self,
        subscription: Subscription | str | Callable[..., Any],
        *,
        forget: bool = False,
    ) -> None:
        """Stop delivering to a subscription (given as returned by :meth:`subscribe`,
        by name, or by handler).

        A durable subscription keeps its cursor in the log, so subscribing again under
        the same name resumes where it stopped; ``forget=True`` deletes the cursor and
        its pending retries too.

        Raises:
            SubscriptionNotFound: when nothing matches.
        """
        with self._lock:
            found = False
            before = len(self._inline)
            self._inline = [s for s in self._inline if not _same(s, subscription)]
            if len(self._inline) != before:
                self._inline_by_type.clear()
                found = True
            for name, consumer in list(self._consumers.items()):
                if _same(consumer.subscription, subscription):
                    worker = self._workers.pop(name, None)
                    if worker is not None:
                        worker.stop()
                    consumer.release()
                    del self._consumers[name]
                    found = True
                    if forget:
                        self.log.drop_subscription(name)
        if not found:
            if forget and isinstance(subscription, str):
                self.log.drop_subscription(subscription)
                return
            raise SubscriptionNotFound(_describe(subscription))

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions registered on this bus: inline ones in delivery order,
        then durable ones by name."""
        with self._lock:
            return list(self._inline) + [
                self._consumers[n].subscription for n in sorted(self._consumers)
            ]

    def durable_status(self) -> list[SubscriptionInfo]:
        """Every durable subscription the log knows, with cursor and counts."""
        return self.log.subscriptions()

    # Delivery ---------------------------------------------------------------

    def start(self) -> None:
        """Start a worker thread per durable subscription (idempotent)."""
        with self._lock:
            self._running = True
            for consumer in self._consumers.values():
                if consumer.name not in self._workers:
                    self._start_worker(consumer)

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the workers: no new deliveries start; in-flight handlers may finish
        within ``timeout`` seconds. Returns False if some did not."""
        with self._lock:
            self._running = False
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.request_stop()
        self.log.wake_waiters()
        deadline = time.monotonic() + timeout
        finished = True
        for worker in workers:
            finished &= worker.join(max(0.0, deadline - time.monotonic()))
        for consumer in list(self._consumers.values()):
            if consumer.lock.acquire(timeout=0):
                consumer.lock.release()
                consumer.release()
        return finished

    def close(self) -> None:
        """Stop the workers and give up every subscription claim."""
        self.stop()
        for consumer in list(self._consumers.values()):
            consumer.release()

    def _start_worker(self, consumer: Consumer) -> None:
        worker = Worker(consumer, self.clock)
        self._workers[consumer.name] = worker
        worker.start()

    def drain(self, timeout: float = 10.0) -> bool:
        """Deliver everything pending to this bus's durable subscriptions, then return.

        Runs the delivery in the calling thread (alongside the workers, if started).
        Retries that are not yet due at :attr:`clock` time are left for later.

        Returns:
            True when every subscription is caught up; False at the timeout, or when
            another process holds a subscription's claim.
        """
        deadline = time.monotonic() + timeout
        while True:
            progressed = False
            for consumer in list(self._consumers.values()):
                if consumer.step(self.clock()) > 0:
                    progressed = True
            if not progressed:
                consumers = list(self._consumers.values())
                now = self.clock()
                if all(c.cursor >= 0 and c.caught_up(now) for c in consumers):
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.005)
            elif time.monotonic() >= deadline:
                return False

    # History, replay, dead letters, retention --------------------------------

    def history(
        self,
        type: str | Sequence[str] | None = None,
        limit: int | None = 100,
        *,
        source: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        before: int | None = None,
        on_undecodable: Callable[[UndecodableEvent], None] | None = None,
    ) -> list[Event]:
        """Stored events, oldest first: the latest ``limit`` that match, or the first
        ``limit`` after sequence ``after``.

        Args:
            type: A type pattern or list of them.
            limit: At most this many (None: all).
            source, subject: Exact matches.
            since, until: Event time range ``[since, until)``.
            after, before: Sequence range, exclusive.
            on_undecodable: Called with each stored event that cannot be decoded
                (a damaged row), which is then left out; without it, such an event
                raises.

        Raises:
            UndecodableEvent: for a damaged stored event, without ``on_undecodable``.
        """
        return self.log.history(
            HistoryQuery(
                type=TypePattern(type) if type is not None else None,
                source=source,
                subject=subject,
                since=since,
                until=until,
                after=after,
                before=before,
                limit=limit,
                on_undecodable=on_undecodable,
            )
        )

    def replay(
        self,
        subscription: str,
        *,
        after: int | None = None,
        before: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Deliver a range of stored events to a durable subscription again, flagged
        ``replay=True`` (see :class:`~eventhub.subscriptions.Delivery`).

        Returns:
            How many deliveries were scheduled.

        Raises:
            SubscriptionNotFound: if the subscription is not registered on this bus.
        """
        consumer = self._consumers.get(subscription)
        if consumer is None:
            raise SubscriptionNotFound(subscription)
        sub = consumer.subscription
        now = self.clock()
        scheduled = 0
        cursor = after or 0
        while True:
            batch = self.log.history(
                HistoryQuery(
                    type=sub.patterns,
                    after=cursor,
                    before=before,
                    since=since,
                    until=until,
                    limit=1000,
                    on_undecodable=_skip_undecodable,
                )
            )
            if not batch:
                return scheduled
            deliveries = [
                Pending(sub.name, e, sub.partition_key(e), 0, now, replay=True)
                for e in batch
                if sub.filter is None or sub.filter(e)
            ]
            scheduled += self.log.schedule(sub.name, deliveries)
            cursor = batch[-1].sequence  # type: ignore[assignment]

    def dead_letters(
        self, subscription: str | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        """Events whose deliveries failed for the last time, oldest first."""
        return self.log.dead_letters(subscription, limit)

    def redrive(self, ids: Sequence[int] | None = None, *, all: bool = False) -> int:
        """Put dead letters back for delivery, with a fresh attempt count.

        Args:
            ids: Dead-letter ids to redrive.
            all: Redrive every dead letter instead.

        Returns:
            How many were put back.

        Raises:
            DeadLetterNotFound: for an unknown id (then nothing is redriven).
        """
        if all == (ids is not None):
            raise TypeError("redrive() takes either ids or all=True")
        count = self.log.redrive(None if all else list(ids or ()), self.clock())
        self.log.wake_waiters()
        return count

    def retain(
        self,
        pattern: str | Sequence[str] = "#",
        *,
        max_age: float | None = None,
        max_count: int | None = None,
    ) -> None:
        """Add a retention rule: events of matching types older than ``max_age``
        seconds, or beyond the newest ``max_count``, are deleted by :meth:`trim`.
        Events a durable subscription has yet to handle are always kept."""
        if max_age is None and max_count is None:
            raise InvalidSubscription("retention", "give max_age, max_count or both")
        if (max_age is not None and max_age <= 0) or (
            max_count is not None and max_count < 0
        ):
            raise InvalidSubscription(
                "retention", "max_age and max_count must be positive"
            )
        self._retention.append(RetentionRule(TypePattern(pattern), max_age, max_count))

    def trim(self) -> int:
        """Apply the retention rules now. Returns how many events were deleted."""
        return self.log.trim(self._retention, self.clock())

    @property
    def has_retention(self) -> bool:
        return bool(self._retention)


def _skip_undecodable(problem: UndecodableEvent) -> None:
    log.warning(
        "replay skips a stored event that cannot be decoded",
        sequence=problem.sequence,
        problem=problem.problem,
    )


def _handler_name(handler: Callable[..., Any]) -> str:
    module = getattr(handler, "__module__", None) or "?"
    qualname = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return f"{module}.{qualname}"


def _same(sub: Subscription, target: Subscription | str | Callable[..., Any]) -> bool:
    if isinstance(target, Subscription):
        return sub is target
    if isinstance(target, str):
        return sub.name == target
    return sub.handler == target


def _describe(target: Subscription | str | Callable[..., Any]) -> str:
    if isinstance(target, Subscription):
        return target.name
    if isinstance(target, str):
        return target
    return _handler_name(target)
