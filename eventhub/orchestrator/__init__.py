"""The workflow engine: workflows, their schedules, runs and the orchestrator."""

from __future__ import annotations

from .workflow import (  # noqa: F401
    ScheduleSpec,
    Workflow,
    index_workflows,
    load_workflow_dir,
    load_workflow_file,
    workflow,
)

__all__ = [
    "ScheduleSpec",
    "Workflow",
    "workflow",
    "load_workflow_file",
    "load_workflow_dir",
    "index_workflows",
]
