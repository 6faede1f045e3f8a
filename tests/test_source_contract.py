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


# The sync contract: every kind through the engine, with its server -------------

import json  # noqa: E402

from eventhub.documents.embeddings import HashEmbedder  # noqa: E402
from eventhub.documents.service import DocumentService  # noqa: E402
from eventhub.documents.sync import SourceFailed  # noqa: E402
from eventhub.testing import make_hub  # noqa: E402

from .source_harness import HARNESSES  # noqa: E402

SEED = [
    ("guide", "Guide", "How to configure the daemon and its workflows.", T0),
    (
        "standup",
        "Standup",
        "Tuesday standup notes about queues.",
        T0 + timedelta(hours=1),
    ),
    (
        "retro",
        "Retro",
        "Thursday retro: the backfill went well.",
        T0 + timedelta(hours=2),
    ),
]


@pytest.fixture(params=sorted(HARNESSES))
def harness(request, tmp_path):
    made = HARNESSES[request.param](tmp_path, request)
    for key, title, text, updated in SEED:
        made.put(key, title, text, updated)
    yield made
    close = getattr(made, "close", None)
    if close is not None:
        close()


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path, name="contract.db") as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, harness, **options):
    """One sync with a new source object, as a new process would make it."""
    return hub.documents.engine.sync(harness.source(), **options)


def indexed(hub):
    return hub.documents.index.document_ids("contract")


def checkpoint(hub):
    return hub.documents.engine.state("contract")["checkpoint"]


def replaces(harness):
    """True for a kind whose documents cannot be edited (mail): an edit at the
    source is a new document with a new id, and the old one is deleted."""
    return getattr(harness, "edits_replace", False)


def ids_of(harness, *keys):
    return {harness.id_of(k) for k in keys}


def test_a_checkpoint_round_trips_and_carries_the_next_sync(hub, harness):
    first = sync(hub, harness)
    assert first.added == 3 and indexed(hub) == ids_of(harness, *[s[0] for s in SEED])
    saved = checkpoint(hub)
    assert saved is not None and json.loads(json.dumps(saved)) == saved
    again = sync(hub, harness)
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)
    assert again.resync is None
    harness.put(
        "guide",
        "Guide",
        "How to run the daemon under systemd.",
        T0 + timedelta(hours=3),
    )
    harness.put(
        "howto", "How-to", "Backups of the state database.", T0 + timedelta(hours=4)
    )
    changed = sync(hub, harness)
    if replaces(harness):  # the edit is a new message, the old one expunged
        assert (changed.added, changed.updated, changed.deleted) == (2, 0, 1)
    else:
        assert (changed.added, changed.updated) == (1, 1)
    assert indexed(hub) == ids_of(harness, "guide", "standup", "retro", "howto")
    hits = hub.documents.index.search("systemd daemon", 1, source="contract")
    assert hits and hits[0].document_id == harness.id_of("guide")


def test_a_document_deleted_at_the_source_leaves_the_index(hub, harness):
    sync(hub, harness)
    harness.delete("standup")
    report = sync(hub, harness, prune=0)  # an enumeration is due
    assert report.deleted == 1 and report.pruned
    assert indexed(hub) == ids_of(harness, "guide", "retro")
    events = hub.bus.history("document.deleted")
    assert [e.data["document_id"] for e in events] == [harness.id_of("standup")]


def test_a_full_sync_finds_deletions_whatever_the_prune_cadence(hub, harness):
    sync(hub, harness)
    harness.delete("retro")
    report = sync(hub, harness, full=True, prune=None)
    assert report.deleted == 1 and indexed(hub) == ids_of(harness, "guide", "standup")


def test_a_foreign_checkpoint_is_a_resync_that_loses_nothing(hub, harness):
    sync(hub, harness)
    hub.documents.engine._save_checkpoint("contract", {"written by": "another kind"})
    harness.delete("guide")
    harness.put(
        "retro",
        "Retro",
        "Thursday retro, amended: queues drained.",
        T0 + timedelta(hours=5),
    )
    report = sync(hub, harness, prune=None)
    assert report.resync and report.mode == "resync"
    if replaces(harness):
        assert (report.deleted, report.added, report.updated) == (2, 1, 0)
    else:
        assert report.deleted == 1 and report.updated == 1
    assert indexed(hub) == ids_of(harness, "standup", "retro")
    (event,) = hub.bus.history("sync.resync")
    assert event.data["source"] == "contract" and event.data["reason"] == report.resync
    assert checkpoint(hub) != {"written by": "another kind"}
    assert sync(hub, harness, prune=None).resync is None


def test_a_failure_mid_listing_moves_nothing(hub, harness):
    sync(hub, harness)
    before = checkpoint(hub)
    held = indexed(hub)
    harness.put(
        "guide", "Guide", "Edited while the source is failing.", T0 + timedelta(hours=6)
    )
    harness.fail_from_now(500)
    try:
        report = sync(hub, harness, prune=0)
    except SourceFailed as exc:
        assert "'contract'" in str(exc) and "\n" not in str(exc)
    else:  # a source that cannot tell an empty listing from a failed one
        assert report.deleted == 0 and report.deletions_skipped
    assert checkpoint(hub) == before
    assert indexed(hub) == held
    harness.heal()
    healed = sync(hub, harness)
    assert (healed.added if replaces(harness) else healed.updated) == 1
    hits = hub.documents.index.search("edited while failing", 1, source="contract")
    assert hits[0].document_id == harness.id_of("guide")


def test_an_unchanged_incremental_sync_costs_a_handful_of_requests(hub, harness):
    sync(hub, harness)
    before = harness.requests
    report = sync(hub, harness, prune=None)
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    assert harness.requests - before <= 5
