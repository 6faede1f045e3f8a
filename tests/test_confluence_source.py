"""The confluence source against a fake Confluence (Cloud and Data Center) on
127.0.0.1 that speaks the REST API's search, paging, caps, auth and errors."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from eventhub.integrations.confluence import (
    ConfluenceError,
    ConfluenceSource,
    cql_time,
    storage_to_text,
)

from eventhub.documents import CheckpointExpired, Deleted, Document, SourceError
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError

from .fakes.confluence import API_TOKEN, PAT, START, FakeConfluence, real_record

T = START
S = timedelta(seconds=1)


@pytest.fixture(params=["cloud", "datacenter"])
def fake(request):
    with FakeConfluence(cloud=request.param == "cloud") as server:
        yield server


@pytest.fixture
def cloud():
    with FakeConfluence(cloud=True) as server:
        yield server


def source(fake, **settings):
    settings = {
        "base_url": fake.base_url,
        "allow_private": True,
        "rate": None,
        "sleep": lambda seconds: None,
        **fake.credentials(),
        **settings,
    }
    made = ConfluenceSource(**settings)
    made.name = "wiki"
    return made


def feed(src, checkpoint=None, overlap=0.0):
    changes = list(src.read(checkpoint, overlap=overlap))
    docs = [c for c in changes if isinstance(c, Document)]
    return docs, changes[-1].value


def wiki_hub(tmp_path, fake, **settings):
    """A hub from a config file with ``[sources.wiki]`` on the fake."""
    from eventhub import Hub

    table = {
        "kind": "confluence",
        "base_url": fake.base_url,
        "allow_private": True,
        "schedule": False,
        "rate": 1000,
        **fake.credentials(),
        **settings,
    }
    lines = []
    for key, value in table.items():
        if key in ("api_token", "token"):  # secrets come from a file
            secret = tmp_path / f"{key}.secret"
            secret.write_text(value)
            lines.append(f"{key} = {{ file = {json.dumps(str(secret))} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    config = tmp_path / "eventhub.toml"
    config.write_text(
        'db = "hub.db"\n[index]\nmodel = "hash:256"\n[sources.wiki]\n'
        + "\n".join(lines)
        + "\n"
    )
    return Hub.from_config(config, load_entrypoints=False)


def indexed(hub):
    return hub.documents.index.document_ids("wiki")


def current(fake):
    return {i for i, c in fake.contents.items() if c.status == "current"}


def found(hub, query):
    return [h.document_id for h in hub.documents.search(query, 3)]


def seed(fake, count, *, space="ENG", step=timedelta(minutes=1)):
    return [
        fake.put_text(
            f"Page {n}",
            f"Notes number {n} about topic {n}.",
            space=space,
            when=T + n * step,
        )
        for n in range(count)
    ]


# -- sync through a hub ----------------------------------------------------------


def test_full_then_incremental_sync_keeps_the_index_equal_to_the_site(tmp_path, fake):
    ids = seed(fake, 60)
    blog = fake.put_real_record()
    with wiki_hub(tmp_path, fake) as hub:
        first = hub.documents.sync("wiki")
        assert first.added == 61 and indexed(hub) == current(fake)
        fake.put_text(
            "Runbook",
            "Restart the ingest workers with systemd.",
            id=ids[3],
            when=T + timedelta(hours=2),
        )
        added = fake.put_text(
            "Onboarding",
            "Laptops come from the service desk.",
            type="blogpost",
            when=T + timedelta(hours=2, seconds=5),
        )
        fake.trash(ids[10])
        fake.purge(ids[11])
        report = hub.documents.sync("wiki", prune=0)
        assert (report.added, report.updated, report.deleted) == (1, 1, 2)
        assert indexed(hub) == current(fake) and added in indexed(hub)
        assert found(hub, "restart ingest workers systemd")[0] == ids[3]
        assert found(hub, "laptops service desk")[0] == added
        assert (
            found(
                hub, "Lorem Ipsum dummy text of the printing and typesetting industry"
            )[0]
            == blog
        )


def test_deletions_wait_for_the_prune_and_the_feed_keeps_going(tmp_path, cloud):
    ids = seed(cloud, 5)
    with wiki_hub(tmp_path, cloud) as hub:
        hub.documents.sync("wiki")
        cloud.trash(ids[0])
        cloud.put_text(
            "Page 1",
            "Edited after the first sync.",
            id=ids[1],
            when=T + timedelta(hours=1),
        )
        quiet = hub.documents.sync("wiki")  # the default prune is not due
        assert (quiet.updated, quiet.deleted, quiet.pruned) == (1, 0, False)
        pruned = hub.documents.sync("wiki", prune=0)
        assert pruned.deleted == 1 and indexed(hub) == current(cloud)


def test_a_tombstone_in_the_feed_deletes_at_once(tmp_path):
    with FakeConfluence(list_gone=True) as fake, wiki_hub(tmp_path, fake) as hub:
        ids = seed(fake, 3)
        hub.documents.sync("wiki")
        fake.archive(ids[1])  # within the overlap window of the checkpoint
        report = hub.documents.sync("wiki", prune=None)
        assert report.deleted == 1 and ids[1] not in indexed(hub)


def test_an_unchanged_sync_of_1000_documents_costs_one_request(tmp_path, cloud):
    seed(cloud, 1000)
    with wiki_hub(tmp_path, cloud) as hub:
        assert hub.documents.sync("wiki").added == 1000
        before = cloud.requests
        report = hub.documents.sync("wiki")
        assert (report.added, report.updated, report.unchanged) == (0, 0, 6)
        assert cloud.requests - before == 1


def test_a_429_mid_paging_is_waited_out_and_the_sync_completes(tmp_path, fake):
    seed(fake, 120)
    fake.throttle(after=2, retry_after=0)  # the listing, the feed's first page, 429
    with wiki_hub(tmp_path, fake) as hub:
        assert hub.documents.sync("wiki").added == 120
    assert [r.status for r in fake.searches()] == [200, 200, 429, 200, 200]
    assert [r.results for r in fake.searches()] == [120, 50, None, 50, 20]


def test_retry_after_is_honoured(cloud):
    seed(cloud, 60)
    cloud.throttle(after=1, retry_after=7)
    waits = []
    docs, _ = feed(source(cloud, sleep=waits.append))
    assert len(docs) == 60 and waits == [7.0]


def test_a_401_fails_the_sync_on_one_line_and_keeps_the_checkpoint(tmp_path, fake):
    ids = seed(fake, 3)
    with wiki_hub(tmp_path, fake) as hub:
        hub.documents.sync("wiki")
        before = hub.documents.engine.state("wiki")["checkpoint"]
        fake.put_text(
            "Page 1",
            "Changed while the token is revoked.",
            id=ids[1],
            when=T + timedelta(hours=1),
        )
        fake.revoke()
        with pytest.raises(SourceFailed) as failed:
            hub.documents.sync("wiki", prune=0)
        message = str(failed.value)
        assert "\n" not in message and "'wiki'" in message and "401" in message
        assert "must be authenticated" in message
        assert API_TOKEN not in message and PAT not in message and "cql" not in message
        assert hub.documents.engine.state("wiki")["checkpoint"] == before


def test_a_401_on_the_command_line_is_one_line_without_a_traceback(tmp_path, cloud):
    seed(cloud, 2)
    cloud.revoke()
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.wiki]
        kind = "confluence"
        base_url = "{cloud.base_url}"
        email = "bot@example.com"
        api_token = {{ env = "EH_TEST_CONFLUENCE_TOKEN" }}
        allow_private = true
        schedule = false
    """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "eventhub", "--config", str(config), "sync", "wiki"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EH_TEST_CONFLUENCE_TOKEN": API_TOKEN},
    )
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert "'wiki'" in proc.stderr and "401" in proc.stderr
    assert "Traceback" not in proc.stderr and API_TOKEN not in proc.stderr


