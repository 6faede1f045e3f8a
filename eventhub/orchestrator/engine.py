"""The orchestrator: workflows, their triggers, their runs.

Every run, whatever triggered it, takes one path (:meth:`IntegrationOrchestrator.run`):
a row in the run history, ``workflow.run.started``, the handler (in its own thread and
watched against the clock when it has a timeout), then ``workflow.run.succeeded`` or
``workflow.run.failed``. Events the handler publishes are caused by the run's
``workflow.run.started`` event, which is caused by the triggering event, if any.

* ``on=`` workflows are durable bus subscriptions named ``workflow.<name>``: at-least-
  once, resumable, retried by the bus with the workflow's retry policy.
* ``schedule=`` workflows are fired by APScheduler's ``BackgroundScheduler`` (in-memory
  job store, rebuilt from the definitions at every start). Fires missed while the
  daemon was down are counted from the stored schedule state and made up by exactly
  one run at start. Every fire, skip, miss and error is a ``scheduler.job.*`` event.
* :meth:`IntegrationOrchestrator.trigger_workflow` runs one by hand.
"""

from __future__ import annotations

import contextvars
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ..errors import ConfigError, RunTimeout, WorkflowNotFound
from ..events import Event, uuid7
from ..integration import Integration
from ..statedb import NamedLock
from ..subscriptions import Delivery, current_event
from .runstore import Run, RunStore, Trigger, WorkflowState
from .workflow import Workflow, index_workflows, load_workflow_dir

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from ..hub import Hub

log = structlog.get_logger(__name__)


class WorkflowContext:
    """What a workflow handler gets: ``handler(ctx)``.

    Attributes:
        event: The triggering event (None for scheduled and manual runs).
        data: The manual run's data, or the triggering event's data.
        run: The run record.
        workflow: The workflow definition.
        hub: The hub.
        log: A logger bound to the workflow and run.
    """

    def __init__(
        self,
        hub: Hub,
        workflow: Workflow,
        run: Run,
        event: Event | None,
        data: Any,
        state: WorkflowState,
    ) -> None:
        self.hub = hub
        self.workflow = workflow
        self.run = run
        self.event = event
        self.data = data
        self.state = state
        self.log = log.bind(workflow=workflow.name, run_id=run.id)

    def publish(self, type: str, data: Any = None, **attributes: Any) -> Event:
        """Publish an event caused by this run (see :meth:`EventBus.publish`)."""
        return self.hub.bus.publish(type, data, **attributes)

    def integration(self, name: str) -> Integration:
        """A registered integration. Raises IntegrationNotFound."""
        return self.hub.get_integration(name)


