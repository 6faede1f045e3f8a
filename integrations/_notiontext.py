"""Notion's JSON as plain text (API version 2022-06-28): rich text, the title and
properties of a page, and its blocks as lines.

Rich text is flattened to its ``plain_text`` (mentions and equations included).
Blocks become lines: headings with ``#`` marks, list items with ``-`` or their
number, to-dos with ``[ ]`` / ``[x]``, quotes with ``>``, callouts with their
emoji, code as it is, table rows as cells joined by `` | ``, child pages and
databases by their titles; captions of media and bookmarks are kept. Blocks that
hold no text (dividers, breadcrumbs, tables of contents, ``unsupported``) are
dropped. Database properties become ``Name: value`` lines, in name order, from the
values that only change when a person changes them (never the timestamps or the
editors Notion keeps itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CONTAINERS",
    "LEAVES",
    "block_lines",
    "page_title",
    "plain_text",
    "property_lines",
]

#: Blocks whose children are rendered at their own level (not indented).
CONTAINERS = frozenset(
    {"column_list", "column", "synced_block", "table", "template", "unsupported"}
)
#: Blocks never descended into: their children are other documents.
LEAVES = frozenset({"child_page", "child_database", "unsupported"})

_HEADINGS = {"heading_1": "# ", "heading_2": "## ", "heading_3": "### "}
_PREFIXES = {
    "paragraph": "",
    "bulleted_list_item": "- ",
    "quote": "> ",
    "toggle": "",
    "template": "",
}
_MEDIA = ("image", "video", "file", "pdf", "audio")
_LINKS = ("bookmark", "embed", "link_preview")
# Facts Notion keeps itself: they change with every edit, or say nothing.
_VOLATILE = frozenset(
    {"created_time", "last_edited_time", "created_by", "last_edited_by", "button"}
)


def plain_text(rich_text: Any) -> str:
    """The text of a rich text array (its parts' ``plain_text``, joined)."""
    if not isinstance(rich_text, list):
        return ""
    return "".join(
        part["plain_text"]
        for part in rich_text
        if isinstance(part, Mapping) and isinstance(part.get("plain_text"), str)
    )


def page_title(page: Mapping[str, Any]) -> str:
    """The text of a page's title property ("" when it has none)."""
    properties = page.get("properties")
    if isinstance(properties, Mapping):
        for value in properties.values():
            if isinstance(value, Mapping) and value.get("type") == "title":
                return plain_text(value.get("title")).strip()
    return ""


def property_lines(properties: Any) -> list[str]:
    """``Name: value`` lines for a page's properties (the title excepted), in name
    order; empty values, relations and Notion's own timestamps are left out."""
    if not isinstance(properties, Mapping):
        return []
    lines = []
    for name in sorted(properties):
        value = properties[name]
        if not isinstance(value, Mapping) or value.get("type") == "title":
            continue
        text = property_text(value)
        if text:
            lines.append(f"{name}: {text}")
    return lines


def property_text(value: Mapping[str, Any]) -> str:
    """One property value as text ("" for an empty or unsupported one)."""
    kind = value.get("type")
    if not isinstance(kind, str) or kind in _VOLATILE:
        return ""
    data = value.get(kind)
    if kind == "formula" and isinstance(data, Mapping):
        return property_text(data)
    if kind == "rollup" and isinstance(data, Mapping):
        if data.get("type") == "array":
            items = data.get("array")
            parts = [
                property_text(item)
                for item in (items if isinstance(items, list) else [])
                if isinstance(item, Mapping)
            ]
            return ", ".join(p for p in parts if p)
        return property_text(data)
    return _scalar(kind, data).strip()


def _scalar(kind: str, data: Any) -> str:
    if kind in ("rich_text", "title"):
        return plain_text(data)
    if kind == "number":
        return _number(data)
    if kind == "boolean" or kind == "checkbox":
        return (
            {True: "yes", False: "no"}.get(data, "") if isinstance(data, bool) else ""
        )
    if kind in ("select", "status"):
        return _name(data)
    if kind == "multi_select":
        return ", ".join(n for n in (_name(o) for o in _items(data)) if n)
    if kind == "date":
        return _date(data)
    if kind == "people":
        return ", ".join(n for n in (_name(p) for p in _items(data)) if n)
    if kind == "files":
        return ", ".join(n for n in (_name(f) for f in _items(data)) if n)
    if kind in ("url", "email", "phone_number", "string"):
        return data if isinstance(data, str) else ""
    if kind == "unique_id" and isinstance(data, Mapping):
        number = data.get("number")
        if not isinstance(number, int):
            return ""
        prefix = data.get("prefix")
        return (
            f"{prefix}-{number}" if isinstance(prefix, str) and prefix else str(number)
        )
    return ""  # relation (ids only), verification, unknown kinds


def _items(data: Any) -> Iterable[Any]:
    return data if isinstance(data, list) else []


def _name(data: Any) -> str:
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        return str(data["name"])
    return ""


def _number(data: Any) -> str:
    if isinstance(data, bool) or not isinstance(data, int | float):
        return ""
    return str(int(data)) if float(data).is_integer() else repr(data)


def _date(data: Any) -> str:
    if not isinstance(data, Mapping) or not isinstance(data.get("start"), str):
        return ""
    end = data.get("end")
    return f"{data['start']} to {end}" if isinstance(end, str) else str(data["start"])


def block_lines(block: Mapping[str, Any], number: int = 1) -> list[str]:
    """The lines of one block, without its children (``number``: its place in a
    run of numbered list items)."""
    kind = block.get("type")
    if not isinstance(kind, str):
        return []
    data = block.get(kind)
    if not isinstance(data, Mapping):
        return []
    text = plain_text(data.get("rich_text"))
    if kind in _HEADINGS:
        return [_HEADINGS[kind] + text] if text.strip() else []
    if kind in _PREFIXES:
        return [_PREFIXES[kind] + text] if text.strip() else []
    if kind == "numbered_list_item":
        return [f"{number}. {text}"] if text.strip() else []
    if kind == "to_do":
        mark = "[x]" if data.get("checked") is True else "[ ]"
        return [f"{mark} {text}"] if text.strip() else []
    if kind == "callout":
        icon = data.get("icon")
        emoji = icon.get("emoji") if isinstance(icon, Mapping) else None
        if not text.strip():
            return []
        return [f"{emoji} {text}" if isinstance(emoji, str) else text]
    if kind == "code":
        caption = plain_text(data.get("caption"))
        return [line for line in (text, caption) if line.strip()]
    if kind == "equation":
        expression = data.get("expression")
        return [expression] if isinstance(expression, str) and expression else []
    if kind == "table_row":
        cells = data.get("cells")
        row = [plain_text(c) for c in cells] if isinstance(cells, list) else []
        return [" | ".join(row)] if any(c.strip() for c in row) else []
    if kind in ("child_page", "child_database"):
        title = data.get("title")
        return [title] if isinstance(title, str) and title.strip() else []
    if kind in _MEDIA:
        caption = plain_text(data.get("caption"))
        name = data.get("name")
        return [line for line in (caption, name) if isinstance(line, str) and line]
    if kind in _LINKS:
        caption = plain_text(data.get("caption"))
        url = data.get("url")
        return [line for line in (caption, url) if isinstance(line, str) and line]
    return []  # divider, breadcrumb, table_of_contents, link_to_page, unknown
