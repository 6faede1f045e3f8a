"""Slack's Events API, slash commands and interactivity: ``kind = "slack"``."""

from __future__ import annotations

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


class SlackReceiver(WebhookReceiver):
    """Slack's Events API, slash commands and interactivity (``v0`` signatures).

    ``url_verification`` is answered with its challenge and stores nothing. Events
    become ``slack.<event type>``, commands ``slack.command``, interactions
    ``slack.interaction.<type>``; the id is Slack's ``event_id`` or ``trigger_id``,
    so Slack's retries are stored once. Stored deliveries are answered with an
    empty body: Slack shows a response body to the user.
    """

    kind = "slack"
    empty_reply = True

    def verify(self, request: WebhookRequest) -> None:
        sig.verify_slack(
            self.secrets,
            request.body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
            now=request.now,
            tolerance=self.tolerance,
        )

    def to_events(self, request: WebhookRequest) -> WebhookEvents:
        if request.content_type == "application/x-www-form-urlencoded":
            form = form_payload(request)
            if "payload" in form:
                payload = parse_json(str(form["payload"]).encode())
                if not isinstance(payload, dict):
                    raise BadDelivery("the interaction payload is not a JSON object")
                kind = type_segment(payload.get("type"), "interaction type")
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
            return WebhookEvents(reply={"challenge": str(payload.get("challenge", ""))})
        inner = payload.get("event")
        if not isinstance(inner, dict):
            inner = {}
        kind = type_segment(inner.get("type") or payload.get("type"), "event type")
        return self._one(
            f"slack.{kind}", payload, payload.get("team_id"), payload.get("event_id")
        )

    def _one(self, type_: str, data: Any, team: Any, ident: Any) -> WebhookEvents:
        source = f"slack/{team}" if isinstance(team, str) and team else "slack"
        return WebhookEvents(
            [
                {
                    "type": type_,
                    "data": data,
                    "source": source,
                    "id": ident if isinstance(ident, str) and ident else None,
                }
            ]
        )
