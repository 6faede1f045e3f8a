"""Benchmark 7: retrieval quality on BEIR SciFact, and search latency.

eventhub: the SciFact documents written as Markdown files (``# title``, blank line,
abstract; one ``<corpus id>.md`` each) in a temporary folder; a Hub on a file with a
``FilesystemSource`` on that folder and a ``DocumentService`` on the packaged
all-MiniLM-L6-v2; one ``hub.documents.sync("scifact")``; then each test query through
``hub.documents.search(query, k=10)`` (a document's score is its best chunk's),
document ids mapped back to corpus ids. (The model has encoded one text before the
sync: eventhub's chunker counts tokens with the model's own tokenizer, whose settings
the first encode changes; see ``bench/rag.py``.)

Reference: the MTEB recipe with plain sentence-transformers on the same model files:
one text per document, ``title + " " + text`` (the model truncates it at 256 tokens),
normalised, exact inner product against every document, top 10. Both sides see the
same documents and queries. nDCG@10 (graded gains from the qrels, 1 / log2(rank + 1)
discount, ideal cut at 10) and recall@10 (relevant found in the top 10 over all
relevant) are averaged over the queries, as pytrec_eval does for BEIR.

The subset (``make bench``): the first 300 test queries of ``qrels/test.tsv`` (all
of them; 30 with ``--quick``), every document judged relevant to them, and a
fixed-seed random sample of the other documents up to 1,000 documents (100 with
``--quick``). Fewer distractors than the full corpus of 5,183 make the task easier,
so the published MTEB figures (nDCG@10 0.64508, recall@10 0.78333) compare only with
the reference's figures on the full corpus: ``python -m bench scifact --full``.

Search latency, on the index that sync built: eventhub's ``hub.documents.search(q,
10)`` against a bare ``index.search(vector, 10)`` on the very FAISS index eventhub
searches (``hub.documents.index._index()``). In row 7c both sides get the query
vectors computed beforehand (eventhub's embedder is wrapped for the measurement so
that ``encode_query`` returns the vector it would have computed), so the ratio is
eventhub's search overhead alone: it fetches 40 chunk hits, reads their chunks and
documents from SQLite, keeps each document's best chunk and builds the hits. Row 7d
includes query encoding on both sides (eventhub's own ``encode_query``; the reference
calls the plain model's ``encode([q])``, then FAISS). The target applies to the p50
of row 7c.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventhub.documents.embeddings import Embedder

from .common import (
    LatencySide,
    Row,
    Settings,
    interleave,
    latency_rows,
    scratch_dir,
    timed,
)
from .rag import (
    PUBLISHED_NDCG10,
    PUBLISHED_RECALL10,
    SEED,
    SOURCE,
    corpus_id,
    document_hub,
    mean_scores,
    quality_subset,
    raw_encode,
    scifact,
    seconds_text,
    write_corpus,
)

if TYPE_CHECKING:
    import numpy as np

    from eventhub.documents.service import DocumentService

NAME = "scifact"
K = 10
TARGET_QUALITY = 0.99
TARGET_SEARCH = 1.2


class PrecomputedQueries(Embedder):
    """Wraps an embedder so that ``encode_query`` returns a vector computed
    beforehand (by that embedder): eventhub's search without the encoding."""

    def __init__(self, inner: Embedder, vectors: Mapping[str, np.ndarray]) -> None:
        self.inner = inner
        self.vectors = vectors
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens

    def encode(self, texts: Any) -> np.ndarray:
        return self.inner.encode(texts)

    def token_spans(self, text: str) -> Any:
        return self.inner.token_spans(text)

    def encode_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


