"""What every webhook receiver kind is built on: :class:`WebhookReceiver`, the
request it sees, the events it maps it to, and the helpers of the built-in kinds.

A receiver kind is a subclass with a ``kind`` name, registered through the
``register_webhook_receivers`` hook (the built-in kinds too: see
:mod:`eventhub.webhooks.builtin`), and configured as ``[webhooks.NAME] kind =
"..."``. It does two things, in this order, for ``POST /webhooks/NAME``:

* :meth:`WebhookReceiver.verify` checks the signature on the raw bytes, before
  anything parses them (:mod:`eventhub.webhooks.signatures` has the schemes);
* :meth:`WebhookReceiver.to_events` maps the verified request to the events to
  store, and optionally the reply to answer with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

import orjson

from ..config import resolve_secrets
from ..errors import ConfigError, EventHubError
from ..redact import register_secret
from . import signatures as sig

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SEGMENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: A lowercase dotted event type, as receivers make them.
TYPE_RE = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*){0,7}")


class BadDelivery(EventHubError):
    """A verified request whose content cannot become an event (answered 400)."""


@dataclass
class WebhookRequest:
    """What a receiver sees of a request: headers, the raw body and the time."""

    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    body: bytes
    now: float

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class WebhookEvents:
    """What a verified request becomes: the events to store and, if the sender
    expects one, the reply to answer with (instead of the stored ids)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] | None = None


#: The name :class:`WebhookEvents` had before.
Intake = WebhookEvents


class WebhookReceiver:
    """The base of every receiver kind: secrets, limits, and the two steps.

    Args:
        name: The receiver's name (``/webhooks/<name>``).
        settings: Its ``[webhooks.NAME]`` table, secrets resolved.

    Raises:
        ConfigError: for a bad name, an unknown setting, a missing secret.
    """

    #: The ``kind = "..."`` that selects this class in ``[webhooks.NAME]``.
    kind: ClassVar[str] = ""
    #: Settings every kind understands; kinds add their own in ``keys``.
    common_keys: ClassVar[set[str]] = {
        "kind",
        "secret",
        "secrets",
        "insecure",
        "max_body_bytes",
        "tolerance",
        "source",
    }
    keys: ClassVar[set[str]] = set()
    #: Answer a stored delivery with an empty 200 instead of ``{"stored": [ids]}``
    #: (for senders that show a response body to their user, like Slack).
    empty_reply: ClassVar[bool] = False

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(
                f"webhooks.{name}: a receiver name is lowercase letters, digits, "
                "'-' and '_'"
            )
        self.name = name
        unknown = set(settings) - self.common_keys - self.keys
        if unknown:
            raise ConfigError(
                f"webhooks.{name}: unknown setting {sorted(unknown)[0]!r}"
            )
        self.settings = dict(settings)
        self.insecure = settings.get("insecure", False) is True
        self.secrets = self._secrets(settings)
        if not self.secrets and not self.insecure:
            raise ConfigError(
                f"webhooks.{name}: no secret configured; set secret = "
                '{ env = "NAME" } (or insecure = true to accept unsigned requests)'
            )
        limit = settings.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"webhooks.{name}.max_body_bytes must be a positive int")
        self.max_body_bytes = limit
        try:
            self.tolerance = sig.check_tolerance(
                settings.get("tolerance", sig.DEFAULT_TOLERANCE)
            )
        except ValueError as exc:
            raise ConfigError(f"webhooks.{name}.{exc}") from None
        source = settings.get("source", f"webhooks/{name}")
        if not isinstance(source, str) or not source:
            raise ConfigError(f"webhooks.{name}.source must be a non-empty string")
        self.source = source

    def _secrets(self, settings: Mapping[str, Any]) -> list[str]:
        key = "secrets" if "secrets" in settings else "secret"
        value = settings.get(key)
        if value is None:
            return []
        # A receiver reads its secrets when it is made (the server starting).
        value = resolve_secrets(value, f"webhooks.{self.name}.{key}")
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(s, str) for s in items):
            raise ConfigError(f"webhooks.{self.name}.secret must be a string")
        if any(not s for s in items):
            raise ConfigError(
                f"webhooks.{self.name}.secret is empty (check the variable or file "
                "it refers to)"
            )
        for secret in items:  # also those given as values, not references
            register_secret(secret)
        return list(items)

    # The two steps of a delivery ------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise :class:`~eventhub.webhooks.signatures.SignatureError` unless the
        request is authentic."""
        raise NotImplementedError

    def to_events(self, request: WebhookRequest) -> WebhookEvents:
        """The events a verified request becomes.

        Raises:
            BadDelivery: for content that cannot become an event (answered 400).
        """
        raise NotImplementedError

    def check(self, request: WebhookRequest) -> None:
        """Verify, unless the receiver is marked insecure."""
        if not self.insecure:
            self.verify(request)

    def intake(self, request: WebhookRequest) -> WebhookEvents:
        """The name :meth:`to_events` had before."""
        return self.to_events(request)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# Helpers of the built-in kinds ----------------------------------------------------


def parse_json(body: bytes) -> Any:
    """Decode a JSON body or raise :class:`BadDelivery`."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadDelivery("the body is not valid JSON") from None


def form_payload(request: WebhookRequest) -> dict[str, Any]:
    """The fields of a form-encoded body (a field given once as a string), or
    raise :class:`BadDelivery`."""
    try:
        fields = parse_qs(request.body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BadDelivery("the form body cannot be parsed") from None
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


def type_segment(value: Any, what: str) -> str:
    """``value`` as one lowercase segment of an event type, or raise
    :class:`BadDelivery` naming ``what`` it is."""
    text = str(value).lower() if isinstance(value, str) else ""
    if not _SEGMENT_RE.fullmatch(text):
        raise BadDelivery(f"{what} {str(value)[:64]!r} is not a supported name")
    return text
