"""The ``sharepoint`` source against a fake Microsoft Graph and token endpoint on
127.0.0.1, with a second loopback server as SharePoint's download host
(tests/fakes/sharepoint.py)."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from eventhub.integrations.sharepoint import (
    DOWNLOAD_HOSTS,
    GRAPH_SCOPE,
    GraphError,
    SharePointSource,
)

from eventhub.auth import ClientCredentialsGrant
from eventhub.documents import Checkpoint, CheckpointExpired, Deleted, Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError, UserError
from eventhub.http import HttpClient
from eventhub.testing import make_hub

from .fakes.sharepoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    HOSTNAME,
    SCOPE,
    SITE_PATH,
    TENANT,
    FakeGraph,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SITE = f"{HOSTNAME}:{SITE_PATH}"


@pytest.fixture
def fake():
    with FakeGraph() as server:
        yield server


@pytest.fixture
def waits():
    return []


@pytest.fixture
def make_source(fake, waits):
    def make(**settings):
        settings.setdefault("tenant_id", TENANT)
        settings.setdefault("client_id", CLIENT_ID)
        settings.setdefault("client_secret", CLIENT_SECRET)
        if "drive_id" not in settings:
            settings.setdefault("site", SITE)
        settings.setdefault("download_hosts", ["localhost"])
        source = SharePointSource(
            base_url=fake.url,
            token_url=fake.token_url,
            allow_private=True,
            rate=None,
            sleep=waits.append,
            **settings,
        )
        source.name = "intranet"
        return source

    return make


@pytest.fixture
def hub(tmp_path, make_source):
    with make_hub(tmp_path) as hub:
        hub.register_integration("intranet", make_source())
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, **options):
    return hub.documents.sync("intranet", **options)


def indexed(hub):
    return hub.documents.index.document_ids("intranet")


def found(hub, query):
    hits = hub.documents.search(query, 3, source="intranet")
    return [hit.document_id for hit in hits]


def feed(source, checkpoint=None):
    return list(source.read(checkpoint))


def last_checkpoint(changes):
    return [c for c in changes if isinstance(c, Checkpoint)][-1].value


# Sync through a hub --------------------------------------------------------------


def test_full_then_incremental_sync_matches_the_server(hub, fake):
    ids = [
        fake.add_file(f"runbook-{i}.md", f"# Runbook {i}\n\nStep {i}: restart it.")
        for i in range(5)
    ]
    fake.add_folder("Archive/2025")
    report = sync(hub)
    assert report.added == 5 and indexed(hub) == set(ids) == fake.live_files()
    fake.edit(ids[1], "# Runbook one\n\nRotate the signing keys yearly.")
    added = fake.add_file(
        "glossary.txt", "A tombstone marks a deletion.", folder="Archive"
    )
    fake.delete(ids[2])
    report = sync(hub, prune=None)
    assert (report.added, report.updated, report.deleted) == (1, 1, 1)
    assert indexed(hub) == fake.live_files()
    assert found(hub, "rotate signing keys")[0] == ids[1]
    assert found(hub, "tombstone marks deletion")[0] == added


def test_a_document_carries_the_items_facts(make_source, fake):
    item = fake.add_file(
        "Design notes.md",
        "# Design\n\nQueues and retries.",
        folder="Engineering/Specs",
        modified=T0,
        modified_by="Adele Vance",
    )
    (document,) = [c for c in feed(make_source()) if isinstance(c, Document)]
    assert document.id == item and document.title == "Design notes.md"
    assert "Queues and retries." in document.text
    assert document.url == (
        f"https://{HOSTNAME}{SITE_PATH}/Shared%20Documents/"
        "Engineering/Specs/Design%20notes.md"
    )
    assert document.updated_at == T0
    assert document.metadata == {
        "path": f"/drives/{fake.drive_id}/root:/Engineering/Specs",
        "mime_type": "text/markdown",
        "modified_by": "Adele Vance",
    }


def test_the_download_redirect_is_followed_without_the_bearer_token(make_source, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    fake.add_file("b.txt", "beta")
    documents = [c for c in feed(make_source()) if isinstance(c, Document)]
    assert len(documents) == 2
    downloads = [r for r in fake.requests if r.server == "download"]
    assert len(downloads) == 2
    assert all("authorization" not in r.headers for r in downloads)
    content = [r for r in fake.requests if r.path.endswith("/content")]
    assert len(content) == 2
    assert all(r.headers["authorization"].startswith("Bearer ") for r in content)


def test_a_redirect_to_a_host_outside_download_hosts_is_refused(make_source, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    source = make_source(download_hosts=list(DOWNLOAD_HOSTS))  # not "localhost"
    with pytest.raises(Exception, match="localhost not allowed"):
        feed(source)
    assert fake.count(server="download") == 0


def test_allow_hosts_replaces_the_default_hosts(make_source, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    source = make_source(allow_hosts=["127.0.0.1", "localhost"], download_hosts=[])
    assert len([c for c in feed(source) if isinstance(c, Document)]) == 1
    assert make_source().client.allow_hosts == ["127.0.0.1", "localhost"]
    graph = SharePointSource(
        tenant_id=TENANT, client_id=CLIENT_ID, client_secret="s", drive_id="b!x"
    )
    assert graph.client.allow_hosts == ["graph.microsoft.com", *DOWNLOAD_HOSTS]


def test_a_dead_delta_link_is_a_resync_that_loses_nothing(hub, fake):
    ids = [fake.add_file(f"n{i}.md", f"# Note {i}\n\nnote {i}") for i in range(3)]
    sync(hub)
    fake.expire_delta_links()
    fake.delete(ids[0])
    fake.edit(ids[1], "# Note 1\n\nAmended after the link died.")
    report = sync(hub, prune=None)
    assert (
        report.resync and "410" in report.resync and "resyncRequired" in report.resync
    )
    assert (report.deleted, report.updated) == (1, 1)
    assert indexed(hub) == fake.live_files()
    (event,) = hub.bus.history("sync.resync")
    assert event.data["source"] == "intranet"
    assert sync(hub, prune=None).resync is None


def test_a_429_and_a_503_in_the_middle_of_paging_are_waited_out(
    tmp_path, fake, make_source, waits
):
    fake.page_size = 10
    for i in range(35):
        fake.add_file(f"doc-{i}.txt", f"document number {i}")
    fake.throttle(after=1, path="/root/delta", status=429, retry_after="7")
    fake.throttle(after=2, path="/root/delta", status=503, retry_after="2")
    with make_hub(tmp_path) as hub:
        hub.register_integration("intranet", make_source())
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        assert sync(hub).added == 35
    assert waits == [7.0, 2.0]
    # A first sync lists twice (the enumeration and the feed): 4 pages each.
    assert fake.count("/root/delta") == 2 * 4 + 2


def test_a_refused_client_secret_fails_the_sync_on_one_line(hub, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    sync(hub)
    before = hub.documents.engine.state("intranet")["checkpoint"]
    fake.add_file("b.md", "# B\n\nbeta")
    fake.client_secret = "rotated~secret"
    fake.expire_tokens()
    with pytest.raises(SourceFailed) as failed:
        sync(hub, prune=None)
    message = str(failed.value)
    assert "'intranet'" in message and "\n" not in message
    assert "invalid_client" in message and "AADSTS7000215" in message
    assert CLIENT_SECRET not in message
    assert hub.documents.engine.state("intranet")["checkpoint"] == before


def test_a_401_from_graph_fails_the_sync_on_one_line(hub, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    sync(hub)
    before = hub.documents.engine.state("intranet")["checkpoint"]
    fake.revoked = True
    with pytest.raises(SourceFailed) as failed:
        sync(hub, prune=None)
    message = str(failed.value)
    assert "'intranet'" in message and "\n" not in message
    assert "401" in message and "InvalidAuthenticationToken" in message
    assert "token=" not in message  # the delta link's query is left out
    assert hub.documents.engine.state("intranet")["checkpoint"] == before


def test_an_expired_access_token_is_replaced_once(hub, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    sync(hub)
    fake.add_file("b.md", "# B\n\nbeta")
    fake.expire_tokens()  # the cached token dies before its expires_in
    assert sync(hub, prune=None).added == 1
    assert fake.count("/oauth2/v2.0/token") == 2


def test_the_cli_reports_a_refused_secret_on_one_line_without_it(tmp_path, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.intranet]
        kind = "sharepoint"
        tenant_id = "{TENANT}"
        client_id = "{CLIENT_ID}"
        client_secret = {{ env = "EH_TEST_GRAPH_SECRET" }}
        site = "{SITE}"
        base_url = "{fake.url}"
        token_url = "{fake.origin}/{{tenant_id}}/oauth2/v2.0/token"
        download_hosts = ["localhost"]
        allow_private = true
    """)
    )

    def run(secret):
        env = {**os.environ, "EH_TEST_GRAPH_SECRET": secret}
        command = [sys.executable, "-m", "eventhub", "--config", str(config)]
        return subprocess.run(
            [*command, "sync", "intranet", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    good = run(CLIENT_SECRET)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["added"] == 1
    wrong = "wrong~graph~secret~value"
    bad = run(wrong)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    (error,) = [line for line in bad.stderr.splitlines() if line.startswith("Error:")]
    assert "'intranet'" in error and "invalid_client" in error
    assert wrong not in bad.stderr + bad.stdout
    assert CLIENT_SECRET not in good.stderr + good.stdout


def test_an_unchanged_incremental_sync_of_1000_files_costs_a_handful(hub, fake):
    for i in range(1000):
        fake.add_file(f"file-{i}.txt", f"text of file {i}")
    assert sync(hub).added == 1000
    before = len(fake.requests)
    report = sync(hub, prune=None)
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    assert len(fake.requests) - before <= 2  # one delta link (the token is cached)


def test_a_too_large_file_is_skipped_without_downloading(tmp_path, fake, make_source):
    big = fake.add_file("big.txt", "x" * 5000)
    small = fake.add_file("small.txt", "small text")
    with make_hub(tmp_path) as hub:
        hub.register_integration("intranet", make_source(max_bytes=1000))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        report = sync(hub)
        assert report.added == 1 and report.skipped == 1
        assert indexed(hub) == {small}
    assert fake.count(f"/items/{big}/") == 0 and fake.count(f"/items/{small}/") == 1
    assert fake.count(server="download") == 1


def test_a_file_of_unknown_type_is_skipped_with_the_reason(make_source, fake):
    image = fake.add_file("diagram.png", b"\x89PNG\r\n\x1a\n")
    source = make_source()
    assert [c for c in feed(source) if isinstance(c, Document)] == []
    (skipped,) = source.skipped
    assert skipped.id == image and skipped.reason == "unsupported format .png"
    assert fake.count("/content") == 0


def test_folders_are_passed_over_and_a_deleted_folder_is_pruned(hub, fake):
    kept = fake.add_file("kept.md", "# Kept\n\nstays")
    folder = fake.add_folder("Old")
    inside = fake.add_file("inside.md", "# Inside\n\ngoes", folder="Old")
    sync(hub)
    assert indexed(hub) == {kept, inside}
    fake.delete_folder(folder)  # the feed reports the folder only
    sync(hub, prune=None)
    assert indexed(hub) == {kept, inside}
    report = sync(hub, prune=0)
    assert report.pruned and report.deleted == 1 and indexed(hub) == {kept}


# The feed ------------------------------------------------------------------------


def test_the_delta_link_is_the_checkpoint_and_paging_follows_next_links(
    make_source, fake
):
    fake.page_size = 4
    for i in range(10):
        fake.add_file(f"f{i}.txt", f"file {i}")
    changes = feed(make_source())
    assert len([c for c in changes if isinstance(c, Document)]) == 10
    assert fake.count("/root/delta") == 3
    checkpoints = [c.value for c in changes if isinstance(c, Checkpoint)]
    assert len(checkpoints) == 1 and changes[-1] == Checkpoint(checkpoints[0])
    saved = checkpoints[0]
    assert saved["v"] == 1 and saved["site"] == SITE and saved["drive"] == fake.drive_id
    assert saved["delta"].startswith(fake.url) and "token=" in saved["delta"]
    # The next sync starts from it, needs no site lookup, and sees only changes.
    fake.add_file("new.txt", "a new file")
    before = fake.count("/sites/")
    changes = feed(make_source(), saved)
    assert [c.title for c in changes if isinstance(c, Document)] == ["new.txt"]
    assert fake.count("/sites/") == before


def test_deleted_items_are_tombstones(make_source, fake):
    item = fake.add_file("gone.md", "# Gone\n\nsoon")
    saved = last_checkpoint(feed(make_source()))
    fake.delete(item)
    changes = feed(make_source(), saved)
    assert Deleted(item) in changes


def test_an_item_listed_twice_is_read_once(make_source, fake):
    item = fake.add_file("twice.md", "# Twice\n\nonce")
    source = make_source()
    real = source._json

    def doubled(method, url, **kwargs):
        answer = real(method, url, **kwargs)
        if isinstance(answer, dict) and "value" in answer:
            answer["value"] = answer["value"] + answer["value"]
        return answer

    source._json = doubled
    documents = [c for c in feed(source) if isinstance(c, Document)]
    assert [d.id for d in documents] == [item] and fake.count("/content") == 1


def test_foreign_checkpoints_raise_checkpoint_expired(make_source, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    saved = last_checkpoint(feed(make_source()))
    for bad in (
        {"updated_at": "2026-01-01T00:00:00Z"},
        {**saved, "v": 2},
        {**saved, "site": "contoso.sharepoint.com:/sites/Other"},
        {**saved, "delta": "https://elsewhere.example/v1.0/drives/x/root/delta"},
    ):
        with pytest.raises(CheckpointExpired):
            feed(make_source(), bad)
    with pytest.raises(CheckpointExpired, match="another drive"):
        feed(make_source(drive_id="b!other"), saved)


def test_drive_id_needs_no_site_lookup(make_source, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    source = make_source(drive_id=fake.drive_id)
    assert len([c for c in feed(source) if isinstance(c, Document)]) == 1
    assert fake.count("/sites/") == 0


def test_an_unknown_site_is_graphs_404(make_source, fake):
    source = make_source(site=f"{HOSTNAME}:/sites/Nowhere")
    with pytest.raises(GraphError) as failed:
        feed(source)
    assert failed.value.status == 404 and failed.value.code == "itemNotFound"
    assert "Requested site could not be found" in str(failed.value)


def test_fetch_and_ids(make_source, fake):
    a = fake.add_file("a.md", "# A\n\nalpha", folder="Docs")
    b = fake.add_file("b.md", "# B\n\nbeta")
    fake.add_file("c.png", b"png")
    gone = fake.add_file("gone.md", "# Gone")
    fake.delete(gone)
    source = make_source()
    assert set(source.ids()) == fake.live_files() - {gone} and a in set(source.ids())
    document = source.fetch(b)
    assert document is not None and document.id == b and "beta" in document.text
    assert source.fetch(gone) is None
    assert source.fetch("01NOSUCHITEM") is None
    folder = next(i.id for i in fake.items.values() if i.name == "Docs")
    assert source.fetch(folder) is None


def test_the_token_is_requested_once_per_source_with_the_documented_form(
    make_source, fake
):
    for i in range(3):
        fake.add_file(f"{i}.txt", f"text {i}")
    feed(make_source())
    (token,) = [r for r in fake.requests if r.path.endswith("/token")]
    assert token.path == f"/{TENANT}/oauth2/v2.0/token"
    form = dict(p.split("=", 1) for p in token.body.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == CLIENT_ID
    assert form["scope"] == "https%3A%2F%2Fgraph.microsoft.com%2F.default"
    assert "authorization" not in token.headers
    assert GRAPH_SCOPE == SCOPE


def test_the_client_credentials_grant_caches_until_the_margin(fake):
    now = [1000.0]
    grant = ClientCredentialsGrant(
        fake.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        scopes=[SCOPE],
        http=HttpClient(allow_private=True),
        clock=lambda: now[0],
    )
    first = grant.access_token()
    now[0] += 3000  # 3599 s lifetime, 300 s margin: still good
    assert grant.access_token() == first
    now[0] += 400
    assert grant.access_token() != first
    assert fake.count("/token") == 2
    assert CLIENT_SECRET not in repr(grant)
    refused = ClientCredentialsGrant(
        fake.token_url, CLIENT_ID, "wrong", http=HttpClient(allow_private=True)
    )
    with pytest.raises(UserError, match="invalid_scope|invalid_client"):
        refused.access_token()


def test_configuration_mistakes_are_config_errors():
    good = {"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": "s"}
    for settings in (
        {**good, "client_secret": None, "site": SITE},
        {k: v for k, v in good.items() if k != "tenant_id"} | {"site": SITE},
        good,  # neither site nor drive_id
        {**good, "site": SITE, "drive_id": "b!x"},
        {**good, "site": "contoso.sharepoint.com/sites/x"},
        {**good, "site": SITE, "token": "abc"},
        {**good, "site": SITE, "download_hosts": "localhost"},
    ):
        with pytest.raises(ConfigError):
            SharePointSource(**settings)


def test_defaults_are_graphs():
    source = SharePointSource(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret="s",
        site=f"https://{HOSTNAME}{SITE_PATH}/",
    )
    assert source.base_url == "https://graph.microsoft.com/v1.0/"
    assert source.token_url == (
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    )
    assert source.site == SITE
    assert source.default_prune == 24 * 3600.0
    assert source.rate == 10.0


def test_the_checkpoint_survives_the_state_database(hub, fake):
    fake.add_file("a.md", "# A\n\nalpha")
    sync(hub)
    saved = hub.documents.engine.state("intranet")["checkpoint"]
    assert saved["delta"].startswith(fake.url)
    token = saved["delta"].split("token=", 1)[1]
    assert token in fake.delta_tokens  # stored as given, not redacted
    assert CLIENT_SECRET not in json.dumps(saved)
