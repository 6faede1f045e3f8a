"""Receiver kinds by name, and the receivers of a ``[webhooks]`` config section.

A receiver is configured under ``[webhooks.NAME]`` and answers
``POST /webhooks/NAME``::

    [webhooks.github]
    kind = "github"
    secret = { env = "GITHUB_WEBHOOK_SECRET" }

Built-in kinds: ``github``, ``slack``, ``standard`` (Standard Webhooks, or Stripe
style with ``scheme = "stripe"``), ``hmac`` (a configurable header) and
``documents`` (signed like ``standard`` or ``hmac``; the body names changed
documents and becomes ``document.updated`` hints for event-driven sync). Plugins
add kinds with the ``register_webhook_receivers`` hook (:func:`receiver_kinds`).

The signature is checked on the raw bytes before anything parses them. A receiver
without a secret refuses to start unless ``insecure = true``. Each delivery id
(``X-GitHub-Delivery``, Slack's ``event_id``, ``webhook-id`` ...) becomes the event
id, so a redelivered webhook is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import WebhookReceiver
from .builtin import BUILTIN_RECEIVERS

if TYPE_CHECKING:
    import pluggy

#: The built-in kinds (what :func:`make_receivers` knows without a plugin manager).
RECEIVER_KINDS: dict[str, type[WebhookReceiver]] = {
    cls.kind: cls for cls in BUILTIN_RECEIVERS
}


def receiver_kinds(pm: pluggy.PluginManager) -> dict[str, type[WebhookReceiver]]:
    """The receiver classes the plugins of ``pm`` register, by kind (the built-in
    ones among them).

    Raises:
        ConfigError: for something that is not a :class:`WebhookReceiver` class, a
            class without a ``kind``, or two classes registered for one kind.
    """
    kinds: dict[str, type[WebhookReceiver]] = {}

    def register(cls: type[WebhookReceiver]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, WebhookReceiver)):
            raise ConfigError(
                f"register_webhook_receivers: {cls!r} is not a WebhookReceiver class"
            )
        if not cls.kind:
            raise ConfigError(f"register_webhook_receivers: {cls.__name__} has no kind")
        existing = kinds.get(cls.kind)
        if existing is not None and existing is not cls:
            raise ConfigError(
                f"webhook receiver kind {cls.kind!r} is registered twice "
                f"({existing.__module__}.{existing.__name__} and "
                f"{cls.__module__}.{cls.__name__})"
            )
        kinds[cls.kind] = cls

    pm.hook.register_webhook_receivers(register=register)
    return kinds


def make_receivers(
    section: Mapping[str, Any],
    kinds: Mapping[str, type[WebhookReceiver]] | None = None,
) -> dict[str, WebhookReceiver]:
    """Receivers from a ``[webhooks]`` config section.

    Args:
        section: ``{name: settings}``, the ``[webhooks.NAME]`` tables.
        kinds: The receiver classes by kind (default: the built-in ones,
            :data:`RECEIVER_KINDS`; a hub's, plugins included:
            ``receiver_kinds(hub.pm)``).

    Raises:
        ConfigError: for an unknown kind, a missing secret, a bad setting.
    """
    kinds = RECEIVER_KINDS if kinds is None else kinds
    if not isinstance(section, Mapping):
        raise ConfigError("webhooks must be tables: [webhooks.NAME]")
    receivers = {}
    for name, settings in section.items():
        if not isinstance(settings, Mapping):
            raise ConfigError(f"webhooks.{name} must be a table")
        kind = settings.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            known = ", ".join(sorted(kinds))
            raise ConfigError(f"webhooks.{name}: kind must be one of {known}")
        receivers[name] = kinds[kind](name, settings)
    return receivers
