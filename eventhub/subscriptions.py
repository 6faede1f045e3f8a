"""Subscriptions and durable delivery.

A :class:`Subscription` is compiled once: its type patterns, its filter, how its
handler is called. A durable subscription gets a :class:`Consumer`, which moves its
cursor through the log in steps: deliver what is due for a retry, then the next batch
of new events, then record everything the step did in one transaction. A crash in the
middle of a step redelivers that step's events (at-least-once; the batch size bounds
the duplicates). A stored event that cannot be decoded is dead-lettered at once, with
what is wrong with it; the rest of the subscription flows on.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog

from . import signals
from .errors import InvalidSubscription, SkipEvent, UndecodableEvent
from .eventlog.base import Pending, Progress, Start
from .events import Event
from .patterns import Predicate, TypePattern
from .redact import redact_text
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .bus import EventBus

Mode = Literal["inline", "durable"]
log = structlog.get_logger(__name__)

#: The event being handled in this context; events published meanwhile are its effects.
current_event: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "eventhub_current_event", default=None
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How an event reaches a handler; passed as a second argument to handlers that
    take two. ``idempotency_key`` is stable across redeliveries of the same event to
    the same subscription: use it to make side effects effectively-once."""

    subscription: str
    attempt: int
    replay: bool
    event: Event

    @property
    def idempotency_key(self) -> str:
        return f"{self.subscription}:{self.event.source}:{self.event.id}"


@dataclass(slots=True)
class HandlerResult:
    """What one inline handler did with an event."""

    subscription: str
    ok: bool
    value: Any = None
    error: BaseException | None = None


class Subscription:
    """A compiled subscription. Created by :meth:`EventBus.subscribe`."""

    __slots__ = (
        "name",
        "patterns",
        "filter",
        "handler",
        "mode",
        "retry",
        "priority",
        "order",
        "partition_key",
        "start",
        "takes_delivery",
        "invoke",
        "__weakref__",
    )

    def __init__(
        self,
        *,
        name: str,
        patterns: TypePattern,
        filter: Predicate | None,
        handler: Callable[..., Any],
        mode: Mode,
        retry: RetryPolicy,
        priority: int,
        order: int,
        partition_key: Callable[[Event], str | None],
        start: Start,
    ) -> None:
        self.name = name
        self.patterns = patterns
        self.filter = filter
        self.handler = handler
        self.mode = mode
        self.retry = retry
        self.priority = priority
        self.order = order
        self.partition_key = partition_key
        self.start = start
        self.takes_delivery = _takes_two_arguments(handler)
        #: Calls the handler on one event, for inline dispatch (the hot path).
        self.invoke: Callable[[Event], Any] = (
            self.call if self.takes_delivery else handler
        )

    def accepts(self, event: Event) -> bool:
        """Whether the event matches the patterns and the filter."""
        return self.patterns.matches(event.type) and (
            self.filter is None or self.filter(event)
        )

    def call(self, event: Event, attempt: int = 1, replay: bool = False) -> Any:
        """Run the handler on one event."""
        if self.takes_delivery:
            return self.handler(event, Delivery(self.name, attempt, replay, event))
        return self.handler(event)

    def __repr__(self) -> str:
        return f"<Subscription {self.name} {self.mode} {self.patterns.patterns}>"


