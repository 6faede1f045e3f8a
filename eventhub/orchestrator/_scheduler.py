"""Scheduled runs: APScheduler, one leader among processes, catch-up, retries.

``schedule=`` workflows are fired by APScheduler's ``BackgroundScheduler`` (in-memory
job store, rebuilt from the definitions at every start). Of several processes sharing
the state database, one runs it: the holder of the OS lock ``scheduler`` (released
when it exits or dies); the others stand by and take over, catch-up included.

Fires missed while no process ran the scheduler are counted from the stored schedule
state and made up by exactly one run at start. A failed scheduled run is retried by
its workflow's policy; the retry is remembered in the state database first, so a
restart (or another process taking over) still does it. Every fire, skip, miss and
error is a ``scheduler.job.*`` event.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from ..errors import WorkflowNotFound
from ..statedb import NamedLock
from ._registry import WorkflowRegistry
from ._runner import WorkflowRunner
from .runstore import Trigger, WorkflowRun
from .workflow import Workflow

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from ..statedb import StateDB

log = structlog.get_logger(__name__)


class WorkflowScheduler:
    """Fires the scheduled workflows of a registry, in at most one process.

    Args:
        db: The state database (its lock file elects the leader).
        registry: The workflows.
        runner: Runs them (its store keeps the schedule state and the retries).
        leader_poll: How often a stand-by process tries to take the scheduler over.
    """

    def __init__(
        self,
        db: StateDB,
        registry: WorkflowRegistry,
        runner: WorkflowRunner,
        *,
        leader_poll: float = 1.0,
    ) -> None:
        self.db = db
        self.registry = registry
        self.runner = runner
        self.runs = runner.runs
        self.bus = runner.bus
        self.leader_poll = leader_poll
        self._lock = threading.RLock()
        self._active: dict[str, int] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._electing = False
        self._leadership: NamedLock | None = None
        self._stop_standby = threading.Event()

    # Fires ------------------------------------------------------------------

    def fire(self, name: str, trigger: Trigger = "schedule") -> WorkflowRun | None:
        """A scheduled fire: run the workflow unless ``max_instances`` runs of it are
        in flight (then the fire is skipped). Returns the run, or None if skipped."""
        workflow = self.registry.get(name)
        now = self.runner.now()
        self.runs.record_fire(name, now)
        with self._lock:
            if self._active.get(name, 0) >= workflow.max_instances:
                self._publish_job(
                    "skipped",
                    workflow,
                    reason="max_instances",
                    running=self._active[name],
                )
                return None
            self._active[name] = self._active.get(name, 0) + 1
        try:
            self._publish_job("fired", workflow, trigger=trigger)
            run, error = self.runner.run(workflow, trigger)
            if error is not None:
                self._scheduled_run_failed(workflow, run, error)
            return run
        finally:
            with self._lock:
                self._active[name] -= 1

    def catch_up(self) -> list[str]:
        """Bring every schedule's bookkeeping to now; return the names of the
        workflows whose fires were missed (each owes exactly one run).

        A schedule seen for the first time, or whose definition changed, starts
        from now and owes nothing.
        """
        now = self.runner.now()
        owing: list[str] = []
        for workflow in self.registry.scheduled():
            schedule = workflow.schedule
            assert schedule is not None
            state = self.runs.schedule_state(workflow.name)
            if state is None or state[0] != schedule.text:
                self.runs.set_schedule_state(workflow.name, schedule.text, now, now)
                continue
            _, anchor, last_fire = state
            missed = schedule.missed(last_fire, now, anchor)
            if missed.count:
                self._publish_job(
                    "missed",
                    workflow,
                    missed=missed.count,
                    first=missed.first.isoformat() if missed.first else None,
                    last=missed.last.isoformat() if missed.last else None,
                )
                self.runs.record_fire(workflow.name, missed.last or now)
                owing.append(workflow.name)
        return owing

    def next_fire_times(self) -> dict[str, datetime | None]:
        """When each scheduled workflow fires next (None: never again)."""
        now = self.runner.now()
        times: dict[str, datetime | None] = {}
        for workflow in self.registry.scheduled():
            assert workflow.schedule is not None
            state = self.runs.schedule_state(workflow.name)
            anchor = state[1] if state else now
            times[workflow.name] = workflow.schedule.next_after(now, anchor)
        return times

    def _publish_job(self, what: str, workflow: Workflow, **data: Any) -> None:
        self.bus.publish(
            f"scheduler.job.{what}",
            {"workflow": workflow.name, **data},
            subject=workflow.name,
        )

    def _fire_job(self, name: str, trigger: Trigger = "schedule") -> None:
        try:
            self.fire(name, trigger)
        except Exception as exc:  # a storage error must not kill the scheduler
            log.error("scheduled fire failed", workflow=name, exc_info=exc)

    # Retries of scheduled runs ---------------------------------------------

    def _scheduled_run_failed(
        self, workflow: Workflow, run: WorkflowRun, error: Exception
    ) -> None:
        """Say so (``scheduler.job.error``) and retry by the workflow's policy."""
        self._publish_job("error", workflow, run_id=run.id, error=run.error)
        self._retry_later(workflow, run, error)

    def _retry_later(
        self, workflow: Workflow, run: WorkflowRun, error: Exception
    ) -> None:
        """Remember the retry in the state database, then schedule it: a restart
        (or another process taking over the scheduler) schedules it again."""
        delay = workflow.retry.next_delay(run.attempt, error)
        if delay is None:
            return
        due = datetime.now(UTC) + timedelta(seconds=delay)
        self.runs.add_retry(workflow.name, run.id, run.attempt + 1, due)
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            self._schedule_retry(scheduler, workflow.name, run.id, run.attempt + 1, due)

    def _schedule_retry(
        self, scheduler: Any, name: str, run_id: str, attempt: int, due: datetime
    ) -> None:
        """Add a remembered retry to the scheduler (now if it is overdue)."""
        scheduler.add_job(
            self._retry_job,
            "date",
            run_date=max(due, datetime.now(UTC)),
            args=[name, run_id, attempt],
            id=f"retry:{name}:{run_id}",
            replace_existing=True,
        )

    def _retry_job(self, name: str, run_id: str, attempt: int) -> None:
        if not self.runs.take_retry(name, run_id):
            return  # already retried (by a previous leader) or dropped
        try:
            workflow = self.registry.get(name)
        except WorkflowNotFound:
            log.warning("retry dropped: the workflow is gone", workflow=name)
            return
        run, error = self.runner.run(workflow, "schedule", attempt=attempt)
        if error is not None:
            self._scheduled_run_failed(workflow, run, error)

    # Jobs -------------------------------------------------------------------

    def add(self, workflow: Workflow) -> None:
        """Schedule a workflow registered while the scheduler runs (in the leader;
        elsewhere nothing happens until this process leads)."""
        if workflow.schedule is None:
            return
        with self._lock:
            if self._scheduler is not None:
                self._add_job(workflow, self.runner.now())

    def _add_job(self, workflow: Workflow, now: datetime) -> None:
        schedule = workflow.schedule
        assert schedule is not None and self._scheduler is not None
        state = self.runs.schedule_state(workflow.name)
        if state is None or state[0] != schedule.text:
            self.runs.set_schedule_state(workflow.name, schedule.text, now, now)
            anchor = now
        else:
            anchor = state[1]
        if schedule.kind == "date" and (schedule.at is None or schedule.at <= now):
            return  # a one-off date in the past: catch-up decides whether it is owed
        self._scheduler.add_job(
            self._fire_job,
            schedule.trigger(anchor, workflow.jitter),
            args=[workflow.name],
            id=f"workflow:{workflow.name}",
            name=workflow.name,
            replace_existing=True,
        )

    # Leadership -------------------------------------------------------------

    def start(self) -> None:
        """Run the scheduler here if no other process does; else stand by, check
        every ``leader_poll`` seconds, and take over when the leader goes away."""
        with self._lock:
            if self._electing:
                return
            self._electing = True
            self._leadership = NamedLock(self.db.lock_file(), "scheduler")
            self._stop_standby.clear()
            if self._leadership.acquire():
                self._start_scheduler()
                return
            log.info("another process runs the scheduler; standing by")
            threading.Thread(
                target=self._stand_by, name="eventhub:scheduler-standby", daemon=True
            ).start()

    def _stand_by(self) -> None:
        while not self._stop_standby.wait(self.leader_poll):
            with self._lock:
                if not self._electing:
                    return
                if self._leadership is not None and self._leadership.acquire():
                    log.info("taking over the scheduler")
                    self._start_scheduler()
                    return

    def _start_scheduler(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        owing = self.catch_up()
        scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(10)},
            job_defaults={
                # Our own fire() enforces max_instances (and says so with a
                # scheduler.job.skipped event); APScheduler's check would only
                # log a warning.
                "max_instances": 1000,
                "coalesce": True,
                "misfire_grace_time": None,
            },
            timezone=UTC,
        )
        self._scheduler = scheduler
        now = self.runner.now()
        for workflow in self.registry.scheduled():
            self._add_job(workflow, now)
        for name in owing:
            scheduler.add_job(
                self._fire_job, args=[name, "catchup"], id=f"catchup:{name}"
            )
        for name, run_id, attempt, due in self.runs.retries():
            self._schedule_retry(scheduler, name, run_id, attempt, due)
        for workflow in self.registry.all().values():
            if workflow.run_at_start and workflow.name not in owing:
                scheduler.add_job(
                    self._fire_job,
                    args=[workflow.name, "start"],
                    id=f"start:{workflow.name}",
                )
        scheduler.start()

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the scheduler."""
        return self._scheduler is not None

    def stop(self) -> None:
        """Stop firing (runs in flight go on) and give up the leadership."""
        self._stop_standby.set()
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._electing = False
            leadership, self._leadership = self._leadership, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        if leadership is not None:
            leadership.release()
