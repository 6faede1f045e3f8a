"""GitHub webhooks: ``kind = "github"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import signatures as sig
from .base import (
    BadDelivery,
    WebhookEvents,
    WebhookReceiver,
    WebhookRequest,
    form_payload,
    parse_json,
    type_segment,
)

_SUBJECTS: dict[str, Callable[[dict[str, Any]], Any]] = {
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

    def to_events(self, request: WebhookRequest) -> WebhookEvents:
        event = type_segment(request.headers.get("x-github-event"), "X-GitHub-Event")
        if request.content_type == "application/x-www-form-urlencoded":
            payload = parse_json(str(form_payload(request).get("payload", "")).encode())
        else:
            payload = parse_json(request.body)
        if not isinstance(payload, dict):
            raise BadDelivery("the payload is not a JSON object")
        type_ = f"github.{event}"
        action = payload.get("action")
        if action is not None:
            type_ += "." + type_segment(action, "action")
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
            subject = _SUBJECTS[event](payload) if event in _SUBJECTS else None
        except (KeyError, TypeError):
            subject = None
        delivery = request.headers.get("x-github-delivery") or None
        return WebhookEvents(
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
