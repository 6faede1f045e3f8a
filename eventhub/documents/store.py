"""The document index: documents, chunks and vectors in SQLite, searched by FAISS.

The SQLite ``chunks`` table (``INTEGER PRIMARY KEY AUTOINCREMENT``: ids are never
reused, and a chunk's vector never changes) holds every chunk's text and float32
vector and is the source of truth. Every write also updates, in the same
transaction, the ``index_state`` row: the generation (bumped by every write), the
epoch (bumped by a rebuild or a repair), and the count and checksum of the stored
vectors (:func:`~eventhub.documents._faiss.vector_digest`); and it records each
chunk it removes in ``index_removals``, the journal a cache of an earlier
generation catches up from (with the rows past its last chunk id).

Searches go through a FAISS index over the vectors, a cache in a file beside the
state database that must prove it covers the table before it is used
(:mod:`eventhub.documents._faiss`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlite_utils.migrations import Migrations

from ..errors import ConfigError, MissingDependency
from ..events import format_time
from ..statedb import StateDB
from ._faiss import (
    MASK,
    Built,
    FaissCache,
    IndexSettings,
    Repair,
    TableState,
    ids_of,
    signed,
    vector_digest,
)
from .chunking import Chunk, ChunkSettings, chunk_text
from .model import Document

if TYPE_CHECKING:
    from .embeddings import Embedder

log = structlog.get_logger(__name__)

migrations = Migrations("eventhub.index")


@migrations()
def m001_index(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE documents (
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            title TEXT NOT NULL,
            url TEXT,
            updated_at TEXT,
            metadata TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            indexed_at TEXT NOT NULL,
            PRIMARY KEY (source, id)
        );
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            document_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            hash TEXT NOT NULL,
            text TEXT NOT NULL,
            model TEXT NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE INDEX chunks_document ON chunks (source, document_id);
        CREATE INDEX chunks_hash ON chunks (hash, model);
        CREATE TABLE index_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            generation INTEGER NOT NULL
        );
        INSERT INTO index_state (id, generation) VALUES (1, 0);
        """
    )


@migrations()
def m002_cache_proof(db: Any) -> None:
    # What a cache file must match: the checksum and count of the stored vectors,
    # and the epoch (bumped by a rebuild or a repair).
    db.executescript(
        """
        ALTER TABLE index_state ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE index_state ADD COLUMN vectors INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE index_state ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
        """
    )
    total, count = 0, 0
    for chunk_id, vector in db.execute("SELECT id, vector FROM chunks"):
        total += vector_digest(chunk_id, vector)
        count += 1
    db.execute(
        "UPDATE index_state SET checksum = ?, vectors = ?, generation = generation + 1,"
        " epoch = epoch + 1",
        [signed(total), count],
    )


@migrations()
def m003_cache_journal(db: Any) -> None:
    # What a cache of an earlier generation catches up from: the chunks removed
    # since (those added are the rows past the cache's last id). Removals up to
    # journal_from are pruned; saved_generation is the last cache file written.
    db.executescript(
        """
        CREATE TABLE index_removals (
            generation INTEGER NOT NULL,
            chunk_id INTEGER NOT NULL,
            digest INTEGER NOT NULL,
            PRIMARY KEY (generation, chunk_id)
        ) WITHOUT ROWID;
        ALTER TABLE index_state ADD COLUMN journal_from INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE index_state ADD COLUMN saved_generation INTEGER NOT NULL
            DEFAULT -1;
        UPDATE index_state SET journal_from = generation;
        """
    )


@dataclass(frozen=True)
class Hit:
    """A search result: a document and its best-matching chunk."""

    document_id: str
    source: str
    score: float
    title: str
    url: str | None
    snippet: str
    metadata: Mapping[str, Any]
    chunk_id: int
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "source": self.source,
            "score": round(self.score, 6),
            "title": self.title,
            "url": self.url,
            "snippet": self.snippet,
            "metadata": dict(self.metadata),
            "chunk_id": self.chunk_id,
            "updated_at": self.updated_at,
        }


