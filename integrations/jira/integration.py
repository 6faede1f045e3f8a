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

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from eventhub.errors import UserError

from ..rest import RESTIntegration
from .adf import adf_document
from .api import api_version as checked_api_version
from .api import call

__all__ = ["ISSUE_KEY", "PROJECT_KEY", "JiraIntegration"]

ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]+-\d+$")
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]+$")
_ISSUE_ID = re.compile(r"^\d+$")


class JiraIntegration(RESTIntegration):
    """Jira Cloud (REST v3) or Server/Data Center (``api_version = 2``).

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`
    plus ``api_version``.
    """

    kind = "jira"

    def __init__(
        self, base_url: str | None = None, *, api_version: int = 3, **settings: Any
    ) -> None:
        version = checked_api_version(api_version, "jira integration")
        super().__init__(base_url, **settings)
        self.api_version = version

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
        return call(self, self.api_version, method, path, **kwargs)
