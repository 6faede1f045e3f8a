"""The FAISS cache of the document index: its file, its proof, its copy in memory.

A FAISS index over the normalised vectors of the chunks table is a cache in one
file beside the state database. The table (:mod:`eventhub.documents.store`) is the
source of truth; the cache is one of three structures (:class:`IndexSettings`):
exact search (``flat``: ``IndexIDMap2(IndexFlatIP)``), an inverted file (``ivf``:
``IndexIVFFlat`` with its own ids and a hash table of them) or a graph (``hnsw``:
``IndexIDMap2(IndexHNSWFlat)``); ``auto`` is exact below a size and an inverted
file above it.

**A write costs what it changes.** The table keeps, in the same transaction as
every write, a journal of what the cache must catch up on: a chunk added has an id
above every earlier one (``AUTOINCREMENT``), so the additions since a cache was
made are the rows past its ``last_id``; every removal is a row of
``index_removals`` (generation, chunk id, digest). A cache of an earlier
generation is caught up from those two, reading only what changed. Removed
vectors are *tombstones* in memory (skipped by searches) until the file is
rewritten, which happens only once the changes since it was written pass a share
of the index (:attr:`IndexSettings.save_after`), when the structure must change,
or on demand (``index verify``, ``index rebuild``). Between rewrites the journal is
what a new process catches up from; it is pruned when a rewrite makes it
unnecessary (keeping one rewrite's worth, for processes that hold an older copy).

**A cache must prove that it belongs to its table before it is used.** Its header
records the database's identity (a random id made with the database), the index
generation it covers (every write bumps it), the rebuild epoch, the last chunk id
it covers, and a checksum of the stored vectors it holds (a sum of per-chunk
digests of id and vector, which the table keeps up to date in the same
transaction as every write). A cache of another database, of a later generation,
of another epoch, or with a damaged body (a CRC-32 over the body) is rebuilt from
the table. A cache of an earlier generation is caught up from the journal, and
then its checksum must equal the table's, or it is rebuilt: ids alone are never
trusted.

A process holding the index in memory sees other processes' writes, rebuilds and
repairs by the generation before its next search: writes are caught up from the
journal, a rebuild or a repair (a new epoch) reloads the cache the other process
saved.

The file: one JSON header line, the FAISS body (streamed through FAISS's own
writer, so saving or loading a million vectors never holds a second copy of
them), then a 16-byte trailer (CRC-32 of the body, its length, a magic).

This module reads the table only through :class:`VectorTable`, and writes no table.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

log = structlog.get_logger(__name__)

_HEADER_END = b"\n"
_CACHE_FORMAT = 3
_TRAILER = struct.Struct("<IQ4s")  # crc32 of the body, body length, magic
_MAGIC = b"EHF3"
_BATCH = 20_000  # vectors per FAISS add while building or catching up
MASK = (1 << 64) - 1

KINDS = ("flat", "ivf", "hnsw", "auto")


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
class IndexSettings:
    """The ``[index]`` keys that choose and tune the FAISS structure.

    Attributes:
        kind: ``flat`` (exact), ``ivf``, ``hnsw``, or ``auto``: exact below
            :attr:`auto_threshold` vectors, ``ivf`` from there on.
        auto_threshold: Vectors from which ``auto`` uses the inverted file (and
            back to exact below half of it).
        nlist: The inverted file's lists (default: 4 times the square root of
            the vectors at build time, FAISS's own rule, at least 16). It is
            retrained when the index has grown 4 times past what it was trained
            for.
        nprobe: Lists searched per query (default: enough to compare about
            max(8,000, an 80th of the vectors) with the query: about 100 of 1,265
            lists at 100,000 vectors, 50 of 4,000 at a million): more is slower
            and finds more of the exact top.
        m: HNSW links per vector.
        ef_construction: HNSW candidates while adding.
        ef_search: HNSW candidates while searching (at least the results asked).
        save_after: The share of the index that may change before the file is
            rewritten (the journal in the database carries the rest).
    """

    kind: str = "auto"
    auto_threshold: int = 50_000
    nlist: int | None = None
    nprobe: int | None = None
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    save_after: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"index.kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
            )
        for name in ("auto_threshold", "m", "ef_construction", "ef_search"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"index.{name} must be at least 1")
        for name in ("nlist", "nprobe"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"index.{name} must be at least 1")
        if not 0 < self.save_after <= 1:
            raise ValueError("index.save_after must be above 0 and at most 1")

    def wanted(self, vectors: int, current: str | None = None) -> str:
        """The structure for an index of ``vectors`` (``current``: what it is now,
        so that ``auto`` does not flip back and forth around its threshold)."""
        if self.kind != "auto":
            return self.kind
        if current == "ivf" and vectors >= self.auto_threshold // 2:
            return "ivf"
        return "ivf" if vectors >= self.auto_threshold else "flat"

    def lists_for(self, vectors: int) -> int:
        """The inverted file's list count for ``vectors`` (trainable: at least 39
        training vectors per list, as FAISS wants)."""
        wanted = self.nlist or max(16, round(4 * math.sqrt(max(vectors, 1))))
        return max(1, min(wanted, vectors // 39))

    def probes_for(self, nlist: int, vectors: int) -> int:
        """Lists to search: ``nprobe``, or enough lists of an index of ``vectors``
        to compare about max(8,000, vectors / 80) of them (recall@10 of 0.96-0.97
        on MiniLM vectors from 100,000 to a million)."""
        if self.nprobe:
            return max(1, min(nlist, self.nprobe))
        compared = max(8_000, vectors // 80)
        return max(1, min(nlist, math.ceil(compared * nlist / max(vectors, 1))))


@dataclass(frozen=True)
class TableState:
    """The ``index_state`` row: what a cache of the table must match."""

    generation: int
    checksum: int  # unsigned, mod 2**64
    vectors: int
    epoch: int
    #: The largest chunk id ever issued (``sqlite_sequence``).
    last_id: int = 0
    #: Removals of generations up to here were pruned from the journal.
    journal_from: int = 0
    #: The generation of the last cache file written.
    saved_generation: int = -1


@dataclass(frozen=True)
class CacheHeader:
    """What a saved cache claims to cover (the first line of the file)."""

    database: str
    generation: int
    checksum: int
    vectors: int
    epoch: int
    last_id: int
    kind: str
    tombstones: frozenset[int]
    trained_for: int


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

    def vectors(self, after: int = 0) -> Iterable[tuple[int, bytes]]:
        """Every stored ``(id, vector)`` with an id above ``after``, by id."""
        ...

    def sample(self, size: int) -> list[bytes]:
        """About ``size`` stored vectors spread over the table (for training)."""
        ...

    def removals(self, after: int) -> list[tuple[int, int]]:
        """``(chunk id, digest)`` of the chunks removed after generation ``after``."""
        ...


@dataclass
class Built:
    """An index made from the table, with what it holds."""

    index: Any
    kind: str
    checksum: int
    vectors: int
    last_id: int
    trained_for: int


class FaissCache:
    """The FAISS index of one chunks table, in memory and in its file.

    Use it with :attr:`lock` held. :attr:`index` is None until it is loaded (or
    built); :meth:`current` loads it, or brings it up to the table, first.

    Args:
        path: The cache file.
        database: The identity of the state database the cache must be made for.
        model: The embedder's name; a cache of another model is never used.
        dimension: The embedder's vector width.
        settings: Which structure, and its tuning.
    """

    def __init__(
        self,
        path: Path,
        *,
        database: str,
        model: str,
        dimension: int,
        settings: IndexSettings | None = None,
    ):
        self.path = path
        self.database = database
        self.model = model
        self.dimension = dimension
        self.settings = settings or IndexSettings()
        self.lock = threading.RLock()
        self.index: Any = None
        self.kind = "flat"
        #: Ids still in the FAISS index whose chunks are gone (skipped by searches,
        #: dropped when the file is rewritten).
        self.tombstones: set[int] = set()
        #: Additions and removals since the file was written.
        self.unsaved = 0
        #: Whether the index in memory differs from the file.
        self.dirty = False
        #: The vector count an inverted file was trained for.
        self.trained_for = 0
        # The FAISS selector that leaves the tombstones out (built on use).
        self._selector: tuple[Any, ...] | None = None
        # What the index in memory covers (see the module docstring): an index at
        # another generation than the table is caught up, or reloaded, before use.
        self.generation = -1
        self.epoch = -1
        self.checksum = 0
        self.last_id = 0

    @property
    def loaded(self) -> bool:
        return self.index is not None

    @property
    def live(self) -> int:
        """The vectors searches can find."""
        if self.index is None:
            return 0
        return int(self.index.ntotal) - len(self.tombstones)

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
                and self._catch_up(table, state)
            ):
                self.index = None  # a rebuild or repair elsewhere: reload
        if self.index is None:
            repair = self._load(table, state)
        return self.index, repair

    def _load(self, table: VectorTable, state: TableState) -> Repair | None:
        """Load the saved cache if it proves to cover the table, else build one."""
        loaded = self.read_file()
        if loaded is not None:
            index, header = loaded
            reason = self._mismatch(header, state)
            if reason is None:
                self.adopt(index, header)
                if header.generation == state.generation or self._catch_up(
                    table, state
                ):
                    return None
                reason = "its vectors do not add up to the table's checksum"
            self.index = None
            del index
            log.info("index cache rebuilt", cache=str(self.path), reason=reason)
        built = self.build(table, state)
        self.hold(built, state.generation, state.epoch)
        if (built.checksum, built.vectors) != (state.checksum, state.vectors):
            return Repair(state, built.checksum, built.vectors)
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
        if header.generation < state.journal_from:
            return "the changes since it was saved are no longer in the journal"
        return None

    def adopt(self, index: Any, header: CacheHeader) -> None:
        """Hold ``index``, read from the file, as what its header says it covers."""
        self._tune(index, header.kind)
        self.index = index
        self.kind = header.kind
        self.generation = header.generation
        self.epoch = header.epoch
        self.checksum = header.checksum
        self.last_id = header.last_id
        self.tombstones = set(header.tombstones)
        self._selector = None
        self.trained_for = header.trained_for
        self.unsaved = 0
        self.dirty = False

    def hold(self, built: Built, generation: int, epoch: int) -> None:
        """Hold a freshly built index as the cache of the table at ``generation``
        and ``epoch`` (not saved yet)."""
        self.index = built.index
        self.kind = built.kind
        self.generation = generation
        self.epoch = epoch
        self.checksum = built.checksum
        self.last_id = built.last_id
        self.trained_for = built.trained_for
        self.tombstones = set()
        self._selector = None
        self.unsaved = built.vectors
        self.dirty = True

    def _catch_up(self, table: VectorTable, state: TableState) -> bool:
        """Bring the index from an earlier generation of this table up to
        ``state`` from the journal; True when its checksum then equals the table's
        (else it is unusable)."""
        if self.generation < state.journal_from:
            return False
        checksum = self.checksum
        removed: list[int] = []
        for chunk_id, digest in table.removals(self.generation):
            # A chunk past last_id was added and removed since: never held.
            if chunk_id <= self.last_id and chunk_id not in self.tombstones:
                checksum -= digest
                removed.append(chunk_id)
        added = 0
        batch: list[tuple[int, bytes]] = []
        for row in table.vectors(self.last_id):
            batch.append(row)
            checksum += vector_digest(row[0], row[1])
            if len(batch) >= _BATCH:
                added += self._add(batch)
                batch = []
        added += self._add(batch)
        self.tombstones.update(removed)
        checksum &= MASK
        self.last_id = max(self.last_id, state.last_id)
        self.generation = state.generation
        self.checksum = checksum
        self.unsaved += added + len(removed)
        self.dirty = self.dirty or bool(added or removed)
        return checksum == state.checksum and self.live == state.vectors

    def _add(
        self,
        rows: Sequence[tuple[int, bytes]],
        assignments: Any = None,
        start: int = 0,
    ) -> int:
        """Add ``(id, vector)`` rows; an inverted file's lists may be given, as
        ``assignments[start:]`` (see :meth:`_reserve`)."""
        import faiss
        import numpy as np

        if not rows:
            return 0
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), self.dimension)
        if assignments is None:
            self.index.add_with_ids(matrix, ids)
        else:
            lists = np.ascontiguousarray(assignments[start : start + len(rows)])
            self.index.add_core(
                len(rows),
                faiss.swig_ptr(matrix),
                faiss.swig_ptr(ids),
                faiss.swig_ptr(lists),
            )
        return len(rows)

    def build(self, table: VectorTable, state: TableState) -> Built:
        """A new index of every stored vector, of the structure the settings want
        for their number, with their checksum and count. Whatever index was held
        is let go first, and the new one's storage is sized before it is filled
        (growing it vector by vector would copy it over and over and leave the
        heap twice its size), so a rebuild holds the vectors once."""
        self.index = None
        index, kind, trained_for = self._empty(
            self.settings.wanted(state.vectors, self.kind), table, state.vectors
        )
        assignments = self._reserve(index, kind, table, state.vectors)
        self.index = index
        try:
            checksum, count, last_id = 0, 0, 0
            batch: list[tuple[int, bytes]] = []
            for row in table.vectors():
                batch.append(row)
                checksum += vector_digest(row[0], row[1])
                last_id = row[0]
                if len(batch) >= _BATCH:
                    count += self._add(batch, assignments, count)
                    batch = []
            count += self._add(batch, assignments, count)
        finally:
            self.index = None
        if assignments is not None and count != len(assignments):
            raise RuntimeError("the chunks table changed inside its read transaction")
        return Built(
            index,
            kind,
            checksum & MASK,
            count,
            max(last_id, state.last_id),
            trained_for,
        )

    def _reserve(self, index: Any, kind: str, table: VectorTable, vectors: int) -> Any:
        """Size an empty index's storage for ``vectors``; for an inverted file,
        a first pass assigns every vector to its list (the second one adds them
        with these assignments), and the assignments are returned."""
        import faiss
        import numpy as np

        if kind == "flat":
            flat: Any = faiss.downcast_index(index.index)
            codes = flat.codes
            codes.resize(vectors * self.dimension * 4)
            codes.resize(0)  # the capacity stays
            return None
        if kind != "ivf":
            return None
        parts: list[Any] = []
        batch: list[bytes] = []

        def assign() -> None:
            matrix = np.frombuffer(b"".join(batch), dtype=np.float32)
            _, lists = index.quantizer.search(matrix.reshape(len(batch), -1), 1)
            parts.append(lists.ravel())
            batch.clear()

        for _, vector in table.vectors():
            batch.append(vector)
            if len(batch) >= _BATCH:
                assign()
        if batch:
            assign()
        assignments = (
            np.ascontiguousarray(np.concatenate(parts), dtype=np.int64)
            if parts
            else np.zeros(0, dtype=np.int64)
        )
        lists: Any = faiss.downcast_InvertedLists(index.invlists)
        for number, size in enumerate(np.bincount(assignments, minlength=index.nlist)):
            if size:
                lists.resize(number, int(size))
                lists.resize(number, 0)  # the capacity stays
        return assignments

    def _empty(
        self, kind: str, table: VectorTable, vectors: int
    ) -> tuple[Any, str, int]:
        """An empty index of ``kind`` (an inverted file trained on a sample of the
        table, or exact search while the table is too small to train one), the
        kind it is, and the vector count it was trained for."""
        import faiss
        import numpy as np

        d = self.dimension
        if kind == "hnsw":
            graph = faiss.IndexHNSWFlat(d, self.settings.m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = self.settings.ef_construction
            graph.hnsw.efSearch = self.settings.ef_search
            return faiss.IndexIDMap2(graph), "hnsw", 0
        nlist = self.settings.lists_for(vectors)
        if kind == "ivf" and nlist >= 2:
            sample = table.sample(min(vectors, max(nlist * 40, 10_000)))
            matrix = np.frombuffer(b"".join(sample), dtype=np.float32)
            matrix = matrix.reshape(len(sample), d)
            if len(sample) >= nlist * 39:
                quantizer = faiss.IndexFlatIP(d)
                ivf = faiss.IndexIVFFlat(
                    quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT
                )
                ivf.cp.seed = 1234  # the same table trains the same lists
                ivf.train(matrix)
                hashtable = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]
                ivf.set_direct_map_type(hashtable)
                self._tune(ivf, "ivf")
                return ivf, "ivf", vectors
        return faiss.IndexIDMap2(faiss.IndexFlatIP(d)), "flat", 0

    def _tune(self, index: Any, kind: str) -> None:
        """Set the search-time knobs of the settings (a file keeps the ones it
        was saved with; the configuration decides)."""
        import faiss

        if kind == "ivf":
            index.nprobe = self.settings.probes_for(int(index.nlist), int(index.ntotal))
        elif kind == "hnsw":
            graph: Any = faiss.downcast_index(index.index)
            graph.hnsw.efSearch = self.settings.ef_search

    def written(
        self,
        before: TableState,
        after: TableState,
        delta: int,
        added: Sequence[tuple[int, bytes]],
        removed: Sequence[int],
    ) -> None:
        """A write of this process took the table from ``before`` to ``after``
        (adding ``(id, vector)`` rows, removing ids, changing the checksum by
        ``delta``): apply it to the index in memory, new vectors before old ones
        go. An index not loaded yet is loaded (and checked) on first use; one that
        another process's write left behind is caught up then."""
        if self.index is None:
            return
        if (before.generation, before.epoch, before.checksum) != (
            self.generation,
            self.epoch,
            self.checksum,
        ):
            return
        for start in range(0, len(added), _BATCH):
            self._add(added[start : start + _BATCH])
        self.tombstones.update(removed)
        self.generation = after.generation
        self.checksum = (self.checksum + delta) & MASK
        self.last_id = max(self.last_id, after.last_id)
        self.unsaved += len(added) + len(removed)
        self.dirty = self.dirty or bool(added or removed)

    # Searching ----------------------------------------------------------------

    def search(self, query: Any, fetch: int) -> tuple[list[tuple[int, float]], bool]:
        """The ``fetch`` nearest ids with their scores, best first, tombstones
        skipped; and whether the index has nothing more to give (an approximate
        index returns fewer than asked when its probed lists run out). A single
        query runs on this thread alone: FAISS's threads only wait on each other
        when the other cores are busy."""
        total = int(self.index.ntotal)
        asked = min(total, fetch)
        if self.kind == "ivf":  # the default number of lists follows the size
            self._tune(self.index, "ivf")
        with _threads(1 if len(query) == 1 else None):
            scores, ids = self.index.search(query, asked, params=self._params())
        dead = self.tombstones
        pairs = zip(ids[0].tolist(), scores[0].tolist(), strict=True)
        valid = [(i, s) for i, s in pairs if i >= 0]
        found = [(i, s) for i, s in valid if i not in dead] if dead else valid
        exhausted = asked >= total or len(valid) < asked
        return found, exhausted

    def _params(self) -> Any:
        """Search parameters that leave the tombstones out inside FAISS (so a
        query never asks for more results to make up for them), with the
        structure's own knobs; None without tombstones."""
        import faiss as faiss_module
        import numpy as np

        faiss: Any = faiss_module  # its stubs lack the search parameters' fields

        if not self.tombstones:
            return None
        key = (id(self.tombstones), len(self.tombstones))
        if self._selector is None or self._selector[0] != key:
            ids = np.fromiter(self.tombstones, dtype=np.int64)
            batch = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
            self._selector = (key, ids, batch, faiss.IDSelectorNot(batch))
        selector = self._selector[3]
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(
                sel=selector, nprobe=int(self.index.nprobe)
            )
        if self.kind == "hnsw":
            graph: Any = faiss.downcast_index(self.index.index)
            return faiss.SearchParametersHNSW(
                sel=selector, efSearch=int(graph.hnsw.efSearch)
            )
        return faiss.SearchParameters(sel=selector)

    # Maintenance --------------------------------------------------------------

    def maintenance(self) -> str | None:
        """What the index needs before it is saved: ``"rebuild"`` (the settings
        want another structure, an inverted file has outgrown its lists, or a
        graph holds too many tombstones), ``"save"`` (the changes since the file
        was written pass :attr:`IndexSettings.save_after` of it), or None."""
        if self.index is None:
            return None
        live = self.live
        if self.settings.wanted(live, self.kind) != self.kind:
            if self.kind == "flat" and self.settings.lists_for(live) < 2:
                pass  # an inverted file wanted, but too few vectors to train one
            else:
                return "rebuild"
        if self.kind == "ivf" and live > 4 * max(self.trained_for, 1):
            return "rebuild"
        if self.kind == "hnsw" and len(self.tombstones) > max(1_000, live // 10):
            return "rebuild"
        if self.dirty and self.unsaved >= self.settings.save_after * live:
            return "save"
        return None

    def purge(self) -> None:
        """Drop the tombstones' vectors from FAISS (a graph cannot: they stay
        tombstones, saved in the header, until a rebuild)."""
        import faiss
        import numpy as np

        if not self.tombstones or self.kind == "hnsw":
            return
        ids = np.asarray(sorted(self.tombstones), dtype=np.int64)
        if self.kind == "ivf":
            selector = faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
            self.index.remove_ids(selector)
        else:
            self.index.remove_ids(ids)
        self.tombstones = set()
        self._selector = None

    def memory_bytes(self) -> int:
        """About how much memory the index in memory takes (vectors, ids and the
        structure's own tables)."""
        if self.index is None:
            return 0
        total = int(self.index.ntotal)
        vectors = total * self.dimension * 4
        if self.kind == "ivf":
            nlist = int(self.index.nlist)
            # ids, the hash table of ids, the quantizer's centroids
            return vectors + total * (8 + 32) + nlist * self.dimension * 4
        # the id map, its reverse hash table
        extra = total * (8 + 40)
        if self.kind == "hnsw":
            extra += total * (self.settings.m * 2 * 4 + 16)
        return vectors + extra + len(self.tombstones) * 40

    # The file -----------------------------------------------------------------

    def write_temporary(self) -> Path:
        """Write the index (tombstones purged where the structure allows) to a
        temporary file beside the cache, fsynced, and return its path; the caller
        renames it into place (:meth:`saved`) or removes it."""
        import faiss

        self.purge()
        header = orjson.dumps(
            {
                "format": _CACHE_FORMAT,
                "model": self.model,
                "dimension": self.dimension,
                "database": self.database,
                "generation": self.generation,
                "epoch": self.epoch,
                "checksum": self.checksum,
                "vectors": self.live,
                "last_id": self.last_id,
                "kind": self.kind,
                "trained_for": self.trained_for,
                "tombstones": sorted(self.tombstones),
            }
        )
        fd, temporary = tempfile.mkstemp(prefix=self.path.name, dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(header + _HEADER_END)
                crc, length = 0, 0

                def write(chunk: bytes) -> None:
                    nonlocal crc, length
                    crc = zlib.crc32(chunk, crc)
                    length += len(chunk)
                    out.write(chunk)

                writer = faiss.PyCallbackIOWriter(write)  # type: ignore[attr-defined]
                faiss.write_index(self.index, writer)
                out.write(_TRAILER.pack(crc, length, _MAGIC))
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return Path(temporary)

    def saved(self) -> None:
        """The file now holds the index in memory."""
        self.unsaved = 0
        self.dirty = False

    def read_file(self) -> tuple[Any, CacheHeader] | None:
        """The saved index and what its header claims, if it is intact and of this
        model (the claims are checked against the table by the caller)."""
        import faiss

        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return None
        with handle:
            try:
                size = os.fstat(handle.fileno()).st_size
                meta = orjson.loads(handle.readline())
                if (
                    meta.get("format") != _CACHE_FORMAT
                    or meta.get("model") != self.model
                    or meta.get("dimension") != self.dimension
                ):
                    return None
                claims = CacheHeader(
                    str(meta["database"]),
                    int(meta["generation"]),
                    int(meta["checksum"]),
                    int(meta["vectors"]),
                    int(meta["epoch"]),
                    int(meta["last_id"]),
                    str(meta["kind"]),
                    frozenset(int(i) for i in meta["tombstones"]),
                    int(meta["trained_for"]),
                )
                start = handle.tell()
                handle.seek(size - _TRAILER.size)
                crc, length, magic = _TRAILER.unpack(handle.read(_TRAILER.size))
                if magic != _MAGIC or start + length + _TRAILER.size != size:
                    return None
                handle.seek(start)
                left, seen = length, 0

                def read(n: int) -> bytes:
                    nonlocal left, seen
                    chunk = handle.read(min(n, left))
                    left -= len(chunk)
                    seen = zlib.crc32(chunk, seen)
                    return chunk

                reader = faiss.PyCallbackIOReader(read)  # type: ignore[attr-defined]
                index = faiss.read_index(reader)
                if left:
                    read(left)
            except Exception:  # a damaged cache is rebuilt, never trusted
                return None
        if seen != crc or index.d != self.dimension:
            return None
        if int(index.ntotal) - len(claims.tombstones) != claims.vectors:
            return None
        return index, claims


def ids_of(index: Any, kind: str) -> Any:
    """The ids an index holds (tombstones included), as an int64 array."""
    import faiss
    import numpy as np

    if kind != "ivf":
        return faiss.vector_to_array(index.id_map)
    lists = index.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
        for number in range(index.nlist)
        if lists.list_size(number)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """FAISS's OpenMP threads for this thread's next calls (None: as it is).
    OpenMP keeps the setting per thread, so other threads are not affected."""
    if count is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