def test_a_malformed_body_fails_one_document_and_is_fetched_next_time(tmp_path, fake):
    ids = seed(fake, 4)
    fake.break_body(ids[2])
    with wiki_hub(tmp_path, fake) as hub:
        report = hub.documents.sync("wiki")
        assert (report.added, report.failed) == (3, 1)
        (failure,) = hub.documents.engine.state("wiki")["failures"]
        assert failure["document_id"] == ids[2] and "body.storage" in failure["error"]
        fake.break_body(ids[2], False)
        healed = hub.documents.sync("wiki")
        assert healed.added == 1 and indexed(hub) == set(ids)
        assert hub.documents.engine.state("wiki")["failures"] == []


# -- the feed --------------------------------------------------------------------


def test_pages_are_followed_to_the_end_within_the_body_cap(fake):
    seed(fake, 120)
    docs, checkpoint = feed(source(fake))
    assert len(docs) == 120 and len({d.id for d in docs}) == 120
    searches = fake.searches()
    assert len(searches) == 3
    assert all(int(r.query["limit"]) <= 50 for r in searches)
    assert all("body.storage" in r.query["expand"] for r in searches)
    assert [d.updated_at for d in docs] == sorted(d.updated_at for d in docs)


def test_cloud_sends_a_next_link_to_an_empty_page_after_a_full_one(cloud):
    seed(cloud, 100)
    docs, _ = feed(source(cloud))
    assert len(docs) == 100
    assert [r.results for r in cloud.searches()] == [50, 50, 0]


