"""The gdrive source against a fake Drive API v3 and token endpoint on 127.0.0.1
(tests/fakes/gdrive.py): the service-account JWT grant, the first listing with the
start page token taken before it, the changes feed, folders and subfolders,
exports and downloads, rate limits in both of Google's shapes, errors."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from eventhub.integrations.gdrive import DRIVE_SCOPE, DriveError, GoogleDriveSource

from eventhub.documents import Checkpoint, CheckpointExpired, Deleted, Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .document_files import docx
from .fakes.gdrive import FORM, SHEET, FakeDrive, service_account_key

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PDF_TYPE = "application/pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def drive():
    with FakeDrive() as fake:
        yield fake


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path, name="gdrive.db") as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def make_source(drive, *, waits=None, **options):
    options.setdefault("folders", [drive.root])
    options.setdefault("service_account", service_account_key()[0])
    source = GoogleDriveSource(
        token_url=drive.token_url,
        base_url=drive.url,
        allow_private=True,
        rate=None,
        sleep=(waits.append if waits is not None else lambda seconds: None),
        **options,
    )
    source.name = "drive"
    return source


def sync(hub, drive, **options):
    source_options = {
        k: options.pop(k) for k in list(options) if k in ("folders", "waits", "subject")
    }
    return hub.documents.engine.sync(make_source(drive, **source_options), **options)


def indexed(hub):
    return hub.documents.index.document_ids("drive")


def checkpoint(hub):
    return hub.documents.engine.state("drive")["checkpoint"]


def got(hub, doc_id):
    """What the index holds of a document (title, url, updated_at, metadata)."""
    return {d["id"]: d for d in hub.documents.index.documents("drive")}[doc_id]


def texts(drive, **options):
    """The text of every document a first read yields."""
    feed = make_source(drive, **options).read(None)
    return {c.id: c.text for c in feed if isinstance(c, Document)}


def readable(drive, folders=None):
    """The ids of the fake's files the source should index: not folders, not
    trashed, of a readable kind, under the folders."""
    roots = set(folders or [drive.root])
    inside = set(roots)
    changed = True
    while changed:
        changed = False
        for file in drive.files.values():
            if (
                file.mime.endswith("folder")
                and not file.trashed
                and set(file.parents) & inside
                and file.id not in inside
            ):
                inside.add(file.id)
                changed = True
    return {
        f.id
        for f in drive.files.values()
        if not f.mime.endswith("folder")
        and not f.trashed
        and f.mime != FORM
        and set(f.parents) & inside
    }


# Auth ----------------------------------------------------------------------------


def test_the_service_account_grant_is_signed_and_the_token_cached(drive):
    drive.add_file("Guide", "How to deploy the daemon.")
    source = make_source(drive)
    list(source.read(None))
    list(source.ids())
    assert drive.count("/token") == 1  # one grant for the whole session
    auth = drive.requests[0]
    assert auth.path == "/token" and auth.method == "POST"
    api = [r for r in drive.requests if r.path.startswith("/drive/")]
    assert api and all(
        r.headers["authorization"].startswith("Bearer ya29.fake-") for r in api
    )


def test_the_token_is_replaced_shortly_before_it_expires(drive):
    now = [time.time() - 3400]  # the fake checks iat and exp by its own clock
    source = make_source(drive)
    source._settings["auth"]._clock = lambda: now[0]
    list(source.ids())
    now[0] += 3599 - 600
    list(source.ids())
    assert drive.count("/token") == 1
    now[0] += 400  # within five minutes of the end
    list(source.ids())
    assert drive.count("/token") == 2


def test_a_subject_is_delegated_and_a_wrong_one_refused_on_one_line(drive):
    drive.subject = "docs-bot@example.com"
    drive.add_file("Guide", "How to deploy.")
    assert list(make_source(drive, subject="docs-bot@example.com").ids())
    with pytest.raises(DriveError) as caught:
        list(make_source(drive).ids())
    assert caught.value.status == 401 and "unauthorized_client" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_key_of_another_account_is_refused_and_never_shown(drive, hub):
    key = dict(
        service_account_key()[0], client_email="someone@else.iam.gserviceaccount.com"
    )
    source = make_source(drive, service_account=json.dumps(key))
    with pytest.raises(SourceFailed) as caught:
        hub.documents.engine.sync(source)
    message = str(caught.value)
    assert "invalid_grant" in message and "\n" not in message
    assert "PRIVATE KEY" not in message and "assertion" not in message


def test_credentials_are_checked_when_configured(drive):
    with pytest.raises(ConfigError, match="service_account"):
        GoogleDriveSource(folders=[drive.root])
    with pytest.raises(ConfigError, match="private_key"):
        GoogleDriveSource(service_account=json.dumps({"client_email": "a@b"}))
    with pytest.raises(ConfigError, match="key's JSON"):
        GoogleDriveSource(service_account="not json")
    with pytest.raises(ConfigError, match="folders"):
        GoogleDriveSource(service_account=service_account_key()[0], folders="0Abc")
    with pytest.raises(ConfigError, match="choose one"):
        GoogleDriveSource(service_account=service_account_key()[0], token="ya29.x")


def test_the_oauth_flow_asks_for_drive_readonly(tmp_path):
    source = GoogleDriveSource(
        oauth={
            "client_id": "id.apps.googleusercontent.com",
            "client_secret": "s3cr3t-client",
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "token_file": str(tmp_path / "grant.json"),
        }
    )
    client = source._settings["auth"]
    held = getattr(client, "client", client)
    assert DRIVE_SCOPE in " ".join(getattr(held, "scopes", ()) or ())


def test_a_service_account_key_from_a_file_reference(tmp_path, drive, monkeypatch):
    from eventhub.config import resolve_secrets

    path = tmp_path / "sa.json"
    path.write_text(json.dumps(service_account_key()[0]))
    resolved = resolve_secrets({"service_account": {"file": str(path)}}, "sources.d")
    drive.add_file("Guide", "How to deploy.")
    assert len(list(make_source(drive, **resolved).ids())) == 1


# The first sync and the changes feed ---------------------------------------------


def test_a_full_sync_then_edits_additions_trash_and_removal(hub, drive):
    guide = drive.add_file("Guide", "How to configure the daemon.", modified=T0)
    sheet = drive.add_file("Budget", "team,amount\nops,1200\n", mime=SHEET)
    sub = drive.add_folder("Runbooks")
    deep = drive.add_folder("Night shift", parents=[sub])
    runbook = drive.add_file(
        "paging.md",
        b"# Paging\n\nWho to wake at night.",
        mime="text/markdown",
        parents=[deep],
    )
    drive.add_file("Elsewhere", "Not in the folder.", parents=["0AOtherFolder"])
    first = sync(hub, drive)
    assert first.added == 3 and indexed(hub) == readable(drive)
    state = checkpoint(hub)
    assert state["v"] == 1 and state["folders"] == [drive.root]
    assert sorted(state["scope"]) == sorted([sub, deep])
    doc = got(hub, guide)
    assert doc["title"] == "Guide"
    assert doc["url"].endswith(f"/document/d/{guide}/edit?usp=drivesdk")
    assert datetime.fromisoformat(doc["updated_at"].replace("Z", "+00:00")) == T0
    assert doc["metadata"]["mime_type"] == "application/vnd.google-apps.document"
    assert doc["metadata"]["parents"] == [drive.root]
    assert doc["metadata"]["owners"] == ["Ada Lovelace"]
    text = texts(drive)
    assert "ops,1200" in text[sheet] and "Who to wake" in text[runbook]

    drive.edit(guide, "How to run the daemon under systemd.")
    added = drive.add_file(
        "Backups", "Back up the state database nightly.", parents=[deep]
    )
    drive.trash(sheet)
    drive.remove(runbook)
    before = len(drive.requests)
    changed = sync(hub, drive, prune=None)
    assert (changed.added, changed.updated, changed.deleted) == (1, 1, 2)
    assert indexed(hub) == readable(drive) == {guide, added}
    assert drive.count("/drive/v3/files?", method="GET") == drive.count(
        "/drive/v3/files?"
    )
    listing_after = [r for r in drive.requests[before:] if r.path == "/drive/v3/files"]
    assert listing_after == []  # the changes feed, not a listing
    hits = hub.documents.index.search("systemd daemon", 1, source="drive")
    assert hits and hits[0].document_id == guide


def test_the_start_page_token_is_taken_before_the_listing(hub, drive):
    for i in range(5):
        drive.add_file(f"Doc {i}", f"Text number {i}.")
    late: list[str] = []

    def during(request):
        taken = drive.count("startPageToken")
        if request.path == "/drive/v3/files" and taken and not late:
            # An edit while the first listing runs, after the token was taken.
            late.append(drive.add_file("Late", "Made while the listing ran."))

    drive.on_request = during
    first = sync(hub, drive)
    drive.on_request = None
    assert first.added >= 5
    assert sync(hub, drive, prune=None).added + first.added == 6
    assert late[0] in indexed(hub)
    (token,) = [r for r in drive.requests if r.path.endswith("startPageToken")]
    assert token.param("supportsAllDrives") == "true"
    # The first sync's enumeration lists first (the engine's prune); the read's
    # listing comes after the token.
    after = drive.requests[drive.requests.index(token) :]
    assert any(r.path == "/drive/v3/files" for r in after)


def test_the_listing_asks_for_all_drives_and_pages(hub, drive):
    for i in range(1203):
        drive.add_file(f"Note {i}", f"Note number {i} about queues.", mime="text/plain")
    first = sync(hub, drive)
    assert first.added == 1203
    token = drive.count("startPageToken")
    assert token == 1
    start = next(
        i for i, r in enumerate(drive.requests) if r.path.endswith("startPageToken")
    )
    listing = [r for r in drive.requests[start:] if r.path == "/drive/v3/files"]
    assert len(listing) == 2 and listing[1].param("pageToken") == "p1000"
    for request in listing:
        assert request.param("supportsAllDrives") == "true"
        assert request.param("includeItemsFromAllDrives") == "true"
        assert "trashed = false" in request.param("q")
        assert "webViewLink" in request.param("fields")


def test_many_changes_are_paged_and_each_page_moves_the_checkpoint(hub, drive):
    sync(hub, drive)
    start = int(checkpoint(hub)["token"])
    ids = [
        drive.add_file(f"N{i}", f"Note {i}.", mime="text/plain") for i in range(1500)
    ]
    source = make_source(drive)
    feed = list(source.read(checkpoint(hub)))
    marks = [c.value["token"] for c in feed if isinstance(c, Checkpoint)]
    assert marks == [str(start + 1000), str(len(drive.log) + 1)]
    assert {d.id for d in feed if isinstance(d, Document)} == set(ids)


def test_an_unchanged_incremental_sync_of_1000_files_costs_a_handful(hub, drive):
    for i in range(1000):
        drive.add_file(f"Doc {i}", f"Document {i}.", mime="text/plain")
    sync(hub, drive)
    before = len(drive.requests)
    report = sync(hub, drive, prune=None)
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    spent = drive.requests[before:]
    assert [r.path for r in spent] == ["/token", "/drive/v3/changes"]


def test_files_outside_the_folders_are_ignored_and_moved_out_ones_deleted(hub, drive):
    inside = drive.add_file("Inside", "Inside the folder.")
    other = drive.add_folder("Other", parents=["0AOtherRoot"])
    sync(hub, drive)
    drive.add_file("Outside", "Never in the folder.", parents=[other])
    drive.move(inside, [other])
    report = sync(hub, drive, prune=None)
    assert report.deleted == 1 and indexed(hub) == set()
    drive.move(inside, [drive.root])
    assert sync(hub, drive, prune=None).added == 1 and indexed(hub) == {inside}


def test_a_folder_moved_in_is_listed_and_one_moved_out_resyncs(hub, drive):
    away = drive.add_folder("Archive", parents=["0AOtherRoot"])
    old = drive.add_file("Old plan", "The plan of 2024.", parents=[away])
    kept = {drive.add_file(f"K{i}", f"Kept {i}.") for i in range(3)}
    sync(hub, drive)
    assert indexed(hub) == kept
    drive.move(away, [drive.root])
    moved_in = sync(hub, drive, prune=None)
    assert moved_in.added == 1 and indexed(hub) == kept | {old}
    assert away in checkpoint(hub)["scope"]
    new = drive.add_file("New plan", "The plan of 2026.", parents=[away])
    assert sync(hub, drive, prune=None).added == 1 and new in indexed(hub)
    drive.move(away, ["0AOtherRoot"])
    report = sync(hub, drive, prune=None)
    assert report.resync and "left the configured folders" in report.resync
    assert indexed(hub) == kept and report.deleted == 2
    assert away not in checkpoint(hub)["scope"]


def test_a_trashed_folder_takes_its_files_along(hub, drive):
    sub = drive.add_folder("Team")
    files = {
        drive.add_file(f"T{i}", f"Team note {i}.", parents=[sub]) for i in range(3)
    }
    keep = drive.add_file("Keep", "Stays.")
    sync(hub, drive)
    assert indexed(hub) == files | {keep}
    drive.trash(sub)
    report = sync(hub, drive, prune=None, force=True)
    assert indexed(hub) == {keep} and report.deleted == 3


def test_without_folders_everything_the_account_reads(hub, drive):
    a = drive.add_file("A", "In the folder.")
    b = drive.add_file("B", "Shared with the account.", parents=["0ASharedWithMe"])
    c = drive.add_file(
        "C", "In a shared drive.", parents=["0ADrive"], drive_id="0ADrive"
    )
    report = sync(hub, drive, folders=[])
    assert report.added == 3 and indexed(hub) == {a, b, c}
    assert got(hub, c)["metadata"]["drive_id"] == "0ADrive"
    assert "scope" not in checkpoint(hub)
    listing = [r for r in drive.requests if r.path == "/drive/v3/files"]
    assert listing[0].param("q") == "trashed = false"
    drive.trash(b)
    assert sync(hub, drive, folders=[], prune=None).deleted == 1


def test_a_checkpoint_of_other_folders_is_a_resync(hub, drive):
    sync(hub, drive)
    other = drive.add_folder("Other", parents=["0AOtherRoot"])
    report = sync(hub, drive, folders=[other], prune=None)
    assert report.resync and "other folders" in report.resync


# Contents ------------------------------------------------------------------------


def test_docs_and_sheets_are_exported_as_text_and_csv(hub, drive):
    doc = drive.add_file("Handbook", "Welcome to the team.\nRead this first.")
    sheet = drive.add_file("Rota", "day,who\nmon,ada\ntue,alan\n", mime=SHEET)
    slides = drive.add_file(
        "Kickoff",
        "Goals for the quarter",
        mime="application/vnd.google-apps.presentation",
    )
    sync(hub, drive)
    exports = {
        r.path.split("/")[4]: r.param("mimeType")
        for r in drive.requests
        if r.path.endswith("/export")
    }
    assert exports == {doc: "text/plain", sheet: "text/csv", slides: "text/plain"}
    text = texts(drive)
    assert "tue,alan" in text[sheet] and "Read this first" in text[doc]


def test_other_files_are_downloaded_and_extracted(hub, drive):
    spec = drive.add_file("Spec.docx", docx("The spec of the queue."), mime=DOCX_TYPE)
    text = drive.add_file("notes.txt", b"Plain notes.", mime="text/plain")
    sync(hub, drive)
    assert "spec of the queue" in texts(drive)[spec]
    media = [r for r in drive.requests if r.param("alt") == "media"]
    assert {r.path.rsplit("/", 1)[1] for r in media} == {spec, text}


def test_a_too_large_file_is_skipped_without_downloading(hub, drive, tmp_path):
    big = drive.add_file("huge.txt", b"x " * 600_000, mime="text/plain")
    small = drive.add_file("small.txt", b"Small file.", mime="text/plain")
    source = make_source(drive, max_bytes=1_000_000)
    report = hub.documents.engine.sync(source)
    assert indexed(hub) == {small}
    (skip,) = [s for s in source.skipped if s.id == big]
    assert "too large: 1200000 bytes" in skip.reason and "max_bytes" in skip.reason
    downloads = [r.path for r in drive.requests if r.param("alt") == "media"]
    assert downloads == [f"/drive/v3/files/{small}"]
    assert report.skipped >= 1


def test_unknown_types_and_google_forms_are_skipped_with_the_reason(hub, drive):
    blob = drive.add_file("photo.heic", b"\x00\x01binary", mime="image/heic")
    form = drive.add_file("Survey", "", mime=FORM)
    source = make_source(drive)
    hub.documents.engine.sync(source)
    reasons = {s.id: s.reason for s in source.skipped}
    assert "unsupported format .heic" in reasons[blob]
    assert "no text export" in reasons[form]
    assert not [r for r in drive.requests if r.param("alt") == "media"]


def test_fetch_by_id(drive):
    doc = drive.add_file("Guide", "How to deploy.")
    sub = drive.add_folder("Sub")
    deep = drive.add_file("Deep", "Deep inside.", parents=[sub])
    outside = drive.add_file("Out", "Outside.", parents=["0AOtherRoot"])
    source = make_source(drive)
    assert source.fetch(doc).text == "How to deploy."
    assert source.fetch(deep).title == "Deep"
    assert source.fetch(outside) is None
    assert source.fetch("1doesnotexist") is None
    drive.trash(doc)
    assert source.fetch(doc) is None


# Failures and rate limits --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, None), (403, "userRateLimitExceeded"), (403, "rateLimitExceeded")],
)
def test_rate_limits_mid_paging_are_waited_out(hub, drive, status, reason):
    for i in range(1100):
        drive.add_file(f"N{i}", f"Note {i}.", mime="text/plain")
    drive.rate_limit(
        "/drive/v3/files",
        after=1,
        times=2,
        status=status,
        reason=reason or "",
        retry_after="7" if status == 429 else None,
    )
    waits: list[float] = []
    report = sync(hub, drive, waits=waits)
    assert report.added == 1100 and len(waits) == 2
    if status == 429:
        assert waits == [7.0, 7.0]


def test_a_403_that_is_not_a_rate_limit_fails_at_once(hub, drive):
    drive.add_file("A", "a")
    drive.rate_limit("/drive/v3/files", status=403, reason="dailyLimitExceeded")
    waits: list[float] = []
    with pytest.raises(SourceFailed, match="dailyLimitExceeded"):
        sync(hub, drive, waits=waits)
    assert waits == []


def test_a_401_fails_the_sync_on_one_line_and_keeps_the_checkpoint(hub, drive):
    drive.add_file("A", "a")
    sync(hub, drive)
    before = checkpoint(hub)
    source = make_source(drive)
    source._settings["auth"].access_token()
    drive.revoke_tokens()
    with pytest.raises(SourceFailed) as caught:
        hub.documents.engine.sync(source)
    message = str(caught.value)
    assert "401" in message and "authError" in message and "\n" not in message
    assert "ya29" not in message
    assert checkpoint(hub) == before


def test_an_invalid_page_token_is_a_resync(hub, drive):
    keep = drive.add_file("Keep", "Stays.")
    gone = drive.add_file("Gone", "Goes.")
    sync(hub, drive)
    drive.remove(gone)
    drive.expire_tokens()
    report = sync(hub, drive, prune=None)
    assert report.resync and "page token" in report.resync
    assert indexed(hub) == {keep}
    source = make_source(drive)
    with pytest.raises(CheckpointExpired):
        list(
            source.read({"v": 1, "token": "nope", "folders": [drive.root], "scope": []})
        )


def test_a_failure_mid_listing_moves_no_checkpoint(hub, drive):
    for i in range(1500):
        drive.add_file(f"N{i}", f"Note {i}.", mime="text/plain")
    drive.rate_limit("/drive/v3/files", after=1, times=100, status=500)
    with pytest.raises(SourceFailed):
        sync(hub, drive)
    assert checkpoint(hub) is None


def test_a_removed_file_is_a_tombstone_in_the_feed(drive):
    doc = drive.add_file("A", "a")
    source = make_source(drive)
    first = list(source.read(None))
    drive.remove(doc)
    feed = list(make_source(drive).read(first[-1].value))
    assert Deleted(doc) in feed
    assert feed[-1] == Checkpoint(
        {"v": 1, "token": str(len(drive.log) + 1), "folders": [drive.root], "scope": []}
    )


def test_a_change_a_day_later_still_has_its_time(hub, drive):
    doc = drive.add_file("A", "first")
    sync(hub, drive)
    drive.edit(doc, "second", modified=T0 + timedelta(days=1))
    sync(hub, drive, prune=None)
    moment = got(hub, doc)["updated_at"].replace("Z", "+00:00")
    assert datetime.fromisoformat(moment) == T0 + timedelta(days=1)
