"""The ``notion`` source against a fake Notion API on 127.0.0.1 (tests/fakes/notion.py),
fed with the official SDK's recorded responses in ../shared/realdata/notion."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
import requests
from eventhub.integrations._notiontext import block_lines, page_title, plain_text
from eventhub.integrations.notion import NOTION_VERSION, NotionSource

from eventhub.documents import Checkpoint, CheckpointExpired, Deleted, Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .fakes.notion import (
    REALDATA,
    FakeNotion,
    block,
    checkbox_value,
    date_value,
    multi_select_value,
    number_value,
    paragraph,
    people_value,
    rich_text_value,
    select_value,
    table,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"the real Notion responses are missing: {REALDATA}"
)


@pytest.fixture
def fake():
    with FakeNotion() as server:
        yield server


@pytest.fixture
def database(fake):
    return fake.add_database("Handbook")


@pytest.fixture
def waits():
    return []


@pytest.fixture
def make_source(fake, database, waits):
    def make(**settings):
        settings.setdefault("databases", [database])
        settings.setdefault("token", fake.token)
        source = NotionSource(
            base_url=fake.url,
            allow_private=True,
            rate=None,
            sleep=waits.append,
            **settings,
        )
        source.name = "notes"
        return source

    return make


@pytest.fixture
def hub(tmp_path, make_source):
    with make_hub(tmp_path) as hub:
        hub.register_integration("notes", make_source())
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, **options):
    return hub.documents.sync("notes", **options)


def indexed(hub):
    return hub.documents.index.document_ids("notes")


def found(hub, query):
    return [hit.document_id for hit in hub.documents.search(query, 3, source="notes")]


def live(fake):
    return {p.id for p in fake.pages.values() if not p.in_trash}


def feed(source, checkpoint=None, overlap=300.0):
    return list(source.read(checkpoint, overlap=overlap))


def documents(changes):
    return [c for c in changes if isinstance(c, Document)]


def last_checkpoint(changes):
    return [c for c in changes if isinstance(c, Checkpoint)][-1].value


# Sync through a hub --------------------------------------------------------------


def test_full_then_incremental_sync_matches_the_server(hub, fake, database):
    ids = [
        fake.add_page(
            f"Runbook {i}", f"Step {i}: restart the worker", database=database
        )
        for i in range(5)
    ]
    assert sync(hub).added == 5 and indexed(hub) == set(ids)
    fake.edit(ids[1], title="Runbook one", blocks="Rotate the signing keys yearly")
    added = fake.add_page("Glossary", "A tombstone marks a deletion", database=database)
    fake.trash(ids[2])
    report = sync(hub, prune=0)
    assert (report.added, report.updated, report.deleted) == (1, 1, 1)
    assert indexed(hub) == live(fake)
    assert found(hub, "rotate signing keys")[0] == ids[1]
    assert found(hub, "tombstone marks deletion")[0] == added
    titles = {d["id"]: d["title"] for d in hub.documents.index.documents("notes")}
    assert titles[ids[1]] == "Runbook one"


def test_trashed_pages_the_listing_reports_are_tombstones(hub, fake, database):
    ids = [fake.add_page(f"Page {i}", "text", database=database) for i in range(3)]
    sync(hub)
    fake.list_trashed = True  # Notion sometimes lists trashed pages
    fake.trash(ids[0])
    report = sync(hub, prune=None)
    assert report.deleted == 1 and indexed(hub) == set(ids[1:])


def test_a_same_minute_edit_after_a_sync_is_picked_up(hub, fake, database):
    page = fake.add_page("Rota", "Alice is on call", database=database, edited=T0)
    sync(hub)
    fake.edit(page, blocks="Bob is on call", edited=T0 + timedelta(seconds=40))
    assert fake.pages[page].edited == T0  # Notion's minute precision
    report = sync(hub, prune=None)
    assert report.updated == 1 and found(hub, "Bob on call")[0] == page


def test_a_same_minute_edit_is_picked_up_through_search(tmp_path, fake, make_source):
    page = fake.add_page("Rota", "Alice is on call", edited=T0)
    fake.add_page("Older", "Kept as it is", edited=T0 - timedelta(hours=1))
    with make_hub(tmp_path) as hub:
        hub.register_integration("notes", make_source(databases=None))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        assert sync(hub).added == 2
        fake.edit(page, blocks="Bob is on call", edited=T0 + timedelta(seconds=50))
        report = sync(hub, prune=None)
        assert report.updated == 1 and found(hub, "Bob on call")[0] == page


def test_pages_are_followed_to_the_end(hub, fake, database):
    ids = {
        fake.add_page(f"Note {i}", f"note {i}", database=database) for i in range(250)
    }
    assert sync(hub).added == 250 and indexed(hub) == ids
    queries = [r for r in fake.requests if r.path.endswith("/query")]
    # Three pages of the feed (100, 100, 50), three of the prune's listing.
    assert len(queries) == 6
    assert [q.body.get("start_cursor") is None for q in queries[:3]] == [
        True,
        False,
        False,
    ]


def test_a_long_page_body_is_read_page_by_page(make_source, fake, database):
    page = fake.add_page(
        "Long", [paragraph(f"line {i}") for i in range(230)], database=database
    )
    (doc,) = documents(feed(make_source()))
    assert doc.text.splitlines() == [f"line {i}" for i in range(230)]
    assert fake.count(f"/blocks/{page}/children") == 3


def test_no_request_asks_for_more_than_notions_page_size_cap(hub, fake, database):
    fake.add_page("Big", [paragraph(f"p {i}") for i in range(120)], database=database)
    for i in range(120):
        fake.add_page(f"Row {i}", "row", database=database)
    sync(hub)
    sizes = [
        r.body["page_size"] if r.method == "POST" else int(r.query["page_size"][0])
        for r in fake.requests
    ]
    assert sizes and max(sizes) == 100


def test_the_fake_refuses_a_page_size_over_100(fake, database):
    answer = requests.post(
        f"{fake.url}v1/databases/{database}/query",
        json={"page_size": 101},
        headers={
            "Authorization": f"Bearer {fake.token}",
            "Notion-Version": NOTION_VERSION,
        },
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["code"] == "validation_error"


def test_a_429_in_the_middle_of_paging_is_waited_out(hub, fake, database, waits):
    for i in range(150):
        fake.add_page(f"Note {i}", f"note {i}", database=database)
    fake.rate_limit(after=1, path="/query", retry_after="7")
    report = sync(hub)
    assert report.added == 150 and waits == [7.0]


def test_a_5xx_on_a_query_is_retried_though_it_is_a_post(hub, fake, database, waits):
    fake.add_page("Page", "text", database=database)
    fake.fail_next(503, path="/query")
    assert sync(hub).added == 1 and len(waits) == 1
    (retried, again) = [r for r in fake.requests if r.path.endswith("/query")][:2]
    assert retried.body == again.body


def test_a_hint_for_a_trashed_page_deletes_it(hub, fake, database):
    page = fake.add_page("Page", "text", database=database)
    kept = fake.add_page("Kept", "text", database=database)
    sync(hub)
    fake.trash(page)
    report = hub.documents.sync_ids("notes", [page, kept])
    assert report.deleted == 1 and indexed(hub) == {kept}


def test_a_401_fails_the_sync_on_one_line_and_keeps_the_checkpoint(hub, fake, database):
    fake.add_page("Page", "text", database=database)
    sync(hub)
    before = hub.documents.engine.state("notes")["checkpoint"]
    fake.add_page("Later", "more text", database=database)
    fake.token = "ntn_rotated"  # the integration's secret was rotated
    with pytest.raises(SourceFailed) as failed:
        sync(hub, prune=None)
    message = str(failed.value)
    assert "'notes'" in message and "unauthorized" in message and "\n" not in message
    assert "ntn_fake" not in message
    assert hub.documents.engine.state("notes")["checkpoint"] == before


def test_the_cli_reports_a_401_on_one_line_without_the_token(tmp_path, fake, database):
    fake.add_page("Page", "text", database=database)
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.notes]
        kind = "notion"
        token = {{ env = "EH_TEST_NOTION_TOKEN" }}
        base_url = "{fake.url}"
        allow_private = true
        databases = ["{database}"]
    """)
    )

    def run(token):
        env = {**os.environ, "EH_TEST_NOTION_TOKEN": token}
        command = [sys.executable, "-m", "eventhub", "--config", str(config)]
        return subprocess.run(
            [*command, "sync", "notes", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    good = run(fake.token)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["added"] == 1
    bad = run("ntn_wrong_secret_value")
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    (error,) = [line for line in bad.stderr.splitlines() if line.startswith("Error:")]
    assert "'notes'" in error and "401 unauthorized: API token is invalid." in error
    assert "ntn_wrong_secret_value" not in bad.stderr + bad.stdout


def test_an_unchanged_incremental_sync_of_1000_pages_costs_a_handful(
    hub, fake, database
):
    for i in range(1000):
        fake.add_page(f"Page {i}", f"text {i}", database=database)
    assert sync(hub).added == 1000
    before = len(fake.requests)
    report = sync(hub)
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    assert len(fake.requests) - before <= 3


def test_one_page_that_cannot_be_read_is_recorded_and_the_rest_goes_on(
    hub, fake, database
):
    ids = [fake.add_page(f"Page {i}", f"text {i}", database=database) for i in range(4)]
    fake.broken[ids[1]] = "404"
    fake.broken[ids[2]] = "garbage"
    report = sync(hub)
    assert (report.added, report.failed) == (2, 2)
    failures = hub.documents.engine.state("notes")["failures"]
    assert {f["document_id"] for f in failures} == {ids[1], ids[2]}
    fake.broken.clear()
    again = sync(hub, prune=None)
    assert again.added == 2 and indexed(hub) == set(ids)
    assert hub.documents.engine.state("notes")["failures"] == []


def test_a_page_with_too_many_or_too_deep_blocks_is_skipped(
    hub, make_source, fake, database
):
    big = fake.add_page(
        "Big", [paragraph(f"p {i}") for i in range(30)], database=database
    )
    deep = paragraph("level 0", paragraph("level 1", paragraph("level 2")))
    nested = fake.add_page("Deep", [deep], database=database)
    fine = fake.add_page("Fine", "short", database=database)
    hub.register_integration("small", make_source(max_blocks=20, max_depth=1))
    report = hub.documents.sync("small")
    assert report.added == 1 and hub.documents.index.document_ids("small") == {fine}
    reasons = {s["document_id"]: s["reason"] for s in report.skipped_documents}
    assert reasons == {
        big: "more than 20 blocks",
        nested: "blocks nested deeper than 1",
    }


# The change feed -----------------------------------------------------------------


def test_the_query_is_filtered_and_sorted_as_notion_documents_it(
    make_source, fake, database
):
    fake.add_page("A", "a", database=database, edited=T0)
    source = make_source()
    checkpoint = last_checkpoint(feed(source, overlap=90))
    feed(source, checkpoint, overlap=90)
    first, second = [r.body for r in fake.requests if r.path.endswith("/query")]
    assert "filter" not in first
    assert second["filter"] == {
        "timestamp": "last_edited_time",
        "last_edited_time": {"on_or_after": "2026-03-01T11:58:00.000Z"},
    }
    assert second["sorts"] == [
        {"timestamp": "last_edited_time", "direction": "ascending"}
    ]


def test_checkpoints_follow_the_ascending_feed(make_source, fake, database):
    for i in range(150):
        fake.add_page(f"Note {i}", "n", database=database)
    changes = feed(make_source())
    marks = [i for i, c in enumerate(changes) if isinstance(c, Checkpoint)]
    assert marks == [100, 151]  # after each page of results
    latest = changes[marks[0]].value["databases"][database]["latest"]
    assert latest == changes[marks[0] - 1].updated_at.strftime("%Y-%m-%dT%H:%M:00.000Z")


def test_search_stops_paging_once_past_the_checkpoint(make_source, fake):
    pages = [fake.add_page(f"Page {i}", f"text {i}") for i in range(250)]
    source = make_source(databases=None)
    changes = feed(source)
    assert {d.id for d in documents(changes)} == set(pages)
    fake.edit(pages[3], blocks="edited text")
    searches = fake.count("/v1/search")
    again = feed(source, last_checkpoint(changes))
    # The edited page, and the last sync's newest two minutes read again: an
    # edit in the same minute keeps the time.
    assert [d.id for d in documents(again)] == [pages[3], pages[-1], pages[-2]]
    (search,) = [r for r in fake.requests[-4:] if r.path == "/v1/search"]
    assert search.body["sort"] == {
        "timestamp": "last_edited_time",
        "direction": "descending",
    }
    assert search.body["filter"] == {"property": "object", "value": "page"}
    assert fake.count("/v1/search") - searches == 1
    third = feed(source, last_checkpoint(again))
    assert [d.id for d in documents(third)] == [pages[3], pages[-1]]  # newest minutes


def test_a_foreign_or_dead_checkpoint_raises_checkpoint_expired(make_source, fake):
    source = make_source()
    for dead in (
        {"updated_at": "2026-03-01T12:00:00Z"},
        {"v": 1, "search": {"latest": None, "seen": {}}},
        {"v": 1, "databases": {"0" * 32: {"latest": None, "seen": {}}}},
        {"v": 1, "databases": "nonsense"},
        {"v": 2},
        "a string",
    ):
        with pytest.raises(CheckpointExpired):
            source.read(dead)
    with pytest.raises(CheckpointExpired, match="databases"):
        make_source(databases=None).read({"v": 1, "databases": {"x": {"latest": None}}})


def test_a_checkpoint_for_other_databases_is_a_resync(
    tmp_path, make_source, fake, database
):
    other = fake.add_database("Other")
    kept = fake.add_page("Kept", "kept", database=other)
    fake.add_page("Dropped", "dropped", database=database)
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        hub.documents.engine.sync(make_source())
        report = hub.documents.engine.sync(make_source(databases=[other]), prune=None)
        assert report.resync and "other databases" in report.resync
        assert indexed(hub) == {kept}


def test_trashed_pages_in_the_feed_are_tombstones(make_source, fake, database):
    page = fake.add_page("Gone", "soon", database=database)
    fake.list_trashed = True
    fake.trash(page)
    changes = feed(make_source())
    assert [c for c in changes if not isinstance(c, Checkpoint)] == [Deleted(page)]


# Fetch and ids ----------------------------------------------------------------------


def test_fetch_by_id(make_source, fake, database):
    page = fake.add_page("Page", "body text", database=database)
    outside = fake.add_page("Elsewhere", "not in the database")
    source = make_source()
    (listed,) = documents(feed(source))
    assert source.fetch(page) == listed
    assert source.fetch(page.replace("-", "")) == listed
    assert source.fetch(outside) is None
    assert source.fetch("00000000-0000-4000-8000-000000000000") is None
    assert source.fetch("no/such/document.txt") is None
    fake.trash(page)
    assert source.fetch(page) is None


def test_ids_enumerate_every_live_page(make_source, fake, database):
    pages = [fake.add_page(f"P{i}", "x", database=database) for i in range(205)]
    fake.list_trashed = True
    fake.trash(pages[0])
    assert sorted(make_source().ids()) == sorted(pages[1:])
    standalone = fake.add_page("Standalone", "x")
    assert set(make_source(databases=None).ids()) == set(pages[1:]) | {standalone}


def test_every_request_carries_the_pinned_version_and_the_token(make_source, fake):
    fake.add_page("P", "x")
    source = make_source(databases=None, headers={"Notion-Version": "2025-09-03"})
    feed(source)
    assert {r.headers["notion-version"] for r in fake.requests} == {"2022-06-28"}
    assert {r.headers["authorization"] for r in fake.requests} == {
        f"Bearer {fake.token}"
    }


def test_the_fake_answers_a_missing_version_as_notion_does(fake):
    answer = requests.post(
        f"{fake.url}v1/search",
        json={},
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["code"] == "missing_version"


def test_other_query_filters_are_refused_by_the_fake(fake, database):
    answer = requests.post(
        f"{fake.url}v1/databases/{database}/query",
        json={"filter": {"property": "Status", "select": {"equals": "Done"}}},
        headers={
            "Authorization": f"Bearer {fake.token}",
            "Notion-Version": NOTION_VERSION,
        },
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["code"] == "validation_error"


def test_a_database_not_shared_with_the_integration_fails_the_sync(
    tmp_path, make_source
):
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        hub.register_integration("notes", make_source(databases=["1" * 32]))
        with pytest.raises(SourceFailed, match="object_not_found"):
            sync(hub)


# Configuration ------------------------------------------------------------------------


def test_configuration_mistakes_are_config_errors():
    with pytest.raises(ConfigError, match="token"):
        NotionSource()
    with pytest.raises(ConfigError, match="list"):
        NotionSource(token="t", databases="a1b2")
    with pytest.raises(ConfigError, match="not a database id"):
        NotionSource(token="t", databases=["a1b2"])
    with pytest.raises(ConfigError, match="max_blocks"):
        NotionSource(token="t", max_blocks=0)


def test_defaults_are_notions(fake):
    source = NotionSource(
        token="t",
        databases=[
            "https://www.notion.so/acme/Roadmap-1429989fe8ac4effbc8f57f56486db54?v=1"
        ],
    )
    assert source.base_url == "https://api.notion.com/"
    assert source.rate == 3.0 and source.default_prune == 3600.0
    assert source.databases == ["1429989f-e8ac-4eff-bc8f-57f56486db54"]


# Text ---------------------------------------------------------------------------


def realdata(name):
    return json.loads(
        (REALDATA / "responses" / f"{name}.interactions.json").read_text()
    )


def test_the_real_recorded_blocks_and_page_become_text():
    answers = [
        i["response_body"]
        for i in realdata("test_iterate_paginated_api")
        if i["method"] == "GET"
    ]
    lines = [
        line for answer in answers for b in answer["results"] for line in block_lines(b)
    ]
    assert lines == [f"paragraph {i}" for i in range(5)]
    (page,) = [
        i["response_body"]
        for i in realdata("test_pages_retrieve")
        if i["method"] == "GET"
    ]
    assert page_title(page) == "Test 2026-07-04 11:08:14.736683"
    (retrieved,) = [
        i["response_body"]
        for i in realdata("test_blocks_retrieve")
        if i["method"] == "GET"
    ]
    assert block_lines(retrieved) == ["I'm a paragraph."]
    (comments,) = [
        i["response_body"]
        for i in realdata("test_comments_list")
        if i["method"] == "GET"
    ]
    assert plain_text(comments["results"][0]["rich_text"]) == "This is a test comment."


def test_block_types_become_lines(make_source, fake, database):
    fake.add_page(
        "Everything",
        [
            block("heading_1", "Title"),
            block("heading_2", "Part"),
            block("heading_3", "Section"),
            paragraph("Plain words"),
            block("bulleted_list_item", "bullet", paragraph("under the bullet")),
            block("numbered_list_item", "first"),
            block("numbered_list_item", "second"),
            block("to_do", "done thing", checked=True),
            block("to_do", "open thing", checked=False),
            block("quote", "a quote"),
            block("callout", "careful", icon={"type": "emoji", "emoji": "⚠️"}),
            block("code", "print('hi')", language="python", caption=[]),
            block("toggle", "more", paragraph("hidden detail")),
            table(["name", "role"], ["Ada", "admin"]),
            block("child_page", title="Sub page"),
            block("child_database", title="Inline tasks"),
            block("divider"),
            block("unsupported"),
            block("column_list", "", block("column", "", paragraph("in a column"))),
        ],
        database=database,
    )
    (doc,) = documents(feed(make_source()))
    assert doc.text.splitlines() == [
        "# Title",
        "## Part",
        "### Section",
        "Plain words",
        "- bullet",
        "  under the bullet",
        "1. first",
        "2. second",
        "[x] done thing",
        "[ ] open thing",
        "> a quote",
        "⚠️ careful",
        "print('hi')",
        "more",
        "  hidden detail",
        "name | role",
        "Ada | admin",
        "Sub page",
        "Inline tasks",
        "in a column",
    ]


def test_database_properties_become_name_value_lines(make_source, fake, database):
    fake.add_page(
        "Launch",
        "Body",
        database=database,
        properties={
            "Status": select_value("In progress"),
            "Tags": multi_select_value("web", "infra"),
            "Due": date_value("2026-04-01", "2026-04-03"),
            "Owner": people_value("Ada Lovelace", "Alan Turing"),
            "Points": number_value(5),
            "Shipped": checkbox_value(False),
            "Notes": rich_text_value("needs review"),
            "Empty": number_value(None),
            "Created": {
                "type": "created_time",
                "created_time": "2026-03-01T12:00:00.000Z",
            },
        },
    )
    (doc,) = documents(feed(make_source()))
    assert doc.title == "Launch"
    assert doc.text.splitlines() == [
        "Due: 2026-04-01 to 2026-04-03",
        "Notes: needs review",
        "Owner: Ada Lovelace, Alan Turing",
        "Points: 5",
        "Shipped: no",
        "Status: In progress",
        "Tags: web, infra",
        "",
        "Body",
    ]
    assert doc.metadata == {"database_id": database}
    assert doc.url.startswith("https://www.notion.so/Launch-")
