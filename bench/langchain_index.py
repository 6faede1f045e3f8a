"""Benchmark 9: document sync against LangChain's indexing API, three phases.

eventhub: each round, 100 SciFact documents (a fixed-seed sample; 20 with
``--quick``) written afresh as Markdown files, a fresh Hub on a file with a
``FilesystemSource`` and a ``DocumentService`` on the packaged all-MiniLM-L6-v2
(shared model object). Timed: (a) the initial ``hub.documents.sync("scifact")``;
(b) the same sync again with nothing changed; (c) after editing one paragraph (a
sentence put in front of the abstract) in 1 % of the files, the sync again. Every
sync persists its result: SQLite (WAL, ``synchronous=FULL``) and the FAISS cache.

LangChain: ``langchain_core.indexing.index`` with ``cleanup="incremental"``,
``source_id_key="source"``, ``key_encoder="sha256"`` and its other options at their
defaults (100 LangChain documents per batch); a langchain_community
``SQLRecordManager`` on a SQLite file in the same folder with eventhub's pragmas; a
langchain_community ``FAISS`` store over ``IndexFlatIP`` (``MAX_INNER_PRODUCT``); an
``Embeddings`` adapter over the plain sentence-transformers model on the same files
(``encode(texts, batch_size=16, normalize_embeddings=True)``). Its documents are
eventhub's chunks: for each chunk eventhub stored, a LangChain ``Document`` whose
text is exactly what eventhub's model read for it (the title, a newline, the chunk)
and ``metadata={"source": <document id>}``; all of them in every phase, read from
eventhub's tables after eventhub's phase of the same round (for (c), with the edited
documents' new chunks). So LangChain is handed its chunks in memory: it neither
reads files nor chunks, which eventhub's timed syncs do. After a phase that changed
something it saves the store (``FAISS.save_local``), as eventhub saves its cache.

Chunks embedded are counted on both sides (LangChain's by its ``Embeddings``
adapter). LangChain's incremental cleanup runs per batch: when a document's chunks
straddle two batches, the first batch deletes the chunks that are still to come and
the second embeds them again (its documentation says so), which is why it embeds
some chunks even when nothing changed.

Rounds alternate eventhub, LangChain; one uncounted warm-up round on 8 other
documents first. Target: eventhub no slower in each phase, and embedding no more
chunks.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import Row, Settings, interleave, pragmas, scratch_dir
from .rag import (
    SEED,
    SOURCE,
    counts_text,
    document_hub,
    edit_documents,
    raw_encode,
    sample_docs,
    scifact,
    seconds_text,
    stored_chunks,
    write_corpus,
)

if TYPE_CHECKING:
    from langchain_core.documents import Document as LCDocument

# LangChain (the ``bench`` extra) is imported when this benchmark runs, so that the
# others run without it.

NAME = "langchain"
TARGET = 1.0
WARMUP_DOCS = 8
LC_BATCH = 100  # index()'s default, stated
PHASES = ("initial sync", "unchanged re-sync", "re-sync after editing 1 %")
Round = tuple[tuple[float, float, float], tuple[int, int, int]]


def _embeddings() -> Any:
    """A LangChain ``Embeddings`` over the plain model that counts the texts it
    embeds (``.embedded``)."""
    from langchain_core.embeddings import Embeddings

    class MiniLMEmbeddings(Embeddings):
        def __init__(self) -> None:
            self.embedded = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.embedded += len(texts)
            vectors: list[list[float]] = raw_encode(texts).tolist()
            return vectors

        def embed_query(self, text: str) -> list[float]:
            vector: list[float] = raw_encode([text])[0].tolist()
            return vector

    return MiniLMEmbeddings()


def run(settings: Settings) -> list[Row]:
    """Run the LangChain comparison; returns its rows."""
    from langchain_core.documents import Document as LCDocument
    from langchain_core.indexing import index as lc_index

    data = scifact()
    size = settings.size(100, 20)
    ids = sample_docs(data, size, SEED + 2)
    changed = sorted(random.Random(SEED).sample(ids, max(1, round(size / 100))))
    warm_ids = sorted(set(sample_docs(data, WARMUP_DOCS + size, SEED + 1)) - set(ids))[
        :WARMUP_DOCS
    ]
    reps = settings.reps(5)
    documents: dict[str, list[LCDocument]] = {}
    eventhub_pragmas: list[tuple[str, int]] = []

    with scratch_dir(NAME) as tmp:
        numbers = count()

        def eventhub_side(corpus: list[str], edit: list[str]) -> Round:
            n = next(numbers)
            folder = Path(tmp) / f"eventhub-{n}"
            write_corpus(folder, data, corpus)
            with document_hub(os.path.join(tmp, f"hub-{n}.db"), folder) as hub:
                service = hub.documents
                eventhub_pragmas[:] = [pragmas(hub.db.connection())]
                started = time.perf_counter()
                initial = service.sync(SOURCE)
                a = time.perf_counter() - started
                documents["initial"] = _lc_documents(service)
                started = time.perf_counter()
                again = service.sync(SOURCE)
                b = time.perf_counter() - started
                edit_documents(folder, data, edit)
                started = time.perf_counter()
                edited = service.sync(SOURCE)
                c = time.perf_counter() - started
                documents["edited"] = _lc_documents(service)
                if edited.updated != len(edit):
                    raise RuntimeError(f"eventhub updated {edited.updated} documents")
            return (a, b, c), (initial.embedded, again.embedded, edited.embedded)

        def langchain_side() -> Round:
            n = next(numbers)
            store_folder = os.path.join(tmp, f"langchain-{n}")
            embeddings = _embeddings()
            manager = _record_manager(os.path.join(tmp, f"records-{n}.db"))
            with manager.engine.connect() as connection:
                theirs = pragmas(connection.connection.driver_connection)
            if [theirs] != eventhub_pragmas:
                raise RuntimeError(f"pragmas differ: {theirs} / {eventhub_pragmas}")
            store = _faiss_store(embeddings)
            seconds: list[float] = []
            embedded: list[int] = []
            for phase in ("initial", "initial", "edited"):
                docs = [
                    LCDocument(d.page_content, metadata=dict(d.metadata))
                    for d in documents[phase]
                ]
                before = embeddings.embedded
                started = time.perf_counter()
                result = lc_index(
                    docs,
                    manager,
                    store,
                    batch_size=LC_BATCH,
                    cleanup="incremental",
                    source_id_key="source",
                    key_encoder="sha256",
                )
                if any(result[k] for k in ("num_added", "num_updated", "num_deleted")):
                    store.save_local(store_folder)
                seconds.append(time.perf_counter() - started)
                embedded.append(embeddings.embedded - before)
            manager.engine.dispose()
            return (seconds[0], seconds[1], seconds[2]), (
                embedded[0],
                embedded[1],
                embedded[2],
            )

        warm_edit = warm_ids[:1]
        eventhub_side(warm_ids, warm_edit)
        langchain_side()
        samples = interleave(
            [
                ("eventhub", lambda: eventhub_side(ids, changed)),
                ("langchain", langchain_side),
            ],
            reps,
            warmup=0,
        )

    eventhub, langchain = samples["eventhub"], samples["langchain"]
    rows = []
    labels = ("9.", "9b.", "9c.")
    for phase, (label, name) in enumerate(zip(labels, PHASES, strict=True)):
        eh = [r[0][phase] for r in eventhub]
        lc = [r[0][phase] for r in langchain]
        eh_counts = [r[1][phase] for r in eventhub]
        lc_counts = [r[1][phase] for r in langchain]
        eh_chunks, lc_chunks = counts_text(eh_counts), counts_text(lc_counts)
        fewer = all(e <= r for e, r in zip(eh_counts, lc_counts, strict=True))
        rows.append(
            Row(
                benchmark=f"{label} {name} ({size} docs) vs LangChain index()",
                eventhub=f"{seconds_text(statistics.median(eh))},"
                f" {eh_chunks} chunks embedded",
                reference=f"LangChain {seconds_text(statistics.median(lc))},"
                f" {lc_chunks} chunks embedded",
                kind="time",
                ratios=[e / r for e, r in zip(eh, lc, strict=True)],
                target=TARGET,
                note=_note(phase, size, changed)
                + f"; eventhub embedded no more chunks than LangChain in every round:"
                f" {'yes' if fewer else 'NO'}",
            )
        )
    return rows


def _note(phase: int, size: int, changed: list[str]) -> str:
    common = (
        f"{size} SciFact documents (seed {SEED + 2}); LangChain: SQLRecordManager on"
        " SQLite, FAISS store, incremental cleanup, fed eventhub's chunk texts"
    )
    if phase == 0:
        return f"{common}; fresh databases, folder and store"
    if phase == 1:
        return f"{common}; nothing changed since the initial sync"
    return (
        f"{common}; {len(changed)} of {size} documents edited"
        f" ({', '.join(changed)}: a sentence put in front of the abstract)"
    )


def _lc_documents(service: Any) -> list[LCDocument]:
    """eventhub's stored chunks as LangChain documents (see the module docstring)."""
    from langchain_core.documents import Document as LCDocument

    return [
        LCDocument(chunk.model_input, metadata={"source": chunk.document_id})
        for chunk in stored_chunks(service)
    ]


def _record_manager(path: str) -> Any:
    """A SQLRecordManager on a SQLite file in WAL mode with synchronous=FULL, as
    eventhub's state database."""
    from langchain_community.indexes._sql_record_manager import SQLRecordManager
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    manager = SQLRecordManager(SOURCE, engine=engine)
    manager.create_schema()
    return manager


def _faiss_store(embeddings: Any) -> Any:
    """An empty langchain_community FAISS store over IndexFlatIP."""
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    probe = embeddings.embed_query("dimension")  # not counted as embedded
    return FAISS(
        embedding_function=embeddings,
        index=faiss.IndexFlatIP(len(probe)),
        docstore=InMemoryDocstore(),
        index_to_docstore_id={},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )
