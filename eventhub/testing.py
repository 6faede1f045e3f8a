"""Helpers for testing code built on eventhub (and eventhub itself).

* :class:`FakeClock` — a wall clock that moves only when told to.
* :func:`capture_events` — collect the events published on a bus.
* :class:`StubIntegration` — an integration that records what it handles.
* :func:`make_hub` — a hub on a file in a given folder, entry points off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .bus import EventBus
from .events import Event
from .hub import Hub
from .integration import Integration


class FakeClock:
    """A clock for ``Hub(clock=...)``: ``clock()`` is the time, ``advance`` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self.now += seconds
            return self.now


@contextmanager
def capture_events(
    bus: EventBus, pattern: str | Sequence[str] = "#"
) -> Iterator[list[Event]]:
    """Collect events published on ``bus`` (in this process) while the block runs."""
    seen: list[Event] = []
    subscription = bus.subscribe(pattern, seen.append, priority=1_000_000)
    try:
        yield seen
    finally:
        bus.unsubscribe(subscription)


class StubIntegration(Integration):
    """Records the events delivered to it; raises ``fail_with`` when set."""

    kind = "stub"

    def __init__(self, handle_events: Sequence[str] = ("#",), **config: Any) -> None:
        super().__init__(**config)
        self.handle_events = list(handle_events)
        self.handled: list[Event] = []
        self.fail_with: BaseException | None = None
        self.started = 0
        self.stopped = 0

    def start(self, hub: Hub) -> None:
        super().start(hub)
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def handle_event(self, event: Event) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        self.handled.append(event)
        return {"handled": event.id}


def make_hub(folder: str | Path, name: str = "hub.db", **options: Any) -> Hub:
    """A hub on ``folder/name`` with entry-point plugins off (deterministic tests)."""
    options.setdefault("load_entrypoints", False)
    return Hub(Path(folder) / name, **options)
