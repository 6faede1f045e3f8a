"""Text from document files: one registry of formats, shared by every source.

:func:`extract` turns a document's bytes (or a file) into :class:`ExtractedText`,
choosing the format by media type, else by the name's extension. Every failure is an
:class:`ExtractionError` with a reason a person can act on, which a source records as
the document's skip reason: a parser's own exception (pypdf, lxml, the e-mail package)
never escapes, except ``MemoryError``, which the limits keep out of reach and which is
never hidden. A document over one of its :class:`ExtractionLimits` is refused with
:class:`LimitExceeded` as soon as the excess is known: a zip's members are counted
before it is opened and inflated bytes while they inflate, PDF pages before they are
parsed, e-mail nesting while it is parsed, characters as they are produced.

Formats: plain text and Markdown, HTML (lxml's parser: linear, no scripts or styles;
a tree and XSLT for a page of common size, else streamed),
e-mail (sender, subject and body; attachments are passed over as they are parsed,
never held), PDF (pypdf) and DOCX (the document part streamed
through lxml, so memory stays flat whatever the size).
"""

from __future__ import annotations

import email.feedparser
import email.message
import email.policy
import io
import os
import re
import struct
import threading
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from email.feedparser import (  # type: ignore[attr-defined]  # not in typeshed
    BufferedSubFile,
    NeedMoreData,
)
from pathlib import PurePosixPath
from typing import Any

from ..errors import ConfigError, EventHubError, MissingDependency

MiB = 1024 * 1024
_CHUNK = 64 * 1024
#: A PDF page is refused past this many characters shown, or bytes of content: no
#: page of text holds so many, and pypdf's time per page grows with the square of
#: its text, its memory with its content.
PDF_PAGE_CHARS = 100_000
PDF_PAGE_BYTES = 4 * MiB
#: A longer title is no title (the model reads it with every chunk).
TITLE_CHARS = 300
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ExtractionLimits:
    """How much work one document may cost; a document over any limit is skipped.

    Attributes:
        max_bytes: Largest input (a file, a download).
        max_inflated_bytes: Most bytes decompressed for one document: the XML parts
            of a .docx (declared sizes are checked before inflating, actual sizes
            while inflating) and the page content streams of a PDF (page by page,
            before each is parsed).
        max_zip_members: Most members of a zip-based document (.docx), counted in
            its central directory before the zip is opened: a reader holds an
            entry of a few hundred bytes for each.
        max_pdf_pages: Most pages of a PDF.
        max_pdf_operators: Most drawing operators a PDF's pages may run (a form drawn
            many times counts each time).
        max_mime_depth: Deepest nesting of multiparts and attached messages in an
            e-mail.
        max_chars: Most characters of text from one document.
    """

    max_bytes: int = 50 * MiB
    max_inflated_bytes: int = 32 * MiB
    max_zip_members: int = 10_000
    max_pdf_pages: int = 1000
    max_pdf_operators: int = 1_000_000
    max_mime_depth: int = 16
    max_chars: int = 5_000_000

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")


LIMIT_NAMES = frozenset(f.name for f in fields(ExtractionLimits))
DEFAULT_LIMITS = ExtractionLimits()


@dataclass(frozen=True)
class ExtractedText:
    """A document's title (empty when it has none) and plain text."""

    title: str
    text: str


