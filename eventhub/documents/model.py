"""Documents and the sources they come from.

A :class:`Source` has a change feed (:meth:`Source.read`): from an opaque, JSON-able
checkpoint, the :class:`Document` objects changed since, the ids the source reports
deleted (:class:`Deleted`), and new checkpoints (:class:`Checkpoint`) as it goes. It
also fetches one document by id and enumerates every id it holds (which is how
deletions its feed does not report are found). The sync engine
(``eventhub.documents.sync``) turns that into an up-to-date search index.

A source whose API lists changes by time only implements :meth:`Source.changes`:
the default feed keeps a timestamp checkpoint, read back with an overlap window.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeAlias

import orjson

from ..errors import EventHubError, InvalidEvent
from ..events import format_time, parse_time
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


@dataclass(frozen=True, slots=True)
class Failed:
    """A document a source could not fetch this time (a 404 in passing, a body
    that did not parse): recorded and fetched again at the next sync."""

    id: str
    error: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """A tombstone in a change feed: the source says this document is gone
    (Notion ``in_trash``, Drive ``removed``, Graph's ``deleted`` facet)."""

    id: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a change feed stands: everything the feed yielded before this marker
    is covered by ``value``. The engine saves ``value`` once all of that is
    committed, and hands it back to :meth:`Source.read` at the next sync.

    ``value`` is the source's own business (a page token, a delta link, per-channel
    timestamps, a UIDVALIDITY and UID) but must be JSON: None, bool, numbers,
    strings, lists and string-keyed objects.
    """

    value: Any


#: What a change feed yields.
Change: TypeAlias = Document | Deleted | Checkpoint


class SourceError(EventHubError):
    """A source could not be read (the whole listing, not one document)."""


class CheckpointExpired(SourceError):
    """The saved checkpoint cannot be used any more (a page token expired, a delta
    link answered ``410 Gone``, a mailbox's UIDVALIDITY changed, a cursor the
    server rejects, a checkpoint of another shape): the engine re-reads the source
    from the start, deletes what is gone and publishes ``sync.resync``.

    Args:
        reason: Why, for people (the report, ``sync.resync``, the log).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Source(Integration):
    """Where documents come from: an integration with three more methods.

    Sources are registered like any integration kind (``register_integrations``) and
    configured under ``[sources.NAME]``; the name given there is ``self.name``. The
    limits of text extraction (``max_bytes``, ``max_chars`` ...; see
    :class:`~eventhub.documents.extract.ExtractionLimits`) may be set there too,
    or passed as ``limits``; a source reads its documents through
    :func:`eventhub.documents.extract.extract` with :attr:`limits` and records
    every :class:`~eventhub.documents.extract.ExtractionError` with :meth:`skip`.

    A source implements either :meth:`read` (a change feed with its own
    checkpoints) or :meth:`changes` (documents changed since a time; the default
    :meth:`read` keeps the timestamp), and both :meth:`fetch` and :meth:`ids`.

    Attributes:
        kind: The name configs use (``kind = "filesystem"``).
        ordered: True when :meth:`changes` yields documents oldest ``updated_at``
            first; then the sync saves its cursor as it goes, not only at the end.
        default_prune: Seconds between the complete enumerations (:meth:`ids`) an
            incremental sync runs to find deletions: 0 for every sync, None for
            full syncs and resyncs only. ``[sources.NAME] prune`` overrides it. A
            listing costs a request per page on an API, so API sources prune
            every few hours; their feeds report most deletions anyway.
        limits: How much work one document may cost.
        skipped: The documents this source could not read since the sync began.
        failed: The documents this source could not fetch since the sync began
            (retried at the next sync).
    """

    kind: ClassVar[str] = ""
    ordered: ClassVar[bool] = False
    default_prune: ClassVar[float | None] = 0.0

    def __init__(
        self, *, limits: ExtractionLimits | None = None, **config: Any
    ) -> None:
        given = {k: config.pop(k) for k in list(config) if k in LIMIT_NAMES}
        super().__init__(**config)
        self.limits = dataclasses.replace(limits or DEFAULT_LIMITS, **given)
        self.skipped: list[Skipped] = []
        self.failed: list[Failed] = []

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterable[Change]:
        """The change feed from ``checkpoint``: documents changed since, tombstones,
        and checkpoints covering what came before them.

        Args:
            checkpoint: What the last :class:`Checkpoint` of the previous sync
                held; None reads everything (a first or full sync, a resync).
            overlap: Seconds to read back before a time-based checkpoint (clocks
                and listings are never exact; repeats cost nothing, they are
                deduplicated by content hash).

        Raises:
            CheckpointExpired: ``checkpoint`` cannot be used any more.
            SourceError: (or any error) the source cannot be read; what was
                committed before the last checkpoint stays, nothing after it moves.

        The default keeps ``{"updated_at": <ISO time>}`` over :meth:`changes`.
        """
        return self._timestamp_feed(checkpoint, overlap)

    def changes(self, since: datetime | None) -> Iterable[Document]:
        """Documents changed at or after ``since`` (all of them when None): what
        the default :meth:`read` is made of. A source that implements
        :meth:`read` itself need not implement this."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither read() nor changes()"
        )

    @abc.abstractmethod
    def fetch(self, id: str) -> Document | None:
        """One document by id; None when it no longer exists (or cannot be read:
        then it is also listed in :attr:`skipped`)."""

    @abc.abstractmethod
    def ids(self) -> Iterable[str]:
        """Every id the source holds now: a complete enumeration."""

    def skip(self, id: str, reason: str, updated_at: datetime | None = None) -> None:
        """Record a document that cannot be read (``updated_at``: when it last
        changed, if known); it is read again once it changes."""
        self.skipped.append(Skipped(id, reason, updated_at))

    def fail(self, id: str, error: str) -> None:
        """Record a document that could not be fetched this time (a 404 in
        passing, a body that did not parse): fetched again at the next sync, and
        the feed goes on. A failure of the whole source is an exception instead."""
        self.failed.append(Failed(id, error))

    def _timestamp_feed(
        self, checkpoint: Any | None, overlap: float
    ) -> Iterator[Change]:
        since = timestamp_checkpoint(checkpoint)
        start = since - timedelta(seconds=overlap) if since is not None else None
        latest = since
        taken = len(self.skipped)
        for document in self.changes(start):
            yield document
            skipped = [s.updated_at for s in self.skipped[taken:]]
            taken = len(self.skipped)
            latest = _latest(latest, document.updated_at, *skipped)
            if self.ordered and latest is not None and latest != since:
                yield Checkpoint({"updated_at": format_time(latest)})
        latest = _latest(latest, *(s.updated_at for s in self.skipped[taken:]))
        if latest is not None and latest != since:
            yield Checkpoint({"updated_at": format_time(latest)})


def _latest(latest: datetime | None, *moments: datetime | None) -> datetime | None:
    """The latest of ``latest`` and the known ``moments``."""
    for moment in moments:
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    return latest


def timestamp_checkpoint(checkpoint: Any | None) -> datetime | None:
    """The time a timestamp checkpoint holds (None: none).

    Raises:
        CheckpointExpired: for a checkpoint of another shape.
    """
    if checkpoint is None:
        return None
    value = checkpoint.get("updated_at") if isinstance(checkpoint, dict) else None
    if isinstance(value, str):
        try:
            return parse_time(value)
        except InvalidEvent:
            pass
    raise CheckpointExpired(f"not a timestamp checkpoint: {str(checkpoint)[:80]!r}")
