"""What the ``standard`` and ``hmac`` kinds share: a body of any sender, mapped to
one event of a configured or derived type (or to document hints)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import ConfigError
from .base import (
    TYPE_RE,
    BadDelivery,
    WebhookEvents,
    WebhookReceiver,
    WebhookRequest,
    form_payload,
    parse_json,
)

#: The event type of a hint that documents changed (for event-driven sync).
DOCUMENT_UPDATED = "document.updated"


class GenericReceiver(WebhookReceiver):
    """The event type is ``event_type`` if set, else ``<name>.<payload type>`` when
    the JSON body has a ``type``, else ``<name>.received``. With ``event_type =
    "document.updated"`` the body names changed documents (see
    :func:`document_events`)."""

    keys: ClassVar[set[str]] = {"event_type"}

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        super().__init__(name, settings)
        event_type = settings.get("event_type")
        if event_type is not None and (
            not isinstance(event_type, str) or not TYPE_RE.fullmatch(event_type)
        ):
            raise ConfigError(
                f"webhooks.{name}.event_type must be a lowercase dotted type"
            )
        self.event_type: str | None = event_type

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        """The sender's id of this delivery (the event id), if it gives one."""
        return None

    def to_events(self, request: WebhookRequest) -> WebhookEvents:
        if request.content_type == "application/x-www-form-urlencoded":
            payload: Any = form_payload(request)
        elif request.body.strip() or request.content_type.endswith("json"):
            payload = parse_json(request.body)
        else:
            payload = None
        ident = self.delivery_id(request, payload)
        if self.event_type == DOCUMENT_UPDATED:
            return WebhookEvents(document_events(payload, ident, self.source))
        type_ = self.event_type
        if type_ is None:
            inner = payload.get("type") if isinstance(payload, dict) else None
            if isinstance(inner, str) and TYPE_RE.fullmatch(inner.lower()):
                type_ = f"{self.name}.{inner.lower()}"
            else:
                type_ = f"{self.name}.received"
        return WebhookEvents(
            [{"type": type_, "data": payload, "source": self.source, "id": ident}]
        )


def document_events(
    payload: Any, ident: str | None, origin: str
) -> list[dict[str, Any]]:
    """``{"source": "docs", "id": "a.md"}`` or ``{"source": ..., "ids": [...]}`` as
    ``document.updated`` hints, one per document (subject ``<source>/<id>``)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("source"), str):
        raise BadDelivery('the body must be {"source": ..., "id": ...} or "ids": [...]')
    ids = payload.get("ids", [payload["id"]] if "id" in payload else [])
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, str) and i for i in ids)
    ):
        raise BadDelivery("id/ids must name documents as non-empty strings")
    source = payload["source"]
    return [
        {
            "type": DOCUMENT_UPDATED,
            "data": {"source": source, "id": doc},
            "source": origin,
            "subject": f"{source}/{doc}",
            "id": None if ident is None else f"{ident}/{n}",
        }
        for n, doc in enumerate(ids)
    ]
