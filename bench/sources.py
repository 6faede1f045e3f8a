"""Benchmark 11: the SaaS sources (Confluence, Jira, Notion, Slack) against their
vendors' APIs, as the test suite's loopback fakes speak them (``tests/fakes``).

Row 11a, per kind: an incremental sync of an unchanged source of 10,000 documents
(1,000 with ``--quick``; S3 5,000 unless ``--full``: its incremental sync lists the
whole bucket, so both sides grow with it and the ratio does not depend on the size),
against a full sync of the same unchanged source (what a
connector without checkpoints pays at every run: every page listed, every body
fetched and hashed). Both sides run on the same hub, right after its first sync,
with the hashing embedder (no model time: nothing is embedded on either side) and
``prune = false`` for the incremental one (no enumeration is due). The ratio is full
sync time / incremental sync time (a speed-up), with a target of 10; both cells
give the requests the fake server counted: an unchanged incremental sync makes a
handful, whatever the size of the source. The documents' last changes are ten
minutes apart, so only the newest is within the overlap window read again. A full
sync of 10,000 documents takes 10-20 seconds, so it is timed once per kind (three
times with ``--full``) and each incremental sync is set against its median; the
incremental syncs, a fraction of a second, are timed five times after a warm-up.

Row 11b, per kind: a first sync of 20 SciFact documents (10 with ``--quick``, 100
with ``--full``) put in the fake, with the packaged all-MiniLM-L6-v2, against one raw
``model.encode`` call over exactly the texts eventhub's model read (as benchmark 8
does for the file share). Throughput = chunks embedded / wall time. Target: at least
0.9 of raw.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .common import Row, Settings, interleave, rate, scratch_dir, timed
from .rag import (
    SEED,
    _quiet,
    counts_text,
    embedded_inputs,
    embedder,
    raw_encode,
    sample_docs,
    scifact,
    seconds_text,
)

NAME = "sources"
KINDS = ("confluence", "gdrive", "imap", "jira", "notion", "s3", "sharepoint", "slack")
TARGET_SPEEDUP = 10.0
TARGET_THROUGHPUT = 0.9
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
#: The name the harnesses give their sources.
CONTRACT = "contract"


def _harnesses() -> dict[str, Callable[..., Any]]:
    # The fakes live with the tests that hold them to the vendors' documents.
    from tests.source_harness import HARNESSES

    return {kind: HARNESSES[kind] for kind in KINDS if kind in HARNESSES}


def _hub(folder: str, model: Any) -> Any:
    from eventhub.documents.service import DocumentService
    from eventhub.testing import make_hub

    hub = make_hub(folder, "hub.db")
    hub.documents = DocumentService(hub, embedder=model)
    return hub


def _filled(kind: str, factory: Callable[..., Any], folder: Path, docs: list) -> Any:
    harness = factory(folder)
    for i, (title, text) in enumerate(docs):
        # Ten minutes apart: only the newest falls in the 5-minute overlap window
        # an incremental sync reads again (as in a real source, mostly).
        harness.put(f"d{i}", title, text, T0 + timedelta(minutes=10 * i))
    return harness


def _close(harness: Any) -> None:
    close = getattr(harness, "close", None)
    if close is not None:
        close()


def run(settings: Settings) -> list[Row]:
    """Run the sources benchmark; returns its rows."""
    _quiet()
    rows: list[Row] = []
    harnesses = _harnesses()
    size = settings.size(10_000, 1_000)
    reps = settings.reps(5)
    synthetic = [
        (f"Note {i}", f"Meeting note {i}: the queue backlog for team {i % 97} is fine.")
        for i in range(size)
    ]
    full = settings.full_corpus
    full_syncs = 3 if full else 1
    for kind, factory in harnesses.items():
        # S3's incremental sync lists every object (1,000 keys a page), so both
        # sides grow with the bucket and their ratio does not depend on its size;
        # moto is the slow part of the run, so the default run fills half of it.
        docs = synthetic[: size // 2] if kind == "s3" and not full else synthetic
        rows.append(_unchanged_row(kind, factory, docs, reps, full_syncs))
    data = scifact()
    count = 100 if settings.full_corpus else settings.size(20, 10)
    texts = [
        (data.corpus[i][0] or f"SciFact {i}", data.corpus[i][1])
        for i in sample_docs(data, count)
    ]
    for kind, factory in harnesses.items():
        rows.append(_first_sync_row(kind, factory, texts, settings.reps(3)))
    return rows


def _unchanged_row(
    kind: str, factory: Callable[..., Any], docs: list, reps: int, full_syncs: int
) -> Row:
    from eventhub.documents.embeddings import HashEmbedder

    with scratch_dir(f"{NAME}-{kind}") as tmp:
        harness = _filled(kind, factory, Path(tmp), docs)
        try:
            with _hub(tmp, HashEmbedder(64)) as hub:
                engine = hub.documents.engine
                started = time.perf_counter()
                first = engine.sync(harness.source())
                first_seconds = time.perf_counter() - started
                requests = {"incremental": [], "full": []}
                outcomes: list[tuple[int, int, int]] = []

                def side(name: str, **options: Any) -> Callable[[], float]:
                    def go() -> float:
                        before = harness.requests
                        started = time.perf_counter()
                        report = engine.sync(harness.source(), **options)
                        seconds = time.perf_counter() - started
                        requests[name].append(harness.requests - before)
                        outcomes.append((report.added, report.updated, report.deleted))
                        return seconds

                    return go

                incremental_sync = side("incremental", prune=None)
                full_sync = side("full", full=True, force=True)
                incremental_sync()  # the warm-up round, not counted
                requests["incremental"].clear()
                incremental: list[float] = []
                full: list[float] = []
                for round_ in range(max(reps, full_syncs)):
                    if round_ < reps:
                        incremental.append(incremental_sync())
                    if round_ < full_syncs:
                        full.append(full_sync())
        finally:
            _close(harness)
    # A harness on a real server says so, and what its requests are.
    server = getattr(
        harness, "server_note", f"the {kind} fake of tests/fakes on 127.0.0.1"
    )
    counted = getattr(harness, "requests_note", "requests counted at the fake")
    changed = [o for o in outcomes if o != (0, 0, 0)]
    check = f"; CHECK: {len(changed)} syncs changed something" if changed else ""
    inc_requests = statistics.median(requests["incremental"])
    full_requests = statistics.median(requests["full"])
    full_median = statistics.median(full)
    return Row(
        benchmark=f"11a. {kind}: unchanged incremental sync ({len(docs):,} docs)"
        " vs full sync",
        eventhub=f"{seconds_text(statistics.median(incremental))},"
        f" {inc_requests:g} requests",
        reference=f"full sync {seconds_text(full_median)}, {full_requests:g} requests",
        kind="throughput",
        ratios=[full_median / i for i in incremental],
        target=TARGET_SPEEDUP,
        note=f"{server} holding {len(docs):,}"
        f" documents; first sync {seconds_text(first_seconds)}"
        f" ({first.added:,} added); hashing embedder; ratio = full / incremental"
        f" time, the full sync timed {_times(len(full))}, the incremental one"
        f" {_times(len(incremental))}; {counted}{check}",
    )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _first_sync_row(
    kind: str, factory: Callable[..., Any], docs: list, reps: int
) -> Row:
    model = embedder()
    embedded: list[int] = []
    inputs: list[str] = []

    def eventhub_side() -> float:
        with tempfile.TemporaryDirectory(prefix=f"eventhub-bench-{kind}-") as tmp:
            harness = _filled(kind, factory, Path(tmp), docs)
            try:
                with _hub(tmp, model) as hub:
                    started = time.perf_counter()
                    report = hub.documents.engine.sync(harness.source())
                    seconds = time.perf_counter() - started
                    inputs[:] = embedded_inputs(hub.documents, CONTRACT)
            finally:
                _close(harness)
        embedded.append(report.embedded)
        return seconds

    def raw_side() -> float:
        texts = list(inputs)
        return timed(lambda: raw_encode(texts))

    samples = interleave(
        [("eventhub", eventhub_side), ("raw", raw_side)], reps, warmup=1
    )
    eh, raw = samples["eventhub"], samples["raw"]
    counted = embedded[-reps:]
    texts = len(inputs)
    ratios = [(n / e) / (texts / r) for n, e, r in zip(counted, eh, raw, strict=True)]
    return Row(
        benchmark=f"11b. {kind}: first sync ({len(docs)} docs) vs raw model.encode,"
        " chunks/s",
        eventhub=f"{rate(int(statistics.median(counted)), eh, 'chunks/s')}"
        f" ({counts_text(counted)} chunks, {seconds_text(statistics.median(eh))})",
        reference=f"raw encode {rate(texts, raw, 'chunks/s')} ({texts} texts,"
        f" {seconds_text(statistics.median(raw))})",
        kind="throughput",
        ratios=ratios,
        target=TARGET_THROUGHPUT,
        note=f"{len(docs)} SciFact documents (seed {SEED}) in the {kind} fake;"
        " eventhub: the whole first sync over HTTP (paging, bodies, text, chunks,"
        " embedding, SQLite, events, FAISS); reference: one encode call over the"
        " same chunk texts, batch size 16",
    )
