"""Benchmark 8: initial sync throughput against raw ``model.encode``; unchanged re-sync.

eventhub: a fixed-seed sample of 100 SciFact documents (20 with ``--quick``) as
Markdown files (as in benchmark 7); each round a fresh Hub on a new file with a
``FilesystemSource`` on the folder and a ``DocumentService`` on the packaged
all-MiniLM-L6-v2 (the model object is loaded once and shared, so loading it is not
timed). The clock runs over the whole ``hub.documents.sync("scifact")``: listing and
reading the files, chunking, embedding, the SQLite writes, the events published, the
FAISS cache written and fsynced. Throughput = chunks embedded / that wall time.

Reference: the plain sentence-transformers model on the same model files, one
``model.encode(texts, batch_size=16, normalize_embeddings=True)`` call over exactly
the texts eventhub's model read, rebuilt after each sync from the chunks table and
the documents' titles (``DocumentIndex.chunk_input``: the title, a newline, the
chunk), one per distinct chunk. Rounds alternate eventhub, reference.

Row 8b: in each round, right after the initial sync, a second
``hub.documents.sync("scifact")`` with nothing changed (incremental; the cursor's
5-minute overlap means every file is listed, read and hashed again) against that
round's initial sync. Target: nothing embedded and at least 50 times faster.

Warm-up: one uncounted round on 8 other documents (model, code paths), then the
counted rounds.
"""

from __future__ import annotations

import os
import statistics
import time
from itertools import count
from pathlib import Path

from .common import Row, Settings, interleave, rate, scratch_dir, timed
from .rag import (
    SEED,
    SOURCE,
    counts_text,
    document_hub,
    embedded_inputs,
    raw_encode,
    sample_docs,
    scifact,
    seconds_text,
    write_corpus,
)

NAME = "index_sync"
TARGET_THROUGHPUT = 0.9
TARGET_RESYNC = 50.0
WARMUP_DOCS = 8
Phases = tuple[float, float]


def run(settings: Settings) -> list[Row]:
    """Run the sync-throughput benchmark; returns its rows."""
    data = scifact()
    size = settings.size(100, 20)
    ids = sample_docs(data, size)
    warm_ids = sorted(set(sample_docs(data, WARMUP_DOCS + size, SEED + 1)) - set(ids))[
        :WARMUP_DOCS
    ]
    reps = settings.reps(5)
    embedded: list[int] = []
    resync_embedded: list[int] = []
    unchanged: list[int] = []
    inputs: list[str] = []
    mismatch: list[str] = []

    with scratch_dir(NAME) as tmp:
        numbers = count()

        def eventhub_side(folder: Path) -> Phases:
            db = os.path.join(tmp, f"hub-{next(numbers)}.db")
            with document_hub(db, folder) as hub:
                started = time.perf_counter()
                report = hub.documents.sync(SOURCE)
                initial = time.perf_counter() - started
                texts = embedded_inputs(hub.documents)
                if len(texts) != report.embedded:
                    mismatch.append(f"{report.embedded} embedded, {len(texts)} texts")
                started = time.perf_counter()
                again = hub.documents.sync(SOURCE)
                resync = time.perf_counter() - started
            inputs[:] = texts
            embedded.append(report.embedded)
            resync_embedded.append(again.embedded)
            unchanged.append(again.unchanged)
            return initial, resync

        def raw_side() -> Phases:
            texts = list(inputs)
            return timed(lambda: raw_encode(texts)), 0.0

        warm = Path(tmp) / "warm"
        write_corpus(warm, data, warm_ids)
        eventhub_side(warm)
        raw_side()
        embedded.clear()
        resync_embedded.clear()
        unchanged.clear()

        folder = Path(tmp) / "docs"
        write_corpus(folder, data, ids)
        samples = interleave(
            [("eventhub", lambda: eventhub_side(folder)), ("raw", raw_side)],
            reps,
            warmup=0,
        )

    chunks = statistics.median(embedded)
    eh_initial = [initial for initial, _ in samples["eventhub"]]
    eh_resync = [resync for _, resync in samples["eventhub"]]
    raw = [seconds for seconds, _ in samples["raw"]]
    texts = len(inputs)
    ratios = [
        (n / e) / (texts / r) for n, e, r in zip(embedded, eh_initial, raw, strict=True)
    ]
    checked = (
        f"; CHECK: the texts rebuilt differ from the count embedded ({mismatch[0]})"
        if mismatch
        else ""
    )
    return [
        Row(
            benchmark=f"8. initial sync ({size} docs) vs raw model.encode, chunks/s",
            eventhub=f"{rate(int(chunks), eh_initial, 'chunks/s')}"
            f" ({counts_text(embedded)} chunks, {seconds_text(_median(eh_initial))})",
            reference=f"raw encode {rate(texts, raw, 'chunks/s')}"
            f" ({texts} texts, {seconds_text(_median(raw))})",
            kind="throughput",
            ratios=ratios,
            target=TARGET_THROUGHPUT,
            note=f"{size} SciFact documents (seed {SEED}) as Markdown files; eventhub:"
            " the whole sync's wall time; reference: one encode call over the same"
            f" chunk texts, batch size 16{checked}",
        ),
        Row(
            benchmark="8b. unchanged re-sync vs the initial sync",
            eventhub=f"re-sync {seconds_text(_median(eh_resync))},"
            f" {counts_text(resync_embedded)} chunks embedded,"
            f" {counts_text(unchanged)} docs unchanged",
            reference=f"initial sync {seconds_text(_median(eh_initial))}",
            kind="throughput",
            ratios=[i / r for i, r in zip(eh_initial, eh_resync, strict=True)],
            target=TARGET_RESYNC,
            note="the same hub right after its initial sync, nothing changed; the"
            " ratio is initial sync time / re-sync time of the same round (a"
            " speed-up); every file is listed, read and hashed again",
        ),
    ]


def _median(values: list[float]) -> float:
    return statistics.median(values)