class ExtractionError(EventHubError):
    """A document without extractable text; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class LimitExceeded(ExtractionError):
    """A document over one of its :class:`ExtractionLimits` (``limit`` names it)."""

    def __init__(self, limit: str, value: int, found: str) -> None:
        self.limit = limit
        self.value = value
        super().__init__(f"{found} (limit {limit} = {value})")


Extractor = Callable[[bytes, ExtractionLimits], ExtractedText]


@dataclass(frozen=True)
class Format:
    """A document format: its name in skip reasons, its extractor, the extensions
    and media types it is chosen by."""

    name: str
    extract: Extractor
    suffixes: tuple[str, ...]
    media_types: tuple[str, ...] = ()


_FORMATS: list[Format] = []


def _format(
    name: str, suffixes: Iterable[str], media_types: Iterable[str] = ()
) -> Callable[[Extractor], Extractor]:
    def register(function: Extractor) -> Extractor:
        _FORMATS.append(Format(name, function, tuple(suffixes), tuple(media_types)))
        return function

    return register


def supported_suffixes() -> frozenset[str]:
    """The extensions (lower case, with the dot) of every format."""
    return frozenset(s for f in _FORMATS for s in f.suffixes)


def format_for(name: str, content_type: str | None = None) -> Format | None:
    """The format of a document: by media type when given and known, else by the
    extension of ``name``; None when neither is supported."""
    if content_type:
        media_type = content_type.partition(";")[0].strip().lower()
        for candidate in _FORMATS:
            if media_type in candidate.media_types:
                return candidate
    suffix = PurePosixPath(name).suffix.lower()
    return next((f for f in _FORMATS if suffix in f.suffixes), None)


def extract(
    data: bytes | bytearray | str | os.PathLike[str],
    name: str,
    content_type: str | None = None,
    limits: ExtractionLimits = DEFAULT_LIMITS,
) -> ExtractedText:
    """The title and text of a document.

    Args:
        data: The document's bytes, or the path of a file holding them (a file
            that cannot be opened is an ``ExtractionError`` too).
        name: Its name (a file name or path): the extension picks the format when
            ``content_type`` does not.
        content_type: Its media type, if the source knows it.
        limits: The work it may cost.

    Returns:
        The text, with any lone surrogate replaced (valid UTF-8 throughout).

    Raises:
        ExtractionError: unsupported, unreadable or without text; ``LimitExceeded``
            when over a limit.
    """
    found = format_for(name, content_type)
    if found is None:
        suffix = PurePosixPath(name).suffix.lower()
        raise ExtractionError(f"unsupported format {suffix or '(no extension)'}")
    try:
        raw = data if isinstance(data, bytes) else _read(data, limits)
    except OSError as exc:
        raise ExtractionError(f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > limits.max_bytes:
        raise LimitExceeded(
            "max_bytes", limits.max_bytes, f"too large: {len(raw)} bytes"
        )
    try:
        result = found.extract(raw, limits)
    except ExtractionError:
        raise
    except MemoryError:
        raise  # the limits keep this out of reach; if it happens, it must show
    except RecursionError:
        raise ExtractionError(f"unreadable {found.name} (nested too deeply)") from None
    except MissingDependency as exc:
        raise ExtractionError(f"cannot read {found.name}: {exc}") from None
    except Exception as exc:  # a parser's own error, whatever its kind
        raise ExtractionError(
            f"unreadable {found.name} ({type(exc).__name__}: {_brief(exc)})"
        ) from exc
    text = _valid(result.text)
    if len(text) > limits.max_chars:
        raise LimitExceeded(
            "max_chars", limits.max_chars, f"too much text: {len(text)} characters"
        )
    if not text.strip():
        raise ExtractionError("no text")
    title = " ".join(_valid(result.title).split())
    return ExtractedText(title if len(title) <= TITLE_CHARS else "", text)


def _read(data: bytearray | str | os.PathLike[str], limits: ExtractionLimits) -> bytes:
    if isinstance(data, bytearray):
        return bytes(data)
    with open(data, "rb") as handle:
        return handle.read(limits.max_bytes + 1)


def _valid(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (from broken PDFs) replaced."""
    if text.isascii() or not _SURROGATES.search(text):  # isascii: a C scan
        return text
    return _SURROGATES.sub("\ufffd", text)


