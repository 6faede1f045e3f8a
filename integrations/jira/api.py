"""What the Jira integration and the Jira source share of Jira's REST API: the API
versions (3 on Cloud, 2 on Server/Data Center), Jira's errors, and the call that
turns an HTTP error into one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from eventhub.errors import ConfigError, TransientError
from eventhub.http import HttpError, json_body
from eventhub.log import redact_text

from ..rest import RESTIntegration

__all__ = ["JiraError", "JiraIssueNotFound", "api_version", "call"]


class JiraError(HttpError):
    """Jira refused a request. ``messages`` holds what Jira said (its
    ``errorMessages`` and per-field ``errors``), redacted."""

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None,
        messages: Sequence[str],
        body: str | None = None,
    ) -> None:
        self.messages = [redact_text(m) for m in messages]
        super().__init__(method, url, status, reason="; ".join(self.messages) or None)
        self.body = body

    @classmethod
    def from_http_error(cls, exc: HttpError) -> JiraError:
        """The JiraError for an HTTP error whose body is Jira's error JSON."""
        messages: list[str] = []
        try:
            body = json.loads(exc.body or "")
        except ValueError:
            body = None
        if isinstance(body, dict):
            messages += [str(m) for m in body.get("errorMessages") or []]
            errors = body.get("errors") or {}
            if isinstance(errors, dict):
                messages += [f"{field}: {text}" for field, text in errors.items()]
        if not messages and exc.body:
            messages = [exc.body]
        error_class = JiraIssueNotFound if exc.status == 404 else cls
        return error_class(exc.method, exc.url, exc.status, messages, exc.body)


class JiraIssueNotFound(JiraError, LookupError):
    """No such issue, or no permission to see it (Jira does not say which)."""


def api_version(value: Any, where: str) -> int:
    """``api_version`` checked: 3 (Cloud) or 2 (Server/Data Center).

    Raises:
        ConfigError: for anything else.
    """
    if value not in (2, 3) or isinstance(value, bool):
        raise ConfigError(f"{where}: api_version must be 2 or 3")
    return int(value)


def call(
    rest: RESTIntegration, version: int, method: str, path: str, **kwargs: Any
) -> Any:
    """``method`` on ``rest/api/{version}/{path}``: the decoded JSON (None when the
    body is empty).

    Raises:
        JiraError: for a 4xx answer (:class:`JiraIssueNotFound` for a 404), with
            what Jira said.
        HttpError: for anything else (``HttpTransientError`` when it may pass).
    """
    try:
        response = rest.request(method, f"rest/api/{version}/{path}", **kwargs)
    except HttpError as exc:
        if isinstance(exc, JiraError | TransientError) or exc.status is None:
            raise
        if 400 <= exc.status < 500:
            raise JiraError.from_http_error(exc) from None
        raise
    return json_body(method, response, empty=None)
