import pytest

from eventhub.documents.chunking import ChunkSettings, chunk_text, word_spans

SETTINGS = ChunkSettings(max_tokens=40, min_tokens=8, overlap=6)


def paragraph(topic, sentences=3):
    return " ".join(
        f"Sentence {i} is about {topic} and more {topic}." for i in range(sentences)
    )


def test_every_chunk_fits_the_token_budget():
    text = "\n\n".join(
        paragraph(t, n) for t, n in [("tides", 2), ("bread", 12), ("stars", 1)]
    )
    for chunk in chunk_text(text, word_spans, SETTINGS):
        assert len(word_spans(chunk.text)) <= SETTINGS.max_tokens


def test_chunks_follow_paragraphs():
    text = "\n\n".join(paragraph(t) for t in ("tides", "bread", "stars"))
    chunks = chunk_text(text, word_spans, SETTINGS)
    assert [c.text.split()[4] for c in chunks] == ["tides", "bread", "stars"]


def test_editing_one_paragraph_changes_only_its_chunk():
    topics = ["tides", "bread", "stars", "rivers"]
    before = chunk_text("\n\n".join(paragraph(t) for t in topics), word_spans, SETTINGS)
    topics[2] = "comets"
    after = chunk_text("\n\n".join(paragraph(t) for t in topics), word_spans, SETTINGS)
    changed = {c.hash for c in after} - {c.hash for c in before}
    assert len(changed) == 1 and "comets" in next(
        c.text for c in after if c.hash in changed
    )


def test_long_paragraphs_are_windows_that_overlap_at_sentence_starts():
    # An overlap longer than a sentence (9 tokens) always holds a sentence start.
    settings = ChunkSettings(max_tokens=40, min_tokens=8, overlap=12)
    chunks = chunk_text(paragraph("bread", 20), word_spans, settings)
    assert len(chunks) > 3
    for first, second in zip(chunks, chunks[1:], strict=False):
        assert second.text.startswith("Sentence")  # a window starts a sentence
        assert (
            second.text.split()[1] in first.text
        )  # ... that the previous one ends with


def test_short_paragraphs_are_joined():
    text = "Hi.\n\nYes.\n\n" + paragraph("tides")
    chunks = chunk_text(text, word_spans, SETTINGS)
    assert chunks[0].text.startswith("Hi.\n\nYes.")


def test_formatting_noise_does_not_change_chunks():
    a = chunk_text("One  two.\r\n\r\n\r\nThree   four.", word_spans, SETTINGS)
    b = chunk_text("One two.\n\nThree four.\n", word_spans, SETTINGS)
    assert [c.hash for c in a] == [c.hash for c in b]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ChunkSettings(max_tokens=10, overlap=10)


def test_each_paragraph_is_tokenized_once_however_long():
    # What keeps chunking linear in the text: windows are cut from one list of
    # token spans; nothing is tokenized twice.
    lengths = []

    def counting(text):
        lengths.append(len(text))
        return word_spans(text)

    long = " ".join(f"w{i}" for i in range(50_000))
    chunks = chunk_text(long + "\n\n" + paragraph("tides"), counting, SETTINGS)
    assert lengths == [len(long), len(paragraph("tides"))] and len(chunks) > 1400