def test_a_next_link_that_loops_on_empty_pages_ends_the_feed_not_the_listing():
    with FakeConfluence(cloud=True, always_next=True) as fake:
        seed(fake, 60)
        docs, _ = feed(source(fake))
        assert len(docs) == 60
        assert [r.results for r in fake.searches()] == [50, 10, 0, 0, 0]
        with pytest.raises(SourceError, match="listing may be incomplete"):
            list(source(fake).ids())
        assert [r.results for r in fake.searches()[5:]] == [60, 0, 0, 0]


@pytest.mark.parametrize("rooted", [False, True])
def test_next_links_under_a_data_center_context_path(rooted):
    with FakeConfluence(cloud=False, context="/confluence", rooted_next=rooted) as fake:
        seed(fake, 70)
        assert fake.base_url.endswith("/confluence/")
        docs, _ = feed(source(fake))
        assert len(docs) == 70
        assert [r.path for r in fake.searches()] == [
            "/confluence/rest/api/content/search"
        ] * 2


def test_ids_list_everything_in_one_request_without_expansions(fake):
    ids = seed(fake, 300)
    fake.trash(ids[0])
    listed = list(source(fake).ids())
    assert sorted(listed) == sorted(ids[1:])
    (search,) = fake.searches()
    assert "expand" not in search.query and search.query["limit"] == "1000"


def test_the_checkpoint_keeps_the_exact_time_and_edits_in_its_minute_come_again(fake):
    ids = seed(fake, 3, step=timedelta(seconds=10))  # 12:00:00, :10, :20
    src = source(fake)
    docs, checkpoint = feed(src)
    assert checkpoint["lastmodified"] == "2026-03-01T12:00:20.000000Z"
    assert json.loads(json.dumps(checkpoint)) == checkpoint
    fake.put_text("Page 0", "Edited later in that minute.", id=ids[0], when=T + 40 * S)
    again, later = feed(src, checkpoint, overlap=0)
    assert 'lastmodified >= "2026-03-01 12:00"' in fake.searches()[-1].query["cql"]
    assert {d.id for d in again} == set(ids)
    assert later["lastmodified"] == "2026-03-01T12:00:40.000000Z"


def test_same_minute_edits_after_a_sync_come_with_the_next_one(tmp_path, fake):
    ids = seed(fake, 3, step=10 * S)  # 12:00:00, :10, :20: the checkpoint
    with wiki_hub(tmp_path, fake, overlap=0) as hub:
        hub.documents.sync("wiki")
        # One edit later in that minute, one the search index shows late, with a
        # time before the checkpoint's seconds.
        fake.put_text(
            "Minutes", "Quarterly planning offsite agenda.", id=ids[1], when=T + 50 * S
        )
        fake.put_text(
            "Page 0", "Coffee machine descaling steps.", id=ids[0], when=T + 5 * S
        )
        report = hub.documents.sync("wiki")
        assert (report.updated, report.unchanged) == (2, 1)
        assert found(hub, "quarterly planning offsite agenda")[0] == ids[1]
        assert found(hub, "coffee machine descaling steps")[0] == ids[0]


