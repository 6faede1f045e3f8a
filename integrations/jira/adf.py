"""Atlassian Document Format (ADF), the JSON rich text of Jira Cloud's REST API v3:
text to ADF (:func:`adf_document`, for the descriptions the integration sends) and
ADF to text (:func:`adf_text`, for the issues the source indexes).

An ADF document is a tree of nodes (``{"type": ..., "content": [...], "attrs":
{...}}``); text nodes carry ``text`` and formatting ``marks``. See
https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["adf_document", "adf_text"]

#: Nodes deeper than this are dropped (a hostile document cannot exhaust the stack).
MAX_DEPTH = 64

# Block nodes whose children are blocks: their lines are their children's lines.
_CONTAINERS = frozenset(
    {
        "doc",
        "blockquote",
        "panel",
        "layoutSection",
        "layoutColumn",
        "bodiedExtension",
        "multiBodiedExtension",
        "extensionFrame",
        "decisionList",
        "taskList",
        "tableCell",
        "tableHeader",
        "mediaSingle",
        "mediaGroup",
    }
)
# Nodes with nothing a person reads as text.
_SILENT = frozenset(
    {"rule", "media", "mediaInline", "placeholder", "extension", "inlineExtension"}
)


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


def adf_text(document: Any) -> str:
    """The text of an ADF document, one line per paragraph, heading, list item,
    code line and table row (its cells joined by ``" | "``).

    Mentions become the name shown (``@Jane Doe``), emoji their text, dates their
    ISO day, links and cards their text or URL; media and macros are dropped. A
    value that is not a node (a string, None) is taken as plain text.
    """
    if document is None:
        return ""
    if isinstance(document, str):
        return document
    return "\n".join(_lines(document, 0)).strip()


def _lines(node: Any, depth: int) -> list[str]:
    """The lines of a block node."""
    if not isinstance(node, Mapping) or depth > MAX_DEPTH:
        return []
    kind = node.get("type")
    children = _children(node)
    if kind in ("paragraph", "heading"):
        return _inline(children, depth + 1).split("\n")
    if kind == "codeBlock":
        return "".join(_text_of(c) for c in children).split("\n")
    if kind in ("bulletList", "orderedList"):
        return _list(node, children, depth)
    if kind in ("taskItem", "decisionItem"):
        done = kind == "taskItem" and _attrs(node).get("state") == "DONE"
        box = ("[x] " if done else "[ ] ") if kind == "taskItem" else ""
        return [box + line for line in _inline(children, depth + 1).split("\n")]
    if kind == "table":
        return [_row(row, depth + 1) for row in children if _is(row, "tableRow")]
    if kind in ("expand", "nestedExpand"):
        title = _attrs(node).get("title")
        head = [title] if isinstance(title, str) and title else []
        return head + _blocks(children, depth)
    if kind in _SILENT:
        return []
    if kind in ("blockCard", "embedCard"):
        url = _attrs(node).get("url")
        return [url] if isinstance(url, str) else []
    if kind in _CONTAINERS or kind == "listItem":
        return _blocks(children, depth)
    # An inline node at block level, or a node type this code does not know.
    text = _inline([node], depth)
    return text.split("\n") if text else _blocks(children, depth)


def _blocks(children: list[Any], depth: int) -> list[str]:
    lines: list[str] = []
    for child in children:
        lines += _lines(child, depth + 1)
    return lines


def _list(node: Mapping[str, Any], children: list[Any], depth: int) -> list[str]:
    ordered = node.get("type") == "orderedList"
    start = _attrs(node).get("order", 1)
    number = start if isinstance(start, int) and not isinstance(start, bool) else 1
    lines: list[str] = []
    for item in children:
        item_lines = [line for line in _lines(item, depth + 1) if line.strip()]
        if not item_lines:
            continue
        bullet = f"{number}. " if ordered else "- "
        number += 1
        lines.append(bullet + item_lines[0])
        lines += ["  " + line for line in item_lines[1:]]
    return lines


def _row(row: Mapping[str, Any], depth: int) -> str:
    cells = []
    for cell in _children(row):
        lines = [line.strip() for line in _lines(cell, depth + 1)]
        cells.append(" ".join(line for line in lines if line))
    return " | ".join(cells)


def _inline(nodes: list[Any], depth: int) -> str:
    """The text of inline nodes; a hard break is a new line."""
    parts: list[str] = []
    for node in nodes:
        if not isinstance(node, Mapping) or depth > MAX_DEPTH:
            continue
        kind = node.get("type")
        attrs = _attrs(node)
        if kind == "text":
            parts.append(_text_of(node))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            name = attrs.get("text") or attrs.get("id")
            if isinstance(name, str) and name:
                parts.append(name if name.startswith("@") else f"@{name}")
        elif kind == "emoji":
            shown = attrs.get("text") or attrs.get("shortName")
            parts.append(shown if isinstance(shown, str) else "")
        elif kind == "date":
            parts.append(_day(attrs.get("timestamp")))
        elif kind == "status":
            parts.append(str(attrs.get("text") or ""))
        elif kind == "inlineCard":
            url = attrs.get("url")
            parts.append(url if isinstance(url, str) else "")
        elif kind in _SILENT:
            continue
        else:  # inline content nested in something unknown, or block content
            inner = _children(node)
            if inner:
                parts.append(_inline(inner, depth + 1))
            elif isinstance(node.get("text"), str):
                parts.append(node["text"])
    return "".join(parts)


def _day(timestamp: Any) -> str:
    """An ADF date node's day: its ``timestamp`` is milliseconds (a string)."""
    try:
        millis = int(str(timestamp))
        return datetime.fromtimestamp(millis / 1000, UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):
        return ""


def _text_of(node: Any) -> str:
    text = node.get("text") if isinstance(node, Mapping) else None
    return text if isinstance(text, str) else ""


def _children(node: Mapping[str, Any]) -> list[Any]:
    content = node.get("content")
    return content if isinstance(content, list) else []


def _attrs(node: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, Mapping) else {}


def _is(node: Any, kind: str) -> bool:
    return isinstance(node, Mapping) and node.get("type") == kind
