"""The ``s3`` source against a real S3-compatible server on 127.0.0.1 (moto in
server mode, tests/fakes/s3.py), its requests counted at the server."""

import resource
import sys
from datetime import timedelta

import pytest
from eventhub.integrations.s3 import S3Source

from eventhub.documents import CheckpointExpired, Deleted, Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError, MissingDependency
from eventhub.testing import make_hub

from .fakes.s3 import KEY_ID, SECRET, S3Harness

MiB = 1024 * 1024


@pytest.fixture
def s3():
    harness = S3Harness()
    yield harness
    harness.close()


@pytest.fixture
def server(s3):
    return s3.server


@pytest.fixture
def waits():
    return []


@pytest.fixture
def make_source(s3, waits):
    def make(**settings):
        settings.setdefault("page_size", 2)
        return s3.source(sleep=waits.append, **settings)

    return make


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path, name="s3.db") as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


@pytest.fixture
def sync(hub, make_source):
    def run(**options):
        settings = options.pop("settings", {})
        return hub.documents.engine.sync(make_source(**settings), **options)

    return run


def put(server, name, text, **options):
    server.put(f"docs/{name}", text.encode(), **options)


def indexed(hub):
    return hub.documents.index.document_ids("contract")


def listed(server):
    pages = server.client.get_paginator("list_objects_v2")
    found = pages.paginate(Bucket=server.bucket, Prefix="docs/")
    return {o["Key"] for page in found for o in page.get("Contents") or ()}


def fill(server, count):
    for i in range(count):
        put(server, f"note-{i:02}.md", f"# Note {i}\n\nThe backlog of team {i}.")


def test_a_full_sync_reads_every_page_of_the_listing(hub, server, sync):
    fill(server, 7)
    report = sync()
    assert report.added == 7 and indexed(hub) == listed(server)
    assert server.operations["ListObjectsV2"] == 4  # pages of 2
    assert server.operations["GetObject"] == 7


def test_documents_have_the_key_the_url_and_the_object_facts(server, make_source):
    put(server, "guides/setup.md", "# Setting up\n\nInstall it.")
    put(server, "plain.txt", "No title here.", content_type="text/plain")
    docs = {d.id: d for d in make_source().read(None) if isinstance(d, Document)}
    setup, plain = docs["docs/guides/setup.md"], docs["docs/plain.txt"]
    assert setup.title == "Setting up" and setup.url.startswith("s3://eventhub-")
    assert setup.url.endswith("/docs/guides/setup.md") and "Install it." in setup.text
    assert plain.title == "plain.txt" and plain.metadata["content_type"] == "text/plain"
    assert plain.metadata["size"] == len(b"No title here.")
    assert len(plain.metadata["etag"]) == 32 and '"' not in plain.metadata["etag"]
    assert plain.updated_at.utcoffset() == timedelta(0)


def test_edits_additions_and_deletions_reach_the_index(hub, server, sync):
    fill(server, 5)
    sync()
    before = server.operations["GetObject"]
    put(server, "note-01.md", "# Note 1\n\nThe backlog is gone: queues drained.")
    put(server, "note-09.md", "# Note 9\n\nA new team.")
    server.delete("docs/note-03.md")
    report = sync()
    assert (report.added, report.updated, report.deleted) == (1, 1, 1)
    assert indexed(hub) == listed(server)
    assert server.operations["GetObject"] - before == 2  # the changed ones only
    hits = hub.documents.index.search("queues drained", 1, source="contract")
    assert hits[0].document_id == "docs/note-01.md"


def test_an_unchanged_incremental_sync_costs_only_the_listing(hub, server, sync):
    fill(server, 9)
    sync()
    before = dict(server.operations)
    report = sync()
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    spent = {k: v - before.get(k, 0) for k, v in server.operations.items()}
    assert {k: v for k, v in spent.items() if v} == {"ListObjectsV2": 5}


def test_the_checkpoint_is_compact(hub, server, sync):
    server.put_many((f"docs/section/page-{i:04}.txt", b"text") for i in range(300))
    sync(settings={"page_size": 1000})
    saved = hub.documents.engine.state("contract")["checkpoint"]
    assert saved["count"] == 300 and len(str(saved)) < 300 * 25


def test_folder_markers_other_formats_and_other_prefixes_are_left_out(
    hub, server, sync
):
    put(server, "guides/", "")
    put(server, "logo.png", "not text")
    server.put("elsewhere/readme.md", b"# Elsewhere")
    put(server, "readme.md", "# Readme\n\nHello.")
    report = sync()
    assert indexed(hub) == {"docs/readme.md"} and report.skipped == 0


def test_an_object_of_200_mb_is_skipped_from_its_size_without_download(
    hub, server, sync
):
    server.put_sparse("docs/huge.pdf", 200 * MiB)
    put(server, "small.md", "# Small\n\nStill indexed.")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report = sync()
    assert indexed(hub) == {"docs/small.md"} and server.operations["GetObject"] == 1
    (skip,) = report.skipped_documents
    assert skip["document_id"] == "docs/huge.pdf" and "too large" in skip["reason"]
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert grown < 100 * MiB
    assert sync().skipped == 0  # unchanged: not looked at again


