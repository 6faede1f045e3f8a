"""``jira``: create and read Jira issues (Cloud REST v3, or v2 for Server/DC).

::

    [integrations.jira]
    kind = "jira"
    base_url = "https://example.atlassian.net/"
    email = "bot@example.com"
    api_token = { env = "JIRA_API_TOKEN" }   # Cloud: e-mail + API token
    # token = { env = "JIRA_PAT" }           # Server/DC: a personal access token
    # api_version = 2                        # Server/DC: /rest/api/2, plain text

On Cloud (v3) descriptions are sent in Atlassian Document Format, built from the
text (blank lines separate paragraphs). Jira has no idempotency key, so an issue is
created once: a failure after the request was sent is not repeated (it might create
a duplicate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from eventhub.errors import ConfigError, TransientError, UserError
from eventhub.hookspecs import hookimpl
from eventhub.http import HttpError
from eventhub.log import redact_text

from .rest import RESTIntegration

ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]+-\d+$")
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]+$")
_ISSUE_ID = re.compile(r"^\d+$")


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


class JiraIntegration(RESTIntegration):
    """Jira Cloud (REST v3) or Server/Data Center (``api_version = 2``).

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`
    plus ``api_version``.
    """

    kind = "jira"

    def __init__(
        self, base_url: str | None = None, *, api_version: int = 3, **settings: Any
    ) -> None:
        if api_version not in (2, 3) or isinstance(api_version, bool):
            raise ConfigError("jira integration: api_version must be 2 or 3")
        super().__init__(base_url, **settings)
        self.api_version = api_version

    def create_issue(
        self,
        project_key: str,
        summary: str,
        description: str | Mapping[str, Any] | None = None,
        issue_type: str = "Task",
        **fields: Any,
    ) -> dict[str, Any]:
        """Create an issue.

        Args:
            project_key: The project (``"PROJ"``).
            summary: The title.
            description: Plain text (turned into ADF on v3), or an ADF document.
            issue_type: The issue type's name.
            **fields: Further fields (``labels=[...]``, ``priority={"name": ...}``,
                ``customfield_10010=...``).

        Returns:
            Jira's answer: ``id``, ``key`` and ``self``.

        Raises:
            UserError: for a malformed project key (nothing is sent).
            JiraError: when Jira refuses the issue (the fields it names).
        """
        if not isinstance(project_key, str) or not PROJECT_KEY.match(project_key):
            raise UserError(f"jira: {project_key!r} is not a project key (like PROJ)")
        issue: dict[str, Any] = {
            **fields,
            "project": {"key": project_key},
            "summary": summary,
            "issuetype": {"name": issue_type},
        }
        if isinstance(description, Mapping):
            if self.api_version == 2:
                raise UserError("jira: api_version 2 takes a plain-text description")
            issue["description"] = dict(description)
        elif description:
            issue["description"] = (
                adf_document(description) if self.api_version == 3 else description
            )
        result: dict[str, Any] = self._call("POST", "issue", json={"fields": issue})
        return result

    def get_issue(
        self, issue_key: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """An issue by key (``PROJ-12``) or numeric id.

        Args:
            issue_key: The issue.
            fields: The fields to return (default: Jira's navigable fields).

        Raises:
            UserError: for a malformed key (nothing is sent).
            JiraIssueNotFound: when it does not exist or is not visible.
        """
        if not isinstance(issue_key, str) or not (
            ISSUE_KEY.match(issue_key) or _ISSUE_ID.match(issue_key)
        ):
            raise UserError(f"jira: {issue_key!r} is not an issue key (like PROJ-12)")
        params = {"fields": ",".join(fields)} if fields is not None else None
        path = f"issue/{quote(issue_key, safe='')}"
        result: dict[str, Any] = self._call("GET", path, params=params)
        return result

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._json(method, f"rest/api/{self.api_version}/{path}", **kwargs)
        except HttpError as exc:
            if isinstance(exc, JiraError | TransientError) or exc.status is None:
                raise
            if 400 <= exc.status < 500:
                raise JiraError.from_http_error(exc) from None
            raise


def adf_document(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: blank lines separate
    paragraphs, single line breaks are kept."""
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip()):
        content: list[dict[str, Any]] = []
        for i, line in enumerate(block.split("\n")):
            if i:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        if content:
            paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


@hookimpl
def register_integrations(register: Any) -> None:
    register(JiraIntegration)
