"""``filesystem``: documents from a folder (a local disk or a mounted share).

::

    [sources.docs]
    kind = "filesystem"
    path = "docs"                      # relative to the config file
    include = ["**/*.md", "**/*.pdf"]  # default: every supported file
    exclude = ["drafts/**"]            # hidden files and folders are always left out
    skip_hard_links = false            # true: files with more than one link are skipped
    max_chars = 5000000                # and the other limits of text extraction

Text comes from the formats of :mod:`eventhub.documents.extract` (text, Markdown,
HTML, e-mail, PDF, DOCX), within the source's limits. A file that cannot be read
(encrypted, malformed, over a limit, without text, a name that is not UTF-8) is
recorded as skipped with the reason, and the sync goes on.

Nothing outside the root is ever opened: ids with ``..`` or an absolute path are
refused, symbolic links are followed only to files inside the root, and only regular
files are read (never a FIFO, socket or device). A hard link is a file at its own
path: indexed under that path, wherever its other links are (see docs/documents.md),
unless ``skip_hard_links`` is set.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from eventhub.documents import Document, Source, SourceError
from eventhub.documents.extract import (
    ExtractionError,
    LimitExceeded,
    extract,
    supported_suffixes,
)
from eventhub.errors import ConfigError
from eventhub.hookspecs import hookimpl

log = structlog.get_logger("eventhub.integrations.filesystem")

_HIDDEN = re.compile(r"(^|/)\.[^/]")


class FilesystemSource(Source):
    """Documents from the files under a root folder.

    Args:
        path: The root folder.
        include: Glob patterns (``**`` crosses folders) of files to index.
        exclude: Glob patterns of files to leave out.
        skip_hard_links: Skip files with more than one hard link (their other
            links may be outside the root).
        **config: The extraction limits (``max_bytes``, ``max_chars`` ...).
    """

    kind = "filesystem"
    ordered = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        skip_hard_links: bool = False,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"filesystem source: {root} is not a folder")
        self.root = root.resolve()
        self._include = [_glob_regex(p) for p in include]
        self._exclude = [_glob_regex(p) for p in exclude]
        self._suffixes = supported_suffixes()
        self.skip_hard_links = skip_hard_links
        # Files that could not be read, by id: (device, inode, size, mtime), reason.
        self._unreadable: dict[str, tuple[tuple[int, ...], str]] = {}

    # Source -------------------------------------------------------------------

    def ids(self) -> Iterator[str]:
        """Every id under the root.

        Raises:
            SourceError: at the end, when a folder could not be read: the listing
                is then incomplete, and the sync deletes nothing.
        """
        unreadable: list[str] = []
        for rel, _ in self._files(unreadable):
            yield rel
        if unreadable:
            more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
            raise SourceError(
                f"filesystem source {self.name!r}: cannot read {unreadable[0]}{more}"
            )

    def changes(self, since: datetime | None) -> Iterator[Document]:
        floor = since.timestamp() if since is not None else None
        unreadable: list[str] = []
        listed = [
            (mtime, rel)
            for rel, mtime in self._files(unreadable)
            if floor is None or mtime >= floor
        ]
        for problem in unreadable:
            log.warning("folder not read", source=self.name, problem=problem)
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
            updated = datetime.fromtimestamp(info.st_mtime, UTC)
            reason = self._refusal(info)
            if reason is not None:
                self.skip(id, reason, updated)
                return None
            mark = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            known = self._unreadable.get(id)
            if known is not None and known[0] == mark:
                self.skip(id, known[1], updated)  # the same file: no second read
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                raw = handle.read(self.limits.max_bytes + 1)
        finally:
            os.close(fd)
        try:
            found = extract(raw, id, limits=self.limits)
        except ExtractionError as exc:
            self._unreadable[id] = (mark, exc.reason)
            self.skip(id, exc.reason, updated)
            return None
        self._unreadable.pop(id, None)
        return Document(
            id=id,
            source=self.name,
            title=found.title or PurePosixPath(id).stem,
            text=found.text,
            url=path.as_uri(),
            updated_at=updated,
            metadata={"path": id, "extension": PurePosixPath(id).suffix.lower()},
        )

    def _refusal(self, info: os.stat_result) -> str | None:
        """Why an opened file is not read, or None."""
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > self.limits.max_bytes:
            limit = self.limits.max_bytes
            return LimitExceeded(
                "max_bytes", limit, f"too large: {info.st_size} bytes"
            ).reason
        if self.skip_hard_links and info.st_nlink > 1:
            return f"a hard link ({info.st_nlink} links; skip_hard_links is set)"
        return None

    # Paths --------------------------------------------------------------------

    def _files(self, unreadable: list[str]) -> Iterator[tuple[str, float]]:
        """(relative path, mtime) of every candidate file, without following
        symbolic links out of the root or into loops. Folders that cannot be
        read are added to ``unreadable`` (as "PATH (reason)")."""

        def note(exc: OSError) -> None:
            where = Path(exc.filename or self.root)
            rel = where.relative_to(self.root).as_posix() if where != self.root else "."
            unreadable.append(f"{_printable(rel)} ({exc.strerror})")

        for folder, dirs, files in os.walk(self.root, followlinks=False, onerror=note):
            base = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = base / name
                rel = path.relative_to(self.root).as_posix()
                if not self._wanted(rel):
                    continue
                if not _is_utf8(rel):
                    # Ids, events and the database hold UTF-8 text only.
                    self.skip(_printable(rel), "file name is not UTF-8 (rename it)")
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
        if (
            _HIDDEN.search(rel)
            or PurePosixPath(rel).suffix.lower() not in self._suffixes
        ):
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
            or not _is_utf8(id)
            or id.startswith("/")
            or ".." in parts
            or not self._wanted(id)
        ):
            self.skip(
                _printable(id), "not a file of this source (unsafe or excluded path)"
            )
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


def _is_utf8(name: str) -> bool:
    """False for a name holding lone surrogates: bytes that were not UTF-8, which
    ``os`` decodes with ``surrogateescape``."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    """A name as UTF-8 text, undecodable bytes shown as ``\\xNN``."""
    try:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


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


@hookimpl
def register_integrations(register: Any) -> None:
    register(FilesystemSource)
