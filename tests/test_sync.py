"""Document sync and the index, with the hashing embedder (fast and deterministic)."""

import os
import textwrap
from pathlib import Path

import pytest
from eventhub.integrations.filesystem import FilesystemSource

from eventhub.documents import Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService, SourceNotFound
from eventhub.documents.sync import MassDeleteBlocked
from eventhub.testing import make_hub

PARAGRAPHS = {
    "alpha.md": [
        "# Alpha",
        "Event buses route messages between many publishers and "
        "subscribers in one process or several.",
        "Durable delivery keeps a cursor per subscription so that nothing is "
        "lost after a crash or restart.",
        "Retries use exponential backoff with jitter before a dead letter.",
    ],
    "beta.txt": [
        "Gardening notes about tomatoes, basil and the summer watering plan "
        "for the allotment near the river."
    ],
    "gamma.md": [
        "# Gamma",
        "Cron schedules fire workflows at fixed times; missed runs "
        "are made up once when the daemon starts again.",
    ],
    "notes/delta.txt": [
        "Semantic search embeds chunks of documents as vectors and "
        "finds the nearest ones to a query."
    ],
}


def write_doc(folder: Path, name: str, paragraphs):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(paragraphs))
    return path


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    for name, paragraphs in PARAGRAPHS.items():
        write_doc(folder, name, paragraphs)
    return folder


@pytest.fixture
def hub(tmp_path, docs):
    with make_hub(tmp_path) as hub:
        hub.register_integration("docs", FilesystemSource(path=docs))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, **options):
    return hub.documents.sync("docs", **options)


def ids_found(hub, query, k=10):
    return [hit.document_id for hit in hub.documents.search(query, k)]


def test_first_sync_indexes_every_document(hub):
    report = sync(hub)
    assert (report.added, report.updated, report.deleted, report.failed) == (4, 0, 0, 0)
    assert report.embedded > 0
    assert ids_found(hub, "tomatoes basil watering")[0] == "beta.txt"
    assert ids_found(hub, "nearest vectors query")[0] == "notes/delta.txt"


def test_an_unchanged_resync_embeds_nothing(hub):
    sync(hub)
    report = sync(hub, full=True)
    assert (report.added, report.updated, report.unchanged, report.embedded) == (
        0,
        0,
        4,
        0,
    )


def test_editing_one_paragraph_embeds_only_that_chunk(hub, docs):
    sync(hub)
    paragraphs = list(PARAGRAPHS["alpha.md"])
    paragraphs[2] = "Durable delivery persists acknowledgements, so nothing is lost."
    write_doc(docs, "alpha.md", paragraphs)
    report = sync(hub)
    assert (report.updated, report.embedded) == (1, 1)
    assert ids_found(hub, "persists acknowledgements")[0] == "alpha.md"


def test_a_deleted_file_disappears_from_search(hub, docs):
    sync(hub)
    (docs / "beta.txt").unlink()
    report = sync(hub)
    assert report.deleted == 1
    assert "beta.txt" not in ids_found(hub, "tomatoes basil watering")


def test_a_renamed_file_is_one_delete_and_one_add_reusing_vectors(hub, docs):
    sync(hub)
    (docs / "gamma.md").rename(docs / "schedules.md")
    report = sync(hub)
    assert (report.added, report.deleted, report.embedded) == (1, 1, 0)
    assert report.reused > 0
    assert ids_found(hub, "cron schedules missed runs")[0] == "schedules.md"


def test_an_embed_failure_keeps_the_old_version_searchable(hub, docs):
    sync(hub)
    hub.documents.embedder.fail_on = "EXPLODE"
    write_doc(docs, "beta.txt", ["EXPLODE and rewrite the gardening notes entirely."])
    report = sync(hub)
    assert (report.failed, report.updated) == (1, 0)
    assert ids_found(hub, "tomatoes basil watering")[0] == "beta.txt"
    state = hub.documents.engine.state("docs")
    assert state["failures"][0]["document_id"] == "beta.txt"
    hub.documents.embedder.fail_on = None
    report = sync(hub)  # the failure is retried, then forgotten
    assert report.updated == 1
    assert hub.documents.engine.state("docs")["failures"] == []


def test_other_documents_sync_despite_one_failure(hub, docs):
    hub.documents.embedder.fail_on = "tomatoes"
    report = sync(hub)
    assert (report.added, report.failed) == (3, 1)


def test_mass_delete_guard_stops_before_changing_anything(hub, docs):
    sync(hub)
    for name in ("alpha.md", "beta.txt", "gamma.md"):
        (docs / name).unlink()
    write_doc(docs, "new.txt", ["A new document about other things entirely."])
    with pytest.raises(MassDeleteBlocked, match="would delete 3 of 4 documents"):
        sync(hub)
    assert ids_found(hub, "tomatoes basil watering")[0] == "beta.txt"
    assert "new.txt" not in ids_found(hub, "new document other things")
    report = sync(hub, force=True)
    assert (report.deleted, report.added) == (3, 1)


