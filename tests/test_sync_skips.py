"""Documents a source cannot read: reported with their reasons, recorded, read again
only when they change, and never a reason for a sync (or a scheduled run) to stop."""

import os
import textwrap

import pytest
from eventhub.integrations.filesystem import FilesystemSource

from eventhub import Hub
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.testing import make_hub

from . import document_files as files

OLD = 1_600_000_000


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("Lighthouses guide ships along the coast.")
    (folder / "cut.docx").write_bytes(files.docx_malformed())
    for n, name in enumerate(["good.txt", "cut.docx"]):  # the bad one is newest
        os.utime(folder / name, (OLD + n, OLD + n))
    return folder


@pytest.fixture
def hub(tmp_path, docs):
    with make_hub(tmp_path) as hub:
        hub.register_integration("docs", FilesystemSource(path=docs))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        hub.documents.engine.overlap = 0
        yield hub


def sync(hub, **options):
    return hub.documents.sync("docs", **options)


def skipped_ids(hub):
    return [s["document_id"] for s in hub.documents.engine.state("docs")["skipped"]]


def test_the_report_lists_each_skipped_document_with_its_reason(hub):
    report = sync(hub)
    assert (report.added, report.skipped, report.failed) == (1, 1, 0)
    (skip,) = report.skipped_documents
    assert skip["document_id"] == "cut.docx"
    assert skip["reason"].startswith("unreadable DOCX (XMLSyntaxError")


def test_the_cursor_moves_past_skipped_files(hub, docs):
    (docs / "blank.txt").write_text(" ")
    os.utime(docs / "blank.txt", (OLD + 2, OLD + 2))
    assert sync(hub).cursor.startswith("2020-09-13T12:26:42")  # OLD + 2
    again = sync(hub)  # only what is at the (inclusive) cursor is listed again
    assert [s["document_id"] for s in again.skipped_documents] == ["blank.txt"]
    assert again.unchanged == 0


def test_the_skip_is_kept_while_syncs_do_not_read_the_file(hub):
    sync(hub)
    sync(hub)
    assert skipped_ids(hub) == ["cut.docx"]


def test_a_skipped_file_is_read_again_once_it_changes(hub, docs):
    sync(hub)
    (docs / "cut.docx").write_bytes(files.docx("Mended at last."))
    report = sync(hub)
    assert (report.added, report.skipped) == (1, 0)
    assert skipped_ids(hub) == []


def test_the_skip_goes_with_the_file(hub, docs):
    sync(hub)
    (docs / "cut.docx").unlink()
    sync(hub)
    assert skipped_ids(hub) == []


def test_a_full_sync_reads_skipped_files_again(hub):
    sync(hub)
    assert sync(hub, full=True).skipped_documents[0]["document_id"] == "cut.docx"


def test_sync_completed_lists_skipped_documents(hub, docs):
    for n in range(120):
        (docs / f"empty-{n:03}.txt").write_text(" ")
    sync(hub)
    (event,) = hub.bus.history("sync.completed")
    assert event.data["skipped"] == 121 and len(event.data["skipped_documents"]) == 100


def test_a_scheduled_sync_run_ends_and_keeps_the_skips_in_its_result(tmp_path, docs):
    (docs / "nested.eml").write_bytes(files.email_nested(3000))
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.docs]
        kind = "filesystem"
        path = "{docs}"
        sync_on_start = false
        max_mime_depth = 8
    """)
    )
    with Hub.from_config(config, load_entrypoints=False) as hub:
        run = hub.orchestrator.trigger_workflow("sync.docs")
        assert (run.status, run.result["added"], run.result["skipped"]) == (
            "succeeded",
            1,
            2,
        )
        assert "limit max_mime_depth = 8" in str(run.result["skipped_documents"])
