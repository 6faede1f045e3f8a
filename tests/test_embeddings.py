"""The real sentence-transformers embedder (the packaged all-MiniLM-L6-v2)."""

import pytest

from eventhub.documents.chunking import chunk_text
from eventhub.documents.embeddings import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder()


def covered(chunks, text):
    """Every word of the text appears in some chunk."""
    joined = " ".join(c.text for c in chunks)
    return all(word in joined for word in text.split())


def test_long_paragraphs_are_chunked_whole_before_and_after_encoding(embedder):
    words = [f"word{i}" for i in range(900)]  # several word pieces each
    text = " ".join(words)
    before = chunk_text(text, embedder.token_spans)
    embedder.encode(["the model's own tokenizer truncates and pads while encoding"])
    after = chunk_text(text, embedder.token_spans)
    assert [c.text for c in before] == [c.text for c in after]
    assert len(before) > 3 and covered(before, text)
    assert all(len(embedder.token_spans(c.text)) <= 200 for c in before)


def test_vectors_are_normalised_and_meaningful(embedder):
    vectors = embedder.encode(["a small dog", "a puppy", "tax law of 1998"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1) < 1e-4
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_facts_and_token_spans_come_from_the_files_without_loading_the_model():
    lazy = SentenceTransformerEmbedder()
    assert (lazy.dimension, lazy.max_tokens) == (384, 256) and not lazy.loaded
    text = "Descaling the coffee machine, every second Friday (ünïcode too)."
    spans = lazy.token_spans(text)
    assert not lazy.loaded
    model_tokens = lazy._load().tokenizer.backend_tokenizer
    model_tokens.no_truncation()
    model_tokens.no_padding()
    assert spans == model_tokens.encode(text, add_special_tokens=False).offsets


def test_the_model_loads_on_first_encode_and_says_so():
    told = []
    lazy = SentenceTransformerEmbedder(on_load=told.append)
    assert told == [] and not lazy.loaded
    assert lazy.encode(["a small dog"]).shape == (1, 384)
    assert told == ["all-MiniLM-L6-v2"] and lazy.loaded


def test_both_spellings_of_a_hub_model_name_one_model():
    from eventhub.documents.embeddings import SentenceTransformerEmbedder

    short = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    long = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    assert short.name == long.name == "sentence-transformers/all-MiniLM-L6-v2"
