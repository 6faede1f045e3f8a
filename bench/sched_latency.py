"""Benchmark 5: schedule fire -> workflow handler start, latency p50 / p99.

eventhub: a Hub on a file (``synchronous=FULL``) with one workflow declared with
``workflow("tick", schedule="every 50ms")`` and registered with
``hub.orchestrator.register_workflow``, then ``hub.start()``, which starts
eventhub's APScheduler 3 ``BackgroundScheduler``. The handler records ``time.time()``
on entry. Reference: a bare APScheduler ``BackgroundScheduler`` configured as eventhub
configures its own (in-memory job store, ``ThreadPoolExecutor(10)``, ``coalesce``,
no misfire grace time, UTC) with the same ``IntervalTrigger`` (the interval, anchored
at the time the job is added); its job records ``time.time()`` on entry.

Latency = handler entry - the nominal fire time of that run: the scheduled run time
APScheduler hands its executor (anchor + k x interval, not the moment the scheduler
woke up), which the handler, after taking its entry time, reads from the
``run_time`` of APScheduler's ``run_job`` up its call stack; the same on both sides.
The first fire of each round is not counted on either side (it starts the executor's
worker thread, and opens eventhub's SQLite connection in it). A fire that eventhub
skips because the previous run is still going (``max_instances=1``, the default) has
no handler start, so no latency: the note says how many there were.

Not like for like, on purpose: between the fire and the handler eventhub records the
fire in its ``schedules`` table, publishes ``scheduler.job.fired``, inserts the
run-history row and publishes ``workflow.run.started``: four write transactions, each
with an fsync (``FULL``), before the handler runs. That is what is measured. (The
end of the run, the finished row and ``workflow.run.succeeded``, follows the handler
entry and is not in the figure.) Each round uses a fresh hub and database file, or a
fresh scheduler; rounds alternate eventhub, APScheduler. No target: informative.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.executors import base as apscheduler_executors
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from eventhub import workflow

from .common import (
    LatencySide,
    Row,
    Settings,
    interleave,
    latency_rows,
    make_hub,
    scratch_dir,
)

NAME = "sched_latency"
JOB = "tick"
WAIT_LIMIT = 60.0
_RUN_JOB = apscheduler_executors.run_job.__code__


def _nominal_fire_time() -> float:
    """The scheduled run time (epoch seconds) of the APScheduler run that called us:
    the ``run_time`` local of ``apscheduler.executors.base.run_job`` up the stack."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _RUN_JOB:
            run_time: datetime = frame.f_locals["run_time"]
            return run_time.timestamp()
        frame = frame.f_back
    raise RuntimeError("not called by APScheduler's run_job")


class Recorder:
    """Handler entries as (entry time, nominal fire time); ``done`` is set after
    ``fires`` + 1 of them."""

    def __init__(self, fires: int) -> None:
        self.fires = fires
        self.pairs: list[tuple[float, float]] = []
        self.done = threading.Event()

    def record(self) -> None:
        """Call first thing in the handler."""
        entered = time.time()
        self.pairs.append((entered, _nominal_fire_time()))
        if len(self.pairs) > self.fires:
            self.done.set()

    def latencies(self, side: str) -> list[float]:
        """Entry - nominal fire time, without the first fire of the round."""
        if not self.done.wait(WAIT_LIMIT):
            raise RuntimeError(f"{side}: the schedule did not fire often enough")
        pairs = sorted(self.pairs, key=lambda pair: pair[1])[1 : self.fires + 1]
        latencies = [entered - nominal for entered, nominal in pairs]
        if min(latencies) < 0:
            raise RuntimeError(f"{side}: a handler started before its fire time")
        return latencies


def run(settings: Settings) -> list[Row]:
    """Run the schedule-latency benchmark; returns its rows."""
    fires = settings.size(20, 5)
    reps = settings.reps(5)
    interval_ms = 50
    skips: list[int] = []  # fires eventhub skipped, per round

    with scratch_dir(NAME) as tmp:
        counter = iter(range(1_000_000))

        def eventhub_side() -> list[float]:
            recorder = Recorder(fires)

            def tick(ctx: Any) -> None:
                recorder.record()

            flow = workflow(JOB, schedule=f"every {interval_ms}ms")(tick)
            path = os.path.join(tmp, f"sched-{next(counter)}.db")
            with make_hub(path, "FULL") as hub:
                hub.orchestrator.register_workflow(flow)
                hub.start()
                latencies = recorder.latencies("eventhub")
                hub.stop()
                skips.append(len(hub.bus.history("scheduler.job.skipped", limit=None)))
            return latencies

        def apscheduler_side() -> list[float]:
            recorder = Recorder(fires)

            def tick() -> None:
                recorder.record()

            scheduler = BackgroundScheduler(
                jobstores={"default": MemoryJobStore()},
                executors={"default": ThreadPoolExecutor(10)},
                job_defaults={
                    "max_instances": 1000,
                    "coalesce": True,
                    "misfire_grace_time": None,
                },
                timezone=UTC,
            )
            trigger = IntervalTrigger(
                seconds=interval_ms / 1000,
                start_date=datetime.now(UTC),
                timezone=UTC,
            )
            scheduler.add_job(tick, trigger, id=JOB)
            scheduler.start()
            try:
                return recorder.latencies("APScheduler")
            finally:
                scheduler.shutdown(wait=True)

        sides: list[tuple[str, LatencySide]] = [
            ("eventhub", eventhub_side),
            ("apscheduler", apscheduler_side),
        ]
        samples = interleave(sides, reps, settings.warmup)

    skipped = sum(skips[settings.warmup :])
    return latency_rows(
        "5. schedule fire -> handler start, vs bare APScheduler",
        samples["eventhub"],
        samples["apscheduler"],
        "APScheduler",
        f"every {interval_ms} ms, {fires} fires per round x {reps} rounds, FULL; "
        "eventhub makes 4 commits (fsync) before the handler; "
        f"{skipped} fire(s) skipped by eventhub (the previous run still going)",
    )
