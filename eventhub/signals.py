"""Lifecycle signals (blinker) for apps and metrics to hook into.

Receivers are held by strong references: a lambda or a local function connected here
keeps working (blinker's default weak references silently drop them). Each signal is
sent with the bus as sender and keyword arguments named in its docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import blinker
from blinker.base import ANY


class StrongSignal(blinker.NamedSignal):
    """A blinker signal whose ``connect`` holds receivers strongly by default."""

    def connect(  # type: ignore[override]
        self, receiver: Callable[..., Any], sender: Any = ANY, weak: bool = False
    ) -> Callable[..., Any]:
        return super().connect(receiver, sender, weak)


event_published = StrongSignal(
    "event-published", doc="An event was stored: event=Event."
)
event_delivered = StrongSignal(
    "event-delivered",
    doc="A handler returned: event=Event, subscription=str, result=Any, attempt=int.",
)
delivery_failed = StrongSignal(
    "delivery-failed",
    doc="A handler raised: event=Event, subscription=str, error=Exception, attempt=int",
)
event_dead_lettered = StrongSignal(
    "event-dead-lettered",
    doc="A delivery failed for good: event=Event, subscription=str, error=str.",
)