def _takes_two_arguments(handler: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return False
    if len(positional) < 1:
        raise InvalidSubscription("handler", f"{handler!r} must accept the event")
    return len(positional) >= 2


def report_failure(
    sender: Any,
    message: str,
    sub: Subscription,
    event: Event,
    exc: Exception,
    attempt: int,
    **context: Any,
) -> None:
    """Log a failed delivery on one structured line and send ``delivery_failed``."""
    log.error(
        message,
        event_id=event.id,
        event_type=event.type,
        sequence=event.sequence,
        subscription=sub.name,
        attempt=attempt,
        exc_info=exc,
        **context,
    )
    if signals.delivery_failed.receivers:
        signals.delivery_failed.send(
            sender, event=event, subscription=sub.name, error=exc, attempt=attempt
        )


def _describe(exc: BaseException) -> str:
    """A failure as recorded (pending retries, dead letters, the dead-lettered
    event): its type and message, redacted (:func:`eventhub.redact.redact_text`)."""
    return redact_text(f"{type(exc).__name__}: {exc}")


def _traceback(exc: BaseException) -> str:
    """A failure's traceback as stored with its dead letter, redacted: it quotes
    the exception's message, and those of its causes."""
    return redact_text("".join(traceback.format_exception(exc)))


def subject_key(event: Event) -> str | None:
    """The default partition key: the event's subject."""
    return event.subject


class Consumer:
    """Delivers a durable subscription's events, one step at a time.

    ``step`` is safe to call from several threads (the worker thread and ``drain``);
    steps are serialised by a lock. Only the process holding the subscription's claim
    delivers; another process sharing the file waits as a stand-by.
    """

    def __init__(
        self, bus: EventBus, subscription: Subscription, batch_size: int
    ) -> None:
        self.bus = bus
        self.subscription = subscription
        self.batch_size = batch_size
        self.lock = threading.Lock()
        self.cursor = -1
        self._blocked: set[str] | None = None
        self._claimed = False

    @property
    def name(self) -> str:
        return self.subscription.name

    def step(self, now: float, stopping: Callable[[], bool] = lambda: False) -> int:
        """Deliver what is due and the next batch of new events.

        Args:
            now: The clock's time (for due retries and backoff).
            stopping: Checked before each delivery; once it says True, the step
                records what it did so far and returns (the rest stays unacknowledged).

        Returns:
            How many deliveries were made, or -1 when another process holds the claim.
        """
        log_ = self.bus.log
        with self.lock:
            if not self._claimed:
                if not log_.claim(self.name):
                    return -1
                self._claimed = True
                self.cursor = log_.cursor(self.name)
                self._blocked = log_.pending_keys(self.name)
            done = self._deliver_due(now, stopping)
            batch = log_.read(self.cursor, self.batch_size, self.subscription.patterns)
            if batch.upto <= self.cursor or stopping():
                return done
            upto = batch.upto
            progress = Progress()
            for event in batch.events:
                if stopping():
                    upto = event.sequence - 1  # type: ignore[operator]
                    break
                problem = (
                    batch.undecodable.get(event.sequence)  # type: ignore[arg-type]
                    if batch.undecodable
                    else None
                )
                if problem is not None:
                    pending = Pending(
                        self.name, event, None, 0, now, undecodable=problem
                    )
                    self._attempt(pending, progress, now, fresh=True)
                    continue
                key = self.subscription.partition_key(event)
                if key is not None and key in self._blocked:  # type: ignore[operator]
                    # Park behind the earlier failure of the same key, to keep order.
                    progress.retry.append(Pending(self.name, event, key, 0, 0.0))
                    continue
                pending = Pending(self.name, event, key, 0, now)
                done += self._attempt(pending, progress, now, fresh=True)
            if upto > self.cursor:
                progress.cursor = upto
            self._commit(progress)
            self.cursor = max(self.cursor, upto)
            return done

    def caught_up(self, now: float) -> bool:
        """Whether nothing is left to deliver at ``now`` (the cursor is at the end
        and no pending delivery is due)."""
        log_ = self.bus.log
        return self.cursor >= log_.last_sequence() and not log_.due(self.name, now, 1)

    def release(self) -> None:
        with self.lock:
            if self._claimed:
                self.bus.log.release(self.name)
                self._claimed = False

    def _deliver_due(self, now: float, stopping: Callable[[], bool]) -> int:
        due = self.bus.log.due(self.name, now, self.batch_size)
        if not due:
            return 0
        progress = Progress()
        delivered = 0
        for pending in due:
            if stopping():
                break
            delivered += self._attempt(pending, progress, now, fresh=False)
        self._commit(progress)
        return max(delivered, 1)

    def _attempt(
        self, pending: Pending, progress: Progress, now: float, fresh: bool
    ) -> int:
        """Filter and deliver one event; 1 when the handler ran, else 0."""
        if pending.undecodable is not None:
            self._dead_on_arrival(pending, pending.undecodable, progress)
            return 0
        sub = self.subscription
        event = pending.event
        attempt = pending.attempts + 1
        token = current_event.set(event)
        try:
            # A filter that raises is the subscription's failure like a handler that
            # raises: retried, then dead-lettered, never a silently skipped event.
            if sub.filter is not None and not sub.filter(event):
                if not fresh:
                    progress.done.append(pending.sequence)
                return 0
            result = sub.call(event, attempt, pending.replay)
        except SkipEvent:
            result = None
        except Exception as exc:
            self._failed(pending, attempt, exc, progress, now)
            return 1
        finally:
            current_event.reset(token)
        if not fresh:
            progress.done.append(pending.sequence)
        if signals.event_delivered.receivers:
            signals.event_delivered.send(
                self.bus,
                event=event,
                subscription=sub.name,
                result=result,
                attempt=attempt,
            )
        return 1

    def _failed(
        self,
        pending: Pending,
        attempt: int,
        exc: Exception,
        progress: Progress,
        now: float,
    ) -> None:
        sub = self.subscription
        event = pending.event
        delay = sub.retry.next_delay(attempt, exc)
        error = _describe(exc)
        retry_in = None if delay is None else round(delay, 3)
        report_failure(
            self.bus, "delivery failed", sub, event, exc, attempt, retry_in=retry_in
        )
        failed = Pending(
            sub.name, event, pending.key, attempt, now, pending.replay, error
        )
        if delay is None:
            progress.dead.append((failed, error, _traceback(exc)))
            return
        progress.retry.append(
            Pending(
                sub.name,
                event,
                pending.key,
                attempt,
                now + delay,
                pending.replay,
                error,
            )
        )
        if pending.key is not None:
            self._blocked.add(pending.key)  # type: ignore[union-attr]

    def _dead_on_arrival(
        self, pending: Pending, problem: UndecodableEvent, progress: Progress
    ) -> None:
        """Dead-letter an event that cannot be decoded: no handler can take it and
        retrying cannot repair it (``pending.event`` is a placeholder)."""
        report_failure(
            self.bus,
            "stored event cannot be decoded; dead-lettered",
            self.subscription,
            pending.event,
            problem,
            pending.attempts,
        )
        progress.dead.append((pending, _describe(problem), _traceback(problem)))

    def _commit(self, progress: Progress) -> None:
        if not progress:
            return
        log_ = self.bus.log
        log_.commit(self.name, progress)
        if progress.done or progress.dead:
            self._blocked = log_.pending_keys(self.name)
        for failed, error, _ in progress.dead:
            self.bus._dead_lettered(failed, error)
