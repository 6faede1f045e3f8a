"""Webhook receivers (one per provider), their signature schemes and the intake."""

from __future__ import annotations

from .receivers import (  # noqa: F401
    DEFAULT_MAX_BODY_BYTES,
    RECEIVER_KINDS,
    BadDelivery,
    DocumentsReceiver,
    GitHubReceiver,
    HMACReceiver,
    Intake,
    SignatureError,
    SlackReceiver,
    StandardReceiver,
    WebhookReceiver,
    WebhookRequest,
    make_receivers,
)

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
    "WebhookReceiver",
    "WebhookRequest",
    "make_receivers",
]