def test_the_overlap_reads_back_before_the_checkpoint(cloud):
    seed(cloud, 10)  # one a minute, 12:00 to 12:09; 150 s before 12:09 is 12:06:30
    _, checkpoint = feed(source(cloud))
    docs, _ = feed(source(cloud), checkpoint, overlap=150)
    assert [d.title for d in docs] == ["Page 6", "Page 7", "Page 8", "Page 9"]
    assert 'lastmodified >= "2026-03-01 12:06"' in cloud.searches()[-1].query["cql"]


def test_cql_times_are_read_in_the_account_time_zone():
    with FakeConfluence(timezone="America/New_York") as fake:
        seed(fake, 10)
        src = source(fake, timezone="America/New_York")
        _, checkpoint = feed(src)
        docs, _ = feed(src, checkpoint)
        assert [d.title for d in docs] == ["Page 9"]
        assert '"2026-03-01 07:09"' in fake.searches()[-1].query["cql"]


def test_a_repeated_wall_time_is_read_back_before_the_repeated_hour():
    zone = ZoneInfo("Europe/Berlin")
    second_pass = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, again
    assert cql_time(second_pass, zone) == "2026-10-25 01:30"
    assert cql_time(datetime(2026, 3, 1, 12, 0, 59, tzinfo=UTC), UTC) == (
        "2026-03-01 12:00"
    )


def test_spaces_limit_the_feed_and_the_listing_and_are_quoted(fake):
    seed(fake, 3, space="ENG")
    personal = fake.put_text("Mine", "A personal page.", space="~5fc9e78d2730d8")
    seed(fake, 3, space="OPS")
    src = source(fake, spaces=["~5fc9e78d2730d8", "ENG"])
    docs, checkpoint = feed(src)
    assert len(docs) == 4 and personal in {d.id for d in docs}
    assert len(list(src.ids())) == 4
    assert 'space in ("ENG", "~5fc9e78d2730d8")' in fake.searches()[0].query["cql"]
    assert checkpoint["spaces"] == ["ENG", "~5fc9e78d2730d8"]


def test_a_foreign_or_dead_checkpoint_expires(cloud):
    seed(cloud, 2)
    src = source(cloud, spaces=["ENG"])
    _, good = feed(src)
    for bad in (
        {"updated_at": "2026-03-01T12:00:00Z"},
        "a page token",
        {**good, "spaces": None},
        {**good, "site": "https://other.atlassian.net/wiki/"},
        {**good, "lastmodified": "yesterday"},
    ):
        with pytest.raises(CheckpointExpired):
            src.read(bad)
    assert cloud.requests == 1  # refused before asking Confluence anything


def test_trashed_and_archived_content_in_the_feed_is_a_tombstone():
    with FakeConfluence(list_gone=True) as fake:
        ids = seed(fake, 3)
        fake.trash(ids[0])
        fake.archive(ids[1])
        changes = list(source(fake).read(None))
        assert [c.id for c in changes if isinstance(c, Deleted)] == ids[:2]
        assert source(fake).fetch(ids[0]) is None


def test_the_cql_the_source_sends_is_what_the_fake_accepts(cloud):
    src = source(cloud)
    with pytest.raises(ConfluenceError, match="Could not parse cql") as refused:
        src._get("rest/api/content/search", {"cql": 'text ~ "backup"'})
    assert refused.value.status == 400 and "?" not in refused.value.url


# -- documents -------------------------------------------------------------------


def test_the_real_blog_post_becomes_a_document(cloud):
    blog = cloud.put_real_record()
    record = real_record()
    docs, _ = feed(source(cloud))
    (doc,) = docs
    assert doc.id == blog == record["id"] and doc.title == record["title"]
    assert doc.text.startswith("Lorem Ipsum is simply dummy text of the printing")
    assert doc.text.endswith("including versions of Lorem Ipsum.")
    assert doc.url == cloud.site + record["_links"]["webui"]
    assert doc.updated_at == datetime(2023, 3, 6, 15, 54, 15, 290000, tzinfo=UTC)
    assert doc.metadata == {
        "type": "blogpost",
        "space": "~5fc9e78d2730d800760becc4",
        "version": 1,
        "modified_by": "integration test",
    }
    assert source(cloud).fetch(blog) == doc


