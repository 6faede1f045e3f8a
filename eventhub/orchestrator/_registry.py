"""The registered workflows, by name."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..errors import ConfigError, WorkflowNotFound
from .workflow import Workflow, index_workflows


class WorkflowRegistry:
    """Workflows by name, one name each.

    Reading takes no lock: every change replaces the whole mapping, so a reader sees
    the workflows before or after a registration, never half of one.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Workflow] = {}
        self._lock = threading.Lock()

    def add(self, workflow: Workflow) -> Workflow:
        """Add a workflow (adding the same object again changes nothing).

        Raises:
            ConfigError: for an object that is no Workflow or a name already taken.
        """
        if not isinstance(workflow, Workflow):
            raise ConfigError(
                f"{workflow!r} is not a workflow (declare it with @workflow(...))"
            )
        with self._lock:
            self._by_name = index_workflows([*self._by_name.values(), workflow])
        return workflow

    def check(self, workflows: Iterable[Workflow]) -> None:
        """Raise the ConfigError that adding ``workflows`` would raise, adding none
        (loading a folder is all or nothing)."""
        index_workflows([*self._by_name.values(), *workflows])

    def get(self, name: str) -> Workflow:
        """The workflow named ``name``. Raises WorkflowNotFound."""
        try:
            return self._by_name[name]
        except KeyError:
            raise WorkflowNotFound(name, sorted(self._by_name)) from None

    def all(self) -> dict[str, Workflow]:
        """Every workflow, by name (a copy)."""
        return dict(self._by_name)

    def scheduled(self) -> list[Workflow]:
        """The workflows with a ``schedule``."""
        return [w for w in self._by_name.values() if w.schedule is not None]
