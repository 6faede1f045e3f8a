"""Benchmark 5: schedule fire -> workflow handler start, latency p50 / p99.

eventhub: a Hub on a file (``synchronous=FULL``) with one workflow declared with
``workflow("tick", schedule="every 100ms")`` (50 ms with ``--quick``) and registered
with ``hub.orchestrator.register_workflow``, then ``hub.start()``, which starts
eventhub's APScheduler 3 ``BackgroundScheduler``. The handler records ``time.time()``
on entry. Reference: a bare APScheduler ``BackgroundScheduler`` configured as eventhub
configures its own (in-memory job store, ``ThreadPoolExecutor(10)``, ``coalesce``,
no misfire grace time, UTC) with the same ``IntervalTrigger`` (the interval, anchored
at the time the job is added); its job records ``time.time()`` on entry.

Latency = handler entry - the nominal fire time, the scheduled run time that
APScheduler reports in its ``EVENT_JOB_SUBMITTED`` event (a listener on both
schedulers), i.e. anchor + k x interval, not the moment the scheduler woke up. The
first fire of each round is not counted on either side (it starts the executor's
worker thread, and opens eventhub's SQLite connection in it).

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
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
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


def _listen(scheduler: BackgroundScheduler, job_id: str) -> list[float]:
    """Collect the nominal fire times (epoch seconds) of a job's submissions."""
    nominal: list[float] = []

    def listener(event: JobSubmissionEvent) -> None:
        if event.job_id == job_id:
            nominal.extend(t.timestamp() for t in event.scheduled_run_times)

    scheduler.add_listener(listener, EVENT_JOB_SUBMITTED)
    return nominal


def _recorder(fires: int) -> tuple[list[float], threading.Event, Callable[[], None]]:
    """Entry times, an event set after ``fires`` + 1 entries, and the recording."""
    entries: list[float] = []
    done = threading.Event()

    def record() -> None:
        entries.append(time.time())
        if len(entries) > fires:
            done.set()

    return entries, done, record


def _latencies(
    side: str, entries: list[float], nominal: list[float], fires: int
) -> list[float]:
    """Pair the k-th handler entry with the k-th fire; drop the first of the round."""
    if len(entries) <= fires or len(nominal) < len(entries):
        raise RuntimeError(
            f"{side}: {len(entries)} handler entries for {len(nominal)} fires"
        )
    latencies = [e - n for e, n in zip(entries, nominal, strict=False)][1 : fires + 1]
    if min(latencies) < 0:
        raise RuntimeError(f"{side}: a handler started before its fire time")
    return latencies


def _wait(done: threading.Event, side: str) -> None:
    if not done.wait(WAIT_LIMIT):
        raise RuntimeError(f"{side}: the schedule did not fire often enough in time")


def run(settings: Settings) -> list[Row]:
    """Run the schedule-latency benchmark; returns its rows."""
    fires = settings.size(20, 8)
    reps = settings.reps(5)
    interval_ms = 50 if settings.quick else 100

    with scratch_dir(NAME) as tmp:
        counter = iter(range(1_000_000))

        def eventhub_side() -> list[float]:
            entries, done, record = _recorder(fires)

            def tick(ctx: Any) -> None:
                record()

            flow = workflow(JOB, schedule=f"every {interval_ms}ms")(tick)
            path = os.path.join(tmp, f"sched-{next(counter)}.db")
            with make_hub(path, "FULL") as hub:
                hub.orchestrator.register_workflow(flow)
                hub.start()
                scheduler = hub.orchestrator._scheduler
                if scheduler is None:
                    raise RuntimeError("eventhub started no scheduler")
                nominal = _listen(scheduler, f"workflow:{JOB}")
                _wait(done, "eventhub")
                # Let the run in flight finish before the hub closes its database;
                # the hub's own stop() would not wait for it.
                scheduler.shutdown(wait=True)
                hub.stop()
                skipped = hub.bus.history("scheduler.job.skipped", limit=None)
            if skipped:
                raise RuntimeError(
                    f"eventhub skipped {len(skipped)} fire(s) (a run outlasted the "
                    f"{interval_ms} ms interval): the machine is too busy to measure"
                )
            return _latencies("eventhub", entries, nominal, fires)

        def apscheduler_side() -> list[float]:
            entries, done, record = _recorder(fires)
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
            scheduler.add_job(record, trigger, id=JOB)
            scheduler.start()
            try:
                nominal = _listen(scheduler, JOB)
                _wait(done, "APScheduler")
            finally:
                scheduler.shutdown(wait=True)
            return _latencies("APScheduler", entries, nominal, fires)

        sides: list[tuple[str, LatencySide]] = [
            ("eventhub", eventhub_side),
            ("apscheduler", apscheduler_side),
        ]
        samples = interleave(sides, reps, settings.warmup)

    return latency_rows(
        "5. schedule fire -> handler start, vs bare APScheduler",
        samples["eventhub"],
        samples["apscheduler"],
        "APScheduler",
        f"every {interval_ms} ms, {fires} fires per round x {reps} rounds, "
        "FULL; eventhub does 4 commits (fsync) before the handler",
    )
