"""Documents and the sources they come from.

A :class:`Source` yields :class:`Document` objects changed since a time, fetches one by
id, and enumerates every id it holds (which is how deletions are found). The sync
engine (``eventhub.documents.sync``) turns that into an up-to-date search index.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import orjson

from ..errors import EventHubError
from ..integration import Integration
from .extract import DEFAULT_LIMITS, LIMIT_NAMES, ExtractionLimits

_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class Document:
    """One document of a source.

    Attributes:
        id: Stable within its source (for files: the path relative to the root).
        source: The source's configured name.
        title: A human title.
        text: The extracted plain text.
        url: Where a person can open it.
        updated_at: When it last changed at the source (UTC), if known.
        metadata: Stable facts about it (never fetch times or sizes that change).
    """

    id: str
    source: str
    title: str
    text: str
    url: str | None = None
    updated_at: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Hash of the normalised text, title, url and metadata: equal hashes mean
        nothing searchable changed."""
        digest = hashlib.sha256()
        digest.update(normalize_text(self.text).encode())
        digest.update(b"\x00")
        digest.update(
            orjson.dumps(
                {"title": self.title, "url": self.url, "metadata": self.metadata},
                option=orjson.OPT_SORT_KEYS,
                default=str,
            )
        )
        return digest.hexdigest()


def normalize_text(text: str) -> str:
    """Unicode NFC, unified line ends, runs of spaces collapsed, blank-line runs
    reduced to one, trimmed: formatting noise must not count as a change."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class Skipped:
    """A document a source could not read, and why (encrypted, over a limit ...).
    ``updated_at`` is when it last changed, if known: an incremental sync moves its
    cursor past it, so it is read again only once it changes."""

    id: str
    reason: str
    updated_at: datetime | None = None


class SourceError(EventHubError):
    """A source could not be read (the whole listing, not one document)."""


class Source(Integration):
    """Where documents come from: an integration with three more methods.

    Sources are registered like any integration kind (``register_integrations``) and
    configured under ``[sources.NAME]``; the name given there is ``self.name``. The
    limits of text extraction (``max_bytes``, ``max_chars`` ...; see
    :class:`~eventhub.documents.extract.ExtractionLimits`) may be set there too,
    or passed as ``limits``; a source reads its documents through
    :func:`eventhub.documents.extract.extract` with :attr:`limits` and records
    every :class:`~eventhub.documents.extract.ExtractionError` with :meth:`skip`.

    Attributes:
        kind: The name configs use (``kind = "filesystem"``).
        ordered: True when :meth:`changes` yields documents oldest ``updated_at``
            first; then the sync saves its cursor as it goes, not only at the end.
        limits: How much work one document may cost.
        skipped: The documents this source could not read since the sync began.
    """

    kind: ClassVar[str] = ""
    ordered: ClassVar[bool] = False

    def __init__(
        self, *, limits: ExtractionLimits | None = None, **config: Any
    ) -> None:
        given = {k: config.pop(k) for k in list(config) if k in LIMIT_NAMES}
        super().__init__(**config)
        self.limits = dataclasses.replace(limits or DEFAULT_LIMITS, **given)
        self.skipped: list[Skipped] = []

    @abc.abstractmethod
    def changes(self, since: datetime | None) -> Iterable[Document]:
        """Documents changed at or after ``since`` (all of them when None)."""

    @abc.abstractmethod
    def fetch(self, id: str) -> Document | None:
        """One document by id; None when it no longer exists (or cannot be read:
        then it is also listed in :attr:`skipped`)."""

    @abc.abstractmethod
    def ids(self) -> Iterable[str]:
        """Every id the source holds now: a complete enumeration."""

    def skip(self, id: str, reason: str, updated_at: datetime | None = None) -> None:
        """Record a document that cannot be read (``updated_at``: when it last
        changed, if known)."""
        self.skipped.append(Skipped(id, reason, updated_at))
