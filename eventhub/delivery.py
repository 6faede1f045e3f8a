"""Delivery: one path from an event to its handlers, inline or durable.

:func:`deliver` is the only place where a handler is called: the filter, the
handler, :data:`~eventhub.subscriptions.current_event`, :class:`SkipEvent`, the
failure report and the signals are written once, for both modes:

* **delivered**: the handler returned. ``event_delivered`` is sent.
* **filtered out**: the filter said no. Nothing is sent; the event is acknowledged.
* **skipped**: the handler raised :class:`~eventhub.errors.SkipEvent`. Nothing is sent;
  the event is acknowledged. A skip is not a delivery (dramatiq's ``SkipMessage`` is
  not a processed message either), so ``eventhub_events_delivered`` in ``/metrics``
  counts the same thing in both modes: handlers that returned.
* **failed**: the filter or the handler raised. One ``delivery failed`` log line
  and ``delivery_failed``; an inline failure goes no further (at-most-once), a
  durable one is retried by its policy, then dead-lettered.

The inline path calls :func:`deliver` from the publisher's thread with every matching
subscription; a durable subscription's :class:`Consumer` calls it for one event at a
time and records what happened in the log. A :class:`Worker` thread runs a consumer
until stopped.

A consumer moves its cursor through the log in steps: deliver what is due for a
retry, then the next batch of new events, then record everything the step did in one
transaction. A crash in the middle of a step redelivers that step's events
(at-least-once; the batch size bounds the duplicates). A stored event that cannot be
decoded is dead-lettered at once, with what is wrong with it; the rest of the
subscription flows on.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from . import signals
from .errors import SkipEvent, UndecodableEvent
from .eventlog.base import EventLog, Pending, StepOutcome
from .events import Event
from .redact import redact_text
from .subscriptions import HandlerResult, Subscription, current_event

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
#: Told of each delivery that failed for the last time, once it is recorded in the
#: log: the failed delivery and its error as recorded.
DeadLettered = Callable[[Pending, str], None]


def deliver(
    sender: object,
    event: Event,
    subscriptions: Iterable[Subscription],
    results: list[HandlerResult] | None = None,
    attempt: int = 1,
    replay: bool = False,
) -> None:
    """Deliver one event to subscriptions, one after the other, each isolated from
    the others' failures.

    Args:
        sender: What the signals are sent with (the bus).
        event: The event, set as :data:`~eventhub.subscriptions.current_event`
            while the handlers run.
        subscriptions: Whose handlers to call, in order (their patterns are the
            caller's business; their filters are applied here).
        results: Given, one :class:`HandlerResult` per handler that returned or
            failed is appended to it (none for an event filtered out or skipped).
        attempt: Which attempt this is (1 for a first delivery).
        replay: Whether this is a replay (:meth:`EventBus.replay`).
    """
    fresh = attempt == 1 and not replay
    delivered = signals.event_delivered
    add = None if results is None else results.append
    token = current_event.set(event)
    try:
        for sub in subscriptions:
            try:
                # A filter that raises is the subscription's failure like a handler
                # that raises (retried, then dead-lettered when durable), never a
                # silently skipped event.
                if sub.filter is not None and not sub.filter(event):
                    continue
                value = sub.invoke(event) if fresh else sub.call(event, attempt, replay)
            except SkipEvent:
                continue
            except Exception as exc:
                retry_in = _failed(sender, sub, event, exc, attempt)
                if add is not None:
                    add(HandlerResult(sub.name, False, None, exc, retry_in))
                continue
            if add is not None:
                add(HandlerResult(sub.name, True, value))
            if delivered.receivers:
                delivered.send(
                    sender,
                    event=event,
                    subscription=sub.name,
                    result=value,
                    attempt=attempt,
                )
    finally:
        current_event.reset(token)


def _failed(
    sender: object, sub: Subscription, event: Event, exc: Exception, attempt: int
) -> float | None:
    """Report a failed delivery; return the seconds until it is attempted again
    (None: never, being inline, or to be dead-lettered)."""
    delay = sub.retry.next_delay(attempt, exc) if sub.mode == "durable" else None
    report_failure(
        sender,
        "delivery failed",
        sub,
        event,
        exc,
        attempt,
        mode=sub.mode,
        retry_in=None if delay is None else round(delay, 3),
    )
    return delay


def report_failure(
    sender: object,
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


class Consumer:
    """Delivers a durable subscription's events, one step at a time.

    ``step`` is safe to call from several threads (the worker thread and ``drain``);
    steps are serialised by a lock. Only the process holding the subscription's claim
    delivers; another process sharing the log waits as a stand-by.

    Args:
        log: The log the subscription's cursor, retries and dead letters are in.
        subscription: The durable subscription.
        batch_size: The most new events one step delivers.
        dead_lettered: Told of each delivery dead-lettered, once it is recorded.
        sender: What the signals are sent with (the bus).
    """

    def __init__(
        self,
        log: EventLog,
        subscription: Subscription,
        batch_size: int,
        *,
        dead_lettered: DeadLettered,
        sender: object,
    ) -> None:
        self.log = log
        self.subscription = subscription
        self.batch_size = batch_size
        self.dead_lettered = dead_lettered
        self.sender = sender
        self.lock = threading.Lock()
        self.cursor = -1
        self._only = (subscription,)
        self._blocked: set[str] = set()
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
            How many events the step dealt with (delivered, filtered out, skipped,
            failed or parked behind a retry; at least 1 when it only moved the cursor
            past events of other types), 0 when there was nothing to do, or -1 when
            another process holds the claim.
        """
        log_ = self.log
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
            progress = StepOutcome()
            handled = 0
            for event in batch.events:
                if stopping():
                    upto = event.sequence - 1  # type: ignore[operator]
                    break
                handled += 1
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
                if key is not None and key in self._blocked:
                    # Park behind the earlier failure of the same key, to keep order.
                    progress.retry.append(Pending(self.name, event, key, 0, 0.0))
                    continue
                pending = Pending(self.name, event, key, 0, now)
                self._attempt(pending, progress, now, fresh=True)
            if upto > self.cursor:
                progress.cursor = upto
            self._commit(progress)
            moved = upto > self.cursor
            self.cursor = max(self.cursor, upto)
            return done + (handled or int(moved))

    def caught_up(self, now: float) -> bool:
        """Whether nothing is left to deliver at ``now`` (the cursor is at the end
        and no pending delivery is due)."""
        log_ = self.log
        return self.cursor >= log_.last_sequence() and not log_.due(self.name, now, 1)

    def release(self) -> None:
        with self.lock:
            if self._claimed:
                self.log.release(self.name)
                self._claimed = False

    def _deliver_due(self, now: float, stopping: Callable[[], bool]) -> int:
        due = self.log.due(self.name, now, self.batch_size)
        if not due:
            return 0
        progress = StepOutcome()
        handled = 0
        for pending in due:
            if stopping():
                break
            handled += 1
            self._attempt(pending, progress, now, fresh=False)
        self._commit(progress)
        return handled

    def _attempt(
        self, pending: Pending, progress: StepOutcome, now: float, fresh: bool
    ) -> None:
        """Deliver one event and note the outcome in ``progress``."""
        if pending.undecodable is not None:
            self._dead_on_arrival(pending, pending.undecodable, progress)
            return
        outcome: list[HandlerResult] = []
        deliver(
            self.sender,
            pending.event,
            self._only,
            outcome,
            pending.attempts + 1,
            pending.replay,
        )
        if outcome and not outcome[0].ok:
            self._failed(pending, outcome[0], progress, now)
        elif not fresh:
            progress.done.append(pending.sequence)

    def _failed(
        self,
        pending: Pending,
        outcome: HandlerResult,
        progress: StepOutcome,
        now: float,
    ) -> None:
        """Schedule a failed delivery's retry, or its dead letter."""
        exc = outcome.error
        assert exc is not None
        attempt = pending.attempts + 1
        error = _describe(exc)
        failed = Pending(
            self.name, pending.event, pending.key, attempt, now, pending.replay, error
        )
        if outcome.retry_in is None:
            progress.dead.append((failed, error, _traceback(exc)))
            return
        progress.retry.append(
            Pending(
                self.name,
                pending.event,
                pending.key,
                attempt,
                now + outcome.retry_in,
                pending.replay,
                error,
            )
        )
        if pending.key is not None:
            self._blocked.add(pending.key)

    def _dead_on_arrival(
        self, pending: Pending, problem: UndecodableEvent, progress: StepOutcome
    ) -> None:
        """Dead-letter an event that cannot be decoded: no handler can take it and
        retrying cannot repair it (``pending.event`` is a placeholder)."""
        report_failure(
            self.sender,
            "stored event cannot be decoded; dead-lettered",
            self.subscription,
            pending.event,
            problem,
            pending.attempts,
        )
        progress.dead.append((pending, _describe(problem), _traceback(problem)))

    def _commit(self, progress: StepOutcome) -> None:
        if not progress:
            return
        log_ = self.log
        log_.commit(self.name, progress)
        if progress.done or progress.dead:
            self._blocked = log_.pending_keys(self.name)
        for failed, error, _ in progress.dead:
            self.dead_lettered(failed, error)


class Worker:
    """The thread that runs one durable consumer until stopped.

    Args:
        consumer: The consumer to run.
        clock: The wall clock (the bus's).
    """

    CLAIM_RETRY = 0.5
    IDLE_WAIT = 1.0
    ERROR_BACKOFF = 1.0

    def __init__(self, consumer: Consumer, clock: Clock) -> None:
        self.consumer = consumer
        self.clock = clock
        self._stop = threading.Event()
        self._woken = 0
        self._thread = threading.Thread(
            target=self._run, name=f"eventhub:{consumer.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        self.consumer.log.wake_waiters()
        self.join(20.0)

    def join(self, timeout: float) -> bool:
        if self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        consumer, log_ = self.consumer, self.consumer.log
        while not self._stop.is_set():
            try:
                # A wake-up (a stop, a redrive) during the step ends the wait at once.
                self._woken = log_.wakeups()
                handled = consumer.step(self.clock(), self._stop.is_set)
                if handled < 0:
                    self._stop.wait(self.CLAIM_RETRY)
                elif handled == 0:
                    log_.wait(consumer.cursor, self._idle_wait(), self._cancelled)
            except Exception as exc:  # the worker must outlive any storage hiccup
                log.error(
                    "delivery worker error", subscription=consumer.name, exc_info=exc
                )
                self._stop.wait(self.ERROR_BACKOFF)
        consumer.release()

    def _cancelled(self) -> bool:
        return self._stop.is_set() or self.consumer.log.wakeups() != self._woken

    def _idle_wait(self) -> float:
        next_due = self.consumer.log.next_due(self.consumer.name)
        if next_due is None:
            return self.IDLE_WAIT
        return min(self.IDLE_WAIT, max(0.0, next_due - self.clock()))
