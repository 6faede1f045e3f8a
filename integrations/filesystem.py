"""``filesystem``: documents from a folder (a local disk or a mounted share).

::

    [sources.docs]
    kind = "filesystem"
    path = "docs"                      # relative to the config file
    include = ["**/*.md", "**/*.pdf"]  # default: every supported file
    exclude = ["drafts/**"]            # hidden files and folders are always left out

Text comes from .txt/.md/.rst/.org/.csv (UTF-8, UTF-16/32 with a byte-order mark,
else cp1252), .html (scripts and styles dropped), .eml (subject and body), .pdf
(pypdf) and .docx (python-docx). A file that cannot be read (encrypted, copy-protected,
unsupported, too large, without text) is recorded as skipped with the reason.

Nothing outside the root is ever opened: ids with ``..`` or an absolute path are
refused, symbolic links are followed only to files inside the root, and only regular
files are read (never a FIFO, socket or device).
"""

from __future__ import annotations

import email
import email.policy
import html
import os
import re
import stat
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

from eventhub.documents import Document, Source
from eventhub.errors import ConfigError
from eventhub.hookspecs import hookimpl

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".org", ".csv", ".log", ".text"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".eml", ".pdf", ".docx"}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_HIDDEN = re.compile(r"(^|/)\.[^/]")


class Unreadable(Exception):
    """A file that cannot be turned into text; the message is the reason."""


class FilesystemSource(Source):
    """Documents from the files under a root folder.

    Args:
        path: The root folder.
        include: Glob patterns (``**`` crosses folders) of files to index.
        exclude: Glob patterns of files to leave out.
        max_bytes: Larger files are skipped.
    """

    kind = "filesystem"
    ordered = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"filesystem source: {root} is not a folder")
        self.root = root.resolve()
        self._include = [_glob_regex(p) for p in include]
        self._exclude = [_glob_regex(p) for p in exclude]
        self.max_bytes = max_bytes

    # Source -------------------------------------------------------------------

    def ids(self) -> Iterator[str]:
        for rel, _ in self._files():
            yield rel

    def changes(self, since: datetime | None) -> Iterator[Document]:
        floor = since.timestamp() if since is not None else None
        listed = [
            (mtime, rel)
            for rel, mtime in self._files()
            if floor is None or mtime >= floor
        ]
        for _, rel in sorted(listed):
            document = self.fetch(rel)
            if document is not None:
                yield document

    def fetch(self, id: str) -> Document | None:
        path = self._safe_path(id)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.skip(id, f"cannot open: {exc.strerror}")
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self.skip(id, "not a regular file")
                return None
            if info.st_size > self.max_bytes:
                self.skip(id, f"too large ({info.st_size} bytes)")
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                raw = handle.read(self.max_bytes + 1)
        finally:
            os.close(fd)
        try:
            title, text = extract(PurePosixPath(id), raw)
        except Unreadable as exc:
            self.skip(id, str(exc))
            return None
        if not text.strip():
            self.skip(id, "no text")
            return None
        return Document(
            id=id,
            source=self.name,
            title=title or PurePosixPath(id).stem,
            text=text,
            url=path.as_uri(),
            updated_at=datetime.fromtimestamp(info.st_mtime, UTC),
            metadata={"path": id, "extension": PurePosixPath(id).suffix.lower()},
        )

    # Paths --------------------------------------------------------------------

    def _files(self) -> Iterator[tuple[str, float]]:
        """(relative path, mtime) of every candidate file, without following
        symbolic links out of the root or into loops."""
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            base = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = base / name
                rel = path.relative_to(self.root).as_posix()
                if not self._wanted(rel):
                    continue
                try:
                    info = path.lstat()
                    if stat.S_ISLNK(info.st_mode):
                        target = path.resolve(strict=True)
                        if not target.is_relative_to(self.root):
                            self.skip(rel, "symbolic link leaves the root")
                            continue
                        info = target.stat()
                except (OSError, RuntimeError):
                    self.skip(rel, "broken symbolic link")
                    continue
                if not stat.S_ISREG(info.st_mode):
                    self.skip(rel, "not a regular file")
                    continue
                yield rel, info.st_mtime

    def _wanted(self, rel: str) -> bool:
        if _HIDDEN.search(rel) or PurePosixPath(rel).suffix.lower() not in SUPPORTED:
            return False
        if not any(p.fullmatch(rel) for p in self._include):
            return False
        return not any(p.fullmatch(rel) for p in self._exclude)

    def _safe_path(self, id: str) -> Path | None:
        """The file an id names, if it is safely inside the root; else None (and
        the id is recorded as skipped)."""
        parts = PurePosixPath(id).parts
        if (
            not id
            or "\x00" in id
            or "\\" in id
            or id.startswith("/")
            or ".." in parts
            or not self._wanted(id)
        ):
            self.skip(id, "not a file of this source (unsafe or excluded path)")
            return None
        path = self.root.joinpath(*parts)
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            return None
        except (OSError, RuntimeError):
            self.skip(id, "cannot resolve path")
            return None
        if not real.is_relative_to(self.root):
            self.skip(id, "symbolic link leaves the root")
            return None
        return real


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over relative posix paths: ``*`` and ``?`` stay within one folder,
    ``**`` crosses folders (``**/x`` also matches ``x`` at the top)."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