def test_fetch_of_a_200_mb_object_stops_at_its_length(server, make_source):
    server.put_sparse("docs/huge.pdf", 200 * MiB)
    source = make_source()
    assert source.fetch("docs/huge.pdf") is None
    assert "too large" in source.skipped[0].reason


def test_slow_down_mid_listing_is_waited_out(hub, server, sync, waits):
    fill(server, 6)
    server.fault(lambda op, query: "continuation-token" in query, "SlowDown")
    report = sync()
    assert report.added == 6 and indexed(hub) == listed(server)
    assert len(waits) == 1 and server.operations["ListObjectsV2"] == 4


def test_a_503_on_an_object_is_retried(hub, server, sync, waits):
    fill(server, 3)
    server.fault(lambda op, query: op == "GetObject", "ServiceUnavailable")
    assert sync().added == 3 and len(waits) == 1


def test_an_object_failing_after_the_retries_is_fetched_again_next_sync(
    hub, server, sync
):
    fill(server, 3)
    server.fault(lambda op, query: op == "GetObject", "InternalError")
    first = sync(settings={"attempts": 1})
    assert (first.added, first.failed) == (2, 1)
    again = sync()
    assert again.added == 1 and indexed(hub) == listed(server)
    assert hub.documents.engine.state("contract")["failures"] == []


def test_bad_credentials_fail_the_sync_on_one_line_without_the_secret(
    hub, server, sync
):
    fill(server, 3)
    sync()
    before = hub.documents.engine.state("contract")["checkpoint"]
    with pytest.raises(SourceFailed) as failed:
        sync(settings={"access_key_id": "AKIAWRONG", "secret_access_key": SECRET})
    message = str(failed.value)
    assert "InvalidAccessKeyId" in message and "'contract'" in message
    assert "\n" not in message and SECRET not in message
    assert hub.documents.engine.state("contract")["checkpoint"] == before


def test_a_missing_bucket_fails_the_sync_on_one_line(hub, sync):
    with pytest.raises(SourceFailed, match="NoSuchBucket") as failed:
        sync(settings={"bucket": "no-such-bucket"})
    assert "\n" not in str(failed.value)


def test_an_unreadable_object_is_skipped_until_it_changes(hub, server, sync):
    put(server, "broken.pdf", "%PDF-1.7 not really")
    put(server, "fine.md", "# Fine\n\nReadable.")
    first = sync()
    assert first.skipped == 1 and indexed(hub) == {"docs/fine.md"}
    before = server.operations["GetObject"]
    assert sync().skipped == 0 and server.operations["GetObject"] == before
    put(server, "broken.pdf", "%PDF-1.7 still not")
    assert sync().skipped == 1 and server.operations["GetObject"] == before + 1


def test_a_checkpoint_of_another_prefix_is_a_resync(server, make_source):
    put(server, "a.md", "# A\n\nText.")
    changes = list(make_source().read(None))
    saved = changes[-1].value
    with pytest.raises(CheckpointExpired, match="s3://"):
        list(make_source(prefix="other/").read(saved))
    with pytest.raises(CheckpointExpired):
        list(make_source().read({"v": 1, "bucket": saved["bucket"], "prefix": "docs/"}))


def test_a_key_gone_from_a_complete_listing_is_a_tombstone(server, make_source):
    fill(server, 3)
    saved = list(make_source().read(None))[-1].value
    server.delete("docs/note-02.md")
    changes = list(make_source().read(saved))
    assert [c for c in changes if isinstance(c, Deleted)] == [
        Deleted("docs/note-02.md")
    ]


def test_a_missing_boto3_fails_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependency, match=r"pip install 'eventhub\[s3\]'"):
        S3Source(bucket="handbook")


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"bucket": "b", "access_key_id": "AKIA"},
        {"bucket": "b", "endpoint_url": "minio.example.com"},
        {"bucket": "b", "page_size": 0},
        {"bucket": "b", "addressing_style": "sideways"},
    ],
)
def test_malformed_settings_are_config_errors(settings):
    with pytest.raises(ConfigError, match="s3 source"):
        S3Source(**settings)


def test_without_keys_the_aws_credential_chain_is_used(hub, server, sync, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    fill(server, 2)
    report = sync(settings={"access_key_id": None, "secret_access_key": None})
    assert report.added == 2


def test_a_store_failing_every_try_fails_the_sync_after_the_attempts(
    hub, server, sync, waits
):
    fill(server, 2)
    server.fail_from_now(503)
    with pytest.raises(SourceFailed, match="ServiceUnavailable"):
        sync(settings={"attempts": 3})
    assert server.operations["ListObjectsV2"] == 3 and len(waits) == 2
