"""Benchmark 1: inline dispatch with 10 handlers per event.

eventhub ``hub.bus.emit(type, data)`` (ephemeral: runs the inline handlers, stores
nothing) against blinker ``Signal.send`` and pyee ``EventEmitter.emit``. Each library
has 12 registrations of which 10 are called for the emitted event:

* eventhub: inline subscriptions ``user.created`` (twice), ``user.*``, ``user.**``,
  ``user.#``, ``*.created``, ``**.created``, ``*.*``, ``#``, ``**``, plus two that do
  not match (``order.*``, ``user.deleted``);
* blinker: 10 receivers connected to any sender, plus 2 connected to another sender;
* pyee: 10 listeners on ``user.created``, plus 2 on ``order.created``.

Handlers are trivial (they return None). The informative extra row times
``hub.bus.publish`` with the same inline subscriptions on a ``synchronous=NORMAL``
file: it includes a durable commit per event, so it is not comparable to blinker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import blinker
from pyee import EventEmitter

from eventhub import Hub

from .common import (
    Row,
    Settings,
    Side,
    interleave,
    make_hub,
    pair_ratios,
    per_event,
    rate,
    scratch_dir,
    timed,
)

NAME = "dispatch"
TYPE = "user.created"
DATA = {"id": 7, "email": "ada@example.com"}
MATCHING = [
    "user.created",
    "user.created",
    "user.*",
    "user.**",
    "user.#",
    "*.created",
    "**.created",
    "*.*",
    "#",
    "**",
]
NOT_MATCHING = ["order.*", "user.deleted"]


def _event_handlers(count: int) -> list[Callable[[Any], None]]:
    """``count`` distinct trivial one-argument handlers (eventhub, pyee)."""

    def make() -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            return None

        return handler

    return [make() for _ in range(count)]


def _receivers(count: int) -> list[Callable[..., None]]:
    """``count`` distinct trivial blinker receivers."""

    def make() -> Callable[..., None]:
        def receiver(sender: Any, **kwargs: Any) -> None:
            return None

        return receiver

    return [make() for _ in range(count)]


def _subscribe(hub: Hub) -> None:
    """The 12 inline subscriptions (10 match ``TYPE``)."""
    for pattern, handler in zip(
        MATCHING + NOT_MATCHING,
        _event_handlers(len(MATCHING) + len(NOT_MATCHING)),
        strict=True,
    ):
        hub.bus.subscribe(pattern, handler)


def _check_calls(hub: Hub) -> None:
    """Check that exactly the 10 matching handlers run."""
    results = hub.bus.emit(TYPE, DATA)
    if len(results) != len(MATCHING) or not all(r.ok for r in results):
        raise RuntimeError(f"expected {len(MATCHING)} inline handlers, got {results}")


def run(settings: Settings) -> list[Row]:
    """Run the dispatch benchmark; returns its rows."""
    events = settings.size(10_000, 2_000)
    publishes = settings.size(500, 200)
    reps = settings.reps(21)

    signal = blinker.Signal()
    blinker_handlers = _receivers(12)  # strong references keep them connected
    other_sender = object()
    for handler in blinker_handlers[:10]:
        signal.connect(handler)
    for handler in blinker_handlers[10:]:
        signal.connect(handler, sender=other_sender)
    sender = object()
    if len(signal.send(sender, data=DATA)) != 10:
        raise RuntimeError("blinker should call 10 receivers")

    emitter = EventEmitter()
    for handler in _event_handlers(10):
        emitter.on(TYPE, handler)
    for handler in _event_handlers(2):
        emitter.on("order.created", handler)

    with (
        scratch_dir(NAME) as tmp,
        make_hub(os.path.join(tmp, "emit.db"), "NORMAL") as hub,
    ):
        _subscribe(hub)
        _check_calls(hub)

        def eventhub_emit() -> float:
            emit = hub.bus.emit

            def work() -> None:
                for _ in range(events):
                    emit(TYPE, DATA)

            return timed(work)

        def blinker_send() -> float:
            send = signal.send

            def work() -> None:
                for _ in range(events):
                    send(sender, data=DATA)

            return timed(work)

        def pyee_emit() -> float:
            emit = emitter.emit

            def work() -> None:
                for _ in range(events):
                    emit(TYPE, DATA)

            return timed(work)

        counter = iter(range(1_000_000))

        def eventhub_publish() -> float:
            path = os.path.join(tmp, f"publish-{next(counter)}.db")
            with make_hub(path, "NORMAL") as phub:
                _subscribe(phub)
                publish = phub.bus.publish

                def work() -> None:
                    for _ in range(publishes):
                        publish(TYPE, DATA)

                return timed(work)

        sides: list[tuple[str, Side]] = [
            ("emit", eventhub_emit),
            ("blinker", blinker_send),
            ("pyee", pyee_emit),
            ("publish", eventhub_publish),
        ]
        samples = interleave(sides, reps, settings.warmup)

    emit_s, blinker_s, pyee_s = samples["emit"], samples["blinker"], samples["pyee"]
    publish_s = samples["publish"]
    size = f"{events} events x 10 handlers"
    return [
        Row(
            benchmark="1. emit, 10 handlers, vs blinker send",
            eventhub=f"{rate(events, emit_s)} ({per_event(events, emit_s)})",
            reference=f"blinker {rate(events, blinker_s)} "
            f"({per_event(events, blinker_s)})",
            kind="time",
            ratios=pair_ratios(emit_s, blinker_s, "time"),
            target=1.5,
            note=size,
        ),
        Row(
            benchmark="1. emit, 10 handlers, vs pyee emit",
            eventhub=f"{rate(events, emit_s)} ({per_event(events, emit_s)})",
            reference=f"pyee {rate(events, pyee_s)} ({per_event(events, pyee_s)})",
            kind="time",
            ratios=pair_ratios(emit_s, pyee_s, "time"),
            note=size,
        ),
        Row(
            benchmark="1x. publish + same handlers, NORMAL (NOT comparable)",
            eventhub=f"{rate(publishes, publish_s)} "
            f"({per_event(publishes, publish_s)})",
            reference=f"blinker {rate(events, blinker_s)}",
            kind="time",
            ratios=[
                (p / publishes) / (b / events)
                for p, b in zip(publish_s, blinker_s, strict=True)
            ],
            note=f"{publishes} publishes, one commit each",
        ),
    ]
