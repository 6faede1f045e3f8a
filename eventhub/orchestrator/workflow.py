"""Workflows: plain Python functions declared with ``@workflow``.

::

    from eventhub import workflow

    @workflow("welcome-mail", on="user.created")
    def welcome(ctx):
        mailer.send(ctx.event.data["email"])

    @workflow("nightly-report", schedule="0 2 * * *", timeout=600)
    def nightly(ctx):
        ctx.publish("report.ready", build_report())

A folder of such modules (``workflows_dir``) is loaded by file path under private
module names, so a user's ``reports.py`` never collides with an installed package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .._modules import import_file
from ..errors import ConfigError, InvalidSubscription, WorkflowLoadError
from ..patterns import FilterSpec, TypePattern, compile_filter
from ..retry import RetryPolicy
from .schedules import Schedule, parse_schedule

ScheduleSpec = str | int | float | timedelta | datetime


@dataclass(eq=False)
class Workflow:
    """A named workflow: a handler ``(ctx) -> result`` and its triggers.

    Calling the workflow object calls its handler, so a decorated function stays
    testable on its own.
    """

    name: str
    handler: Callable[[Any], Any]
    on: tuple[str, ...] = ()
    filter: FilterSpec = None
    schedule: Schedule | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    max_instances: int = 1
    jitter: float | None = None
    run_at_start: bool = False
    description: str = ""
    origin: str = ""

    def __call__(self, ctx: Any) -> Any:
        return self.handler(ctx)

    @property
    def triggers(self) -> list[str]:
        """Human-readable triggers, e.g. ``["on user.*", "schedule */5 * * * *"]``."""
        found = [f"on {', '.join(self.on)}"] if self.on else []
        if self.schedule is not None:
            found.append(f"schedule {self.schedule.text}")
        return found or ["manual"]

    def __repr__(self) -> str:
        return f"<Workflow {self.name} {' | '.join(self.triggers)}>"


def workflow(
    name: str,
    *,
    on: str | Sequence[str] | None = None,
    filter: FilterSpec = None,
    schedule: ScheduleSpec | None = None,
    timezone: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    max_instances: int = 1,
    jitter: float | None = None,
    run_at_start: bool = False,
) -> Callable[[Callable[[Any], Any]], Workflow]:
    """Declare a workflow.

    Args:
        name: Unique workflow name.
        on: Event type pattern(s) that trigger a run, delivered durably
            (at-least-once, resumable).
        filter: CloudEvents filter or predicate narrowing ``on``.
        schedule: A crontab string (``"*/5 * * * *"``, ``"@daily"``), an interval
            (seconds, a ``timedelta``, or ``"every 10m"``), or a ``datetime``.
        timezone: Time zone of a crontab schedule (default UTC).
        retry: Attempts and backoff for failed runs.
        timeout: Seconds after which a run is marked failed.
        max_instances: Concurrent scheduled runs allowed (a fire beyond is skipped).
        jitter: Up to this many seconds of random delay for each scheduled fire.
        run_at_start: Also run once when the scheduler starts (skipped when a
            missed-run catch-up is already due); with no schedule, that is the
            only time it runs on its own.

    Raises:
        ConfigError: for a bad name, pattern, filter, schedule or option.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ConfigError(f"workflow name {name!r} is not usable")
    patterns: tuple[str, ...] = ()
    if on is not None:
        patterns = (on,) if isinstance(on, str) else tuple(on)
        try:
            TypePattern(patterns)
            compile_filter(filter)
        except InvalidSubscription as exc:
            raise ConfigError(f"workflow {name!r}: {exc}") from None
    elif filter is not None:
        raise ConfigError(f"workflow {name!r}: a filter needs on=")
    parsed = parse_schedule(schedule, timezone) if schedule is not None else None
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"workflow {name!r}: timeout must be positive")
    if not isinstance(max_instances, int) or max_instances < 1:
        raise ConfigError(f"workflow {name!r}: max_instances must be at least 1")
    if jitter is not None and jitter < 0:
        raise ConfigError(f"workflow {name!r}: jitter must not be negative")

    def declare(handler: Callable[[Any], Any]) -> Workflow:
        if not callable(handler):
            raise ConfigError(f"workflow {name!r}: {handler!r} is not callable")
        return Workflow(
            name=name,
            handler=handler,
            on=patterns,
            filter=filter,
            schedule=parsed,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            max_instances=max_instances,
            jitter=jitter,
            run_at_start=run_at_start,
            description=(handler.__doc__ or "").strip().split("\n")[0],
            origin=f"{getattr(handler, '__module__', '?')}."
            f"{getattr(handler, '__qualname__', '?')}",
        )

    return declare


def load_workflow_file(path: Path) -> list[Workflow]:
    """Import one workflow module by path and return the workflows it declares.

    Raises:
        WorkflowLoadError: naming the file, when importing it fails.
    """
    module = import_file(path, WorkflowLoadError)
    found = [value for value in vars(module).values() if isinstance(value, Workflow)]
    for flow in found:
        flow.origin = str(path)
    return found


def load_workflow_dir(folder: Path) -> list[Workflow]:
    """Load every ``*.py`` module of a folder (not starting with ``_``), sorted by name.

    Raises:
        WorkflowLoadError: for a module that fails to import.
        ConfigError: if the folder does not exist.
    """
    if not folder.is_dir():
        raise ConfigError(f"workflows_dir {folder} is not a folder")
    found: list[Workflow] = []
    for path in sorted(folder.glob("*.py")):
        if not path.name.startswith("_"):
            found.extend(load_workflow_file(path))
    return found


def index_workflows(workflows: Iterable[Workflow]) -> dict[str, Workflow]:
    """Workflows by name.

    Raises:
        ConfigError: when two workflows share a name, naming where both come from.
    """
    by_name: dict[str, Workflow] = {}
    for flow in workflows:
        other = by_name.get(flow.name)
        if other is not None and other is not flow:
            raise ConfigError(
                f"workflow {flow.name!r} is defined twice: in {other.origin} "
                f"and in {flow.origin}"
            )
        by_name[flow.name] = flow
    return by_name
