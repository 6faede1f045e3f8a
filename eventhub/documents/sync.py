"""Keeping the index in step with sources: full, incremental and by-id syncs.

* **Incremental**: the source's change feed (:meth:`Source.read`) from the saved
  checkpoint: documents changed since (deduplicated by content hash, so repeats cost
  nothing) and tombstones of deleted ones. A checkpoint is saved only once everything
  the feed yielded before it is committed. A time-based checkpoint is read back with
  an overlap window (clocks and listings are never exact).
* **Full**: the feed from the start (unchanged documents still cost nothing), and a
  complete enumeration of the source's ids.
* **By id** (event-driven): refetch the documents a hint names.
* **Resync**: a checkpoint the source cannot use any more (:class:`CheckpointExpired`)
  makes that sync read the source from the start and enumerate it; ``sync.resync``
  says so, with the reason.
* Deletions come from tombstones in the feed and from complete enumerations of the
  source's ids, taken first: in every full sync, and in an incremental one when the
  source's ``prune`` interval has passed (an enumeration costs a request per page on
  an API). If an enumeration would delete more than ``max_delete_share`` of what the
  index holds for the source (a share unmounted, an expired token listing nothing),
  the sync stops before changing anything, unless forced.
* A failure of the whole source (an exception out of its feed) fails the sync with
  the source named; what was committed stays, and the checkpoint does not move past
  anything that was not.
* A document that cannot be embedded, or that the source could not fetch this time
  (:meth:`Source.fail`), is recorded and retried at the next sync; the rest of the
  sync goes on, and its old version stays searchable.
* A document the source cannot read (malformed, over an extraction limit ...) is
  recorded as skipped with the reason, in the report and in ``sync_skipped``, and the
  sync goes on. Its time counts for the cursor like any document's, so it is read
  again only when it changes (or by a full sync); the record goes when it is read
  or gone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlite_utils.migrations import Migrations

from .._durations import duration_seconds
from ..errors import ConfigError, EventHubError, UserError
from ..events import format_time, parse_time
from ..redact import redact_text
from .model import (
    Checkpoint,
    CheckpointExpired,
    Deleted,
    Document,
    Skipped,
    Source,
    SourceError,
    timestamp_checkpoint,
)
from .store import DocumentIndex, PreparedDocument

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..statedb import StateDB

log = structlog.get_logger(__name__)
migrations = Migrations("eventhub.sync")
#: Told ``(documents seen, total or None)`` as a sync goes.
ProgressCallback = Callable[[int, int | None], None]
#: ``prune`` not given: the source's ``default_prune``.
SOURCE_DEFAULT: Any = object()


@migrations()
def m001_sync(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE sync_state (
            source TEXT PRIMARY KEY,
            cursor TEXT,
            last_sync TEXT,
            last_full_sync TEXT
        );
        CREATE TABLE sync_failures (
            source TEXT NOT NULL,
            document_id TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            last_attempt TEXT NOT NULL,
            PRIMARY KEY (source, document_id)
        );
        CREATE TABLE sync_skipped (
            source TEXT NOT NULL,
            document_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            seen TEXT NOT NULL,
            PRIMARY KEY (source, document_id)
        );
        """
    )


@migrations()
def m002_checkpoints(db: Any) -> None:
    """A source's checkpoint (JSON) beside the timestamp cursor, and its last
    complete enumeration."""
    db.executescript(
        """
        ALTER TABLE sync_state ADD COLUMN checkpoint TEXT;
        ALTER TABLE sync_state ADD COLUMN last_prune TEXT;
        """
    )


def parse_prune(value: Any, where: str) -> float | None:
    """``[sources.NAME] prune``: seconds between enumerations (0: every sync), or
    None for ``false`` (full syncs and resyncs only).

    Raises:
        ConfigError: naming ``where`` for anything else.
    """
    if value is False:
        return None
    if value is True:
        return 0.0
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    if isinstance(value, str):
        seconds = duration_seconds(value)
        if seconds is not None:
            return seconds
    raise ConfigError(
        f"{where}: prune must be an interval ('every 6h', '30m', seconds) or false,"
        f" not {value!r}"
    )


