"""The contract every document Source must meet: one suite, run over each kind.

A backend joins by adding a factory to SOURCES: given documents (id, title, text,
updated_at), it returns a source holding exactly those.
"""

import os
from datetime import UTC, datetime, timedelta

import pytest
from eventhub.integrations.filesystem import FilesystemSource

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOCS = [
    ("guide.md", "Guide", "How to configure the daemon and its workflows.", T0),
    (
        "notes/a.txt",
        "Notes A",
        "Tuesday standup notes about queues.",
        T0 + timedelta(hours=1),
    ),
    (
        "notes/b.txt",
        "Notes B",
        "Thursday retro: the backfill went well.",
        T0 + timedelta(hours=2),
    ),
]


def filesystem_source(tmp_path, documents):
    root = tmp_path / "share"
    for doc_id, title, text, updated in documents:
        path = root / doc_id
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# {title}" if doc_id.endswith(".md") else title
        path.write_text(f"{header}\n\n{text}")
        os.utime(path, (updated.timestamp(), updated.timestamp()))
    source = FilesystemSource(path=root)
    source.name = "contract"
    return source


SOURCES = {"filesystem": filesystem_source}


@pytest.fixture(params=sorted(SOURCES))
def source(request, tmp_path):
    return SOURCES[request.param](tmp_path, DOCS)


def test_ids_are_a_complete_listing(source):
    assert sorted(source.ids()) == sorted(d[0] for d in DOCS)


def test_changes_since_none_yields_every_document(source):
    docs = {d.id: d for d in source.changes(None)}
    assert sorted(docs) == sorted(d[0] for d in DOCS)
    for doc_id, title, text, updated in DOCS:
        doc = docs[doc_id]
        assert doc.source == "contract" and doc.title == title and text in doc.text
        assert doc.updated_at == updated


def test_changes_since_is_inclusive(source):
    later = [d.id for d in source.changes(T0 + timedelta(hours=1))]
    assert sorted(later) == ["notes/a.txt", "notes/b.txt"]
    assert [d.id for d in source.changes(T0 + timedelta(hours=3))] == []


def test_an_ordered_source_yields_oldest_first(source):
    if not source.ordered:
        pytest.skip("this source does not promise an order")
    times = [d.updated_at for d in source.changes(None)]
    assert times == sorted(times)


def test_fetch_returns_the_same_document_as_changes(source):
    for doc in source.changes(None):
        fetched = source.fetch(doc.id)
        assert fetched == doc and fetched.content_hash == doc.content_hash


def test_fetch_of_an_unknown_id_is_none(source):
    assert source.fetch("no/such/document.txt") is None


def test_documents_have_text_titles_and_utc_times(source):
    for doc in source.changes(None):
        assert doc.text.strip() and doc.title.strip()
        assert (
            doc.updated_at.tzinfo is not None
            and doc.updated_at.utcoffset() == timedelta(0)
        )
