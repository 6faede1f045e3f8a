"""Running a workflow: one path for every trigger, recorded and watched.

Every run (:meth:`WorkflowRunner.run`) is a row in the run history,
``workflow.run.started``, the handler (in its own thread and watched against the
clock when it has a timeout), then ``workflow.run.succeeded`` or
``workflow.run.failed``. Events the handler publishes are caused by the run's
``workflow.run.started`` event, which is caused by the triggering event, if any.
"""

from __future__ import annotations

import contextvars
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog

from ..errors import RunTimeout
from ..events import Event, uuid7
from ..integration import Integration
from ..subscriptions import current_event
from .runstore import RunStore, Trigger, WorkflowRun, WorkflowState
from .workflow import Workflow

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..hub import Hub
    from ..statedb import StateDB

log = structlog.get_logger(__name__)


class WorkflowHost(Protocol):
    """What the orchestrator uses of the object that owns it (a :class:`Hub`): the
    bus, the state database and the integrations by name. Handlers get the owner
    itself as ``ctx.hub``."""

    bus: EventBus
    db: StateDB

    def get_integration(self, name: str) -> Integration: ...


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
        run: WorkflowRun,
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


class WorkflowRunner:
    """Runs workflows and records their runs; counts the runs in flight.

    Args:
        host: The hub (its bus gets the run events; handlers get it as ``ctx.hub``).
        runs: Where runs are recorded.
        watch_interval: How often a run with a timeout is checked against the clock.
    """

    def __init__(
        self, host: WorkflowHost, runs: RunStore, *, watch_interval: float = 0.05
    ) -> None:
        self.host = host
        self.bus = host.bus
        self.runs = runs
        self.watch_interval = watch_interval
        self._in_flight = 0
        self._idle = threading.Condition(threading.Lock())

    def now(self) -> datetime:
        """The bus clock's time (tests give the bus a fake clock)."""
        return datetime.fromtimestamp(self.bus.clock(), UTC)

    def run(
        self,
        workflow: Workflow,
        trigger: Trigger,
        *,
        event: Event | None = None,
        data: Any = None,
        attempt: int = 1,
        run_id: str | None = None,
    ) -> tuple[WorkflowRun, Exception | None]:
        """Run ``workflow`` in this thread; return its record and the error it
        raised (None when it succeeded). A failed run is recorded, never raised."""
        with self._idle:
            self._in_flight += 1
        try:
            return self._run_recorded(workflow, trigger, event, data, attempt, run_id)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in flight in this process; False at the timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _run_recorded(
        self,
        workflow: Workflow,
        trigger: Trigger,
        event: Event | None,
        data: Any,
        attempt: int,
        run_id: str | None = None,
    ) -> tuple[WorkflowRun, Exception | None]:
        bus = self.bus
        run = WorkflowRun(
            id=run_id or uuid7(),
            workflow=workflow.name,
            trigger=trigger,
            status="running",
            started=self.now(),
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
            cast("Hub", self.host),
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
        run.finished = self.now()
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
        started = self.bus.clock()
        thread.start()
        while not done.wait(self.watch_interval):
            if self.bus.clock() - started >= workflow.timeout:
                # The thread cannot be killed; it is left to finish on its own, and
                # its outcome is discarded: the run is failed now, so that the
                # schedule (or the subscription) goes on.
                raise RunTimeout(workflow.name, workflow.timeout)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")
