"""Slack messages as plain text: the markup of ``text`` made readable.

Slack writes references in angle brackets and escapes ``&``, ``<`` and ``>``
(https://docs.slack.dev/messaging/formatting-message-text): ``<@U123>`` a user,
``<#C123|general>`` a channel, ``<!here>`` a broadcast, ``<!subteam^S1|@ops>`` a
user group, ``<!date^1392734382^{date}|Feb 18>`` a date with its fallback,
``<https://example.com|label>`` a link. They become ``@name``, ``#general``,
``@here``, ``@ops``, ``Feb 18`` and ``label (https://example.com)``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any

_REFERENCE = re.compile(r"<([^<>\n]*)>")
_SPACE = re.compile(r"\s+")

Names = Callable[[str], str]


def render(text: str, user: Names, channel: Names) -> str:
    """``text`` with its references replaced and its escapes undone.

    Args:
        text: A message's ``text``.
        user: The name to show for a user id.
        channel: The name to show for a channel id.
    """

    def replace(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            return "@" + (label.lstrip("@") or user(target[1:]))
        if target.startswith("#"):
            return "#" + (label or channel(target[1:]))
        if target.startswith("!"):
            command = target[1:]
            if label:
                return label
            if command.startswith("subteam^"):
                return "@" + command.split("^", 1)[1]
            return "" if command.startswith("date^") else "@" + command
        url = target
        if label and label != url and label != url.removeprefix("mailto:"):
            return f"{label} ({url.removeprefix('mailto:')})"
        return url.removeprefix("mailto:")

    return html.unescape(_REFERENCE.sub(replace, text))


def message_text(message: Mapping[str, Any], user: Names, channel: Names) -> str:
    """What a person reads in a message: its text, or the fallback of its
    attachments when it has none (bots post those), and the names of its files."""
    parts = [render(str(message.get("text") or ""), user, channel).strip()]
    if not parts[0]:
        for attachment in _dicts(message.get("attachments")):
            fallback = attachment.get("text") or attachment.get("fallback")
            if isinstance(fallback, str) and fallback.strip():
                parts.append(render(fallback, user, channel).strip())
    for file in _dicts(message.get("files")):
        name = file.get("title") or file.get("name")
        if isinstance(name, str) and name.strip():
            parts.append(f"[file: {name.strip()}]")
    return "\n".join(p for p in parts if p)


def first_words(text: str, limit: int = 60) -> str:
    """The start of ``text`` for a title: its first line, cut at a word within
    ``limit`` characters."""
    line = _SPACE.sub(" ", text.strip().split("\n", 1)[0]).strip()
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0] if " " in line[:limit] else line[:limit]
    return cut.rstrip(" ,;:.-") + "…"


def display_name(user: Mapping[str, Any]) -> str | None:
    """The name Slack shows for a ``users.info`` user: the display name, else the
    real name, else the user name."""
    profile = user.get("profile")
    if not isinstance(profile, dict):
        profile = {}
    for value in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