class SourceFailed(SourceError):
    """A source could not be read: the sync failed and its checkpoint stayed.

    The message is one line: the source, and the cause (redacted, and with the
    query strings of URLs left out: a search query makes a poor error line).
    """

    def __init__(self, source: str, cause: BaseException) -> None:
        self.source = source
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        what = f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
        if isinstance(cause, EventHubError) and detail:
            what = detail
        what = _QUERY.sub(r"\1", redact_text(what))
        super().__init__(f"sync of {source!r} failed: {what}")


_QUERY = re.compile(r"(\bhttps?://[^\s?#]+)[?#][^\s]*")


class MassDeleteBlocked(UserError):
    """A sync would delete more of a source than allowed; nothing was changed."""

    def __init__(self, source: str, would_delete: int, held: int, share: float) -> None:
        self.source = source
        self.would_delete = would_delete
        self.held = held
        self.share = share
        super().__init__(
            f"sync of {source!r} would delete {would_delete} of {held} documents, more"
            f" than {share:.0%}: nothing changed (force the sync if this is intended)"
        )


@dataclass
class SyncReport:
    """What a sync did (or, for a dry run, would do). Counts are of documents,
    except ``embedded`` and ``reused`` (chunks); ``skipped_documents`` lists the
    skipped ones, ``{"document_id": ..., "reason": ...}``."""

    source: str
    mode: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: int = 0
    embedded: int = 0
    reused: int = 0
    duration: float = 0.0
    dry_run: bool = False
    cursor: str | None = None
    skipped_documents: list[dict[str, str]] = field(default_factory=list)
    #: Why nothing was deleted although the source was listed (None: it was
    #: listed completely): a listing that misses documents never deletes them.
    deletions_skipped: str | None = None
    #: Whether this sync enumerated the source's ids to find deletions.
    pruned: bool = False
    #: Why the saved checkpoint was given up and the source read from the start
    #: (None: it was not).
    resync: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self, listed: int = 100) -> dict[str, Any]:
        """:meth:`to_dict` listing the first ``listed`` skipped documents only (the
        count is complete): what events and run records keep."""
        data = self.to_dict()
        data["skipped_documents"] = data["skipped_documents"][:listed]
        return data