def run(settings: Settings) -> list[Row]:
    """Run the quality and search-latency benchmark; returns its rows."""
    import numpy as np

    data = scifact()
    docs = len(data.corpus) if settings.full_corpus else settings.size(1000, 100)
    subset = quality_subset(data, docs, settings.size(300, 30))
    queries = {q: data.queries[q] for q in subset.query_ids}
    qrels = {q: data.qrels[q] for q in subset.query_ids}
    relevant = len({d for q in subset.query_ids for d in data.qrels[q]})

    with scratch_dir(NAME) as tmp:
        folder = Path(tmp) / "docs"
        write_corpus(folder, data, subset.doc_ids)
        with document_hub(os.path.join(tmp, "hub.db"), folder) as hub:
            service = hub.documents
            started = time.perf_counter()
            report = service.sync(SOURCE)
            sync_seconds = time.perf_counter() - started
            chunks = service.index.stats()["chunks"]
            eventhub_ranked = {
                q: [corpus_id(hit.document_id) for hit in service.search(text, k=K)]
                for q, text in queries.items()
            }

            started = time.perf_counter()
            doc_vectors = raw_encode(
                [" ".join(data.corpus[d]).strip() for d in subset.doc_ids]
            )
            query_vectors = raw_encode(list(queries.values()))
            scores = query_vectors @ doc_vectors.T
            top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
            raw_seconds = time.perf_counter() - started
            raw_ranked = {
                q: [subset.doc_ids[j] for j in top[i]]
                for i, q in enumerate(subset.query_ids)
            }
            latency = _search_latency(service, list(queries.values()), settings)

    eh_ndcg, eh_recall = mean_scores(eventhub_ranked, qrels)
    raw_ndcg, raw_recall = mean_scores(raw_ranked, qrels)
    if subset.full:
        what = (
            f"the whole corpus ({len(subset.doc_ids)} documents) and all"
            f" {len(queries)} test queries; the published MTEB figure is comparable"
        )
    else:
        what = (
            f"subset of {len(subset.doc_ids)} documents: the {relevant} judged"
            f" relevant to the first {len(queries)} test queries plus a seed-{SEED}"
            " random sample of the others; the published figure (full corpus of"
            " 5,183 documents) is not comparable"
        )
    how = (
        f"eventhub synced {report.added} documents into {chunks} chunks"
        f" ({report.embedded} embedded, {seconds_text(sync_seconds)}), document score"
        " = best chunk; reference: one 'title text' per document (MTEB format),"
        f" exact inner product ({seconds_text(raw_seconds)} to encode)"
    )
    label = docs_label(subset.full, len(subset.doc_ids))
    rows = [
        Row(
            benchmark=f"7. SciFact nDCG@10 ({label}), sync + search vs raw exact",
            eventhub=f"nDCG@10 {eh_ndcg:.5f}",
            reference=f"raw ST {raw_ndcg:.5f} (published, full corpus:"
            f" {PUBLISHED_NDCG10:.5f})",
            kind="score",
            ratios=[eh_ndcg / raw_ndcg],
            target=TARGET_QUALITY,
            note=f"{what}; {how}",
        ),
        Row(
            benchmark="7b. SciFact recall@10, same run",
            eventhub=f"recall@10 {eh_recall:.5f}",
            reference=f"raw ST {raw_recall:.5f} (published, full corpus:"
            f" {PUBLISHED_RECALL10:.5f})",
            kind="score",
            ratios=[eh_recall / raw_recall],
            target=TARGET_QUALITY,
            note="the same documents, queries and rankings as row 7",
        ),
    ]
    return rows + latency


def docs_label(full: bool, count: int) -> str:
    """How many documents, for a row's name."""
    return f"full corpus, {count} docs" if full else f"{count}-doc subset"


def _search_latency(
    service: DocumentService, queries: list[str], settings: Settings
) -> list[Row]:
    """Rows 7c and 7d: eventhub's search against a bare FAISS search."""
    import numpy as np

    from .rag import raw_model

    real = service.index.embedder
    vectors = {q: real.encode_query(q) for q in queries}
    reshaped = [
        np.asarray(vectors[q], dtype=np.float32).reshape(1, -1) for q in queries
    ]
    faiss_index = service.index._index()  # the in-memory index eventhub searches
    model = raw_model()

    def eventhub_precomputed() -> list[float]:
        service.index.embedder = PrecomputedQueries(real, vectors)
        try:
            return [timed(partial(service.search, q, K)) for q in queries]
        finally:
            service.index.embedder = real

    def bare_faiss() -> list[float]:
        return [timed(partial(faiss_index.search, v, K)) for v in reshaped]

    sides: list[tuple[str, LatencySide]] = [
        ("eventhub", eventhub_precomputed),
        ("faiss", bare_faiss),
    ]
    samples = interleave(sides, settings.reps(9), settings.warmup)
    size = f"{faiss_index.ntotal} vectors"
    precomputed = latency_rows(
        "7c. search k=10, query vectors precomputed, vs bare FAISS",
        samples["eventhub"],
        samples["faiss"],
        "bare FAISS",
        f"{len(queries)} SciFact queries a round, one at a time, on the index"
        f" built in row 7 ({size}, IndexIDMap2(IndexFlatIP)); the target is judged"
        " on p50 only",
        target=TARGET_SEARCH,
    )
    precomputed[1].target = None

    encoded = queries[: settings.size(100, 30)]

    def eventhub_search() -> list[float]:
        return [timed(partial(service.search, q, K)) for q in encoded]

    def encode_and_faiss() -> list[float]:
        def one(q: str) -> None:
            vector = model.encode(
                [q], normalize_embeddings=True, convert_to_numpy=True
            ).astype(np.float32)
            faiss_index.search(vector, K)

        return [timed(partial(one, q)) for q in encoded]

    sides = [("eventhub", eventhub_search), ("raw", encode_and_faiss)]
    samples = interleave(sides, settings.reps(5), settings.warmup)
    with_encoding = latency_rows(
        "7d. search k=10 incl. query encoding, vs model.encode + bare FAISS",
        samples["eventhub"],
        samples["raw"],
        "encode + FAISS",
        f"{len(encoded)} SciFact queries a round, one at a time, same index ({size});"
        " eventhub encodes each query itself, the reference calls the plain"
        " sentence-transformers model, then FAISS",
    )
    return precomputed + with_encoding
