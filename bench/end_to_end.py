"""Benchmark 4: durable end to end (published -> handled -> acknowledged), events/s.

eventhub: a Hub on a file (``synchronous=FULL``) with one durable subscription
``hub.bus.subscribe("task.run", handler, name="worker")``, ``hub.start()``; then 4
threads publish N events one at a time (``hub.bus.publish("task.run", data)``). The
clock stops when the handler has seen all N *and* the subscription's cursor is
committed past the last of them (acknowledged).

huey: ``SqliteHuey`` on a file in the same temporary folder (WAL, ``fsync=True``, i.e.
``synchronous=FULL``) with a trivial task; 4 threads enqueue N tasks one at a time
(same payload as the event's data) and a huey consumer runs in this process
(``huey.create_consumer(workers=4, worker_type="thread")``, ``consumer.start()``, huey's
other options at their defaults). The clock stops when the task has run N times (huey
deletes a task from its queue when a worker takes it, before running it).

Both consumers are started before the clock starts, and stopped after it stops.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from huey import SqliteHuey

from .common import (
    Row,
    Settings,
    Side,
    interleave,
    make_hub,
    order_data,
    pair_ratios,
    pragmas,
    rate,
    run_threads,
    scratch_dir,
)

NAME = "end_to_end"
PRODUCERS = 4
WAIT_LIMIT = 120.0


class Countdown:
    """Counts handled items; ``done`` is set when ``total`` have been seen."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def hit(self) -> None:
        """Count one handled item."""
        with self._lock:
            self.seen += 1
            if self.seen >= self.total:
                self.done.set()

    def wait(self) -> None:
        """Wait until all are handled (fails after ``WAIT_LIMIT``)."""
        if not self.done.wait(WAIT_LIMIT):
            raise RuntimeError(f"only {self.seen} of {self.total} handled in time")


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Huey's ``Consumer.start`` installs signal handlers; put ours back after."""
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    saved = {
        getattr(signal, n): signal.getsignal(getattr(signal, n))
        for n in names
        if hasattr(signal, n)
    }
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def run(settings: Settings) -> list[Row]:
    """Run the end-to-end benchmark; returns its row."""
    total = settings.size(2000, 400)
    reps = settings.reps(9)
    per_thread = total // PRODUCERS
    total = per_thread * PRODUCERS
    payloads = [order_data(i) for i in range(total)]
    shares = [payloads[t::PRODUCERS] for t in range(PRODUCERS)]
    logging.getLogger("huey").setLevel(logging.WARNING)

    with scratch_dir(NAME) as tmp:
        counter = iter(range(1_000_000))

        def fresh(name: str) -> str:
            return os.path.join(tmp, f"{name}-{next(counter)}.db")

        def eventhub_side() -> float:
            countdown = Countdown(total)

            def handler(event: Any) -> None:
                countdown.hit()

            with make_hub(fresh("eventhub"), "FULL") as hub:
                hub.bus.subscribe("task.run", handler, name="worker")
                hub.start()
                publish = hub.bus.publish

                def producer(share: list[dict[str, Any]]) -> Callable[[], None]:
                    def work() -> None:
                        for data in share:
                            publish("task.run", data)

                    return work

                def acknowledged() -> None:
                    countdown.wait()
                    last = hub.log.last_sequence()
                    deadline = time.monotonic() + WAIT_LIMIT
                    while hub.log.cursor("worker") < last:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the cursor was not committed in time")
                        time.sleep(0.0002)

                seconds = run_threads(
                    [producer(s) for s in shares], hub.db.connection, acknowledged
                )
                hub.stop()
            if countdown.seen != total:
                raise RuntimeError(f"eventhub handled {countdown.seen} of {total}")
            return seconds

        def huey_side() -> float:
            countdown = Countdown(total)
            huey = SqliteHuey(name="bench", filename=fresh("huey"), fsync=True)
            if pragmas(huey.storage.conn) != ("wal", 2):
                raise RuntimeError(f"huey pragmas: {pragmas(huey.storage.conn)}")

            @huey.task()
            def run_task(data: dict[str, Any]) -> None:
                countdown.hit()

            def producer(share: list[dict[str, Any]]) -> Callable[[], None]:
                def work() -> None:
                    for data in share:
                        run_task(data)

                return work

            with _signal_handlers_kept():
                consumer = huey.create_consumer(workers=4, worker_type="thread")
                consumer.start()
                try:
                    seconds = run_threads(
                        [producer(s) for s in shares], until=countdown.wait
                    )
                finally:
                    consumer.stop(graceful=True)
            huey.storage.close()
            if countdown.seen != total:
                raise RuntimeError(f"huey ran {countdown.seen} of {total}")
            return seconds

        sides: list[tuple[str, Side]] = [
            ("eventhub", eventhub_side),
            ("huey", huey_side),
        ]
        samples = interleave(sides, reps, settings.warmup)

    eh, hu = samples["eventhub"], samples["huey"]
    return [
        Row(
            benchmark="4. durable end to end, 4 threads, vs huey",
            eventhub=rate(total, eh),
            reference=f"huey {rate(total, hu)}",
            kind="throughput",
            ratios=pair_ratios(eh, hu, "throughput"),
            target=2.0,
            note=f"{total} events, {PRODUCERS} producer threads, ~400 B payload, FULL",
        )
    ]
