"""Keeping the index in step with sources: full, incremental and by-id syncs.

* **Incremental**: documents changed since the saved cursor minus an overlap window
  (clocks and listings are never exact), deduplicated by content hash, so repeats cost
  nothing. The cursor only moves past documents whose outcome is committed.
* **Full**: every document, the same way (unchanged ones still cost nothing).
* **By id** (event-driven): refetch the documents a hint names.
* Deletions come from a complete enumeration of the source's ids, taken first. If it
  would delete more than ``max_delete_share`` of what the index holds for the source
  (a share unmounted, an expired token listing nothing), the sync stops before
  changing anything, unless forced.
* A document that cannot be embedded is recorded and retried at the next sync; the
  rest of the sync goes on, and its old version stays searchable.
* A document the source cannot read (malformed, over an extraction limit ...) is
  recorded as skipped with the reason, in the report and in ``sync_skipped``, and the
  sync goes on. Its time counts for the cursor like any document's, so it is read
  again only when it changes (or by a full sync); the record goes when it is read
  or gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlite_utils.migrations import Migrations

from ..errors import UserError
from ..events import format_time, parse_time
from .model import Document, Skipped, Source, SourceError
from .store import DocumentIndex, PreparedDocument

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..statedb import StateDB

log = structlog.get_logger(__name__)
migrations = Migrations("eventhub.sync")
Progress = Callable[[int, int | None], None]


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
        progress: Progress | None = None,
        overlap: float | None = None,
        max_delete_share: float | None = None,
    ) -> SyncReport:
        """Bring the index up to date with ``source``; ``overlap`` and
        ``max_delete_share`` override the engine's for this sync.

        Raises:
            MassDeleteBlocked: when too many deletions are pending and not forced.
            SourceError: when the source's changes cannot be read at all (a
                listing that is only incomplete is synced without deletions).
        """
        began = time.monotonic()
        overlap = self.overlap if overlap is None else overlap
        share = self.max_delete_share if max_delete_share is None else max_delete_share
        cursor = None if full else self._cursor(source.name)
        since = cursor - timedelta(seconds=overlap) if cursor else None
        report = SyncReport(
            source.name, "full" if full else "incremental", dry_run=dry_run
        )
        source.skipped = []
        held = self.index.document_ids(source.name)
        try:
            present: set[str] | None = set(source.ids())
        except SourceError as exc:
            # An incomplete listing: sync what changed, delete nothing.
            present = None
            report.deletions_skipped = str(exc)
            log.warning(
                "source not listed completely: nothing deleted",
                source=source.name,
                reason=str(exc),
            )
        gone = sorted(held - present) if present is not None else []
        if gone and not force and len(gone) > share * len(held):
            raise MassDeleteBlocked(source.name, len(gone), len(held), share)
        total = len(present) if present is not None else None
        run = _Run(self, source, report, held, progress, total)
        retry: list[Document] = []
        vanished: list[str] = []
        for doc_id in self._failed_ids(source.name):
            document = source.fetch(doc_id)
            if document is None:
                vanished.append(doc_id)
            else:
                retry.append(document)
        if vanished and not dry_run:
            self._forget_failures(source.name, vanished)  # nothing left to retry
        run.process(retry, track_cursor=False)
        run.process(source.changes(since), track_cursor=True)
        run.flush()
        if gone:
            report.deleted = len(gone)
            if not dry_run:
                self._delete(source.name, gone)
        self._record_skips(source, report, read=run.done, present=present)
        report.duration = round(time.monotonic() - began, 3)
        if not dry_run:
            new_cursor = run.cursor or cursor
            self._save_state(source.name, new_cursor, full)
            report.cursor = format_time(new_cursor) if new_cursor else None
            self.index.save()
            self._publish("sync.completed", report.summary(), subject=source.name)
        log.info("sync finished", **report.to_dict())
        return report

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
            run.process([document], track_cursor=False)
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
        """Cursor, last syncs, failures and skips of a source."""
        conn = self.db.connection()
        row = conn.execute(
            "SELECT cursor, last_sync, last_full_sync FROM sync_state WHERE source = ?",
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
            "failures": [
                {"document_id": d, "error": e, "attempts": a} for d, e, a in failures
            ],
            "skipped": [
                {"document_id": d, "reason": r, "seen": s} for d, r, s in skipped
            ],
        }

    def _cursor(self, source: str) -> datetime | None:
        row = (
            self.db.connection()
            .execute("SELECT cursor FROM sync_state WHERE source = ?", (source,))
            .fetchone()
        )
        return parse_time(row[0]) if row and row[0] else None

    def _save_state(self, source: str, cursor: datetime | None, full: bool) -> None:
        now = format_time(datetime.now(UTC))
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO sync_state (source, cursor, last_sync, last_full_sync)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET"
                " cursor = excluded.cursor, last_sync = excluded.last_sync,"
                " last_full_sync = COALESCE(excluded.last_full_sync, last_full_sync)",
                (
                    source,
                    format_time(cursor) if cursor else None,
                    now,
                    now if full else None,
                ),
            )

    def _save_cursor(self, source: str, cursor: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO sync_state (source, cursor) VALUES (?, ?)"
                " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
                (source, format_time(cursor)),
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
    """One sync's progress: batches documents for embedding, commits them."""

    def __init__(
        self,
        engine: SyncEngine,
        source: Source,
        report: SyncReport,
        held: set[str],
        progress: Progress | None,
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
        self.cursor: datetime | None = None
        self._pending_cursor: datetime | None = None
        self._skips_taken = len(source.skipped)
        self._new_skips: list[Skipped] = []

    def process(self, documents: Iterable[Document], *, track_cursor: bool) -> None:
        index = self.engine.index
        for document in documents:
            self._take_skips(track_cursor)
            if document.id in self.done:
                continue  # e.g. a failed document retried, then listed as changed
            self.done.add(document.id)
            self.seen += 1
            if self.progress is not None:
                self.progress(self.seen, self.total)
            if track_cursor:
                self._advance(document.updated_at)
            prepared = index.prepare(document)
            if prepared is None:
                self.report.unchanged += 1
                continue
            self.batch.append(prepared)
            self.batch_chunks += len(prepared.new)
            if self.batch_chunks >= self.engine.batch_chunks:
                self.flush()
        self._take_skips(track_cursor)

    def _take_skips(self, track_cursor: bool) -> None:
        """Documents the source skipped since last asked: the cursor may move past
        them as past any document (their skips are stored before it does)."""
        skipped = self.source.skipped[self._skips_taken :]
        self._skips_taken += len(skipped)
        self._new_skips.extend(skipped)
        if track_cursor:
            for skip in skipped:
                self._advance(skip.updated_at)

    def _advance(self, moment: datetime | None) -> None:
        if moment is not None and (
            self._pending_cursor is None or moment > self._pending_cursor
        ):
            self._pending_cursor = moment

    def flush(self) -> None:
        """Embed and commit the batch; then the cursor may move past it."""
        batch, self.batch, self.batch_chunks = self.batch, [], 0
        report, engine = self.report, self.engine
        if report.dry_run:
            for p in batch:
                self._count(p)
                report.embedded += sum(1 for c in p.new if c.hash not in p.vectors)
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
        skips, self._new_skips = self._new_skips, []
        engine._store_skips(self.source.name, skips)
        if self._pending_cursor is not None and self.source.ordered:
            engine._save_cursor(self.source.name, self._pending_cursor)
        self.cursor = self._pending_cursor or self.cursor

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