def _brief(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return _valid(message if len(message) <= 200 else message[:199] + "…")


class _Budget:
    """Counts characters as an extractor produces them."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limit = limits.max_chars
        self.used = 0

    def spend(self, text: str) -> None:
        self.used += len(text)
        if self.used > self.limit:
            raise LimitExceeded(
                "max_chars", self.limit, f"too much text: over {self.limit} characters"
            )


def _lxml() -> Any:
    try:
        from lxml import etree
    except ImportError:
        raise MissingDependency("lxml", "rag") from None
    return etree


# Plain text ---------------------------------------------------------------------


def decode_text(raw: bytes) -> str:
    """Decode by byte-order mark (UTF-8/16/32), UTF-16 recognised by its zero bytes
    when it has no mark, else UTF-8, else cp1252."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if raw.startswith(bom):
            return raw.decode(codec, errors="replace")
    unmarked = _utf16_without_bom(raw)
    if unmarked:
        return raw.decode(unmarked, errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _utf16_without_bom(raw: bytes) -> str | None:
    """UTF-16 text in Latin script has a zero in every other byte: on even offsets
    for big-endian, odd ones for little-endian. None when it does not look so."""
    sample = raw[:4096]
    if len(sample) < 4 or len(sample) % 2:
        return None
    even = sample[0::2].count(0) / (len(sample) / 2)
    odd = sample[1::2].count(0) / (len(sample) / 2)
    if even > 0.6 and odd < 0.05:
        return "utf-16-be"
    if odd > 0.6 and even < 0.05:
        return "utf-16-le"
    return None


@_format(
    "text",
    (".txt", ".rst", ".org", ".csv", ".log", ".text"),
    ("text/plain", "text/csv", "text/x-rst", "text/org"),
)
def _plain_text(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    text = decode_text(raw)
    # A title is a short first line standing alone above a blank line.
    head, sep, _ = text.lstrip().partition("\n\n")
    head = head.strip()
    title = head if sep and "\n" not in head and len(head) <= 100 else ""
    return ExtractedText(title, text)


_HEADING = re.compile(r"^#[ \t]+(.*)$", re.MULTILINE)


@_format("Markdown", (".md", ".markdown"), ("text/markdown",))
def _markdown(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    text = decode_text(raw)
    match = _HEADING.search(text)  # no nested quantifiers: linear in any line
    title = match.group(1).strip().rstrip("#").rstrip() if match else ""
    return ExtractedText(title, text)


# HTML ---------------------------------------------------------------------------


class _HTMLText:
    """An lxml parser target keeping the visible text of a page and its title."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCK = frozenset(
        "p div br li tr h1 h2 h3 h4 h5 h6 section article table ul ol pre"
        " blockquote hr".split()
    )

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping = 0
        self._in_title = 0

    def start(self, tag: Any, attrib: Any) -> None:
        tag = str(tag).lower()
        if tag in self._SKIP:
            self._skipping += 1
        if tag == "title":
            self._in_title += 1
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def end(self, tag: Any) -> None:
        tag = str(tag).lower()
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        if tag == "title" and self._in_title:
            self._in_title -= 1
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.budget.spend(data)
            self.parts.append(data)

    def close(self) -> ExtractedText:
        return ExtractedText("".join(self.title), "".join(self.parts))


#: Pages up to this many characters are parsed into a tree and made text by XSLT, in
#: C; larger ones are streamed through :class:`_HTMLText`, whose memory does not grow
#: with the markup (a tree costs a hundred bytes or more per element: 50 MiB of
#: ``<b>`` would be gigabytes).
HTML_TREE_CHARS = 2 * MiB
_HTML_TEXT_XSLT = b"""\
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="utf-8"/>
  <xsl:template match="script|style|noscript|template|head|title"/>
  <xsl:template match="%s">
    <xsl:text>&#10;&#10;</xsl:text><xsl:apply-templates/><xsl:text>&#10;&#10;</xsl:text>
  </xsl:template>
</xsl:stylesheet>
""" % "|".join(sorted(_HTMLText._BLOCK)).encode()


class _HTMLTree(threading.local):
    """What the tree path needs, made once per thread (an XSLT object belongs to the
    thread that made it): the stylesheet, and a test for a tree as deep as the
    parser goes. libxml2's tree parser stops building at a fixed depth (256 in
    today's releases) and silently drops the rest of the page; the limit is found
    by parsing a deeper page once, and a page whose tree reaches it is streamed."""

    def __init__(self) -> None:
        etree = _lxml()
        self.to_text = etree.XSLT(etree.XML(_HTML_TEXT_XSLT))
        probe = etree.fromstring(b"<div>" * 1000, self.parser())
        depth = 1 + max(
            sum(1 for _ in element.iterancestors()) for element in probe.iter()
        )
        self.too_deep = etree.XPath(f"boolean({'/*' * depth})")

    @staticmethod
    def parser() -> Any:
        return _lxml().HTMLParser(
            encoding="utf-8",
            no_network=True,
            recover=True,
            remove_comments=True,
            remove_pis=True,
        )


_HTML_TREE: _HTMLTree | None = None


def _html_tree() -> _HTMLTree:
    global _HTML_TREE
    if _HTML_TREE is None:
        _HTML_TREE = _HTMLTree()
    return _HTML_TREE


def html_text(markup: str, limits: ExtractionLimits = DEFAULT_LIMITS) -> ExtractedText:
    """The title and visible text of an HTML page (no scripts, styles, templates),
    with a blank line around each block (paragraph, heading, list item, row ...).

    Raises:
        LimitExceeded: more than ``limits.max_chars`` characters of text.
    """
    if not markup.strip():
        return ExtractedText("", "")
    etree = _lxml()
    if len(markup) <= HTML_TREE_CHARS:
        tree = _html_tree()
        # As UTF-8 bytes: lxml refuses a str that declares an encoding.
        root = etree.fromstring(markup.encode("utf-8", "replace"), tree.parser())
        if root is not None and not tree.too_deep(root):
            title = root.xpath("string((//title)[1])")
            text = str(tree.to_text(root))
            _Budget(limits).spend(text)
            return ExtractedText(title, text)
        # An empty tree (a page of comments) or one cut short: streamed below.
    target = _HTMLText(_Budget(limits))
    parser = etree.HTMLParser(target=target, no_network=True, recover=True)
    for start in range(0, len(markup), _CHUNK):
        parser.feed(markup[start : start + _CHUNK])
    result: ExtractedText = parser.close()
    return result


@_format("HTML", (".html", ".htm", ".xhtml"), ("text/html", "application/xhtml+xml"))
def _html(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    return html_text(decode_text(raw), limits)


# E-mail -------------------------------------------------------------------------


class _PassingInput(BufferedSubFile):  # type: ignore[misc]
    """The parser's input lines; while ``passing``, a body line is handed on as a
    bare line end (the parser still sees every line, boundaries included, but keeps
    a list of one shared string instead of the part's content)."""

    passing = False

    def readline(self) -> Any:
        line = super().readline()
        if not line:  # the end of the part (a boundary), or of the message
            self.passing = False
        elif self.passing and line is not NeedMoreData:
            return "\n"
        return line


class _NestingLimitedParser(email.feedparser.BytesFeedParser):
    """The stdlib parser, refusing a message nested deeper than allowed as soon as
    it meets the part that is too deep (it parses nesting by recursion), and
    passing over the content of every part that is not text, a multipart or a
    message (an attachment's content is never read, so never held: a 50 MB
    attachment costs a list of pointers to one line end)."""

    def __init__(self, max_depth: int, *, attachments: bool = False) -> None:
        super().__init__(policy=email.policy.default)
        self._max_depth = max_depth
        self._attachments = attachments
        self._input = _PassingInput()

    def feed(self, data: bytes) -> None:  # type: ignore[override]
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):  # decoded a chunk at a time
            super().feed(bytes(view[start : start + _CHUNK]))

    def _parse_headers(self, lines: list[str]) -> None:
        super()._parse_headers(lines)  # type: ignore[misc]
        current: email.message.Message = self._cur  # type: ignore[attr-defined]
        if self._attachments:
            return
        self._input.passing = current.get_content_maintype() not in _READ_PARTS and (
            current.get_content_type() not in _TEXT_PARTS
        )

    def _new_message(self) -> None:
        self._input.passing = False
        super()._new_message()  # type: ignore[misc]
        depth = len(self._msgstack) - 1  # type: ignore[attr-defined]
        if depth > self._max_depth:
            raise LimitExceeded(
                "max_mime_depth",
                self._max_depth,
                f"nested too deeply: parts over {self._max_depth} levels deep",
            )


def _header(message: email.message.Message, name: str) -> str:
    try:
        return str(message.get(name, "") or "")
    except MemoryError:
        raise
    except Exception:  # a header the parser chokes on: keep it as it came
        raw = next((v for k, v in message.raw_items() if k.lower() == name), "")
        return " ".join(str(raw).split())


def _part_text(part: email.message.Message) -> str:
    """A text part's content in its declared charset; an unknown or unusable
    charset (``X-UNKNOWN``, a non-text codec) is read like a plain text file."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset()
    if charset:
        try:
            return payload.decode(charset, errors="replace")
        except (LookupError, ValueError):
            pass
    return decode_text(payload)


def _body(message: Any) -> email.message.Message | None:
    """The part to read: the one ``get_body`` picks, else the first text part (it
    finds none in a multipart/report, say)."""
    found: email.message.Message | None = message.get_body(("plain", "html"))
    if found is None:
        texts = (p for p in message.walk() if p.get_content_type() in _TEXT_PARTS)
        found = next(texts, None)
    return found


_TEXT_PARTS = ("text/plain", "text/html")
_READ_PARTS = ("multipart", "message")


def parse_email(
    raw: bytes, limits: ExtractionLimits = DEFAULT_LIMITS, *, attachments: bool = False
) -> email.message.EmailMessage:
    """A message parsed as the e-mail format parses it (the stdlib parser with the
    default policy, nesting within ``limits.max_mime_depth``), for a source that
    needs more of it than :func:`extract` gives (recipients, attachments).

    Args:
        raw: The message.
        limits: Its limits.
        attachments: Keep the content of the parts that are not text (the format
            passes over it, so an .eml holding a large attachment costs no memory);
            for a source that extracts attachments from a message it has already
            bounded by ``max_bytes``.

    Raises:
        LimitExceeded: nested too deeply.
    """
    parser = _NestingLimitedParser(limits.max_mime_depth, attachments=attachments)
    parser.feed(raw)
    message: email.message.EmailMessage = parser.close()  # type: ignore[assignment]
    return message


def email_header(message: email.message.Message, name: str) -> str:
    """A header as text (decoded from RFC 2047 words); one the parser chokes on
    comes as it was written, whitespace collapsed; missing, empty."""
    return _header(message, name.lower())


def email_body(
    message: email.message.Message, limits: ExtractionLimits = DEFAULT_LIMITS
) -> tuple[email.message.Message | None, str]:
    """The part read as a message's body (its text part, else its HTML part) and
    its text (HTML made text); ``(None, "")`` when it has none.

    Raises:
        LimitExceeded: an HTML body with more than ``limits.max_chars`` of text.
    """
    body = _body(message)
    if body is None:
        return None, ""
    content = _part_text(body)
    if body.get_content_type() == "text/html":
        content = html_text(content, limits).text
    return body, content


@_format("e-mail", (".eml",), ("message/rfc822",))
def _email(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    message = parse_email(raw, limits)
    subject = _header(message, "subject")
    body, content = email_body(message, limits)
    if body is None:
        return ExtractedText(subject, "")
    sender = _header(message, "from")
    header = f"From: {sender}\nSubject: {subject}\n\n" if sender else ""
    return ExtractedText(subject, header + content)


# PDF ----------------------------------------------------------------------------


class _PDFBudget:
    """The work a PDF may still cost: decoded content before pypdf parses a page,
    operators and shown text while it runs them (it stops at once when one is
    over; text that pypdf has not passed on yet cannot be counted, so the text a
    page shows is counted from the operators' strings)."""

    _SHOW = {b"Tj", b"'", b'"', b"TJ"}

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.content = 0
        self.operators = 0
        self.shown = 0
        self.chars = _Budget(limits)

    def page(self, page: Any) -> None:
        """Count a page's decoded content before pypdf parses it."""
        self.shown = 0
        contents = page.get_contents()
        size = len(contents.get_data()) if contents is not None else 0
        if size > PDF_PAGE_BYTES:
            raise ExtractionError(
                f"a page of more than {PDF_PAGE_BYTES} bytes of content"
                " (not a page of text)"
            )
        self.content += size
        limit = self.limits.max_inflated_bytes
        if self.content > limit:
            raise LimitExceeded(
                "max_inflated_bytes",
                limit,
                f"too much page content: over {limit} bytes inflated",
            )

    def operator(self, operator: bytes, operands: Any, *matrices: Any) -> None:
        self.operators += 1
        limit = self.limits.max_pdf_operators
        if self.operators > limit:
            raise LimitExceeded(
                "max_pdf_operators", limit, f"too much to draw: over {limit} operators"
            )
        if operator in self._SHOW and operands:
            strings = operands[0] if operator == b"TJ" else operands[-1:]
            self.shown += sum(len(s) for s in strings if isinstance(s, str | bytes))
            if self.shown > PDF_PAGE_CHARS:
                raise ExtractionError(
                    f"a page showing more than {PDF_PAGE_CHARS} characters"
                    " (not a page of text)"
                )


@_format("PDF", (".pdf",), ("application/pdf",))
def _pdf(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    try:
        from pypdf import PdfReader
        from pypdf.constants import UserAccessPermissions
    except ImportError:
        raise MissingDependency("pypdf", "rag") from None
    reader = PdfReader(io.BytesIO(raw))
    if reader.is_encrypted:
        if not reader.decrypt(""):
            raise ExtractionError("encrypted PDF (a password is needed)")
        permissions = reader.user_access_permissions
        if permissions is not None and not permissions & UserAccessPermissions.EXTRACT:
            raise ExtractionError("copy-protected PDF (text extraction not permitted)")
    count = len(reader.pages)
    if count > limits.max_pdf_pages:
        raise LimitExceeded(
            "max_pdf_pages", limits.max_pdf_pages, f"too many pages: {count}"
        )
    budget = _PDFBudget(limits)
    pages = []
    for page in reader.pages:
        budget.page(page)
        text = (page.extract_text(visitor_operand_before=budget.operator) or "").strip()
        budget.chars.spend(text)
        if text:
            pages.append(text)
    return ExtractedText(_pdf_title(reader), "\n\n".join(pages))


def _pdf_title(reader: Any) -> str:
    try:
        metadata = reader.metadata
        return str(metadata.title or "") if metadata is not None else ""
    except MemoryError:
        raise
    except Exception:  # damaged metadata costs the title, not the document
        return ""


# DOCX ---------------------------------------------------------------------------


class _Package:
    """The parts of a zip-based (OPC) document, inflated within a byte budget."""

    def __init__(self, raw: bytes, limits: ExtractionLimits) -> None:
        members = _zip_members(raw, limits.max_zip_members)
        if members > limits.max_zip_members:
            raise LimitExceeded(
                "max_zip_members",
                limits.max_zip_members,
                f"too many zip members: {members}",
            )
        self._zip = zipfile.ZipFile(io.BytesIO(raw))
        self._limit = limits.max_inflated_bytes
        self._left = limits.max_inflated_bytes

    def __contains__(self, name: str) -> bool:
        return name in self._zip.NameToInfo

    def parse(self, name: str, target: Any) -> Any:
        """Stream a part through an lxml parser feeding ``target``; its declared
        size is checked before, its actual size while it inflates."""
        etree = _lxml()
        info = self._zip.getinfo(name)
        if info.file_size > self._left:
            self._over(f"{name} declares {info.file_size} bytes")
        parser = etree.XMLParser(
            target=target, resolve_entities=False, no_network=True, load_dtd=False
        )
        with self._zip.open(info) as part:
            while chunk := part.read(_CHUNK):
                self._left -= len(chunk)
                if self._left < 0:
                    self._over(f"{name} inflates past the limit")
                parser.feed(chunk)
        return parser.close()

    def _over(self, found: str) -> None:
        raise LimitExceeded(
            "max_inflated_bytes", self._limit, f"inflates too much: {found}"
        )

    def main_part(self) -> str:
        """The main document's part name, from the package relationships."""
        if "_rels/.rels" in self:
            for kind, target in self.parse("_rels/.rels", _Relationships()):
                if kind.endswith("/officeDocument"):
                    return target.lstrip("/")
        return "word/document.xml"


_END = b"PK\x05\x06"  # the end of central directory record
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"
_ENTRY = b"PK\x01\x02"  # a central directory entry


def _zip_members(raw: bytes, limit: int) -> int:
    """How many members a zip's central directory holds, walking it the way
    ``zipfile`` does (the declared count is not trusted: the reader goes by the
    directory's size), stopping once past ``limit``. 0 when the records cannot be
    found: ``zipfile`` then says what is wrong."""
    end = raw.rfind(_END, max(0, len(raw) - 22 - 65535))
    if end < 0 or end + 22 > len(raw):
        return 0
    declared, size = struct.unpack_from("<HI", raw, end + 10)
    locator, record = end - 20, end - 20 - 56  # zip64: both precede, if any
    if (
        record >= 0
        and raw[locator : locator + 4] == _END64_LOCATOR
        and raw[record : record + 4] == _END64
    ):
        declared, size = struct.unpack_from("<QQ", raw, record + 32)
        end = record
    if declared > limit:
        return declared
    position, count = max(0, end - size), 0
    while position + 46 <= end and raw[position : position + 4] == _ENTRY:
        count += 1
        if count > limit:
            break
        name, extra, comment = struct.unpack_from("<HHH", raw, position + 28)
        position += 46 + name + extra + comment
    return count


def _local(tag: Any) -> str:
    return str(tag).rpartition("}")[2]


class _Relationships:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def start(self, tag: Any, attrib: Any) -> None:
        if _local(tag) == "Relationship":
            self.found.append((attrib.get("Type", ""), attrib.get("Target", "")))

    def close(self) -> list[tuple[str, str]]:
        return self.found


class _CoreTitle:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self._inside = 0

    def start(self, tag: Any, attrib: Any) -> None:
        self._inside += _local(tag) == "title"

    def end(self, tag: Any) -> None:
        self._inside -= _local(tag) == "title"

    def data(self, data: str) -> None:
        if self._inside:
            self.parts.append(data)

    def close(self) -> str:
        return "".join(self.parts)


class _WordText:
    """Paragraphs and table rows of a WordprocessingML body in document order, read
    as python-docx reads them: a run's text, tabs and breaks; a row's cells joined
    by `` | ``."""

    _RUN_CHARS = {"tab": "\t", "ptab": "\t", "br": "\n", "cr": "\n"}

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.blocks: list[str] = []
        self._tags: list[str] = []
        self._paragraphs: list[list[str]] = []
        self._cells: list[list[str]] = []
        self._rows: list[list[str]] = []
        self._in_text = False

    def start(self, tag: Any, attrib: Any) -> None:
        name = _local(tag)
        in_run = bool(self._tags) and self._tags[-1] == "r" and self._paragraphs
        self._tags.append(name)
        if name == "p":
            self._paragraphs.append([])
        elif name == "t" and in_run:
            self._in_text = True
        elif name in self._RUN_CHARS and in_run:
            self._put(self._RUN_CHARS[name])
        elif name == "noBreakHyphen" and in_run:
            self._put("-")
        elif name == "tr":
            self._rows.append([])
        elif name == "tc":
            self._cells.append([])

    def end(self, tag: Any) -> None:
        name = self._tags.pop() if self._tags else _local(tag)
        if name == "t":
            self._in_text = False
        elif name == "p" and self._paragraphs:
            self._emit("".join(self._paragraphs.pop()))
        elif name == "tc" and self._cells:
            cell = "\n".join(self._cells.pop()).strip()
            if self._rows:
                self._rows[-1].append(cell)
        elif name == "tr" and self._rows:
            self._emit(" | ".join(self._rows.pop()))

    def data(self, data: str) -> None:
        if self._in_text:
            self._put(data)

    def _put(self, text: str) -> None:
        self.budget.spend(text)
        self._paragraphs[-1].append(text)

    def _emit(self, text: str) -> None:
        if self._cells and not self._paragraphs:
            self._cells[-1].append(text)
        elif text.strip():
            self.blocks.append(text)  # body text, or a text box's inside a paragraph

    def close(self) -> str:
        return "\n\n".join(self.blocks)


@_format(
    "DOCX",
    (".docx",),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
)
def _docx(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    package = _Package(raw, limits)
    main = package.main_part()
    if main not in package:
        raise ExtractionError(f"not a Word document (no {main})")
    text = package.parse(main, _WordText(_Budget(limits)))
    title = ""
    if "docProps/core.xml" in package:
        title = package.parse("docProps/core.xml", _CoreTitle())
    return ExtractedText(title, text)