@dataclass
class PreparedDocument:
    """A document chunked and ready to store; ``vectors`` has one entry per chunk
    whose hash is new to this document (``None`` until embedded)."""

    document: Document
    content_hash: str
    chunks: list[Chunk]
    new: list[Chunk] = field(default_factory=list)
    vectors: dict[str, bytes] = field(default_factory=dict)


@dataclass
class VerifyReport:
    """What :meth:`DocumentIndex.verify` found; ``ok`` when nothing."""

    chunks: int
    cached: int
    missing: list[int]
    extra: list[int]
    mismatched: list[int]
    #: Whether the checksums (the table's counter, the table's vectors, the
    #: cache's header) agree, and the cache is of this database.
    checksum_ok: bool = True
    #: Whether a difference was found and the cache rebuilt to repair it.
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.extra or self.mismatched or not self.checksum_ok
        )

    def counts(self) -> dict[str, Any]:
        return {
            "missing": len(self.missing),
            "extra": len(self.extra),
            "mismatched": len(self.mismatched),
            "checksum_ok": self.checksum_ok,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chunks": self.chunks,
            "cached": self.cached,
            "missing": self.missing[:20],
            "extra": self.extra[:20],
            "mismatched": self.mismatched[:20],
            "checksum_ok": self.checksum_ok,
            "repaired": self.repaired,
        }


