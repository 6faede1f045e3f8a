"""Jira: the ``jira`` integration (create and read issues, :mod:`.integration`)
and the ``jira`` document source (index issues, :mod:`.source`), on Jira Cloud's
REST API v3 or Server/Data Center's v2. Both register under the kind ``jira``: an
integration for ``[integrations.NAME]``, a source for ``[sources.NAME]``."""

from __future__ import annotations

from typing import Any

from eventhub.hookspecs import hookimpl

from .adf import adf_document, adf_text
from .api import JiraError, JiraIssueNotFound
from .integration import ISSUE_KEY, PROJECT_KEY, JiraIntegration
from .source import JiraSource

__all__ = [
    "ISSUE_KEY",
    "PROJECT_KEY",
    "JiraError",
    "JiraIntegration",
    "JiraIssueNotFound",
    "JiraSource",
    "adf_document",
    "adf_text",
]


@hookimpl
def register_integrations(register: Any) -> None:
    register(JiraIntegration)
    register(JiraSource)
