"""Webhook receivers (one module per provider), their signature schemes and the
intake.

* :mod:`~eventhub.webhooks.base`: :class:`WebhookReceiver`, the base of every kind;
* :mod:`~eventhub.webhooks.github`, :mod:`~eventhub.webhooks.slack`,
  :mod:`~eventhub.webhooks.standard`, :mod:`~eventhub.webhooks.plain_hmac`,
  :mod:`~eventhub.webhooks.documents`: the built-in kinds, registered through the
  ``register_webhook_receivers`` hook (:mod:`~eventhub.webhooks.builtin`);
* :mod:`~eventhub.webhooks.receivers`: kinds by name, receivers from the config;
* :mod:`~eventhub.webhooks.signatures`: the signature schemes;
* :mod:`~eventhub.webhooks.intake`: ``POST /webhooks/{name}``, and
  :mod:`~eventhub.webhooks.appender`: its writes, one transaction per batch.
"""

from __future__ import annotations

from .base import (
    DEFAULT_MAX_BODY_BYTES,
    BadDelivery,
    Intake,
    WebhookEvents,
    WebhookReceiver,
    WebhookRequest,
    form_payload,
    parse_json,
)
from .documents import DocumentsReceiver
from .github import GitHubReceiver
from .plain_hmac import HMACReceiver
from .receivers import RECEIVER_KINDS, make_receivers, receiver_kinds
from .signatures import SignatureError
from .slack import SlackReceiver
from .standard import StandardReceiver

__all__ = [
    "BadDelivery",
    "DEFAULT_MAX_BODY_BYTES",
    "DocumentsReceiver",
    "GitHubReceiver",
    "HMACReceiver",
    "Intake",
    "RECEIVER_KINDS",
    "SignatureError",
    "SlackReceiver",
    "StandardReceiver",
    "WebhookEvents",
    "WebhookReceiver",
    "WebhookRequest",
    "form_payload",
    "make_receivers",
    "parse_json",
    "receiver_kinds",
]
