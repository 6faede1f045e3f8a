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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventhub.orchestrator.workflow import Workflow, workflow

if TYPE_CHECKING:
    from eventhub.hub import Hub

DEFAULT_SCHEDULE = "every 10m"
SOURCE_SYNC_KEYS = {
    "schedule",
    "max_delete_share",
    "overlap",
    "timeout",
    "sync_on_start",
}


def sync_workflows(hub: Hub, sources: dict[str, dict[str, Any]]) -> list[Workflow]:
    """The workflows keeping the configured sources in the index."""
    flows = []
    for name, settings in sources.items():
        schedule = settings.get("schedule", DEFAULT_SCHEDULE)
        if schedule is False:
            schedule = None  # no schedule; still at start, and by hand

        def sync(ctx: Any, name: str = name) -> dict[str, Any]:
            return ctx.hub.documents.sync(name).summary()

        flows.append(
            workflow(
                f"sync.{name}",
                schedule=schedule,
                timeout=settings.get("timeout"),
                run_at_start=bool(settings.get("sync_on_start", True)),
            )(sync)
        )
    if sources:
        flows.append(
            workflow("document-sync", on="document.updated")(on_document_updated)
        )
    return flows


def on_document_updated(ctx: Any) -> dict[str, Any]:
    """Refetch the documents a ``document.updated`` hint names."""
    event = ctx.event
    data = event.data if isinstance(event.data, dict) else {}
    source = data.get("source")
    ids = data.get("ids") or ([data["id"]] if "id" in data else [])
    if not isinstance(source, str) or not ids:
        ctx.log.warning("document.updated without source and id(s): ignored")
        return {"ignored": True}
    if event.subject and ctx.hub.bus.history(
        "document.updated", subject=event.subject, after=event.sequence, limit=1
    ):
        return {"superseded": True}  # a later hint for the same document follows
    return ctx.hub.documents.sync_ids(source, [str(i) for i in ids]).summary()
