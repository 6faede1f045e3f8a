"""The workflow orchestrator: workflows, their triggers, their runs.

:class:`WorkflowOrchestrator` is the facade (``hub.orchestrator``) over four parts:

* the registry (:mod:`~eventhub.orchestrator._registry`): workflows by name;
* the runner (:mod:`~eventhub.orchestrator._runner`): every run, whatever triggered
  it, takes one path (a row in the run history, ``workflow.run.*`` events, the
  handler watched against its timeout);
* the scheduler (:mod:`~eventhub.orchestrator._scheduler`): ``schedule=`` workflows
  fired by APScheduler in one process of many, missed fires made up at start,
  failed scheduled runs retried by their policy (remembered in the state database);
* the run store (:mod:`~eventhub.orchestrator.runstore`): run history, workflow
  state, schedule state.

``on=`` workflows are durable bus subscriptions named ``workflow.<name>``: at-least-
once, resumable, retried by the bus with the workflow's retry policy.
:meth:`WorkflowOrchestrator.trigger_workflow` runs one by hand.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from ..events import Event
from ..subscriptions import Delivery
from ._registry import WorkflowRegistry
from ._runner import WorkflowContext, WorkflowHost, WorkflowRunner
from ._scheduler import WorkflowScheduler
from .runstore import RunStore, Trigger, WorkflowRun
from .workflow import Workflow, load_workflow_dir


class WorkflowOrchestrator:
    """Registers workflows, triggers and records their runs.

    Args:
        hub: The hub (or any :class:`~eventhub.orchestrator._runner.WorkflowHost`):
            its bus and state database are used, and handlers get it as ``ctx.hub``.
        watch_interval: How often a run with a timeout is checked against the clock.
        leader_poll: How often a stand-by process tries to take the scheduler over.
    """

    def __init__(
        self,
        hub: WorkflowHost,
        *,
        watch_interval: float = 0.05,
        leader_poll: float = 1.0,
    ) -> None:
        self.bus = hub.bus
        self.db = hub.db
        self.runs = RunStore(hub.db)
        self.registry = WorkflowRegistry()
        self.runner = WorkflowRunner(hub, self.runs, watch_interval=watch_interval)
        self.scheduler = WorkflowScheduler(
            hub.db, self.registry, self.runner, leader_poll=leader_poll
        )
        self._lock = threading.RLock()
        self._subscribed: set[str] = set()
        self._started = False

    @property
    def watch_interval(self) -> float:
        """How often a run with a timeout is checked against the clock."""
        return self.runner.watch_interval

    @watch_interval.setter
    def watch_interval(self, seconds: float) -> None:
        self.runner.watch_interval = seconds

    @property
    def leader_poll(self) -> float:
        """How often a stand-by process tries to take the scheduler over."""
        return self.scheduler.leader_poll

    @leader_poll.setter
    def leader_poll(self, seconds: float) -> None:
        self.scheduler.leader_poll = seconds

    # Registration -----------------------------------------------------------

    def register_workflow(self, workflow: Workflow) -> Workflow:
        """Add a workflow; on a running orchestrator its triggers take effect at once.

        Raises:
            ConfigError: for an object that is no Workflow or a name already taken.
        """
        with self._lock:
            self.registry.add(workflow)
            # Like a named bus subscription, an on= workflow is subscribed at once:
            # delivered by the hub's workers, or by bus.drain() in embedded use.
            self._subscribe(workflow)
            self.scheduler.add(workflow)
        return workflow

    def load_workflows(self, folder: str | Path) -> list[Workflow]:
        """Load the workflow modules of a folder by path and register them all.

        Raises:
            WorkflowLoadError: naming the module that failed to import.
            ConfigError: for two workflows with one name.
        """
        found = load_workflow_dir(Path(folder))
        self.registry.check(found)  # all or nothing
        for flow in found:
            self.register_workflow(flow)
        return found

    def get_workflow(self, name: str) -> Workflow:
        """The workflow named ``name``. Raises WorkflowNotFound."""
        return self.registry.get(name)

    def get_workflows(self) -> dict[str, Workflow]:
        """Every registered workflow, by name."""
        return self.registry.all()

    def _subscribe(self, workflow: Workflow) -> None:
        if not workflow.on or workflow.name in self._subscribed:
            return
        if self.db.readonly:
            return  # a read-only hub delivers nothing (and may not record a cursor)
        self.bus.subscribe(
            list(workflow.on),
            lambda event, delivery, w=workflow: self._on_event(w, event, delivery),
            name=f"workflow.{workflow.name}",
            filter=workflow.filter,
            retry=workflow.retry,
        )
        self._subscribed.add(workflow.name)

    # Running ----------------------------------------------------------------

    def trigger_workflow(
        self, name: str, data: Any = None, *, run_id: str | None = None
    ) -> WorkflowRun:
        """Run a workflow now, in this thread, and return its run record (whose
        ``status`` says whether it succeeded). ``run_id`` lets a caller know the
        id before the run ends (default: a new UUIDv7). Raises WorkflowNotFound."""
        workflow = self.registry.get(name)
        run, _ = self.runner.run(workflow, "manual", data=data, run_id=run_id)
        return run

    def _on_event(self, workflow: Workflow, event: Event, delivery: Delivery) -> Any:
        run, error = self.runner.run(
            workflow, "event", event=event, attempt=delivery.attempt
        )
        if error is not None:
            raise error  # the bus retries by the workflow's policy, then dead-letters
        return run.id

    def fire(self, name: str, trigger: Trigger = "schedule") -> WorkflowRun | None:
        """A scheduled fire: run the workflow unless ``max_instances`` runs of it are
        in flight (then the fire is skipped). Returns the run, or None if skipped."""
        return self.scheduler.fire(name, trigger)

    def catch_up(self) -> list[str]:
        """Bring every schedule's bookkeeping to now; return the names of the
        workflows whose fires were missed (each owes exactly one run)."""
        return self.scheduler.catch_up()

    def next_fire_times(self) -> dict[str, datetime | None]:
        """When each scheduled workflow fires next (None: never again)."""
        return self.scheduler.next_fire_times()

    # Lifecycle --------------------------------------------------------------

    def start(self, *, run_scheduler: bool = True) -> None:
        """Mark the runs of dead processes failed, start the scheduler and make up
        for fires missed while stopped.

        Of several processes sharing the state database, one runs the scheduler
        (the holder of an OS lock, released when it exits or dies); the others
        stand by, check every ``leader_poll`` seconds, and take over, catch-up
        included, when the leader goes away.
        """
        with self._lock:
            if self._started:
                return
            self.runs.fail_interrupted(self.runner.now())
            self._started = True
            if run_scheduler and any(
                w.schedule is not None or w.run_at_start
                for w in self.registry.all().values()
            ):
                self.scheduler.start()

    @property
    def is_scheduler_leader(self) -> bool:
        """Whether this process runs the scheduler."""
        return self.scheduler.is_leader

    def stop(self) -> None:
        """Stop the scheduler: no new scheduled runs (those in flight go on; see
        :meth:`wait_idle`)."""
        self.scheduler.stop()
        with self._lock:
            self._started = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in flight in this process; False at the timeout."""
        return self.runner.wait_idle(timeout)


#: The earlier name, kept as an alias: it orchestrates workflows.
IntegrationOrchestrator = WorkflowOrchestrator

__all__ = [
    "IntegrationOrchestrator",
    "WorkflowContext",
    "WorkflowHost",
    "WorkflowOrchestrator",
]