def test_a_dry_run_counts_and_changes_nothing(hub, docs):
    report = sync(hub, dry_run=True)
    assert report.added == 4 and report.embedded > 0
    assert hub.documents.search("tomatoes", 5) == []
    assert hub.bus.history("document.*") == []


def test_incremental_sync_looks_only_at_changes(hub, docs):
    hub.documents.engine.overlap = 0
    for n, path in enumerate(sorted(docs.rglob("*.*"))):
        os.utime(path, (1_600_000_000 + n, 1_600_000_000 + n))
    sync(hub)
    write_doc(docs, "epsilon.txt", ["Brand new notes on queues and backpressure."])
    report = sync(hub)
    # The cursor is inclusive: the newest old file (at the cursor) is read again,
    # found unchanged by its hash; the three older ones are not read at all.
    assert (report.added, report.unchanged) == (1, 1)


def test_sync_publishes_events(hub, docs):
    sync(hub)
    (docs / "beta.txt").unlink()
    sync(hub)
    indexed = hub.bus.history("document.indexed", limit=None)
    assert {e.data["document_id"] for e in indexed} == set(PARAGRAPHS)
    (deleted,) = hub.bus.history("document.deleted")
    assert deleted.data == {"source": "docs", "document_id": "beta.txt"}
    completed = hub.bus.history("sync.completed")
    assert [e.data["deleted"] for e in completed] == [0, 1]


def test_search_filters_by_source_and_metadata(hub, tmp_path):
    other = tmp_path / "other"
    write_doc(other, "tomato.txt", ["Tomatoes basil watering, a second source."])
    hub.register_integration("other", FilesystemSource(path=other))
    sync(hub)
    hub.documents.sync("other")
    assert {h.source for h in hub.documents.search("tomatoes basil", 5)} == {
        "docs",
        "other",
    }
    only = hub.documents.search("tomatoes basil", 5, source="other")
    assert [h.document_id for h in only] == ["tomato.txt"]
    md = hub.documents.search("events", 5, metadata={"extension": ".md"})
    assert {h.document_id for h in md} == {"alpha.md", "gamma.md"}
    with pytest.raises(SourceNotFound, match="known: docs, other"):
        hub.documents.search("x", source="nope")


def test_hits_carry_title_url_snippet_and_score(hub, docs):
    sync(hub)
    (hit,) = hub.documents.search("cron schedules", 1)
    assert hit.title == "Gamma" and hit.url == (docs / "gamma.md").resolve().as_uri()
    assert "Cron schedules fire workflows" in hit.snippet
    assert 0 < hit.score <= 1.0001


def test_the_index_survives_a_reopen(tmp_path, docs):
    with make_hub(tmp_path) as hub:
        hub.register_integration("docs", FilesystemSource(path=docs))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        sync(hub)
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        assert ids_found(hub, "tomatoes basil watering")[0] == "beta.txt"
        assert hub.documents.index.verify().ok


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
def test_a_missing_or_damaged_cache_is_rebuilt(tmp_path, docs, damage):
    with make_hub(tmp_path) as hub:
        hub.register_integration("docs", FilesystemSource(path=docs))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        sync(hub)
        cache = hub.documents.index.path
    if damage == "delete":
        cache.unlink()
    elif damage == "garbage":
        cache.write_bytes(b"not an index at all")
    else:
        cache.write_bytes(cache.read_bytes()[:200])
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        assert ids_found(hub, "tomatoes basil watering")[0] == "beta.txt"
        assert hub.documents.index.verify().ok


def test_another_process_writing_the_index_is_seen_by_a_reader(tmp_path, docs):
    with make_hub(tmp_path) as reader, make_hub(tmp_path) as writer:
        reader.documents = DocumentService(reader, embedder=HashEmbedder(64))
        assert reader.documents.search("tomatoes", 3) == []  # loads an empty cache
        writer.register_integration("docs", FilesystemSource(path=docs))
        writer.documents = DocumentService(writer, embedder=HashEmbedder(64))
        sync(writer)
        assert ids_found(reader, "tomatoes basil watering")[0] == "beta.txt"


def test_a_reader_maps_hits_right_after_another_process_changes_documents(
    tmp_path, docs
):
    with make_hub(tmp_path) as reader, make_hub(tmp_path) as writer:
        for hub in (reader, writer):
            hub.register_integration("docs", FilesystemSource(path=docs))
            hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        sync(writer)
        assert ids_found(reader, "tomatoes basil watering")[0] == "beta.txt"
        (docs / "beta.txt").unlink()
        (docs / "gamma.txt").write_text("Tomatoes and basil want watering daily.\n")
        sync(writer)
        found = ids_found(reader, "tomatoes basil watering")
        assert found[0] == "gamma.txt" and "beta.txt" not in found


