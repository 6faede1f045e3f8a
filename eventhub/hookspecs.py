"""The plugin contract: eventhub's pluggy hooks. ``from eventhub import hookimpl``."""

from __future__ import annotations

from typing import Any

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("eventhub")
hookimpl = HookimplMarker("eventhub")


@hookspec
def register_integrations(register: Any) -> None:
    """Register integration classes: ``register(MyIntegration)``, named by ``.name``."""


@hookspec
def register_workflows(register: Any, hub: Any) -> None:
    """Register workflows: ``register(workflow)``; ``hub`` is the hub they are for."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the ``eventhub`` command-line tool."""


@hookspec
def startup(hub: Any) -> None:
    """The hub is starting: its bus and integrations are ready."""


@hookspec
def shutdown(hub: Any) -> None:
    """The hub is stopping: release what ``startup`` acquired."""


@hookspec
def register_webhook_receivers(register: Any) -> None:
    """Register webhook receiver kinds: ``register(MyReceiver)``, named by ``.kind``."""


@hookspec
def register_embedders(register: Any) -> None:
    """Register embedders: ``register(name, factory)``, for ``[index] model``."""