class IntegrationOrchestrator:
    """Registers integrations and workflows, triggers and records workflow runs.

    Args:
        hub: The hub whose bus, state database and integrations are used.
        watch_interval: How often a run with a timeout is checked against the clock.
        leader_poll: How often a stand-by process tries to take the scheduler over.
    """

    def __init__(
        self, hub: Hub, *, watch_interval: float = 0.05, leader_poll: float = 1.0
    ) -> None:
        self.hub = hub
        self.runs = RunStore(hub.db)
        self.watch_interval = watch_interval
        self._workflows: dict[str, Workflow] = {}
        self._lock = threading.RLock()
        self._active: dict[str, int] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._subscribed: set[str] = set()
        self._started = False
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.leader_poll = leader_poll
        self._leadership: NamedLock | None = None
        self._stop_standby = threading.Event()

    # Registration -----------------------------------------------------------

    def register_integration(self, name: str, integration: Integration) -> Integration:
        """Register an integration (see :meth:`Hub.register_integration`)."""
        return self.hub.register_integration(name, integration)

    def get_integration(self, name: str) -> Integration:
        return self.hub.get_integration(name)

    def register_workflow(self, workflow: Workflow) -> Workflow:
        """Add a workflow; on a running orchestrator its triggers take effect at once.

        Raises:
            ConfigError: for an object that is no Workflow or a name already taken.
        """
        if not isinstance(workflow, Workflow):
            raise ConfigError(
                f"{workflow!r} is not a workflow (declare it with @workflow(...))"
            )
        with self._lock:
            self._workflows = index_workflows([*self._workflows.values(), workflow])
            # Like a named bus subscription, an on= workflow is subscribed at once:
            # delivered by the hub's workers, or by bus.drain() in embedded use.
            self._subscribe(workflow)
            if workflow.schedule is not None and self._scheduler is not None:
                self._add_job(workflow, self._clock_now())
        return workflow

    def load_workflows(self, folder: str | Path) -> list[Workflow]:
        """Load the workflow modules of a folder by path and register them all.

        Raises:
            WorkflowLoadError: naming the module that failed to import.
            ConfigError: for two workflows with one name.
        """
        found = load_workflow_dir(Path(folder))
        index_workflows([*self._workflows.values(), *found])  # all or nothing
        for flow in found:
            self.register_workflow(flow)
        return found

    def get_workflow(self, name: str) -> Workflow:
        """The workflow named ``name``. Raises WorkflowNotFound."""
        try:
            return self._workflows[name]
        except KeyError:
            raise WorkflowNotFound(name, sorted(self._workflows)) from None

    def get_workflows(self) -> dict[str, Workflow]:
        """Every registered workflow, by name."""
        return dict(self._workflows)

    # Running ----------------------------------------------------------------

    def trigger_workflow(
        self, name: str, data: Any = None, *, run_id: str | None = None
    ) -> Run:
        """Run a workflow now, in this thread, and return its run record (whose
        ``status`` says whether it succeeded). ``run_id`` lets a caller know the
        id before the run ends (default: a new UUIDv7). Raises WorkflowNotFound."""
        workflow = self.get_workflow(name)
        run, _ = self._run(workflow, "manual", data=data, run_id=run_id)
        return run

    def _run(
        self,
        workflow: Workflow,
        trigger: Trigger,
        *,
        event: Event | None = None,
        data: Any = None,
        attempt: int = 1,
        run_id: str | None = None,
    ) -> tuple[Run, Exception | None]:
        with self._lock:
            self._in_flight += 1
        try:
            return self._run_recorded(workflow, trigger, event, data, attempt, run_id)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def _run_recorded(
        self,
        workflow: Workflow,
        trigger: Trigger,
        event: Event | None,
        data: Any,
        attempt: int,
        run_id: str | None = None,
    ) -> tuple[Run, Exception | None]:
        bus = self.hub.bus
        run = Run(
            id=run_id or uuid7(),
            workflow=workflow.name,
            trigger=trigger,
            status="running",
            started=self._clock_now(),
            event_id=event.id if event else None,
            event_sequence=event.sequence if event else None,
            attempt=attempt,
        )
        self.runs.start(run)
        started = bus.publish(
            "workflow.run.started",
            {
                "workflow": workflow.name,
                "run_id": run.id,
                "trigger": trigger,
                "attempt": attempt,
            },
            subject=workflow.name,
        )
        context = WorkflowContext(
            self.hub,
            workflow,
            run,
            event,
            data if data is not None or event is None else event.data,
            self.runs.state(workflow.name),
        )
        began = time.monotonic()
        error: Exception | None = None
        token = current_event.set(started)
        try:
            result = self._execute(workflow, context)
        except Exception as exc:
            error = exc
        finally:
            current_event.reset(token)
        run.duration = round(time.monotonic() - began, 6)
        run.finished = self._clock_now()
        summary = {
            "workflow": workflow.name,
            "run_id": run.id,
            "duration": run.duration,
        }
        if error is None:
            run.status, run.result = "succeeded", result
            self.runs.finish(run)
            bus.publish(
                "workflow.run.succeeded",
                summary,
                subject=workflow.name,
                causationid=started.id,
            )
        else:
            run.status, run.error = "failed", f"{type(error).__name__}: {error}"
            self.runs.finish(run)
            log.error(
                "workflow run failed",
                workflow=workflow.name,
                run_id=run.id,
                trigger=trigger,
                attempt=attempt,
                exc_info=error,
            )
            bus.publish(
                "workflow.run.failed",
                {**summary, "error": run.error},
                subject=workflow.name,
                causationid=started.id,
            )
        return run, error

    def _execute(self, workflow: Workflow, context: WorkflowContext) -> Any:
        if workflow.timeout is None:
            return workflow.handler(context)
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                outcome["result"] = workflow.handler(context)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(target,),
            name=f"eventhub-run:{workflow.name}",
            daemon=True,
        )
        started = self.hub.bus.clock()
        thread.start()
        while not done.wait(self.watch_interval):
            if self.hub.bus.clock() - started >= workflow.timeout:
                # The thread cannot be killed; it is left to finish on its own, and
                # its outcome is discarded: the run is failed now, so that the
                # schedule (or the subscription) goes on.
                raise RunTimeout(workflow.name, workflow.timeout)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    def _on_event(self, workflow: Workflow, event: Event, delivery: Delivery) -> Any:
        run, error = self._run(workflow, "event", event=event, attempt=delivery.attempt)
        if error is not None:
            raise error  # the bus retries by the workflow's policy, then dead-letters
        return run.id

    # Scheduling -------------------------------------------------------------

    def fire(self, name: str, trigger: Trigger = "schedule") -> Run | None:
        """A scheduled fire: run the workflow unless ``max_instances`` runs of it are
        in flight (then the fire is skipped). Returns the run, or None if skipped."""
        workflow = self.get_workflow(name)
        now = self._clock_now()
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
            run, error = self._run(workflow, trigger)
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
        now = self._clock_now()
        owing: list[str] = []
        for workflow in self._scheduled():
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

    def _scheduled(self) -> list[Workflow]:
        return [w for w in self._workflows.values() if w.schedule is not None]

    def _publish_job(self, what: str, workflow: Workflow, **data: Any) -> None:
        self.hub.bus.publish(
            f"scheduler.job.{what}",
            {"workflow": workflow.name, **data},
            subject=workflow.name,
        )

    def _scheduled_run_failed(
        self, workflow: Workflow, run: Run, error: Exception
    ) -> None:
        """Say so (``scheduler.job.error``) and retry by the workflow's policy."""
        self._publish_job("error", workflow, run_id=run.id, error=run.error)
        self._retry_later(workflow, run, error)

    def _retry_later(self, workflow: Workflow, run: Run, error: Exception) -> None:
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
            workflow = self.get_workflow(name)
        except WorkflowNotFound:
            log.warning("retry dropped: the workflow is gone", workflow=name)
            return
        run, error = self._run(workflow, "schedule", attempt=attempt)
        if error is not None:
            self._scheduled_run_failed(workflow, run, error)

    def _fire_job(self, name: str, trigger: Trigger = "schedule") -> None:
        try:
            self.fire(name, trigger)
        except Exception as exc:  # a storage error must not kill the scheduler
            log.error("scheduled fire failed", workflow=name, exc_info=exc)

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

    def _clock_now(self) -> datetime:
        return datetime.fromtimestamp(self.hub.bus.clock(), UTC)

    # Lifecycle --------------------------------------------------------------

    def _subscribe(self, workflow: Workflow) -> None:
        if not workflow.on or workflow.name in self._subscribed:
            return
        if self.hub.db.readonly:
            return  # a read-only hub delivers nothing (and may not record a cursor)
        self.hub.bus.subscribe(
            list(workflow.on),
            lambda event, delivery, w=workflow: self._on_event(w, event, delivery),
            name=f"workflow.{workflow.name}",
            filter=workflow.filter,
            retry=workflow.retry,
        )
        self._subscribed.add(workflow.name)

    def start(self, *, run_scheduler: bool = True) -> None:
        """Start the scheduler and make up for fires missed while stopped.

        Of several processes sharing the state database, one runs the scheduler
        (the holder of an OS lock, released when it exits or dies); the others
        stand by, check every ``leader_poll`` seconds, and take over, catch-up
        included, when the leader goes away.
        """
        with self._lock:
            if self._started:
                return
            self.runs.fail_interrupted(self._clock_now())
            self._started = True
            if not run_scheduler or not any(
                w.schedule is not None or w.run_at_start
                for w in self._workflows.values()
            ):
                return
            self._leadership = NamedLock(self.hub.db.lock_file(), "scheduler")
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
                if not self._started:
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
        now = self._clock_now()
        for workflow in self._scheduled():
            self._add_job(workflow, now)
        for name in owing:
            scheduler.add_job(
                self._fire_job, args=[name, "catchup"], id=f"catchup:{name}"
            )
        for name, run_id, attempt, due in self.runs.retries():
            self._schedule_retry(scheduler, name, run_id, attempt, due)
        for workflow in list(self._workflows.values()):
            if workflow.run_at_start and workflow.name not in owing:
                scheduler.add_job(
                    self._fire_job,
                    args=[workflow.name, "start"],
                    id=f"start:{workflow.name}",
                )
        scheduler.start()

    @property
    def is_scheduler_leader(self) -> bool:
        """Whether this process runs the scheduler."""
        return self._scheduler is not None

    def stop(self) -> None:
        """Stop the scheduler: no new scheduled runs (those in flight go on; see
        :meth:`wait_idle`)."""
        self._stop_standby.set()
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._started = False
            leadership, self._leadership = self._leadership, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        if leadership is not None:
            leadership.release()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in flight in this process; False at the timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def next_fire_times(self) -> dict[str, datetime | None]:
        """When each scheduled workflow fires next (None: never again)."""
        now = self._clock_now()
        times: dict[str, datetime | None] = {}
        for workflow in self._scheduled():
            assert workflow.schedule is not None
            state = self.runs.schedule_state(workflow.name)
            anchor = state[1] if state else now
            times[workflow.name] = workflow.schedule.next_after(now, anchor)
        return times