class DocumentIndex:
    """Chunk, embed, store and search documents.

    Args:
        db: The state database.
        embedder: Makes the vectors; vectors of another model are never mixed in.
        path: The FAISS cache file (default: beside the state database).
        chunking: Chunk sizes in the embedder's tokens.
        settings: The FAISS structure and its tuning (``[index] kind`` and the
            keys of :class:`~eventhub.documents._faiss.IndexSettings`).
    """

    def __init__(
        self,
        db: StateDB,
        embedder: Embedder,
        *,
        path: str | os.PathLike[str] | None = None,
        chunking: ChunkSettings | None = None,
        settings: IndexSettings | None = None,
    ) -> None:
        try:
            import faiss  # noqa: F401
            import numpy  # noqa: F401
        except ImportError:
            raise MissingDependency("faiss-cpu", "rag") from None
        self.db = db
        self.embedder = embedder
        self.chunking = chunking or ChunkSettings(
            max_tokens=max(16, min(200, embedder.max_tokens - 24))
        )
        self.path = Path(path) if path else db.path.with_name(db.path.name + ".faiss")
        db.migrate(migrations)
        database = db.identity  # what a cache file must have been made for
        self._check_model()
        self._cache = FaissCache(
            self.path,
            database=database,
            model=embedder.name,
            dimension=embedder.dimension,
            settings=settings,
        )

    # Preparing and storing ----------------------------------------------------

    def prepare(self, document: Document) -> PreparedDocument | None:
        """Chunk a document and find which chunks need embedding. None when the
        stored version has the same content hash (nothing to do)."""
        content_hash = document.content_hash
        row = (
            self.db.connection()
            .execute(
                "SELECT content_hash FROM documents WHERE source = ? AND id = ?",
                (document.source, document.id),
            )
            .fetchone()
        )
        if row is not None and row[0] == content_hash:
            return None
        chunks = [
            Chunk(c.position, c.text, self.chunk_input(document, c))
            for c in chunk_text(document.text, self.embedder.token_spans, self.chunking)
        ]
        stored = self._chunk_hashes(document.source, document.id)
        new = [c for c in chunks if c.hash not in stored]
        prepared = PreparedDocument(document, content_hash, chunks, _unique(new))
        prepared.vectors = self._reusable_vectors([c.hash for c in prepared.new])
        return prepared

    def embed(self, prepared: Sequence[PreparedDocument]) -> int:
        """Embed, in one batch, every chunk of ``prepared`` that has no vector yet.
        Returns how many were embedded. Raises whatever the embedder raises."""
        todo: list[tuple[PreparedDocument, Chunk]] = [
            (p, c) for p in prepared for c in p.new if c.hash not in p.vectors
        ]
        if not todo:
            return 0
        vectors = self.embedder.encode([c.model_input for _, c in todo])
        for (p, c), vector in zip(todo, vectors, strict=True):
            p.vectors[c.hash] = vector.tobytes()
        return len(todo)

    def chunk_input(self, document: Document, chunk: Chunk) -> str:
        """What the model reads for a chunk: the document title, then the chunk
        (unless the chunk already opens with the title, as a Markdown heading)."""
        title = document.title
        if title and not chunk.text.lstrip("# ").startswith(title):
            return f"{title}\n{chunk.text}"
        return chunk.text

    def store(
        self,
        prepared: Sequence[PreparedDocument],
        deleted: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Write embedded documents and deletions in one transaction, then update
        the FAISS cache in memory (new vectors are added before old ones go)."""
        added: list[tuple[int, bytes]] = []  # id, vector
        removed: list[tuple[int, int]] = []  # id, digest
        delta = 0  # the change to the checksum of stored vectors
        model = self.embedder.name
        now = format_time(datetime.now().astimezone())
        with self.db.write() as conn:
            for p in prepared:
                doc = p.document
                existing: dict[str, deque[int]] = {}
                for chunk_id, chunk_hash in conn.execute(
                    "SELECT id, hash FROM chunks WHERE source = ? AND document_id = ?"
                    " ORDER BY id",
                    (doc.source, doc.id),
                ):
                    existing.setdefault(chunk_hash, deque()).append(chunk_id)
                for chunk in p.chunks:
                    kept = existing.get(chunk.hash)
                    if kept:
                        conn.execute(
                            "UPDATE chunks SET position = ? WHERE id = ?",
                            (chunk.position, kept.popleft()),
                        )
                        continue
                    vector = p.vectors.get(chunk.hash) or _stored_vector(
                        conn, chunk.hash, model
                    )
                    cursor = conn.execute(
                        "INSERT INTO chunks (source, document_id, position, hash, text,"
                        " model, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            doc.source,
                            doc.id,
                            chunk.position,
                            chunk.hash,
                            chunk.text,
                            model,
                            vector,
                        ),
                    )
                    chunk_id = int(cursor.lastrowid)  # type: ignore[arg-type]
                    added.append((chunk_id, vector))
                    delta += vector_digest(chunk_id, vector)
                for stale in (i for ids in existing.values() for i in ids):
                    (vector,) = conn.execute(
                        "DELETE FROM chunks WHERE id = ? RETURNING vector", (stale,)
                    ).fetchone()
                    digest = vector_digest(stale, vector)
                    delta -= digest
                    removed.append((stale, digest))
                conn.execute(
                    "INSERT INTO documents (source, id, title, url, updated_at,"
                    " metadata, content_hash, indexed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (source, id) DO UPDATE SET title = excluded.title,"
                    " url = excluded.url, updated_at = excluded.updated_at,"
                    " metadata = excluded.metadata,"
                    " content_hash = excluded.content_hash,"
                    " indexed_at = excluded.indexed_at",
                    (
                        doc.source,
                        doc.id,
                        doc.title,
                        doc.url,
                        format_time(doc.updated_at) if doc.updated_at else None,
                        orjson.dumps(doc.metadata, default=str).decode(),
                        p.content_hash,
                        now,
                    ),
                )
            for source, doc_id in deleted:
                for chunk_id, vector in conn.execute(
                    "DELETE FROM chunks WHERE source = ? AND document_id = ?"
                    " RETURNING id, vector",
                    (source, doc_id),
                ).fetchall():
                    digest = vector_digest(chunk_id, vector)
                    delta -= digest
                    removed.append((chunk_id, digest))
                conn.execute(
                    "DELETE FROM documents WHERE source = ? AND id = ?",
                    (source, doc_id),
                )
            before = self._table_state(conn)
            after = TableState(
                before.generation + 1,
                (before.checksum + delta) & MASK,
                before.vectors + len(added) - len(removed),
                before.epoch,
                _last_chunk_id(conn),
                before.journal_from,
                before.saved_generation,
            )
            conn.execute(
                "UPDATE index_state SET generation = ?, checksum = ?, vectors = ?",
                (after.generation, signed(after.checksum), after.vectors),
            )
            conn.executemany(
                "INSERT INTO index_removals (generation, chunk_id, digest)"
                " VALUES (?, ?, ?)",
                [(after.generation, i, signed(digest)) for i, digest in removed],
            )
        with self._cache.lock:
            self._cache.written(
                before, after, delta, added, [chunk_id for chunk_id, _ in removed]
            )

    # Reading ----------------------------------------------------------------

    def document_ids(self, source: str) -> set[str]:
        rows = self.db.connection().execute(
            "SELECT id FROM documents WHERE source = ?", (source,)
        )
        return {r[0] for r in rows}

    def documents(self, source: str) -> list[dict[str, Any]]:
        """The indexed documents of a source, oldest change first: ``id``,
        ``title``, ``url``, ``updated_at``, ``indexed_at``, ``metadata``."""
        rows = self.db.connection().execute(
            "SELECT id, title, url, updated_at, indexed_at, metadata FROM documents"
            " WHERE source = ? ORDER BY updated_at IS NULL, updated_at, id",
            (source,),
        )
        return [
            {
                "id": doc_id,
                "title": title,
                "url": url,
                "updated_at": updated_at,
                "indexed_at": indexed_at,
                "metadata": orjson.loads(metadata),
            }
            for doc_id, title, url, updated_at, indexed_at, metadata in rows
        ]

    def document_counts(self) -> dict[str, int]:
        """Indexed documents by source."""
        rows = self.db.connection().execute(
            "SELECT source, count(*) FROM documents GROUP BY source"
        )
        return {source: count for source, count in rows}

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` documents best matching ``query``, best first (a document's
        score is its best chunk's cosine similarity)."""
        return self.search_vector(
            self.embedder.encode_query(query), k, source=source, metadata=metadata
        )

    def search_vector(
        self,
        vector: Any,
        k: int = 10,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """Like :meth:`search`, for a query vector made by this index's embedder."""
        import numpy as np

        if k < 1:
            raise ValueError("k must be at least 1")
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        filtered = bool(source or metadata)
        with self._cache.lock:
            self._index()
            if self._cache.live == 0:
                return []
            fetch = k * (8 if filtered else 4)
            while True:
                found, exhausted = self._cache.search(query, fetch)
                hits = self._hits(found, k, source, metadata)
                if len(hits) >= k or exhausted:
                    return hits
                fetch *= 4

    def _hits(
        self,
        found: Sequence[tuple[int, float]],
        k: int,
        source: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> list[Hit]:
        """Best chunk per document, in score order, of the chunks found: their
        owners read by id (a few hundred at a time, until ``k`` documents are
        found), then the details of only the documents shown (one small query)."""
        conn = self.db.connection()
        best: list[tuple[int, float]] = []
        seen: set[tuple[str, str]] = set()
        where = " AND source = ?" if source is not None else ""
        for start in range(0, len(found), 500):
            part = found[start : start + 500]
            owners = {
                chunk_id: (chunk_source, doc_id)
                for chunk_id, chunk_source, doc_id in conn.execute(
                    "SELECT id, source, document_id FROM chunks"
                    f" WHERE id IN ({','.join('?' * len(part))}){where}",
                    [i for i, _ in part] + ([source] if source is not None else []),
                ).fetchall()  # one call: iterating the cursor is a call per row
            }
            for chunk_id, score in part:
                owner = owners.get(chunk_id)
                if owner is None or owner in seen:
                    continue
                seen.add(owner)
                best.append((chunk_id, score))
                if len(best) >= k and not metadata:
                    break
            if len(best) >= k and not metadata:
                break
        hits: list[Hit] = []
        for start in range(0, len(best), 500):
            part = best[start : start + 500]
            details = {
                row[0]: row
                for row in conn.execute(
                    "SELECT c.id, c.source, c.document_id, c.text, d.title, d.url,"
                    " d.metadata, d.updated_at FROM chunks c JOIN documents d"
                    " ON d.source = c.source AND d.id = c.document_id"
                    f" WHERE c.id IN ({','.join('?' * len(part))})",
                    [i for i, _ in part],
                ).fetchall()
            }
            for chunk_id, score in part:
                row = details.get(chunk_id)
                if row is None:
                    continue
                meta = orjson.loads(row[6])
                if metadata and any(meta.get(key) != v for key, v in metadata.items()):
                    continue
                hits.append(
                    Hit(
                        row[2],
                        row[1],
                        score,
                        row[4],
                        row[5],
                        _snippet(row[3]),
                        meta,
                        chunk_id,
                        row[7],
                    )
                )
                if len(hits) >= k:
                    return hits
        return hits

    def stats(self) -> dict[str, Any]:
        """What the index holds and costs: documents and chunks (by source), the
        FAISS structure (``kind``: the one in use; ``configured_kind``: what the
        settings ask for), the vectors it searches, and its bytes on disk (the
        cache file) and in memory (the FAISS index)."""
        conn = self.db.connection()
        sources = {
            r[0]: {"documents": r[1]}
            for r in conn.execute(
                "SELECT source, COUNT(*) FROM documents GROUP BY source"
            )
        }
        for src, count in conn.execute(
            "SELECT source, COUNT(*) FROM chunks GROUP BY source"
        ):
            sources.setdefault(src, {"documents": 0})["chunks"] = count
        cache = self._cache
        with cache.lock:
            self._index()
            live, kind = cache.live, cache.kind
            memory = cache.memory_bytes()
            tombstones = len(cache.tombstones)
            unsaved = cache.unsaved if cache.dirty else 0
        try:
            disk = self.path.stat().st_size
        except FileNotFoundError:
            disk = 0
        return {
            "model": self.embedder.name,
            "dimension": self.embedder.dimension,
            "documents": sum(s["documents"] for s in sources.values()),
            "chunks": sum(s.get("chunks", 0) for s in sources.values()),
            "kind": kind,
            "configured_kind": cache.settings.kind,
            "vectors": live,
            "cached_vectors": live,
            "bytes_on_disk": disk,
            "bytes_in_memory": memory,
            "tombstones": tombstones,
            "unsaved_changes": unsaved,
            "cache_file": str(self.path),
            "sources": sources,
        }

    def verify(self, sample: int | None = None) -> VerifyReport:
        """Bring the cache up to date and save it; then compare the saved file
        with the chunks table: every id, the vectors (all of them, or ``sample`` of
        them) and the checksum. A difference is repaired at once by a rebuild
        (``repaired`` in the report), which other processes holding the index see
        before their next search."""
        with self._cache.lock:
            self._index()
            self.save(force=True)
        report = self._compare_file(sample)
        if not report.ok:
            log.warning(
                "index cache did not match the table: rebuilt", **report.counts()
            )
            self.rebuild()
            report.repaired = True
        return report

    def _compare_file(self, sample: int | None) -> VerifyReport:
        """The saved file against the chunks table, read in id order: the file's
        vectors are looked up by id one at a time, so only the file's index (and
        its ids) is held besides the table's rows of the moment."""
        loaded = self._cache.read_file()
        with self._snapshot() as conn:
            state = self._table_state(conn)
            (count,) = conn.execute(
                "SELECT count(*) FROM chunks WHERE model = ?", (self.embedder.name,)
            ).fetchone()
            step = max(1, count // sample) if sample else 1
            rows = conn.execute(
                "SELECT id, vector FROM chunks WHERE model = ? ORDER BY id",
                (self.embedder.name,),
            )
            if loaded is None:
                ids = [chunk_id for chunk_id, _ in rows]
                return VerifyReport(len(ids), 0, ids, [], [])
            index, header = loaded
            held = set(ids_of(index, header.kind).tolist()) - header.tombstones
            cached = len(held)
            missing: list[int] = []
            mismatched: list[int] = []
            table_sum = 0
            for position, (chunk_id, vector) in enumerate(rows):
                table_sum += vector_digest(chunk_id, vector)
                if chunk_id not in held:
                    missing.append(chunk_id)
                    continue
                held.discard(chunk_id)
                if position % step == 0 and (
                    index.reconstruct(chunk_id).tobytes() != vector
                ):
                    mismatched.append(chunk_id)
        return VerifyReport(
            count,
            cached,
            missing,
            sorted(held),
            mismatched,
            checksum_ok=(
                state.checksum == table_sum & MASK == header.checksum
                and state.vectors == count
                and header.database == self._cache.database
            ),
        )

    # The FAISS cache ----------------------------------------------------------

    def _index(self) -> Any:
        """The in-memory FAISS index, proven to cover the table (see
        :mod:`eventhub.documents._faiss`). Call with the cache's lock held."""
        with self._snapshot() as conn:
            index, repair = self._cache.current(_ChunkTable(conn, self.embedder.name))
        if repair is not None:
            self._repair_state(repair)
        return index

    def _table_state(self, conn: Any) -> TableState:
        return _ChunkTable(conn, self.embedder.name).state()

    def _repair_state(self, repair: Repair) -> None:
        """Correct the table's counters to what a full read found (they are only
        ever wrong if something outside eventhub changed the chunks table)."""
        state = repair.state
        log.warning(
            "index checksum in the state database corrected",
            stored=state.vectors,
            counted=repair.vectors,
        )
        with self.db.write() as conn:
            conn.execute(
                "UPDATE index_state SET checksum = ?, vectors = ?"
                " WHERE generation = ? AND epoch = ?",
                (
                    signed(repair.checksum),
                    repair.vectors,
                    state.generation,
                    state.epoch,
                ),
            )

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """This thread's connection inside one read transaction: the counters and
        the chunks read in it are of the same moment."""
        conn = self.db.connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def rebuild(self) -> int:
        """Rebuild the FAISS cache from the chunks table, in the structure the
        settings want for its size, and save it. A new epoch: other processes
        holding the index reload it before their next search."""
        with self._cache.lock:
            self._rebuild()
            self._write_file()
            return self._cache.live

    def _rebuild(self) -> None:
        cache = self._cache
        with self._snapshot() as conn:
            table = _ChunkTable(conn, self.embedder.name)
            state = table.state()
            started = time.perf_counter()
            built: Built = cache.build(table, state)
        log.info(
            "index built",
            kind=built.kind,
            vectors=built.vectors,
            seconds=round(time.perf_counter() - started, 2),
        )
        with self.db.write() as conn:
            now = self._table_state(conn)
            conn.execute(
                "UPDATE index_state SET generation = ?, epoch = ?, checksum = ?,"
                " vectors = ?",
                (
                    now.generation + 1,
                    now.epoch + 1,
                    # The counters of what was built, if nobody wrote since;
                    # else the table's (the build is caught up on next use).
                    signed(built.checksum) if now == state else signed(now.checksum),
                    built.vectors if now == state else now.vectors,
                ),
            )
        # What was built is the table at state.generation, labelled with the new
        # epoch; caught up from the journal if others wrote meanwhile.
        cache.hold(
            built,
            now.generation + 1 if now == state else state.generation,
            now.epoch + 1,
        )

    def save(self, *, force: bool = False) -> bool:
        """Bring the cache file up to the index when it is due: when the changes
        since it was written pass ``[index] save_after`` of the index (smaller
        ones are in the database's journal, which loading catches up from), when
        the settings want another structure (rebuilt first), or always with
        ``force``. The file is written to a temporary file, fsynced and renamed.
        Returns True when written. Over a database open read-only, the cache is
        kept in memory only (its readers may not write the folder)."""
        with self._cache.lock:
            self._index()  # loaded and checked if it was not yet
            if self.db.readonly:
                return False
            due = self._cache.maintenance()
            if due == "rebuild":
                self._rebuild()
            elif not (due == "save" or (force and self._cache.dirty)):
                return False
            return self._write_file()

    def _write_file(self) -> bool:
        """Write the index in memory to the cache file, unless a newer one is
        there already; then prune the journal that a reader of the previous file
        could still need no more. Call with the cache's lock held."""
        cache = self._cache
        if self.db.readonly:
            return False
        temporary = cache.write_temporary()
        try:
            with self.db.write() as conn:
                state = self._table_state(conn)
                if (
                    state.epoch != cache.epoch
                    or state.saved_generation > cache.generation
                ):
                    return False  # another process saved a newer cache meanwhile
                os.replace(temporary, self.path)
                _fsync_folder(self.path.parent)
                conn.execute(
                    "UPDATE index_state SET saved_generation = ?, journal_from = ?",
                    (cache.generation, max(state.journal_from, state.saved_generation)),
                )
                conn.execute(
                    "DELETE FROM index_removals WHERE generation <= ?",
                    (state.saved_generation,),
                )
        finally:
            temporary.unlink(missing_ok=True)
        cache.saved()
        return True

    def _chunk_hashes(self, source: str, doc_id: str) -> set[str]:
        rows = self.db.connection().execute(
            "SELECT hash FROM chunks WHERE source = ? AND document_id = ?",
            (source, doc_id),
        )
        return {r[0] for r in rows}

    def _reusable_vectors(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """Vectors already computed by this model for chunks with these hashes
        (another document, or a renamed file): no need to embed them again."""
        found: dict[str, bytes] = {}
        conn = self.db.connection()
        for start in range(0, len(hashes), 500):
            part = list(hashes[start : start + 500])
            for chunk_hash, vector in conn.execute(
                "SELECT hash, vector FROM chunks WHERE model = ? AND hash IN"
                f" ({','.join('?' * len(part))})",
                [self.embedder.name, *part],
            ):
                found.setdefault(chunk_hash, vector)
        return found

    def _check_model(self) -> None:
        """Refuse an embedder other than the one the stored vectors are of. Every
        write goes through an index that passed this check, so the first and the
        last chunk tell (a scan of a million chunks would not be worth it)."""
        row = (
            self.db.connection()
            .execute(
                "SELECT model FROM chunks WHERE model != ? AND id IN"
                " ((SELECT min(id) FROM chunks), (SELECT max(id) FROM chunks))",
                (self.embedder.name,),
            )
            .fetchone()
        )
        if row is not None:
            raise ConfigError(
                f"the index holds vectors of {row[0]}, not {self.embedder.name}: "
                "clear it or configure that model"
            )

    def close(self) -> None:
        """Save the cache if it is due (an index never used in this process is
        not loaded just to be closed)."""
        with self._cache.lock:
            if self._cache.loaded:
                self.save()


class _ChunkTable:
    """The vectors of one model in the chunks table, read on one connection (the
    :class:`~eventhub.documents._faiss.VectorTable` the cache reads)."""

    def __init__(self, conn: Any, model: str) -> None:
        self.conn = conn
        self.model = model

    def state(self) -> TableState:
        row = self.conn.execute(
            "SELECT generation, checksum, vectors, epoch, journal_from,"
            " saved_generation FROM index_state WHERE id = 1"
        ).fetchone()
        generation, checksum, vectors, epoch, journal_from, saved = row
        return TableState(
            int(generation),
            int(checksum) & MASK,
            int(vectors),
            int(epoch),
            _last_chunk_id(self.conn),
            int(journal_from),
            int(saved),
        )

    def vectors(self, after: int = 0) -> Iterable[tuple[int, bytes]]:
        return self.conn.execute(
            "SELECT id, vector FROM chunks WHERE id > ? AND model = ? ORDER BY id",
            (after, self.model),
        )

    def sample(self, size: int) -> list[bytes]:
        (total,) = self.conn.execute(
            "SELECT count(*) FROM chunks WHERE model = ?", (self.model,)
        ).fetchone()
        step = max(1, total // max(size, 1))
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT vector FROM chunks WHERE model = ? AND id % ? = 0",
                (self.model, step),
            )
        ][:size]

    def removals(self, after: int) -> list[tuple[int, int]]:
        return [
            (chunk_id, digest & MASK)
            for chunk_id, digest in self.conn.execute(
                "SELECT chunk_id, digest FROM index_removals WHERE generation > ?",
                (after,),
            )
        ]


def _last_chunk_id(conn: Any) -> int:
    """The largest chunk id ever issued (every later chunk's id is above it)."""
    row = conn.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'"
    ).fetchone()
    return int(row[0]) if row else 0


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stored_vector(conn: Any, chunk_hash: str, model: str) -> bytes:
    """The vector of a chunk already stored (a paragraph repeated in a document)."""
    row = conn.execute(
        "SELECT vector FROM chunks WHERE hash = ? AND model = ? LIMIT 1",
        (chunk_hash, model),
    ).fetchone()
    return bytes(row[0])


def _unique(chunks: Sequence[Chunk]) -> list[Chunk]:
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        if chunk.hash not in seen:
            seen.add(chunk.hash)
            out.append(chunk)
    return out


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
