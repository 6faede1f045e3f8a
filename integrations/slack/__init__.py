"""Slack: the ``slack`` integration posts messages (:class:`SlackIntegration`,
``[integrations.NAME]``), the ``slack`` source indexes channels, one document per
thread (:class:`SlackSource`, ``[sources.NAME]``). Both speak the Web API through
one client (``_webapi``): ``{"ok": false}`` answers are :class:`SlackError`, rate
limits are waited out by the HTTP client."""

from __future__ import annotations

from typing import Any

from eventhub.hookspecs import hookimpl

from ._webapi import AUTH_ERRORS, SlackError
from .integration import SlackIntegration
from .source import SlackSource

__all__ = [
    "AUTH_ERRORS",
    "SlackError",
    "SlackIntegration",
    "SlackSource",
    "register_integrations",
]


@hookimpl
def register_integrations(register: Any) -> None:
    register(SlackIntegration)
    register(SlackSource)
