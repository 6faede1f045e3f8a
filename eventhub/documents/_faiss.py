"""The FAISS cache of the document index: its file, its proof, its copy in memory.

The ``IndexIDMap2(IndexFlatIP)`` over the normalised vectors of the chunks table is a
cache in one file beside the state database, written to a temporary file, fsynced
and renamed. The table (:mod:`eventhub.documents.store`) is the source of truth.

A cache must prove that it belongs to its table before it is used. Its header
records the database's identity (a random id made with the database), the index
generation it covers (every write bumps it), the rebuild epoch, and a checksum of
the stored vectors it holds (a sum of per-chunk digests of id and vector, which the
table keeps up to date in the same transaction as every write). A cache of another
database, of a later generation, of another epoch, or with a damaged body is
rebuilt from the table. A cache of an earlier generation of the same database (a
crash between a commit and the next save, or another process that wrote) is caught
up by id, and then its checksum must equal the table's, or it is rebuilt: ids alone
are never trusted.

A process holding the index in memory sees other processes' writes, rebuilds and
repairs by the generation before its next search: writes are caught up by id,
a rebuild or a repair (a new epoch) reloads the cache the other process saved.

This module reads the table only through :class:`VectorTable`, and writes no table.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog

if TYPE_CHECKING:
    import numpy as np

log = structlog.get_logger(__name__)

_HEADER_END = b"\n"
_CACHE_FORMAT = 2
MASK = (1 << 64) - 1


def vector_digest(chunk_id: int, vector: bytes) -> int:
    """A chunk's contribution to the checksum of stored vectors: 64 bits of
    BLAKE2b over its id and vector. Checksums are sums of these modulo 2**64, so a
    write changes them by what it adds and removes alone."""
    digest = hashlib.blake2b(chunk_id.to_bytes(8, "little"), digest_size=8)
    digest.update(vector)
    return int.from_bytes(digest.digest(), "little")


def signed(value: int) -> int:
    """A checksum (mod 2**64) as SQLite's signed 64-bit integer."""
    value &= MASK
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class TableState:
    """The ``index_state`` row: what a cache of the table must match."""

    generation: int
    checksum: int  # unsigned, mod 2**64
    vectors: int
    epoch: int


@dataclass(frozen=True)
class CacheHeader:
    """What a saved cache claims to cover (the first line of the file)."""

    database: str
    generation: int
    checksum: int
    vectors: int
    epoch: int


@dataclass(frozen=True)
class Repair:
    """The table's counters were wrong (only ever if something outside eventhub
    changed the chunks table): what a full read of it found instead."""

    state: TableState
    checksum: int
    vectors: int