# Text extraction ----------------------------------------------------------------


def extract(path: PurePosixPath, raw: bytes) -> tuple[str, str]:
    """(title, text) of a file's bytes, by its suffix.

    Raises:
        Unreadable: with the reason.
    """
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        text = decode_text(raw)
        if suffix in (".md", ".markdown"):
            return _markdown_title(text), text
        return _heading_line(text), text
    if suffix in HTML_SUFFIXES:
        return html_text(decode_text(raw))
    if suffix == ".eml":
        return email_text(raw)
    if suffix == ".pdf":
        return pdf_text(raw)
    if suffix == ".docx":
        return docx_text(raw)
    raise Unreadable(f"unsupported format {suffix or '(none)'}")


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


def _heading_line(text: str) -> str:
    """A plain-text title: a short first line standing alone above a blank line."""
    head, sep, _ = text.lstrip().partition("\n\n")
    return head.strip() if sep and "\n" not in head.strip() and len(head) <= 100 else ""


def _markdown_title(text: str) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


class _TextParser(HTMLParser):
    """Visible text of an HTML page: no scripts, styles or templates."""

    _SKIP = {"script", "style", "noscript", "template", "head"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "table",
        "ul",
        "ol",
        "pre",
        "blockquote",
        "hr",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        if tag == "title":
            self._in_title = True
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        if tag == "title":
            self._in_title = False
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def html_text(markup: str) -> tuple[str, str]:
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    return " ".join(html.unescape(parser.title).split()), text


def email_text(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(message.get("subject", "") or "")
    body = message.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
    if body is None:
        return subject, ""
    content = body.get_content()
    if body.get_content_type() == "text/html":
        content = html_text(content)[1]
    sender = message.get("from", "")
    header = f"From: {sender}\nSubject: {subject}\n\n" if sender else ""
    return subject, header + str(content)


def pdf_text(raw: bytes) -> tuple[str, str]:
    import io

    try:
        from pypdf import PdfReader
        from pypdf.constants import UserAccessPermissions
        from pypdf.errors import PdfReadError
    except ImportError:
        raise Unreadable(
            "PDF support needs pypdf: pip install 'eventhub[rag]'"
        ) from None
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            if not reader.decrypt(""):
                raise Unreadable("encrypted PDF (a password is needed)")
            if not reader.user_access_permissions & UserAccessPermissions.EXTRACT:
                raise Unreadable("copy-protected PDF (text extraction not permitted)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise Unreadable(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise Unreadable(f"unreadable PDF ({type(exc).__name__})") from None
    return title.strip(), "\n\n".join(p.strip() for p in pages if p.strip())


def docx_text(raw: bytes) -> tuple[str, str]:
    import io
    import zipfile

    try:
        import docx
    except ImportError:
        raise Unreadable(
            "DOCX support needs python-docx: pip install 'eventhub[rag]'"
        ) from None
    try:
        document = docx.Document(io.BytesIO(raw))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise Unreadable(f"unreadable DOCX ({type(exc).__name__})") from None
    parts = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    title = document.core_properties.title or ""
    return title.strip(), "\n\n".join(parts)


@hookimpl
def register_integrations(register: Any) -> None:
    register(FilesystemSource)
