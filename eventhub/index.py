"""The document index: chunks and vectors in SQLite, a FAISS index over them.

The SQLite ``chunks`` table (``INTEGER PRIMARY KEY AUTOINCREMENT``: ids are never
reused) holds every chunk's text and float32 vector and is the source of truth. The
FAISS ``IndexIDMap2(IndexFlatIP)`` over the normalised vectors is a cache in one file
beside the state database, written to a temporary file, fsynced and renamed. On open
the cache is reconciled with the table by id (what is missing is added, what is gone
is removed), so a crash between a committed change and the next save costs nothing
but that reconciliation; a missing or unreadable cache file is rebuilt.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlite_utils.migrations import Migrations

from .chunking import Chunk, ChunkSettings, chunk_text
from .documents import Document
from .errors import ConfigError, MissingDependency
from .events import format_time
from .statedb import StateDB

if TYPE_CHECKING:
    import numpy as np

    from .embeddings import Embedder

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


_HEADER_END = b"\n"


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

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chunks": self.chunks,
            "cached": self.cached,
            "missing": self.missing[:20],
            "extra": self.extra[:20],
            "mismatched": self.mismatched[:20],
        }


class DocumentIndex:
    """Chunk, embed, store and search documents.

    Args:
        db: The state database.
        embedder: Makes the vectors; vectors of another model are never mixed in.
        path: The FAISS cache file (default: beside the state database).
        chunking: Chunk sizes in the embedder's tokens.
    """

    def __init__(
        self,
        db: StateDB,
        embedder: Embedder,
        *,
        path: str | os.PathLike[str] | None = None,
        chunking: ChunkSettings | None = None,
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
        self._check_model()
        self._lock = threading.RLock()
        self._faiss: Any = None
        # chunk id -> (source, document id), kept beside the FAISS cache so that
        # search maps hits to documents without a query (None: build on use).
        self._owners: dict[int, tuple[str, str]] | None = None
        self._dirty = False
        # Every write bumps index_state.generation; a cache at another generation
        # than the table (another process wrote) is reconciled before use.
        self._generation = -1

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
        import numpy as np

        added_ids: list[int] = []
        added_vectors: list[bytes] = []
        added_owners: list[tuple[str, str]] = []
        removed_ids: list[int] = []
        model = self.embedder.name
        now = format_time(datetime.now().astimezone())
        with self.db.write() as conn:
            for p in prepared:
                doc = p.document
                existing: dict[str, list[int]] = {}
                for chunk_id, chunk_hash in conn.execute(
                    "SELECT id, hash FROM chunks WHERE source = ? AND document_id = ?"
                    " ORDER BY id",
                    (doc.source, doc.id),
                ):
                    existing.setdefault(chunk_hash, []).append(chunk_id)
                for chunk in p.chunks:
                    kept = existing.get(chunk.hash)
                    if kept:
                        conn.execute(
                            "UPDATE chunks SET position = ? WHERE id = ?",
                            (chunk.position, kept.pop(0)),
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
                    added_ids.append(int(cursor.lastrowid))  # type: ignore[arg-type]
                    added_vectors.append(vector)
                    added_owners.append((doc.source, doc.id))
                stale = [i for ids in existing.values() for i in ids]
                conn.executemany(
                    "DELETE FROM chunks WHERE id = ?", [(i,) for i in stale]
                )
                removed_ids.extend(stale)
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
            generation = conn.execute(
                "UPDATE index_state SET generation = generation + 1"
                " RETURNING generation"
            ).fetchone()[0]
            for source, doc_id in deleted:
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM chunks WHERE source = ? AND document_id = ?",
                        (source, doc_id),
                    )
                ]
                conn.execute(
                    "DELETE FROM chunks WHERE source = ? AND document_id = ?",
                    (source, doc_id),
                )
                conn.execute(
                    "DELETE FROM documents WHERE source = ? AND id = ?",
                    (source, doc_id),
                )
                removed_ids.extend(ids)
        with self._lock:
            if self._faiss is None:
                self._owners = None
                return  # loaded (and reconciled) on first use
            if generation != self._generation + 1:
                self._faiss = None  # another process wrote too: reconcile on use
                self._owners = None
                return
            self._generation = generation
            if self._owners is not None:
                for chunk_id in removed_ids:
                    self._owners.pop(chunk_id, None)
                self._owners.update(zip(added_ids, added_owners, strict=True))
            if added_ids:
                matrix = np.frombuffer(b"".join(added_vectors), dtype=np.float32)
                self._faiss.add_with_ids(
                    matrix.reshape(len(added_ids), self.embedder.dimension),
                    np.asarray(added_ids, dtype=np.int64),
                )
            if removed_ids:
                self._faiss.remove_ids(np.asarray(removed_ids, dtype=np.int64))
            self._dirty = self._dirty or bool(added_ids or removed_ids)

    # Reading ----------------------------------------------------------------

    def document_ids(self, source: str) -> set[str]:
        rows = self.db.connection().execute(
            "SELECT id FROM documents WHERE source = ?", (source,)
        )
        return {r[0] for r in rows}

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
        with self._lock:
            index = self._index()
            total = index.ntotal
            if total == 0:
                return []
            fetch = min(total, k * (8 if source or metadata else 4))
            while True:
                scores, ids = index.search(query, fetch)
                hits = self._hits(ids[0], scores[0], k, source, metadata)
                if len(hits) >= k or fetch >= total:
                    return hits
                fetch = min(total, fetch * 4)

    def _hits(
        self,
        ids: Any,
        scores: Any,
        k: int,
        source: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> list[Hit]:
        """Best chunk per document, in score order (owners from memory), then the
        details of only the documents shown (one small query)."""
        found = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
        if not found:
            return []
        conn = self.db.connection()
        owners = self._owner_map()
        best: list[tuple[int, float]] = []
        seen: set[tuple[str, str]] = set()
        for chunk_id, score in found:
            owner = owners.get(chunk_id)
            if (
                owner is None
                or owner in seen
                or (source is not None and owner[0] != source)
            ):
                continue
            seen.add(owner)
            best.append((chunk_id, score))
            if len(best) >= k and not metadata:
                break
        details = (
            {
                row[0]: row
                for row in conn.execute(
                    "SELECT c.id, c.source, c.document_id, c.text, d.title, d.url,"
                    " d.metadata, d.updated_at FROM chunks c JOIN documents d"
                    " ON d.source = c.source AND d.id = c.document_id"
                    f" WHERE c.id IN ({','.join('?' * len(best))})",
                    [i for i, _ in best],
                )
            }
            if best
            else {}
        )
        hits: list[Hit] = []
        for chunk_id, score in best:
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
                break
        return hits

    def stats(self) -> dict[str, Any]:
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
        with self._lock:
            cached = self._index().ntotal
        return {
            "model": self.embedder.name,
            "dimension": self.embedder.dimension,
            "documents": sum(s["documents"] for s in sources.values()),
            "chunks": sum(s.get("chunks", 0) for s in sources.values()),
            "cached_vectors": cached,
            "cache_file": str(self.path),
            "sources": sources,
        }

    def verify(self, sample: int = 200) -> VerifyReport:
        """Bring the cache up to date and save it, as opening does; then compare the
        saved file with the chunks table: every id, and a sample of vectors."""
        import numpy as np

        with self._lock:
            self._index()  # brought up to date with the table, as on any open
            self.save()
        stored = self._stored_ids()
        cached_index = self._read_file()
        if cached_index is None:
            return VerifyReport(len(stored), 0, sorted(stored), [], [])
        cached = set(_ids_of(cached_index).tolist())
        missing = sorted(stored - cached)
        extra = sorted(cached - stored)
        mismatched: list[int] = []
        both = sorted(stored & cached)
        step = max(1, len(both) // sample) if both else 1
        conn = self.db.connection()
        for chunk_id in both[::step]:
            blob = conn.execute(
                "SELECT vector FROM chunks WHERE id = ?", (chunk_id,)
            ).fetchone()[0]
            if not np.allclose(
                cached_index.reconstruct(chunk_id),
                np.frombuffer(blob, dtype=np.float32),
                atol=1e-6,
            ):
                mismatched.append(chunk_id)
        return VerifyReport(len(stored), len(cached), missing, extra, mismatched)

    # The FAISS cache ----------------------------------------------------------

    def _index(self) -> Any:
        """The in-memory FAISS index: loaded and reconciled on first use, and
        reconciled again when another process changed the table."""
        generation = self._current_generation()
        if self._faiss is not None and generation != self._generation:
            self._dirty = self._reconcile(self._faiss) or self._dirty
            self._generation = generation
            self._owners = None
        if self._faiss is None:
            self._owners = None
            index = self._read_file()
            if index is None:
                index = self._build()
                self._dirty = True
            else:
                self._dirty = self._reconcile(index)
            self._faiss = index
            self._generation = generation
        return self._faiss

    def _owner_map(self) -> dict[int, tuple[str, str]]:
        """Chunk id -> (source, document id) of the chunks in the cache (call with
        the lock held, after :meth:`_index`)."""
        if self._owners is None:
            documents: dict[tuple[str, str], tuple[str, str]] = {}
            self._owners = {
                chunk_id: documents.setdefault((source, doc_id), (source, doc_id))
                for chunk_id, source, doc_id in self.db.connection().execute(
                    "SELECT id, source, document_id FROM chunks WHERE model = ?",
                    (self.embedder.name,),
                )
            }
        return self._owners

    def _current_generation(self) -> int:
        row = (
            self.db.connection()
            .execute("SELECT generation FROM index_state WHERE id = 1")
            .fetchone()
        )
        return int(row[0])

    def rebuild(self) -> int:
        """Rebuild the FAISS cache from the chunks table and save it."""
        with self._lock:
            self._faiss = self._build()
            self._owners = None
            self._dirty = True
            self.save()
            return int(self._faiss.ntotal)

    def save(self) -> bool:
        """Write the cache if it changed: temporary file, fsync, rename, fsync the
        folder. Returns True when written."""
        import faiss

        with self._lock:
            self._index()  # loaded and reconciled if it was not yet
            if not self._dirty:
                return False
            header = orjson.dumps(
                {"model": self.embedder.name, "dimension": self.embedder.dimension}
            )
            body = faiss.serialize_index(self._faiss).tobytes()
            folder = self.path.parent
            fd, temporary = tempfile.mkstemp(prefix=self.path.name, dir=folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(header + _HEADER_END + body)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._dirty = False
            return True

    def _read_file(self) -> Any:
        import faiss
        import numpy as np

        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        header, _, body = raw.partition(_HEADER_END)
        try:
            meta = orjson.loads(header)
            if (meta.get("model"), meta.get("dimension")) != (
                self.embedder.name,
                self.embedder.dimension,
            ):
                return None
            return faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
        except Exception:  # a damaged cache is rebuilt, never trusted
            return None

    def _build(self) -> Any:
        import faiss

        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.embedder.dimension))
        conn = self.db.connection()
        batch: list[tuple[int, bytes]] = []
        for row in conn.execute(
            "SELECT id, vector FROM chunks WHERE model = ? ORDER BY id",
            (self.embedder.name,),
        ):
            batch.append(row)
            if len(batch) >= 10_000:
                _add(index, batch, self.embedder.dimension)
                batch = []
        if batch:
            _add(index, batch, self.embedder.dimension)
        return index

    def _reconcile(self, index: Any) -> bool:
        """Make a loaded cache match the table; True if it had to change."""
        import numpy as np

        stored = self._stored_ids()
        cached = set(_ids_of(index).tolist())
        extra = cached - stored
        missing = sorted(stored - cached)
        if extra:
            index.remove_ids(np.asarray(sorted(extra), dtype=np.int64))
        conn = self.db.connection()
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part
            ).fetchall()
            _add(index, rows, self.embedder.dimension)
        return bool(extra or missing)

    def _stored_ids(self) -> set[int]:
        rows = self.db.connection().execute(
            "SELECT id FROM chunks WHERE model = ?", (self.embedder.name,)
        )
        return {r[0] for r in rows}

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
        row = (
            self.db.connection()
            .execute(
                "SELECT model FROM chunks WHERE model != ? LIMIT 1",
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
        """Save the cache if it was loaded and changed (an index never used in this
        process is not loaded just to be closed)."""
        with self._lock:
            if self._faiss is not None:
                self.save()


def _stored_vector(conn: Any, chunk_hash: str, model: str) -> bytes:
    """The vector of a chunk already stored (a paragraph repeated in a document)."""
    row = conn.execute(
        "SELECT vector FROM chunks WHERE hash = ? AND model = ? LIMIT 1",
        (chunk_hash, model),
    ).fetchone()
    return bytes(row[0])


def _add(index: Any, rows: Sequence[tuple[int, bytes]], dimension: int) -> None:
    import numpy as np

    if not rows:
        return
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
    index.add_with_ids(matrix.reshape(len(rows), dimension), ids)


def _ids_of(index: Any) -> np.ndarray:
    import faiss

    return faiss.vector_to_array(index.id_map)


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
