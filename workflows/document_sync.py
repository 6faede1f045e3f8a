"""Document sync workflows, made from the ``[sources.*]`` of a config.

* ``sync.<source>``: an incremental sync on the source's ``schedule`` (default every
  10 minutes; ``schedule = false`` turns it off), and once when the daemon starts
  (``sync_on_start = false`` turns that off; it holds with ``schedule = false``
  too). It is also the backstop that catches what event-driven hints miss, and
  ``eventhub workflows run sync.<source>`` runs it by hand.
* ``document-sync``: on ``document.updated`` events whose data names
  ``{"source": ..., "id": ...}`` (or ``"ids": [...]``): refetch those documents. A burst
  of hints for one document is debounced: a hint with a later hint for the same
  document (subject ``<source>/<id>``) already in the log is skipped.

Each sync publishes ``document.indexed``, ``document.deleted`` and
``sync.completed``.

A first-party plugin (in :data:`eventhub.plugins.DEFAULT_PLUGINS`): its
``register_workflows`` hook registers these workflows for the hub's
``[sources.*]``, like any third-party plugin would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eventhub import Hub, Workflow, WorkflowContext, hookimpl, workflow
from eventhub.documents.service import SOURCE_SYNC_KEYS

__all__ = [
    "DEFAULT_SCHEDULE",
    "SOURCE_SYNC_KEYS",
    "on_document_updated",
    "register_workflows",
    "sync_workflows",
]

DEFAULT_SCHEDULE = "every 10m"


@hookimpl
def register_workflows(register: Callable[[Workflow], Any], hub: Hub) -> None:
    """The sync workflows of the sources the hub's config names."""
    for flow in sync_workflows(hub, hub.config.get("sources", {})):
        register(flow)


def sync_workflows(
    hub: Hub, sources: Mapping[str, Mapping[str, Any]]
) -> list[Workflow]:
    """The workflows keeping the configured sources in the index."""
    flows = []
    for name, settings in sources.items():
        schedule = settings.get("schedule", DEFAULT_SCHEDULE)
        if schedule is False:
            schedule = None  # no schedule; still at start, and by hand

        def sync(ctx: WorkflowContext, name: str = name) -> dict[str, Any]:
            return ctx.hub.documents.sync(name).summary()

        flows.append(
            workflow(
                f"sync.{name}",
                schedule=schedule,
                timeout=settings.get("sync_timeout"),
                run_at_start=bool(settings.get("sync_on_start", True)),
            )(sync)
        )
    if sources:
        flows.append(
            workflow("document-sync", on="document.updated")(on_document_updated)
        )
    return flows


def on_document_updated(ctx: WorkflowContext) -> dict[str, Any]:
    """Refetch the documents a ``document.updated`` hint names."""
    event = ctx.event
    data = event.data if event is not None and isinstance(event.data, dict) else {}
    source = data.get("source")
    ids = data.get("ids") or ([data["id"]] if "id" in data else [])
    if event is None or not isinstance(source, str) or not ids:
        ctx.log.warning("document.updated without source and id(s): ignored")
        return {"ignored": True}
    if event.subject and ctx.hub.bus.history(
        "document.updated", subject=event.subject, after=event.sequence, limit=1
    ):
        return {"superseded": True}  # a later hint for the same document follows
    return ctx.hub.documents.sync_ids(source, [str(i) for i in ids]).summary()
