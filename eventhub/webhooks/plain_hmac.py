"""A plain HMAC of the body in one header: ``kind = "hmac"``.

(Not ``hmac.py``: a module named like the standard library's would read as it.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from . import signatures as sig
from ._generic import GenericReceiver
from .base import WebhookRequest


class HMACReceiver(GenericReceiver):
    """A plain HMAC of the body in one header: ``header`` (default
    ``X-Signature``), ``algorithm`` (sha1/sha256/sha512), ``prefix`` (e.g.
    ``"sha256="``), ``encoding`` (hex/base64); ``id_header`` names a delivery id."""

    kind = "hmac"
    keys = GenericReceiver.keys | {
        "header",
        "algorithm",
        "prefix",
        "encoding",
        "id_header",
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        super().__init__(name, settings)
        self.header = str(settings.get("header", "X-Signature"))
        self.algorithm = str(settings.get("algorithm", "sha256")).lower()
        self.prefix = str(settings.get("prefix", ""))
        self.encoding = str(settings.get("encoding", "hex")).lower()
        self.id_header = settings.get("id_header")
        if self.algorithm not in sig.ALGORITHMS:
            raise ConfigError(
                f"webhooks.{name}.algorithm must be one of {', '.join(sig.ALGORITHMS)}"
            )
        if self.encoding not in ("hex", "base64"):
            raise ConfigError(f"webhooks.{name}.encoding must be 'hex' or 'base64'")

    def verify(self, request: WebhookRequest) -> None:
        sig.verify_hmac(
            self.secrets,
            request.body,
            request.headers.get(self.header),
            name=self.header,
            algorithm=self.algorithm,
            prefix=self.prefix,
            encoding=self.encoding,
        )

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        if not self.id_header:
            return None
        return request.headers.get(str(self.id_header)) or None