def test_the_real_storage_body_converts_to_its_text():
    body = real_record()["body"]["storage"]["value"]
    text = storage_to_text(body)
    assert "<" not in text and "\n" not in text
    assert text.startswith("Lorem Ipsum is simply dummy text")
    assert "industry's standard dummy text ever since the 1500s" in text


STORAGE = """<h2>Deploy</h2><p>Read <ac:link><ri:page ri:content-title="Prod"/>
<ac:plain-text-link-body><![CDATA[the prod page]]></ac:plain-text-link-body>
</ac:link> first.</p>
<ac:structured-macro ac:name="info"><ac:parameter ac:name="title">Heads up
</ac:parameter><ac:rich-text-body><p>Backups run nightly.</p></ac:rich-text-body>
</ac:structured-macro>
<ul><li>one</li><li><p>two</p><ul><li>two, nested</li></ul></li></ul>
<table><tbody><tr><th>Host</th><th>Role</th></tr>
<tr><td><p>db1</p></td><td>primary</td></tr></tbody></table>
<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash
</ac:parameter><ac:plain-text-body><![CDATA[make deploy
  make check && echo <done>]]></ac:plain-text-body></ac:structured-macro>
<ac:layout><ac:layout-section ac:type="two_equal"><ac:layout-cell><p>left</p>
</ac:layout-cell><ac:layout-cell><p><ac:placeholder>Type here</ac:placeholder></p>
</ac:layout-cell></ac:layout-section></ac:layout>
<p>Ping <ac:link><ri:user ri:account-id="5fc9e78d"/></ac:link> by
<time datetime="2026-05-01" />&nbsp;&amp; done<ac:emoticon ac:name="smile"/></p>"""


def test_storage_format_keeps_lines_and_drops_macro_markup():
    assert storage_to_text(STORAGE).split("\n") == [
        "Deploy",
        "",
        "Read the prod page first.",
        "",
        "Backups run nightly.",
        "",
        "- one",
        "- two",
        "- two, nested",
        "",
        "Host | Role",
        "db1 | primary",
        "",
        "make deploy",
        "  make check && echo <done>",
        "",
        "left",
        "",
        "Ping by 2026-05-01 & done",
    ]


def test_fetch_by_id(fake):
    (page,) = seed(fake, 1)
    doc = source(fake).fetch(page)
    assert doc.id == page and "Notes number 0" in doc.text
    assert doc.url == f"{fake.site}/spaces/ENG/pages/{page}/Page+0"
    assert source(fake).fetch("4242") is None
    assert source(fake).fetch("no/such/document.txt") is None


def test_a_document_over_the_limits_is_skipped(cloud):
    (page,) = seed(cloud, 1)
    src = source(cloud, max_chars=10)
    docs, checkpoint = feed(src)
    assert docs == [] and checkpoint["lastmodified"] is not None
    (skip,) = src.skipped
    assert skip.id == page and "max_chars" in skip.reason and skip.updated_at == T


def test_data_center_takes_a_bearer_token_at_the_site_root():
    with FakeConfluence(cloud=False) as fake:
        seed(fake, 2)
        assert len(feed(source(fake))[0]) == 2
        with pytest.raises(ConfluenceError, match="401"):
            feed(source(fake, token="wrong"))
        assert fake.log[-1].authorization == "Bearer wrong"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"email": None, "api_token": None}, "credentials missing"),
        ({"spaces": "ENG"}, "spaces must be a list"),
        ({"spaces": []}, "spaces must be a list"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
    ],
)
def test_configuration_mistakes(cloud, settings, message):
    with pytest.raises(ConfigError, match=message):
        source(cloud, **settings)


def test_the_default_rate_is_ten_a_second_with_bursts_of_twenty(cloud):
    settings = {"base_url": cloud.base_url, "allow_private": True}
    made = ConfluenceSource(**settings, **cloud.credentials())
    assert (made.rate, made.burst) == (10.0, 20)
    assert ConfluenceSource(**settings, **cloud.credentials(), rate=2).rate == 2
    assert made.default_prune == 6 * 3600
