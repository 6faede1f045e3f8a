"""The built-in webhook receiver kinds, registered as a plugin like any other
(listed in :data:`eventhub.plugins.DEFAULT_PLUGINS`)."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from .base import WebhookReceiver
from .documents import DocumentsReceiver
from .github import GitHubReceiver
from .plain_hmac import HMACReceiver
from .slack import SlackReceiver
from .standard import StandardReceiver

BUILTIN_RECEIVERS: tuple[type[WebhookReceiver], ...] = (
    GitHubReceiver,
    SlackReceiver,
    StandardReceiver,
    HMACReceiver,
    DocumentsReceiver,
)


@hookimpl
def register_webhook_receivers(register: Any) -> None:
    for cls in BUILTIN_RECEIVERS:
        register(cls)
