"""Standard Webhooks, or Stripe style: ``kind = "standard"``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from . import signatures as sig
from ._generic import GenericReceiver
from .base import WebhookRequest


class StandardReceiver(GenericReceiver):
    """Standard Webhooks (``webhook-id``/``webhook-timestamp``/``webhook-signature``,
    also the ``svix-`` names), or Stripe style with ``scheme = "stripe"``
    (``Stripe-Signature: t=,v1=``; the id is the payload's ``id``)."""

    kind = "standard"
    keys = GenericReceiver.keys | {"scheme"}

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        super().__init__(name, settings)
        self.scheme = settings.get("scheme", "standard-webhooks")
        if self.scheme not in ("standard-webhooks", "stripe"):
            raise ConfigError(
                f"webhooks.{name}.scheme must be 'standard-webhooks' or 'stripe'"
            )
        if self.scheme == "standard-webhooks":
            for secret in self.secrets:
                try:
                    sig.standard_signature(secret, "x", 0, b"")
                except ValueError as exc:
                    raise ConfigError(f"webhooks.{name}.secret: {exc}") from None

    def _header(self, request: WebhookRequest, name: str) -> str | None:
        value = request.headers.get(f"webhook-{name}")
        return value if value is not None else request.headers.get(f"svix-{name}")

    def verify(self, request: WebhookRequest) -> None:
        if self.scheme == "stripe":
            sig.verify_stripe(
                self.secrets,
                request.body,
                request.headers.get("stripe-signature"),
                now=request.now,
                tolerance=self.tolerance,
            )
            return
        sig.verify_standard(
            self.secrets,
            request.body,
            self._header(request, "id"),
            self._header(request, "timestamp"),
            self._header(request, "signature"),
            now=request.now,
            tolerance=self.tolerance,
        )

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        if self.scheme == "stripe":
            ident = payload.get("id") if isinstance(payload, dict) else None
            return ident if isinstance(ident, str) and ident else None
        return self._header(request, "id") or None
