"""Subscriptions: what a handler is subscribed to, and what it is told.

A :class:`Subscription` is compiled once: its type patterns, its filter, how its
handler is called. A handler taking two arguments also gets a :class:`Delivery`;
:class:`HandlerResult` is what one handler did with one event. Delivering events to
subscriptions is :mod:`eventhub.delivery`'s job; this module knows nothing of the bus.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidSubscription
from .eventlog.base import Start
from .events import Event
from .patterns import Predicate, TypePattern
from .retry import RetryPolicy

Mode = Literal["inline", "durable"]

#: The event being handled in this context (set by :func:`eventhub.delivery.deliver`
#: and by workflow runs); events published meanwhile are its effects.
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
    """What one handler did with one event (:meth:`EventBus.emit` returns them).

    Attributes:
        subscription: The subscription's name.
        ok: Whether the handler returned (else it, or the filter, raised ``error``).
        value: What the handler returned.
        error: What it raised.
        retry_in: For a failed durable delivery, the seconds until it is attempted
            again; None when it is not (an inline one, or one to dead-letter).
    """

    subscription: str
    ok: bool
    value: Any = None
    error: BaseException | None = None
    retry_in: float | None = None


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


def subject_key(event: Event) -> str | None:
    """The default partition key: the event's subject."""
    return event.subject
