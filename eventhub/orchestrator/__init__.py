"""The workflow engine: workflows, their schedules, runs and the orchestrator."""

from __future__ import annotations

from .engine import (  # noqa: F401
    IntegrationOrchestrator,
    WorkflowContext,
    WorkflowOrchestrator,
)
from .runstore import WorkflowRun  # noqa: F401
from .workflow import (  # noqa: F401
    ScheduleSpec,
    Workflow,
    index_workflows,
    load_workflow_dir,
    load_workflow_file,
    workflow,
)

__all__ = [
    "IntegrationOrchestrator",
    "ScheduleSpec",
    "Workflow",
    "WorkflowContext",
    "WorkflowOrchestrator",
    "WorkflowRun",
    "workflow",
    "load_workflow_file",
    "load_workflow_dir",
    "index_workflows",
]
