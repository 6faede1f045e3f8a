"""Webhook receivers: a verified request becomes events in the log.

A receiver is configured under ``[webhooks.NAME]`` and answers
``POST /webhooks/NAME``::

    [webhooks.github]
    kind = "github"
    secret = { env = "GITHUB_WEBHOOK_SECRET" }

Kinds: ``github``, ``slack``, ``standard`` (Standard Webhooks, or Stripe style with
``scheme = "stripe"``), ``hmac`` (a configurable header) and ``documents`` (signed like
``standard`` or ``hmac``; the body names changed documents and becomes
``document.updated`` hints for event-driven sync).

The signature is checked on the raw bytes before anything parses them. A receiver
without a secret refuses to start unless ``insecure = true``. Each delivery id
(``X-GitHub-Delivery``, Slack's ``event_id``, ``webhook-id`` ...) becomes the event id,
so a redelivered webhook is stored once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

import orjson

from ..config import resolve_secrets
from ..errors import ConfigError, EventHubError
from ..redact import register_secret
from . import signatures as sig
from .signatures import SignatureError

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SEGMENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*){0,7}")


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
class Intake:
    """What to publish for a verified request, and what to answer."""

    events: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] | None = None


class WebhookReceiver:
    """The base of every receiver kind: secrets, limits, and the JSON helpers.

    Args:
        name: The receiver's name (``/webhooks/<name>``).
        settings: Its ``[webhooks.NAME]`` table, secrets resolved.
    """

    kind: ClassVar[str] = ""
    #: Settings every kind understands; kinds add their own.
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

    # The two steps of an intake ---------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Raise :class:`SignatureError` unless the request is authentic."""
        raise NotImplementedError

    def intake(self, request: WebhookRequest) -> Intake:
        """The events a verified request becomes."""
        raise NotImplementedError

    def check(self, request: WebhookRequest) -> None:
        """Verify, unless the receiver is marked insecure."""
        if not self.insecure:
            self.verify(request)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def parse_json(body: bytes) -> Any:
    """Decode a JSON body or raise :class:`BadDelivery`."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadDelivery("the body is not valid JSON") from None


def _segment(value: Any, what: str) -> str:
    text = str(value).lower() if isinstance(value, str) else ""
    if not _SEGMENT_RE.fullmatch(text):
        raise BadDelivery(f"{what} {str(value)[:64]!r} is not a supported name")
    return text


def _form_payload(request: WebhookRequest) -> Any:
    try:
        fields = parse_qs(request.body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BadDelivery("the form body cannot be parsed") from None
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


# GitHub -----------------------------------------------------------------------

_GITHUB_SUBJECTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "issues": lambda p: f"issues/{p['issue']['number']}",
    "issue_comment": lambda p: f"issues/{p['issue']['number']}",
    "pull_request": lambda p: f"pull/{p['pull_request']['number']}",
    "pull_request_review": lambda p: f"pull/{p['pull_request']['number']}",
    "push": lambda p: p["ref"],
    "create": lambda p: p["ref"],
    "delete": lambda p: p["ref"],
    "release": lambda p: f"releases/{p['release']['id']}",
    "workflow_run": lambda p: f"actions/runs/{p['workflow_run']['id']}",
    "workflow_job": lambda p: f"actions/jobs/{p['workflow_job']['id']}",
    "check_run": lambda p: f"check-runs/{p['check_run']['id']}",
}


class GitHubReceiver(WebhookReceiver):
    """GitHub deliveries: ``X-Hub-Signature-256``; type ``github.<event>[.<action>]``;
    source the repository's URL (else the organisation's, else the account of an
    app installation); id ``X-GitHub-Delivery``."""

    kind = "github"

    def verify(self, request: WebhookRequest) -> None:
        sig.verify_github(
            self.secrets, request.body, request.headers.get("x-hub-signature-256")
        )

    def intake(self, request: WebhookRequest) -> Intake:
        event = _segment(request.headers.get("x-github-event"), "X-GitHub-Event")
        if request.content_type == "application/x-www-form-urlencoded":
            payload = parse_json(
                str(_form_payload(request).get("payload", "")).encode()
            )
        else:
            payload = parse_json(request.body)
        if not isinstance(payload, dict):
            raise BadDelivery("the payload is not a JSON object")
        type_ = f"github.{event}"
        action = payload.get("action")
        if action is not None:
            type_ += "." + _segment(action, "action")
        installation = payload.get("installation")
        owner = (
            payload.get("repository")
            or payload.get("organization")
            or (installation.get("account") if isinstance(installation, dict) else None)
        )
        source = "https://github.com"
        if isinstance(owner, dict):
            source = owner.get("html_url") or owner.get("url") or source
        try:
            subject = (
                _GITHUB_SUBJECTS[event](payload) if event in _GITHUB_SUBJECTS else None
            )
        except (KeyError, TypeError):
            subject = None
        delivery = request.headers.get("x-github-delivery") or None
        return Intake(
            [
                {
                    "type": type_,
                    "data": payload,
                    "source": str(source),
                    "subject": None if subject is None else str(subject),
                    "id": delivery,
                }
            ]
        )


# Slack ------------------------------------------------------------------------


class SlackReceiver(WebhookReceiver):
    """Slack's Events API, slash commands and interactivity (``v0`` signatures).

    ``url_verification`` is answered with its challenge and stores nothing. Events
    become ``slack.<event type>``, commands ``slack.command``, interactions
    ``slack.interaction.<type>``; the id is Slack's ``event_id`` or ``trigger_id``,
    so Slack's retries are stored once.
    """

    kind = "slack"

    def verify(self, request: WebhookRequest) -> None:
        sig.verify_slack(
            self.secrets,
            request.body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
            now=request.now,
            tolerance=self.tolerance,
        )

    def intake(self, request: WebhookRequest) -> Intake:
        if request.content_type == "application/x-www-form-urlencoded":
            form = _form_payload(request)
            if "payload" in form:
                payload = parse_json(str(form["payload"]).encode())
                if not isinstance(payload, dict):
                    raise BadDelivery("the interaction payload is not a JSON object")
                kind = _segment(payload.get("type"), "interaction type")
                team = (payload.get("team") or {}).get("id")
                return self._one(
                    f"slack.interaction.{kind}",
                    payload,
                    team,
                    payload.get("trigger_id"),
                )
            return self._one(
                "slack.command", form, form.get("team_id"), form.get("trigger_id")
            )
        payload = parse_json(request.body)
        if not isinstance(payload, dict):
            raise BadDelivery("the payload is not a JSON object")
        if payload.get("type") == "url_verification":
            return Intake(reply={"challenge": str(payload.get("challenge", ""))})
        inner = payload.get("event")
        if not isinstance(inner, dict):
            inner = {}
        kind = _segment(inner.get("type") or payload.get("type"), "event type")
        return self._one(
            f"slack.{kind}", payload, payload.get("team_id"), payload.get("event_id")
        )

    def _one(self, type_: str, data: Any, team: Any, ident: Any) -> Intake:
        source = f"slack/{team}" if isinstance(team, str) and team else "slack"
        return Intake(
            [
                {
                    "type": type_,
                    "data": data,
                    "source": source,
                    "id": ident if isinstance(ident, str) and ident else None,
                }
            ]
        )


# Standard Webhooks, Stripe style, plain HMAC -----------------------------------


class _GenericReceiver(WebhookReceiver):
    """Shared by ``standard`` and ``hmac``: the event type is ``event_type`` if
    set, else ``<name>.<payload type>`` when the JSON body has a ``type``, else
    ``<name>.received``."""

    keys: ClassVar[set[str]] = {"event_type"}

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        super().__init__(name, settings)
        event_type = settings.get("event_type")
        if event_type is not None and (
            not isinstance(event_type, str) or not _TYPE_RE.fullmatch(event_type)
        ):
            raise ConfigError(
                f"webhooks.{name}.event_type must be a lowercase dotted type"
            )
        self.event_type: str | None = event_type

    def delivery_id(self, request: WebhookRequest, payload: Any) -> str | None:
        return None

    def intake(self, request: WebhookRequest) -> Intake:
        if request.content_type == "application/x-www-form-urlencoded":
            payload: Any = _form_payload(request)
        elif request.body.strip() or request.content_type.endswith("json"):
            payload = parse_json(request.body)
        else:
            payload = None
        ident = self.delivery_id(request, payload)
        if self.event_type == "document.updated":
            return Intake(_document_events(payload, ident, self.source))
        type_ = self.event_type
        if type_ is None:
            inner = payload.get("type") if isinstance(payload, dict) else None
            if isinstance(inner, str) and _TYPE_RE.fullmatch(inner.lower()):
                type_ = f"{self.name}.{inner.lower()}"
            else:
                type_ = f"{self.name}.received"
        return Intake(
            [{"type": type_, "data": payload, "source": self.source, "id": ident}]
        )


class StandardReceiver(_GenericReceiver):
    """Standard Webhooks (``webhook-id``/``webhook-timestamp``/``webhook-signature``,
    also the ``svix-`` names), or Stripe style with ``scheme = "stripe"``
    (``Stripe-Signature: t=,v1=``; the id is the payload's ``id``)."""

    kind = "standard"
    keys = _GenericReceiver.keys | {"scheme"}

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


class HMACReceiver(_GenericReceiver):
    """A plain HMAC of the body in one header: ``header`` (default
    ``X-Signature``), ``algorithm`` (sha1/sha256/sha512), ``prefix`` (e.g.
    ``"sha256="``), ``encoding`` (hex/base64); ``id_header`` names a delivery id."""

    kind = "hmac"
    keys = _GenericReceiver.keys | {
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


def _document_events(payload: Any, ident: str | None, origin: str) -> list[dict]:
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
            "type": "document.updated",
            "data": {"source": source, "id": doc},
            "source": origin,
            "subject": f"{source}/{doc}",
            "id": None if ident is None else f"{ident}/{n}",
        }
        for n, doc in enumerate(ids)
    ]


