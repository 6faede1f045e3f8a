"""Confluence's storage format (XHTML with ``ac:`` and ``ri:`` elements) as text.

Headings, paragraphs, list items, table rows (cells joined by `` | ``) and code
blocks become lines; a blank line ends a block. Macro markup is dropped: the
parameters of structured macros, placeholders, resource identifiers (``ri:page``,
``ri:attachment`` ...), task ids and statuses, the fallback copy of an ADF
extension. What a reader sees inside a macro stays: its rich-text body (panels,
notes, expands), its plain-text body (code, noformat) and link bodies.

The stdlib's :class:`html.parser.HTMLParser` reads it: it is lenient with markup
that is not well formed, and lowercases ``ac:structured-macro`` like any tag.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["storage_to_text"]

#: Elements whose whole content is markup, never text a reader sees.
_DROPPED = frozenset(
    {
        "ac:parameter",
        "ac:placeholder",
        "ac:adf-attribute",
        "ac:adf-fallback",
        "ac:task-id",
        "ac:task-uuid",
        "ac:task-status",
        "ac:emoticon",
        "script",
        "style",
    }
)
#: Blocks that end with a blank line.
_PARAGRAPHS = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "blockquote",
        "table",
        "ul",
        "ol",
        "dl",
        "ac:layout-section",
        "ac:layout-cell",
        "ac:rich-text-body",
        "ac:plain-text-body",
        "ac:adf-content",
        "ac:task-list",
    }
)
#: Blocks that end a line.
_LINES = frozenset(
    {"li", "tr", "dt", "dd", "div", "section", "hr", "ac:task", "ac:task-body"}
)
_CELLS = frozenset({"td", "th"})
#: Where whitespace is kept as it is.
_VERBATIM = frozenset({"pre", "ac:plain-text-body", "ac:plain-text-link-body"})
_VOID = frozenset(
    {"br", "hr", "img", "col", "input", "meta", "link", "area", "base", "wbr"}
)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_CONTROL = dict.fromkeys([0, 1, 2])
_RUN = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_LINE, _PARAGRAPH = "\x00L", "\x00P"
_KEPT_SPACE, _KEPT_TAB = "\x01", "\x02"
_MARKS = re.compile(r"(?:[ \t]*\x00[LP])+[ \t]*")


def storage_to_text(storage: str) -> str:
    """The text of a storage-format body.

    Args:
        storage: The XHTML of ``body.storage.value``.

    Returns:
        Its text, lines trimmed, blocks separated by one blank line.
    """
    # CDATA (code and link bodies) as escaped text: the same on every Python
    # version, whatever its parser makes of CDATA outside foreign content.
    parser = _StorageParser()
    parser.feed(_CDATA.sub(lambda m: html.escape(m.group(1), quote=False), storage))
    parser.close()
    return parser.text()


class _StorageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._stack: list[str] = []
        self._dropped = 0
        self._verbatim = 0
        self._cells = 0  # depth inside table cells: blocks there stay on the row
        self._row_cells: list[int] = []
        self._items = 0  # depth inside list items: paragraphs there are lines
        self._bullet = False  # a list item's "- " waits for its first text

    # -- parser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs))
        if tag not in _VOID:
            self._stack.append(tag)
        else:
            self._close(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs))
        self._close(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._stack:
            return  # a stray end tag
        while self._stack:
            opened = self._stack.pop()
            self._close(opened)
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        data = data.translate(_CONTROL)
        if self._verbatim and not self._cells:
            # Spaces of code kept through the clean-up of text().
            data = data.replace("\r\n", "\n").replace("\r", "\n")
            data = data.replace(" ", _KEPT_SPACE).replace("\t", _KEPT_TAB)
        else:
            data = _RUN.sub(" ", data)
        if self._bullet and data.strip():
            self._out.append("- ")
            self._bullet = False
        self._out.append(data)

    # -- structure

    def _open(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag in _DROPPED or tag.startswith("ri:"):
            self._dropped += 1
        if self._dropped:
            return
        if tag in _PARAGRAPHS or tag in _LINES:
            self._break(_LINE)
        if tag in _VERBATIM:
            self._verbatim += 1
        if tag == "tr":
            self._row_cells.append(0)
        elif tag in _CELLS:
            if self._row_cells:
                if self._row_cells[-1]:
                    self._out.append(" | ")
                self._row_cells[-1] += 1
            self._cells += 1
        elif tag == "li":
            self._items += 1
            self._bullet = True
        elif tag == "time" and attrs.get("datetime"):
            self._out.append(f" {attrs['datetime']} ")

    def _close(self, tag: str) -> None:
        dropped = tag in _DROPPED or tag.startswith("ri:")
        if self._dropped:
            if dropped:
                self._dropped -= 1
            return
        if tag in _VERBATIM:
            self._verbatim -= 1
        if tag == "tr" and self._row_cells:
            self._row_cells.pop()
        elif tag in _CELLS and self._cells:
            self._cells -= 1
        elif tag == "li" and self._items:
            self._items -= 1
            self._bullet = False
        if tag == "br":
            self._break("\n")
        elif tag in _PARAGRAPHS:
            self._break(_LINE if self._items else _PARAGRAPH)
        elif tag in _LINES:
            self._break(_LINE)

    def _break(self, mark: str) -> None:
        # Inside a table cell a paragraph (or a line break) stays on the row.
        self._out.append(" " if self._cells else mark)

    def text(self) -> str:
        # Runs of block ends (with only spaces between) become one line end, or
        # one blank line when any of them ends a paragraph.
        joined = _MARKS.sub(
            lambda m: "\n\n" if _PARAGRAPH in m.group(0) else "\n",
            "".join(self._out),
        )
        lines = [
            _RUN.sub(" ", line)
            .strip()
            .replace(_KEPT_SPACE, " ")
            .replace(_KEPT_TAB, "\t")
            .rstrip()
            for line in joined.split("\n")
        ]
        return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