class SyncEngine:
    """Syncs sources into a :class:`DocumentIndex`.

    Args:
        db: The state database (cursors, failures).
        index: Where documents go.
        bus: Where ``document.indexed``, ``document.deleted`` and ``sync.completed``
            are published (None: nowhere).
        overlap: Seconds subtracted from the cursor of an incremental sync.
        max_delete_share: Largest share of a source one sync may delete unforced.
        batch_chunks: Chunks embedded per model call (and committed per transaction).
    """

    def __init__(
        self,
        db: StateDB,
        index: DocumentIndex,
        *,
        bus: EventBus | None = None,
        overlap: float = 300.0,
        max_delete_share: float = 0.5,
        batch_chunks: int = 256,
    ) -> None:
        self.db = db
        self.index = index
        self.bus = bus
        self.overlap = overlap
        self.max_delete_share = max_delete_share
        self.batch_chunks = batch_chunks
        db.migrate(migrations)

    def sync(
        self,
        source: Source,
        *,
        full: bool = False,
        dry_run: bool = False,
        force: bool = False,
        progress: ProgressCallback | None = None,
        overlap: float | None = None,
        max_delete_share: float | None = None,
        prune: float | None = SOURCE_DEFAULT,
    ) -> SyncReport:
        """Bring the index up to date with ``source``; ``overlap``,
        ``max_delete_share`` and ``prune`` (seconds between enumerations, None:
        full syncs only) override the engine's and the source's for this sync.

        Raises:
            MassDeleteBlocked: when too many deletions are pending and not forced.
            SourceFailed: when the source cannot be read (its feed or its listing
                failed); what was committed stays, the checkpoint does not move
                past anything that was not. A listing that is only incomplete
                (:class:`SourceError` from ``ids()``) is synced without deletions.
        """
        began = time.monotonic()
        overlap = self.overlap if overlap is None else overlap
        share = self.max_delete_share if max_delete_share is None else max_delete_share
        every = source.default_prune if prune is SOURCE_DEFAULT else prune
        state = self._state_row(source.name)
        checkpoint = None if full else state.checkpoint
        report = SyncReport(
            source.name, "full" if full else "incremental", dry_run=dry_run
        )
        source.skipped = []
        source.failed = []
        held = self.index.document_ids(source.name)
        now = datetime.now(UTC)
        due = every is not None and (
            state.last_prune is None
            or (now - state.last_prune).total_seconds() >= every
        )
        present: set[str] | None = None
        listed = False
        if full or due:
            present, listed = self._enumerate(source, report, held)
        if present is not None:
            self._guard(source.name, held - present, held, share, force)
        total = len(present) if present is not None else None
        run = _Run(self, source, report, held, progress, total)
        self._retry_failures(source, run, dry_run)
        try:
            try:
                run.read(source.read(checkpoint, overlap=overlap))
            except CheckpointExpired as exc:
                if checkpoint is None:
                    raise
                run.flush()
                present, listed = self._resync(source, report, run, exc, present)
                run.read(source.read(None, overlap=overlap))
            run.flush()
        except (MassDeleteBlocked, SourceFailed):
            raise
        except Exception as exc:
            run.abandon()
            self._record_skips(source, report, read=run.done, present=None)
            self._record_failed(source, run)
            raise SourceFailed(source.name, exc) from exc
        gone = sorted(held - present - run.done) if present is not None else []
        if gone and report.resync and not force and len(gone) > share * len(held):
            report.deletions_skipped = (
                f"the resync would delete {len(gone)} of {len(held)} documents, more"
                f" than {share:.0%}: run a full sync with force to delete them"
            )
            gone = []
        if gone:
            report.deleted += len(gone)
            if not dry_run:
                self._delete(source.name, gone)
        self._record_skips(source, report, read=run.done | run.deleted, present=present)
        self._record_failed(source, run)
        report.duration = round(time.monotonic() - began, 3)
        if not dry_run:
            saved = run.checkpoint if run.moved else checkpoint
            if report.resync and not run.moved:
                saved = None
            self._save_state(source.name, saved, full, pruned=listed)
            report.cursor = _cursor_text(saved)
            self.index.save()
            self._publish("sync.completed", report.summary(), subject=source.name)
        log.info("sync finished", **report.to_dict())
        return report

    def _enumerate(
        self, source: Source, report: SyncReport, held: set[str]
    ) -> tuple[set[str] | None, bool]:
        """A complete listing of the source's ids (None: it could not be
        complete, so nothing is deleted), and whether it was complete."""
        report.pruned = True
        try:
            return set(source.ids()), True
        except SourceError as exc:
            # An incomplete listing: sync what changed, delete nothing.
            report.deletions_skipped = str(exc)
            log.warning(
                "source not listed completely: nothing deleted",
                source=source.name,
                reason=str(exc),
            )
            return None, False
        except Exception as exc:
            raise SourceFailed(source.name, exc) from exc

    def _guard(
        self, source: str, gone: set[str], held: set[str], share: float, force: bool
    ) -> None:
        if gone and not force and len(gone) > share * len(held):
            raise MassDeleteBlocked(source, len(gone), len(held), share)

    def _resync(
        self,
        source: Source,
        report: SyncReport,
        run: _Run,
        expired: CheckpointExpired,
        present: set[str] | None,
    ) -> tuple[set[str] | None, bool]:
        """Give up a dead checkpoint: say so, enumerate the source (unless this
        sync did already) so what is gone is deleted, and read from the start."""
        report.resync = expired.reason
        report.mode = "resync"
        log.warning(
            "checkpoint expired: resync", source=source.name, reason=expired.reason
        )
        if not report.dry_run:
            self._publish(
                "sync.resync",
                {"source": source.name, "reason": expired.reason},
                subject=source.name,
            )
        run.restart()
        if present is not None:
            return present, True
        return self._enumerate(source, report, run.held)

    def _retry_failures(self, source: Source, run: _Run, dry_run: bool) -> None:
        """Fetch the documents that failed before: again in this sync."""
        retry: list[Document] = []
        vanished: list[str] = []
        for doc_id in self._failed_ids(source.name):
            try:
                document = source.fetch(doc_id)
            except Exception as exc:
                source.fail(doc_id, redact_text(f"{type(exc).__name__}: {exc}"))
                continue
            if document is None:
                vanished.append(doc_id)
            else:
                retry.append(document)
        if vanished and not dry_run:
            self._forget_failures(source.name, vanished)  # nothing left to retry
        run.process(retry)

    def _record_failed(self, source: Source, run: _Run) -> None:
        """The documents the source could not fetch: retried at the next sync."""
        failed = {f.id: f for f in source.failed if f.id not in run.done}
        run.report.failed += len(failed)
        if run.report.dry_run:
            return
        for failure in failed.values():
            log.error(
                "document failed",
                source=source.name,
                document_id=failure.id,
                error=failure.error,
            )
            self._record_failure(source.name, failure.id, failure.error)

    def sync_ids(self, source: Source, ids: Iterable[str]) -> SyncReport:
        """Refetch named documents (an event-driven hint); one that no longer exists
        at the source is deleted from the index."""
        began = time.monotonic()
        report = SyncReport(source.name, "ids")
        source.skipped = []
        held = self.index.document_ids(source.name)
        run = _Run(self, source, report, held, None, None)
        gone: list[str] = []
        for doc_id in dict.fromkeys(ids):
            document = source.fetch(doc_id)
            if document is None:
                if doc_id in held and not any(s.id == doc_id for s in source.skipped):
                    gone.append(doc_id)
                continue
            run.process([document])
        run.flush()
        if gone:
            report.deleted = len(gone)
            self._delete(source.name, gone)
        self._record_skips(source, report, read=run.done | set(gone), present=None)
        self.index.save()
        report.duration = round(time.monotonic() - began, 3)
        self._publish("sync.completed", report.summary(), subject=source.name)
        return report

    def _delete(self, source: str, ids: Sequence[str]) -> None:
        """Remove documents from the index, forget their failures, say so."""
        self.index.store([], deleted=[(source, i) for i in ids])
        self._forget_failures(source, ids)
        self._publish_many(
            [
                {
                    "type": "document.deleted",
                    "subject": f"{source}/{i}",
                    "data": {"source": source, "document_id": i},
                }
                for i in ids
            ]
        )

    # Bookkeeping --------------------------------------------------------------

    def state(self, source: str) -> dict[str, Any]:
        """Cursor, checkpoint, last syncs and prune, failures and skips of a
        source."""
        conn = self.db.connection()
        row = conn.execute(
            "SELECT cursor, last_sync, last_full_sync, checkpoint, last_prune"
            " FROM sync_state WHERE source = ?",
            (source,),
        ).fetchone()
        failures = conn.execute(
            "SELECT document_id, error, attempts FROM sync_failures WHERE source = ?",
            (source,),
        ).fetchall()
        skipped = conn.execute(
            "SELECT document_id, reason, seen FROM sync_skipped WHERE source = ?",
            (source,),
        ).fetchall()
        return {
            "cursor": row[0] if row else None,
            "last_sync": row[1] if row else None,
            "last_full_sync": row[2] if row else None,
            "checkpoint": _load_checkpoint(row[0], row[3]) if row else None,
            "last_prune": row[4] if row else None,
            "failures": [
                {"document_id": d, "error": e, "attempts": a} for d, e, a in failures
            ],
            "skipped": [
                {"document_id": d, "reason": r, "seen": s} for d, r, s in skipped
            ],
        }

    def _state_row(self, source: str) -> _SourceState:
        row = (
            self.db.connection()
            .execute(
                "SELECT cursor, checkpoint, last_prune FROM sync_state"
                " WHERE source = ?",
                (source,),
            )
            .fetchone()
        )
        if row is None:
            return _SourceState(None, None)
        return _SourceState(
            _load_checkpoint(row[0], row[1]),
            parse_time(row[2]) if row[2] else None,
        )

    def _save_state(
        self, source: str, checkpoint: Any, full: bool, *, pruned: bool
    ) -> None:
        now = format_time(datetime.now(UTC))
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO sync_state (source, cursor, checkpoint, last_sync,"
                " last_full_sync, last_prune) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET"
                " cursor = excluded.cursor, checkpoint = excluded.checkpoint,"
                " last_sync = excluded.last_sync,"
                " last_full_sync = COALESCE(excluded.last_full_sync, last_full_sync),"
                " last_prune = COALESCE(excluded.last_prune, last_prune)",
                (
                    source,
                    _cursor_text(checkpoint),
                    _dump_checkpoint(checkpoint),
                    now,
                    now if full else None,
                    now if pruned else None,
                ),
            )

    def _save_checkpoint(self, source: str, checkpoint: Any) -> None:
        """Move the checkpoint during a sync (what came before it is committed)."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO sync_state (source, cursor, checkpoint) VALUES (?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor,"
                " checkpoint = excluded.checkpoint",
                (source, _cursor_text(checkpoint), _dump_checkpoint(checkpoint)),
            )

    def _failed_ids(self, source: str) -> list[str]:
        rows = self.db.connection().execute(
            "SELECT document_id FROM sync_failures WHERE source = ?", (source,)
        )
        return [r[0] for r in rows]

    def _record_failure(self, source: str, doc_id: str, error: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO sync_failures (source, document_id, error, attempts,"
                " last_attempt) VALUES (?, ?, ?, 1, ?)"
                " ON CONFLICT (source, document_id) DO UPDATE SET"
                " error = excluded.error, attempts = attempts + 1,"
                " last_attempt = excluded.last_attempt",
                (source, doc_id, error, format_time(datetime.now(UTC))),
            )

    def _forget_failures(self, source: str, ids: Sequence[str]) -> None:
        with self.db.write() as conn:
            conn.executemany(
                "DELETE FROM sync_failures WHERE source = ? AND document_id = ?",
                [(source, i) for i in ids],
            )

    def _record_skips(
        self,
        source: Source,
        report: SyncReport,
        *,
        read: set[str],
        present: set[str] | None,
    ) -> None:
        """Put this sync's skips in the report and ``sync_skipped``; forget those
        of documents read now, and (given a complete listing) of documents gone."""
        skips = {s.id: s for s in source.skipped}
        report.skipped = len(skips)
        report.skipped_documents = [
            {"document_id": s.id, "reason": s.reason} for s in skips.values()
        ]
        if report.dry_run:
            return
        self._store_skips(source.name, list(skips.values()))
        with self.db.write() as conn:
            held = [
                r[0]
                for r in conn.execute(
                    "SELECT document_id FROM sync_skipped WHERE source = ?",
                    (source.name,),
                )
            ]
            stale = [
                i
                for i in held
                if i not in skips
                and (i in read or (present is not None and i not in present))
            ]
            conn.executemany(
                "DELETE FROM sync_skipped WHERE source = ? AND document_id = ?",
                [(source.name, i) for i in stale],
            )

    def _store_skips(self, source: str, skips: Sequence[Skipped]) -> None:
        if not skips:
            return
        now = format_time(datetime.now(UTC))
        with self.db.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO sync_skipped"
                " (source, document_id, reason, seen) VALUES (?, ?, ?, ?)",
                [(source, s.id, s.reason, now) for s in skips],
            )

    def _publish(self, type_: str, data: Any, subject: str | None = None) -> None:
        if self.bus is not None:
            self.bus.publish(type_, data, subject=subject)

    def _publish_many(self, events: list[dict[str, Any]]) -> None:
        if self.bus is not None and events:
            self.bus.publish_many(events)


class _Run:
    """One sync's progress: batches documents for embedding, commits them, and
    moves the checkpoint once what came before it is committed."""

    def __init__(
        self,
        engine: SyncEngine,
        source: Source,
        report: SyncReport,
        held: set[str],
        progress: ProgressCallback | None,
        total: int | None,
    ) -> None:
        self.engine = engine
        self.source = source
        self.report = report
        self.held = held
        self.progress = progress
        self.total = total
        self.seen = 0
        self.done: set[str] = set()
        self.batch: list[PreparedDocument] = []
        self.batch_chunks = 0
        self.tombstones: dict[str, None] = {}
        #: Ids the feed reported deleted (for the skip records).
        self.deleted: set[str] = set()
        #: The last checkpoint saved by this sync, and whether there was one.
        self.checkpoint: Any = None
        self.moved = False
        self._pending: Any = None
        self._marked = False
        self._skips_taken = len(source.skipped)
        self._new_skips: list[Skipped] = []

    def read(self, feed: Iterable[Document | Deleted | Checkpoint]) -> None:
        """Take a change feed: documents, tombstones and checkpoints."""
        for change in feed:
            if isinstance(change, Checkpoint):
                self._take_skips()
                self._pending, self._marked = change.value, True
            elif isinstance(change, Deleted):
                self._tombstone(change.id)
            else:
                self.process((change,))
        self._take_skips()

    def process(self, documents: Iterable[Document]) -> None:
        index = self.engine.index
        for document in documents:
            self._take_skips()
            if document.id in self.done:
                continue  # e.g. a failed document retried, then listed as changed
            self.done.add(document.id)
            self.tombstones.pop(document.id, None)
            self.seen += 1
            if self.progress is not None:
                self.progress(self.seen, self.total)
            prepared = index.prepare(document)
            if prepared is None:
                self.report.unchanged += 1
                continue
            self.batch.append(prepared)
            self.batch_chunks += len(prepared.new)
            if self.batch_chunks >= self.engine.batch_chunks:
                self.flush()
        self._take_skips()

    def _tombstone(self, doc_id: str) -> None:
        """The source says the document is gone: deleted at the next flush (a
        version of it still waiting in the batch goes too)."""
        self.done.discard(doc_id)  # a later version in this feed wins again
        self.deleted.add(doc_id)
        if any(p.document.id == doc_id for p in self.batch):
            self.batch = [p for p in self.batch if p.document.id != doc_id]
            self.batch_chunks = sum(len(p.new) for p in self.batch)
        self.tombstones[doc_id] = None

    def _take_skips(self) -> None:
        """Documents the source skipped since last asked: stored at the next flush,
        before the checkpoint that covers them."""
        skipped = self.source.skipped[self._skips_taken :]
        self._skips_taken += len(skipped)
        self._new_skips.extend(skipped)

    def restart(self) -> None:
        """The checkpoint died: what this sync saved of it counts no more."""
        self.checkpoint, self.moved = None, False
        self._pending, self._marked = None, False

    def abandon(self) -> None:
        """The feed failed: commit what it gave before the failure (it is true),
        and the checkpoint covering it, if any; never more."""
        with suppress(Exception):
            self.flush()

    def flush(self) -> None:
        """Embed and commit the batch and the tombstones; then the checkpoint may
        move past them."""
        batch, self.batch, self.batch_chunks = self.batch, [], 0
        report, engine = self.report, self.engine
        gone = [i for i in self.tombstones if i in self.held]
        self.tombstones = {}
        if report.dry_run:
            for p in batch:
                self._count(p)
                report.embedded += sum(1 for c in p.new if c.hash not in p.vectors)
            report.deleted += len(gone)
            return
        done = self._embed(batch)
        if done:
            engine.index.store(done)
            for p in done:
                self._count(p)
            engine._forget_failures(self.source.name, [p.document.id for p in done])
            engine._publish_many(
                [_indexed_event(p, p.document.id in self.held) for p in done]
            )
            self.held.update(p.document.id for p in done)
        if gone:
            engine._delete(self.source.name, gone)
            self.held.difference_update(gone)
            report.deleted += len(gone)
        skips, self._new_skips = self._new_skips, []
        engine._store_skips(self.source.name, skips)
        if self._marked:
            engine._save_checkpoint(self.source.name, self._pending)
            self.checkpoint, self.moved = self._pending, True
            self._marked = False

    def _count(self, prepared: PreparedDocument) -> None:
        if prepared.document.id in self.held:
            self.report.updated += 1
        else:
            self.report.added += 1

    def _embed(self, batch: list[PreparedDocument]) -> list[PreparedDocument]:
        """Embed a batch in one call; if that fails, document by document, so that
        one bad document fails alone (and keeps its old version)."""
        index, report = self.engine.index, self.report
        reused = {id(p): len(p.vectors) for p in batch}  # found before embedding
        try:
            report.embedded += index.embed(batch)
            report.reused += sum(reused.values())
            return batch
        except Exception:
            pass
        done = []
        for p in batch:
            try:
                report.embedded += index.embed([p])
            except Exception as exc:
                report.failed += 1
                error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "document failed",
                    source=self.source.name,
                    document_id=p.document.id,
                    error=error,
                )
                self.engine._record_failure(self.source.name, p.document.id, error)
                continue
            done.append(p)
        report.reused += sum(reused[id(p)] for p in done)
        return done


@dataclass(frozen=True, slots=True)
class _SourceState:
    checkpoint: Any
    last_prune: datetime | None


# What a checkpoint may hold: JSON's own types, not what orjson would turn into them.
_STRICT_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dump_checkpoint(checkpoint: Any) -> str | None:
    """A checkpoint as stored (JSON), checked to be JSON the way the store reads
    it back."""
    if checkpoint is None:
        return None
    try:
        return orjson.dumps(checkpoint, option=_STRICT_JSON).decode()
    except TypeError as exc:
        raise SourceError(f"a source's checkpoint must be JSON: {exc}") from None


def _load_checkpoint(cursor: str | None, stored: str | None) -> Any:
    """A stored checkpoint; a database from before checkpoints has only the
    timestamp cursor, which is a timestamp checkpoint."""
    if stored is not None:
        return orjson.loads(stored)
    if cursor is not None:
        return {"updated_at": cursor}
    return None


def _cursor_text(checkpoint: Any) -> str | None:
    """The time of a timestamp checkpoint (the ``cursor`` of reports and
    ``eventhub status``), else None."""
    try:
        moment = timestamp_checkpoint(checkpoint)
    except CheckpointExpired:
        return None
    return format_time(moment) if moment is not None else None


def _indexed_event(prepared: PreparedDocument, existed: bool) -> dict[str, Any]:
    doc = prepared.document
    return {
        "type": "document.indexed",
        "subject": f"{doc.source}/{doc.id}",
        "data": {
            "source": doc.source,
            "document_id": doc.id,
            "title": doc.title,
            "action": "updated" if existed else "added",
            "chunks": len(prepared.chunks),
            "new_chunks": len(prepared.new),
        },
    }