def test_a_different_model_is_refused(tmp_path, docs):
    from eventhub import ConfigError

    with make_hub(tmp_path) as hub:
        hub.register_integration("docs", FilesystemSource(path=docs))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        sync(hub)
        with pytest.raises(ConfigError, match="holds vectors of hash-64, not hash-32"):
            DocumentService(hub, embedder=HashEmbedder(32))


def test_content_hash_ignores_formatting_noise_but_not_words():
    base = Document("a", "s", "T", "Hello   world.\r\n\r\n\r\nNext  para.")
    same = Document("a", "s", "T", "Hello world.\n\nNext para.  ")
    other = Document("a", "s", "T", "Hello world.\n\nNext paragraph.")
    assert base.content_hash == same.content_hash != other.content_hash


def config_hub(tmp_path, docs, *source_settings):
    """A hub from a config file with the share ``docs`` and these settings."""
    from eventhub import Hub

    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.docs]
        kind = "filesystem"
        path = "{docs}"
    """)
        + "".join(f"{line}\n" for line in source_settings)
    )
    return Hub.from_config(config, load_entrypoints=False)


def test_event_driven_sync_refetches_and_debounces(tmp_path, docs):
    with config_hub(tmp_path, docs, "schedule = false") as hub:
        assert sorted(hub.workflows()) == ["document-sync", "sync.docs"]
        assert hub.workflows()["sync.docs"].schedule is None
        hub.documents.sync("docs")
        write_doc(
            docs, "beta.txt", ["Completely rewritten: notes about chess openings."]
        )
        for _ in range(3):  # a burst of hints for one document
            hub.bus.publish(
                "document.updated",
                {"source": "docs", "id": "beta.txt"},
                subject="docs/beta.txt",
            )
        hub.bus.drain()
        runs = hub.orchestrator.runs.list("document-sync")
        results = [r.result for r in reversed(runs)]
        assert results[:2] == [{"superseded": True}, {"superseded": True}]
        assert results[2]["updated"] == 1
        assert ids_found(hub, "chess openings")[0] == "beta.txt"


def test_a_crash_between_commit_and_cache_save_loses_nothing(tmp_path, docs):
    import subprocess
    import sys

    from .conftest import HELPERS

    with make_hub(tmp_path) as hub:  # a first sync, saved normally
        hub.register_integration("docs", FilesystemSource(path=docs))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        sync(hub)
    cache = tmp_path / "hub.db.faiss"
    saved = cache.read_bytes()
    (docs / "beta.txt").unlink()
    write_doc(docs, "omega.txt", ["Lighthouses guide ships along the rocky coast."])
    child = subprocess.run(
        [
            sys.executable,
            str(HELPERS / "sync_then_die.py"),
            str(tmp_path / "hub.db"),
            str(docs),
        ],
        capture_output=True,
        text=True,
    )
    assert child.returncode == -9, child.stderr  # killed after the commit
    assert cache.read_bytes() == saved  # ... so the cache on disk is stale
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        assert hub.documents.index.verify().ok
        assert ids_found(hub, "lighthouses rocky coast")[0] == "omega.txt"
        assert "beta.txt" not in ids_found(hub, "tomatoes basil watering")


def test_a_failed_document_that_vanishes_is_no_longer_retried(hub, docs):
    hub.documents.embedder.fail_on = "tomatoes"
    sync(hub)
    assert len(hub.documents.engine.state("docs")["failures"]) == 1
    (docs / "beta.txt").unlink()
    sync(hub)
    assert hub.documents.engine.state("docs")["failures"] == []


def test_a_title_change_alone_embeds_again(hub, docs):
    page = (
        "<html><head><title>{}</title></head>"
        "<body><p>Body text stays.</p></body></html>"
    )
    (docs / "page.html").write_text(page.format("Old title"))
    sync(hub)
    (docs / "page.html").write_text(page.format("Lighthouse keeping"))
    report = sync(hub)
    assert (report.updated, report.embedded) == (1, 1)  # the model reads the title
    assert ids_found(hub, "lighthouse keeping")[0] == "page.html"


def test_schedule_false_keeps_the_sync_at_start(tmp_path, docs):
    from .test_workflows import wait_for

    with config_hub(tmp_path, docs, "schedule = false", "sync_on_start = true") as hub:
        hub.start()
        runs = hub.orchestrator.runs
        wait_for(lambda: [r.status for r in runs.list("sync.docs")] == ["succeeded"])
        hub.stop()
        assert ids_found(hub, "tomatoes basil watering")[0] == "beta.txt"
