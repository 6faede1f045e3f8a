"""Signed hints that documents changed, for event-driven sync:
``kind = "documents"``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._generic import DOCUMENT_UPDATED, GenericReceiver
from .base import WebhookEvents, WebhookReceiver, WebhookRequest
from .plain_hmac import HMACReceiver
from .standard import StandardReceiver


class DocumentsReceiver(WebhookReceiver):
    """``document.updated`` hints for event-driven sync, signed the Standard
    Webhooks way (default) or, with ``scheme = "hmac"``, as a plain HMAC. The body
    is ``{"source": ..., "id": ...}`` or ``{"source": ..., "ids": [...]}``."""

    kind = "documents"
    keys = StandardReceiver.keys | HMACReceiver.keys

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        scheme = settings.get("scheme", "standard-webhooks")
        inner = {k: v for k, v in settings.items() if k != "scheme"}
        inner["event_type"] = DOCUMENT_UPDATED
        self.inner: GenericReceiver
        if scheme == "hmac":
            self.inner = HMACReceiver(name, inner)
        else:
            self.inner = StandardReceiver(name, {**inner, "scheme": scheme})
        super().__init__(name, settings)

    def verify(self, request: WebhookRequest) -> None:
        self.inner.verify(request)

    def to_events(self, request: WebhookRequest) -> WebhookEvents:
        return self.inner.to_events(request)