class VectorTable(Protocol):
    """The chunks table as the cache reads it (the vectors of its model only),
    inside one read transaction."""

    def state(self) -> TableState:
        """The ``index_state`` row."""
        ...

    def ids(self) -> set[int]:
        """The ids of the stored vectors."""
        ...

    def vectors(self) -> Iterable[tuple[int, bytes]]:
        """Every stored ``(id, vector)``, by id."""
        ...

    def vectors_of(self, ids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The stored ``(id, vector)`` of some ids (at most 500)."""
        ...

    def owners(self) -> Iterable[tuple[int, str, str]]:
        """``(id, source, document id)`` of every stored vector."""
        ...


class FaissCache:
    """The FAISS index of one chunks table, in memory and in its file.

    Use it with :attr:`lock` held. :attr:`index` is None until it is loaded (or
    built); :meth:`current` loads it, or brings it up to the table, first.

    Args:
        path: The cache file.
        database: The identity of the state database the cache must be made for.
        model: The embedder's name; a cache of another model is never used.
        dimension: The embedder's vector width.
    """

    def __init__(self, path: Path, *, database: str, model: str, dimension: int):
        self.path = path
        self.database = database
        self.model = model
        self.dimension = dimension
        self.lock = threading.RLock()
        self.index: Any = None
        # chunk id -> (source, document id), kept beside the index so that search
        # maps hits to documents without a query (None: build on use).
        self.owners: dict[int, tuple[str, str]] | None = None
        #: Whether the index in memory differs from the file.
        self.dirty = False
        # What the index in memory covers (see the module docstring): an index at
        # another generation than the table is caught up, or reloaded, before use.
        self.generation = -1
        self.epoch = -1
        self.checksum = 0

    @property
    def loaded(self) -> bool:
        return self.index is not None

    def current(self, table: VectorTable) -> tuple[Any, Repair | None]:
        """The index, proven to cover ``table`` (see the module docstring), and the
        counters to correct in the table, if a full read found them wrong."""
        repair: Repair | None = None
        state = table.state()
        if self.index is not None and (
            state.generation != self.generation or state.epoch != self.epoch
        ):
            if not (
                state.epoch == self.epoch
                and state.generation > self.generation
                and self._catch_up(table, self.index, state)
            ):
                self.index = None  # a rebuild or repair elsewhere: reload
        if self.index is None:
            repair = self._load(table, state)
        return self.index, repair

    def _load(self, table: VectorTable, state: TableState) -> Repair | None:
        """Load the saved cache if it proves to cover the table, else build one."""
        self.owners = None
        loaded = self.read_file()
        if loaded is not None:
            index, header = loaded
            reason = self._mismatch(header, state)
            if reason is None:
                self.adopt(index, header.generation, header.epoch, header.checksum)
                if header.generation == state.generation or self._catch_up(
                    table, index, state
                ):
                    return None
                reason = "its vectors do not add up to the table's checksum"
            log.info("index cache rebuilt", cache=str(self.path), reason=reason)
        index, checksum, count = self.build(table)
        self.adopt(index, state.generation, state.epoch, checksum)
        self.dirty = True
        if (checksum, count) != (state.checksum, state.vectors):
            return Repair(state, checksum, count)
        return None

    def _mismatch(self, header: CacheHeader, state: TableState) -> str | None:
        """Why a saved cache cannot be caught up to the table, or None."""
        if header.database != self.database:
            return "it belongs to another database"
        if header.epoch != state.epoch:
            return "the index was rebuilt or repaired since it was saved"
        if header.generation > state.generation:
            return "it is newer than the table (a database restored from a backup?)"
        if header.generation == state.generation and (
            header.checksum != state.checksum or header.vectors != state.vectors
        ):
            return "its checksum differs from the table's"
        return None

    def adopt(self, index: Any, generation: int, epoch: int, checksum: int) -> None:
        """Hold ``index`` as the cache of the table at ``generation`` and ``epoch``
        (the same as the file until :attr:`dirty` is set)."""
        self.index = index
        self.generation = generation
        self.epoch = epoch
        self.checksum = checksum
        self.owners = None
        self.dirty = False

    def _catch_up(self, table: VectorTable, index: Any, state: TableState) -> bool:
        """Bring a cache of an earlier generation of this table up to ``state`` by
        id; True when its checksum then equals the table's (else it is unusable)."""
        import numpy as np

        stored = table.ids()
        cached = set(_ids_of(index).tolist())
        extra = sorted(cached - stored)
        missing = sorted(stored - cached)
        checksum = self.checksum
        for chunk_id in extra:
            checksum -= vector_digest(chunk_id, index.reconstruct(chunk_id).tobytes())
        if extra:
            index.remove_ids(np.asarray(extra, dtype=np.int64))
        for start in range(0, len(missing), 500):
            rows = table.vectors_of(missing[start : start + 500])
            checksum += sum(vector_digest(i, v) for i, v in rows)
            _add(index, rows, self.dimension)
        checksum &= MASK
        if checksum != state.checksum or index.ntotal != state.vectors:
            return False
        self.checksum = checksum
        self.generation = state.generation
        self.owners = None
        self.dirty = self.dirty or bool(extra or missing)
        return True

    def build(self, table: VectorTable) -> tuple[Any, int, int]:
        """A new index of every stored vector, with their checksum and count."""
        import faiss

        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        checksum = 0
        batch: list[tuple[int, bytes]] = []
        for row in table.vectors():
            batch.append(row)
            checksum += vector_digest(row[0], row[1])
            if len(batch) >= 10_000:
                _add(index, batch, self.dimension)
                batch = []
        _add(index, batch, self.dimension)
        return index, checksum & MASK, int(index.ntotal)

    def written(
        self,
        before: TableState,
        after: TableState,
        delta: int,
        added: Sequence[tuple[int, bytes, tuple[str, str]]],
        removed: Sequence[int],
    ) -> None:
        """A write of this process took the table from ``before`` to ``after``
        (adding ``(id, vector, owner)`` rows, removing ids, changing the checksum by
        ``delta``): apply it to the index in memory, new vectors before old ones go.
        An index not loaded yet is loaded (and checked) on first use; one that
        another process's write left behind is caught up then."""
        import numpy as np

        if self.index is None:
            self.owners = None
            return
        if (before.generation, before.epoch, before.checksum) != (
            self.generation,
            self.epoch,
            self.checksum,
        ):
            return
        self.generation = after.generation
        self.checksum = (self.checksum + delta) & MASK
        if self.owners is not None:
            for chunk_id in removed:
                self.owners.pop(chunk_id, None)
            self.owners.update((chunk_id, owner) for chunk_id, _, owner in added)
        if added:
            matrix = np.frombuffer(b"".join(v for _, v, _ in added), dtype=np.float32)
            self.index.add_with_ids(
                matrix.reshape(len(added), self.dimension),
                np.asarray([chunk_id for chunk_id, _, _ in added], dtype=np.int64),
            )
        if removed:
            self.index.remove_ids(np.asarray(removed, dtype=np.int64))
        self.dirty = self.dirty or bool(added or removed)

    def owner_map(self, table: VectorTable) -> dict[int, tuple[str, str]]:
        """Chunk id -> (source, document id) of the chunks in the index (after
        :meth:`current`)."""
        if self.owners is None:
            documents: dict[tuple[str, str], tuple[str, str]] = {}
            self.owners = {
                chunk_id: documents.setdefault((source, doc_id), (source, doc_id))
                for chunk_id, source, doc_id in table.owners()
            }
        return self.owners

    # The file -----------------------------------------------------------------

    def save(self) -> bool:
        """Write the index if it changed: temporary file, fsync, rename, fsync the
        folder. Returns True when written."""
        import faiss

        if not self.dirty:
            return False
        body = faiss.serialize_index(self.index).tobytes()
        header = orjson.dumps(
            {
                "format": _CACHE_FORMAT,
                "model": self.model,
                "dimension": self.dimension,
                "database": self.database,
                "generation": self.generation,
                "epoch": self.epoch,
                "checksum": self.checksum,
                "vectors": int(self.index.ntotal),
                "crc32": zlib.crc32(body),
            }
        )
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
        self.dirty = False
        return True

    def read_file(self) -> tuple[Any, CacheHeader] | None:
        """The saved index and what its header claims, if it is intact and of this
        model (the claims are checked against the table by the caller)."""
        import faiss
        import numpy as np

        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        header, _, body = raw.partition(_HEADER_END)
        try:
            meta = orjson.loads(header)
            if (
                meta.get("format") != _CACHE_FORMAT
                or meta.get("model") != self.model
                or meta.get("dimension") != self.dimension
                or meta.get("crc32") != zlib.crc32(body)
            ):
                return None
            claims = CacheHeader(
                str(meta["database"]),
                int(meta["generation"]),
                int(meta["checksum"]),
                int(meta["vectors"]),
                int(meta["epoch"]),
            )
            index = faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
        except Exception:  # a damaged cache is rebuilt, never trusted
            return None
        if index.ntotal != claims.vectors or index.d != self.dimension:
            return None
        return index, claims

    def read_saved(self) -> tuple[CacheHeader, dict[int, bytes]] | None:
        """The saved file's header and its vectors by chunk id, if it is intact
        and of this model (for comparing the file with the table)."""
        loaded = self.read_file()
        if loaded is None:
            return None
        index, header = loaded
        ids = _ids_of(index).tolist()
        vectors = _raw_vectors(index, self.dimension)
        return header, {int(i): vector for i, vector in zip(ids, vectors, strict=True)}


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


def _raw_vectors(index: Any, dimension: int) -> list[bytes]:
    """The float32 vectors of an ``IndexIDMap2(IndexFlat)``, as bytes, in the order
    of :func:`_ids_of`."""
    total = int(index.ntotal)
    if total == 0:
        return []
    codes = index.index.reconstruct_n(0, total).tobytes()
    width = dimension * 4
    return [codes[i : i + width] for i in range(0, len(codes), width)]