class DocumentsReceiver(WebhookReceiver):
    """``document.updated`` hints for event-driven sync, signed the Standard
    Webhooks way (default) or, with ``scheme = "hmac"``, as a plain HMAC."""

    kind = "documents"
    keys = StandardReceiver.keys | HMACReceiver.keys

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        scheme = settings.get("scheme", "standard-webhooks")
        inner = {k: v for k, v in settings.items() if k != "scheme"}
        inner["event_type"] = "document.updated"
        self.inner: _GenericReceiver
        if scheme == "hmac":
            self.inner = HMACReceiver(name, inner)
        else:
            self.inner = StandardReceiver(name, {**inner, "scheme": scheme})
        super().__init__(name, settings)

    def verify(self, request: WebhookRequest) -> None:
        self.inner.verify(request)

    def intake(self, request: WebhookRequest) -> Intake:
        return self.inner.intake(request)


RECEIVER_KINDS: dict[str, type[WebhookReceiver]] = {
    cls.kind: cls
    for cls in (
        GitHubReceiver,
        SlackReceiver,
        StandardReceiver,
        HMACReceiver,
        DocumentsReceiver,
    )
}


def make_receivers(section: Mapping[str, Any]) -> dict[str, WebhookReceiver]:
    """Receivers from a ``[webhooks]`` config section.

    Raises:
        ConfigError: for an unknown kind, a missing secret, a bad setting.
    """
    if not isinstance(section, Mapping):
        raise ConfigError("webhooks must be tables: [webhooks.NAME]")
    receivers = {}
    for name, settings in section.items():
        if not isinstance(settings, Mapping):
            raise ConfigError(f"webhooks.{name} must be a table")
        kind = settings.get("kind")
        if kind not in RECEIVER_KINDS:
            known = ", ".join(sorted(RECEIVER_KINDS))
            raise ConfigError(f"webhooks.{name}: kind must be one of {known}")
        receivers[name] = RECEIVER_KINDS[kind](name, settings)
    return receivers


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
