"""The ``jira`` document source against a fake Jira on 127.0.0.1 (tests/fakes/jira.py),
Cloud (REST v3) and Data Center (v2), fed with the recorded responses of
``realdata/jira``."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from eventhub.integrations.jira import (
    JiraError,
    JiraIntegration,
    JiraSource,
    adf_text,
)

from eventhub import Hub
from eventhub.documents import Checkpoint, CheckpointExpired, Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .fakes.jira import PAT, FakeJira, jira_time, millis, real

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeJira() as fake:
        yield fake


@pytest.fixture
def datacenter():
    with FakeJira(cloud=False, context="/jira") as fake:
        yield fake


@pytest.fixture
def waits():
    return []


@pytest.fixture
def make_source(fake, waits):
    def make(at=None, **settings):
        at = at or fake
        if at.cloud:
            settings.setdefault("email", at.email)
            settings.setdefault("api_token", at.api_token)
        else:
            settings.setdefault("token", at.pat)
            settings.setdefault("api_version", 2)
        source = JiraSource(
            base_url=at.url,
            allow_private=True,
            rate=None,
            sleep=waits.append,
            **settings,
        )
        source.name = "tickets"
        return source

    return make


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, source, **options):
    return hub.documents.engine.sync(source, **options)


def indexed(hub, name="tickets"):
    return {d["id"]: d for d in hub.documents.index.documents(name)}


def found(hub, query, name="tickets"):
    hits = hub.documents.index.search(query, 1, source=name)
    return hits[0].document_id if hits else None


def searched_jql(fake):
    return [q["jql"] for q in fake.searches()]


def documents(changes):
    return [c for c in changes if isinstance(c, Document)]


def checkpoints(changes):
    return [c.value for c in changes if isinstance(c, Checkpoint)]


# Through a hub built from a config file -----------------------------------------------


def write_config(tmp_path, fake, extra=""):
    path = tmp_path / "eventhub.toml"
    path.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.tickets]
        kind = "jira"
        base_url = "{fake.url}"
        email = "{fake.email}"
        api_token = {{ env = "FAKE_JIRA_TOKEN" }}
        projects = ["ENG"]
        allow_private = true
        """)
        + textwrap.dedent(extra)
    )
    return path


def test_a_full_sync_then_changes_then_an_incremental_one_match_the_server(
    tmp_path, fake, monkeypatch
):
    monkeypatch.setenv("FAKE_JIRA_TOKEN", fake.api_token)
    bug = fake.add_issue("Disk full on the build host", "The runner ran out of disk.")
    doc = fake.add_issue("Release notes", "Write the notes.", comments=[("Eve", "ok")])
    old = fake.add_issue("Retire the old wiki", "Move pages over.")
    fake.add_issue("Someone else's", "Not ours.", project="OPS")
    with Hub.from_config(write_config(tmp_path, fake, "prune = 0\n")) as hub:
        first = hub.documents.sync("tickets")
        assert (first.added, first.failed) == (3, 0)
        fake.edit(bug, summary="Disk full on the build host (again)")
        fake.comment(doc, "Grace Hopper", "Notes drafted, see the changelog appendix.")
        new = fake.add_issue("Rotate the signing keys", "Every spring, yearly.")
        fake.delete(old)
        second = hub.documents.sync("tickets")
        held = indexed(hub)
        assert (second.added, second.updated, second.deleted) == (1, 2, 1)
        assert set(held) == {bug, doc, new}
        assert held[bug]["title"] == "ENG-1: Disk full on the build host (again)"
        assert held[new]["url"] == f"{fake.url}browse/ENG-4"
        assert found(hub, "changelog appendix drafted") == doc
        assert found(hub, "rotate signing keys spring") == new


def test_jira_is_an_integration_kind_and_a_source_kind(tmp_path, fake):
    path = tmp_path / "eventhub.toml"
    path.write_text(
        textwrap.dedent(f"""
        [integrations.jira]
        kind = "jira"
        base_url = "{fake.url}"
        [sources.tickets]
        kind = "jira"
        base_url = "{fake.url}"
        api_version = 2
        """)
    )
    with Hub.from_config(path, load_entrypoints=False) as hub:
        assert hub.integration_kinds()["jira"] is JiraIntegration
        assert hub.source_kinds()["jira"] is JiraSource
        assert type(hub.get_integration("jira")) is JiraIntegration
        assert hub.get_integration("tickets").api_version == 2


# Paging -------------------------------------------------------------------------------


def test_cloud_pages_by_token_to_the_end_within_the_page_cap(fake, make_source):
    ids = [fake.add_issue(f"Issue {n}", f"Body {n}") for n in range(30)]
    fake.page_cap = 7
    docs = documents(make_source().read(None))
    assert [d.id for d in docs] == ids  # oldest update first
    searches = fake.searches()
    assert len(searches) == 5 and all(q["maxResults"] == "100" for q in searches)
    assert "nextPageToken" not in searches[0] and "nextPageToken" in searches[-1]


def test_data_center_pages_by_start_at_within_the_servers_cap(datacenter, make_source):
    ids = [datacenter.add_issue(f"Issue {n}", f"Body {n}") for n in range(30)]
    datacenter.v2_page_cap = 20
    source = make_source(datacenter)
    docs = documents(source.read(None))
    assert [d.id for d in docs] == ids
    starts = [int(q["startAt"]) for q in datacenter.searches()]
    assert starts == [0, 15]  # 20 came; the next page starts 5 early
    assert docs[0].url == f"{datacenter.url}browse/ENG-1"
    assert datacenter.url.endswith("/jira/")


def test_an_issue_updated_while_offset_pages_are_read_is_not_skipped(
    datacenter, make_source
):
    ids = [datacenter.add_issue(f"Issue {n}", f"Body {n}") for n in range(30)]
    datacenter.v2_page_cap = 20
    # Before the second page: an issue of the first moves to the end of the listing,
    # and everything after it one place up.
    datacenter.before(2, lambda: datacenter.edit(ids[3], summary="Issue 3, edited"))
    docs = documents(make_source(datacenter).read(None))
    assert set(ids) == {d.id for d in docs}
    assert docs[-1].title == "ENG-4: Issue 3, edited"


def test_the_enumeration_asks_for_ids_only_in_big_pages(fake, make_source):
    ids = [fake.add_issue(f"Issue {n}") for n in range(12)]
    fake.id_page_cap = 5
    assert list(make_source(projects=["ENG"]).ids()) == ids
    (first, *_) = fake.searches()
    assert first["fields"] == "id" and first["maxResults"] == "5000"
    assert first["jql"] == 'project in ("ENG") ORDER BY created ASC'
    assert len(fake.searches()) == 3


def test_a_listing_that_cannot_be_complete_deletes_nothing(hub, fake, make_source):
    kept = [fake.add_issue(f"Issue {n}") for n in range(3)]
    sync(hub, make_source())
    # A page token that leads back to itself: the listing cannot be completed.
    looping = {"issues": [], "nextPageToken": "same", "isLast": False}
    fake.respond(1, looping)
    fake.respond(2, looping)
    report = sync(hub, make_source(), prune=0)
    assert "leads nowhere" in report.deletions_skipped and report.deleted == 0
    assert set(indexed(hub)) == set(kept)


def test_a_search_answer_without_issues_fails_the_sync(hub, fake, make_source):
    fake.add_issue("Issue")
    fake.respond(1, {"values": []})
    with pytest.raises(SourceFailed, match="without a list of issues"):
        sync(hub, make_source(), prune=None)


def test_without_projects_or_jql_the_search_is_still_bounded(fake, make_source):
    fake.add_issue("Anything", project="ENG")
    fake.add_issue("Anywhere", project="OPS")
    source = make_source()
    assert len(list(source.ids())) == 2  # Cloud refuses unbounded JQL: updated >= 0
    assert len(documents(source.read(None))) == 2
    assert searched_jql(fake) == [
        "updated >= 0 ORDER BY created ASC",
        "updated >= 0 ORDER BY updated ASC",
    ]


def test_the_configured_jql_is_anded_in_parentheses(fake, make_source):
    wanted = fake.add_issue("Docs issue", labels=["docs"])
    fake.add_issue("Other issue", labels=["ops"])
    source = make_source(projects=["ENG"], jql="labels = docs")
    assert [d.id for d in documents(source.read(None))] == [wanted]
    assert searched_jql(fake) == [
        'project in ("ENG") AND (labels = docs) AND updated >= 0 ORDER BY updated ASC'
    ]


def test_a_jql_error_fails_with_what_jira_said(fake, make_source):
    fake.add_issue("Issue")
    with pytest.raises(JiraError) as caught:
        list(make_source(jql="summary ~ disk").read(None))
    assert caught.value.status == 400 and "Error in the JQL Query" in str(caught.value)


# The checkpoint -----------------------------------------------------------------------


def test_the_checkpoint_is_the_latest_update_seen_in_epoch_ms(fake, make_source):
    fake.add_issue("One", updated=T0)
    fake.add_issue("Two", updated=T0 + timedelta(minutes=5, milliseconds=250))
    source = make_source()
    *_, last = checkpoints(source.read(None))
    assert last == {"scope": source.scope, "updated": millis(T0) + 300_250}
    assert json.loads(json.dumps(last)) == last
    fake.requests.clear()
    again = documents(source.read(last, overlap=60))
    assert [d.title for d in again] == ["ENG-2: Two"]
    assert searched_jql(fake) == [
        f"updated >= {millis(T0) + 240_250} ORDER BY updated ASC"
    ]


def test_a_checkpoint_follows_each_page(fake, make_source):
    for n in range(5):
        fake.add_issue(f"Issue {n}", updated=T0 + timedelta(seconds=n))
    fake.page_cap = 2
    values = [c["updated"] for c in checkpoints(make_source().read(None))]
    assert values[:3] == [millis(T0) + 1000, millis(T0) + 3000, millis(T0) + 4000]


@pytest.mark.parametrize(
    "checkpoint",
    [
        {"updated_at": "2026-03-01T12:00:00Z"},  # the file share's shape
        {"scope": "0123456789abcdef", "updated": 1},  # another config's
        {"scope": None, "updated": "yesterday"},
        "2026-03-01",
    ],
)
def test_a_foreign_checkpoint_is_expired(make_source, checkpoint):
    source = make_source()
    if isinstance(checkpoint, dict) and checkpoint.get("scope") is None:
        checkpoint = {**checkpoint, "scope": source.scope}
    with pytest.raises(CheckpointExpired):
        source.read(checkpoint)


def test_a_checkpoint_of_other_projects_is_expired(fake, make_source):
    fake.add_issue("Issue")
    *_, last = checkpoints(make_source(projects=["ENG"]).read(None))
    with pytest.raises(CheckpointExpired, match="another api_version, projects"):
        make_source(projects=["ENG", "OPS"]).read(last)


def test_an_unchanged_incremental_sync_of_1000_issues_costs_one_request(
    hub, fake, make_source
):
    for n in range(1000):  # an issue updated every ten minutes or so
        at = T0 + timedelta(minutes=10 * n)
        fake.add_issue(f"Issue {n}", f"Body {n}.", comments=[("Ann", "+1")], updated=at)
    assert sync(hub, make_source()).added == 1000
    before = len(fake.requests)
    report = sync(hub, make_source())  # prune not due: the default is hourly
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    assert len(fake.requests) - before == 1


# Failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_rate_limit_mid_paging_is_waited_out(hub, fake, make_source, waits, status):
    for n in range(12):
        fake.add_issue(f"Issue {n}")
    fake.page_cap = 5
    fake.throttle(at=2, status=status, retry_after="7")  # the second page
    report = sync(hub, make_source(), prune=None)
    assert report.added == 12 and waits == [7.0]
    assert len(fake.searches()) == 4  # three pages and the refused one
    refused, retried = fake.searches()[1:3]
    assert refused == retried and "nextPageToken" in retried


def test_a_401_fails_the_sync_and_keeps_the_checkpoint(hub, fake, make_source):
    fake.add_issue("Issue", updated=T0)
    sync(hub, make_source())
    saved = hub.documents.engine.state("tickets")["checkpoint"]
    fake.add_issue("Another", updated=T0 + timedelta(hours=1))
    revoked, fake.api_token = fake.api_token, "rotated"
    with pytest.raises(SourceFailed) as caught:
        sync(hub, make_source(api_token=revoked))
    message = str(caught.value)
    assert "'tickets'" in message and "401" in message and "\n" not in message
    assert revoked not in message
    assert hub.documents.engine.state("tickets")["checkpoint"] == saved


def test_a_401_is_one_line_on_the_command_line(tmp_path, fake):
    fake.add_issue("Issue")
    config = write_config(tmp_path, fake)
    env = {**os.environ, "FAKE_JIRA_TOKEN": "ATATT-revoked-token-value"}
    proc = subprocess.run(
        [sys.executable, "-m", "eventhub", "--config", str(config), "sync", "tickets"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "'tickets'" in proc.stderr and "401" in proc.stderr
    assert "ATATT-revoked-token-value" not in proc.stderr
    assert fake.email not in proc.stderr


def test_a_malformed_issue_fails_alone_and_is_fetched_next_sync(hub, fake, make_source):
    good = fake.add_issue("Good issue", "Fine.")
    bad = fake.add_issue("Bad issue", "Garbled time.")
    fake.break_issue(bad)
    report = sync(hub, make_source())
    assert (report.added, report.failed) == (1, 1) and set(indexed(hub)) == {good}
    fake._broken.clear()
    again = sync(hub, make_source())
    assert again.added == 1 and set(indexed(hub)) == {good, bad}


def test_a_recorded_issue_with_no_time_is_a_failure(hub, fake, make_source):
    # The Agile API's recorded issue has "updated": 1: not a Jira time.
    agile = fake.add_raw_issue(real("sprint/1_issues.json")["issues"][0])
    fine = fake.add_issue("Fine", project="EX")
    source = make_source(projects=["EX"])
    report = sync(hub, source)
    assert (report.added, report.failed) == (1, 1)
    assert [f.id for f in source.failed] == [agile] and set(indexed(hub)) == {fine}
    assert "not a Jira time" in source.failed[0].error


def test_an_issue_gone_while_its_comments_are_read_fails_alone(fake, make_source):
    fake.embedded_comments = 1
    kept = fake.add_issue("Kept", comments=[("A", "one"), ("B", "two")])
    gone = fake.add_issue("Gone", comments=[("A", "one"), ("B", "two")])
    fake.lose_comments(gone)
    source = make_source()
    assert [d.id for d in documents(source.read(None))] == [kept]
    assert [f.id for f in source.failed] == [gone]


# Fetch by id --------------------------------------------------------------------------


def test_fetch_by_id(fake, make_source):
    issue = fake.add_issue("Fetched", "By id.", comments=[("Ann", "Hello")])
    source = make_source(projects=["ENG"])
    document = source.fetch(issue)
    assert document.title == "ENG-1: Fetched" and "Ann: Hello" in document.text
    assert document == documents(source.read(None))[0]
    assert source.fetch("99999") is None and source.fetch("ENG-1") is None


def test_an_issue_moved_out_of_the_projects_is_gone_on_a_hint(hub, fake, make_source):
    issue = fake.add_issue("Moving on")
    sync(hub, make_source(projects=["ENG"]))
    fake.move(issue, "OPS")
    report = hub.documents.engine.sync_ids(make_source(projects=["ENG"]), [issue])
    assert report.deleted == 1 and indexed(hub) == {}


def test_a_malformed_fetch_is_skipped_not_deleted(hub, fake, make_source):
    issue = fake.add_issue("Soon garbled")
    sync(hub, make_source())
    fake.break_issue(issue)
    report = hub.documents.engine.sync_ids(make_source(), [issue])
    assert (report.deleted, report.skipped) == (0, 1) and set(indexed(hub)) == {issue}


# The text -----------------------------------------------------------------------------


def test_the_recorded_server_issues_become_documents(datacenter, make_source):
    ids = datacenter.add_real_issues()
    docs = {d.id: d for d in documents(make_source(datacenter).read(None))}
    assert set(docs) == set(ids) and len(docs) == 11
    sample = docs["10002"]
    assert sample.title == "SAMPLEPROJECT-1: MOOOOOOARRR NINJAAAA!"
    assert sample.text.splitlines() == [
        "MOOOOOOARRR NINJAAAA!",
        "",
        "admin: This is a comment. Creative.",
        "admin: new comment",
    ]
    # "2011-12-15T15:37:33.000+1300", in UTC
    assert sample.updated_at == datetime(2011, 12, 15, 2, 37, 33, tzinfo=UTC)
    assert sample.url == f"{datacenter.url}browse/SAMPLEPROJECT-1"
    assert sample.metadata == {
        "key": "SAMPLEPROJECT-1",
        "project": "SAMPLEPROJECT",
        "type": "Task",
        "status": "Open",
        "reporter": "admin",
        "assignee": "admin",
    }


def test_v2_wiki_text_is_kept_as_it_is(datacenter, make_source):
    datacenter.add_issue("Wiki", "h2. Steps\n* one\n* two\n{code}make{code}")
    (doc,) = documents(make_source(datacenter).read(None))
    assert doc.text == "Wiki\n\nh2. Steps\n* one\n* two\n{code}make{code}"


def test_comments_past_the_embedded_ones_are_read_in_order(fake, make_source):
    fake.embedded_comments = 2
    fake.comment_page_cap = 3
    issue = fake.add_issue(
        "Chatty", comments=[(f"P{n}", f"note {n}") for n in range(9)]
    )
    source = make_source()
    (doc,) = documents(source.read(None))
    assert doc.text.splitlines()[2:] == [f"P{n}: note {n}" for n in range(9)]
    pages = [q["startAt"] for _, p, q in fake.requests if p.endswith("/comment")]
    assert pages == ["2", "5", "8"] and doc.id == issue


# Atlassian Document Format (v3). realdata holds no recorded v3 body: this document
# is built from the node types of Atlassian's ADF reference.
ADF = {
    "type": "doc",
    "version": 1,
    "content": [
        {
            "type": "heading",
            "attrs": {"level": 2},
            "content": [{"type": "text", "text": "Steps"}],
        },
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "Ask "},
                {
                    "type": "mention",
                    "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5", "text": "@Jane Doe"},
                },
                {"type": "text", "text": " first", "marks": [{"type": "strong"}]},
                {"type": "hardBreak"},
                {"type": "text", "text": "then wait "},
                {"type": "emoji", "attrs": {"shortName": ":smile:", "text": "😄"}},
            ],
        },
        {
            "type": "orderedList",
            "attrs": {"order": 3},
            "content": [
                {
                    "type": "listItem",
                    "content": [
                        {
                            "type": "paragraph",
                            "content": [{"type": "text", "text": "build"}],
                        },
                        {
                            "type": "bulletList",
                            "content": [
                                {
                                    "type": "listItem",
                                    "content": [
                                        {
                                            "type": "paragraph",
                                            "content": [
                                                {"type": "text", "text": "on Linux"}
                                            ],
                                        }
                                    ],
                                }
                            ],
                        },
                    ],
                },
                {
                    "type": "listItem",
                    "content": [
                        {
                            "type": "paragraph",
                            "content": [{"type": "text", "text": "ship"}],
                        }
                    ],
                },
            ],
        },
        {
            "type": "codeBlock",
            "attrs": {"language": "shell"},
            "content": [{"type": "text", "text": "make\nmake install"}],
        },
        {
            "type": "table",
            "content": [
                {
                    "type": "tableRow",
                    "content": [
                        {
                            "type": "tableHeader",
                            "content": [
                                {
                                    "type": "paragraph",
                                    "content": [{"type": "text", "text": "Host"}],
                                }
                            ],
                        },
                        {
                            "type": "tableHeader",
                            "content": [
                                {
                                    "type": "paragraph",
                                    "content": [{"type": "text", "text": "Disk"}],
                                }
                            ],
                        },
                    ],
                },
                {
                    "type": "tableRow",
                    "content": [
                        {
                            "type": "tableCell",
                            "content": [
                                {
                                    "type": "paragraph",
                                    "content": [{"type": "text", "text": "build-1"}],
                                }
                            ],
                        },
                        {
                            "type": "tableCell",
                            "content": [
                                {
                                    "type": "paragraph",
                                    "content": [
                                        {"type": "status", "attrs": {"text": "FULL"}}
                                    ],
                                }
                            ],
                        },
                    ],
                },
            ],
        },
        {
            "type": "panel",
            "attrs": {"panelType": "info"},
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": "Due "},
                        {"type": "date", "attrs": {"timestamp": "1772323200000"}},
                        {"type": "text", "text": ", see "},
                        {
                            "type": "inlineCard",
                            "attrs": {"url": "https://example.com/runbook"},
                        },
                    ],
                }
            ],
        },
        {"type": "rule"},
        {
            "type": "mediaSingle",
            "content": [{"type": "media", "attrs": {"id": "x", "type": "file"}}],
        },
        {
            "type": "taskList",
            "attrs": {"localId": "t"},
            "content": [
                {
                    "type": "taskItem",
                    "attrs": {"localId": "1", "state": "DONE"},
                    "content": [{"type": "text", "text": "order disks"}],
                }
            ],
        },
    ],
}


def test_adf_is_flattened_to_lines():
    assert adf_text(ADF).splitlines() == [
        "Steps",
        "Ask @Jane Doe first",
        "then wait 😄",
        "3. build",
        "  - on Linux",
        "4. ship",
        "make",
        "make install",
        "Host | Disk",
        "build-1 | FULL",
        "Due 2026-03-01, see https://example.com/runbook",
        "[x] order disks",
    ]


def test_adf_survives_garbage_and_depth():
    deep: dict = {"type": "paragraph", "content": [{"type": "text", "text": "deep"}]}
    for _ in range(500):
        deep = {"type": "blockquote", "content": [deep]}
    assert adf_text(deep) == ""  # past the depth limit: dropped, no RecursionError
    garbage = {"type": "doc", "content": [None, 7, {"type": "paragraph", "content": 3}]}
    assert adf_text(garbage) == "" and adf_text(None) == ""
    assert adf_text("plain") == "plain"


def test_v3_descriptions_and_comments_are_adf(fake, make_source):
    fake.add_issue("ADF", ADF, comments=[("Jane Doe", "Looks *right* to me.")])
    (doc,) = documents(make_source().read(None))
    assert "build-1 | FULL" in doc.text and "Ask @Jane Doe first" in doc.text
    assert doc.text.endswith("Jane Doe: Looks *right* to me.")
    assert fake.issues[doc.id]["fields"]["description"] is ADF  # sent as ADF


# Settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_version": 4}, "api_version must be 2 or 3"),
        ({"projects": "ENG"}, "projects must be a list"),
        ({"jql": "labels = x ORDER BY created"}, "must not have an ORDER BY"),
        ({"jql": "  "}, "jql must be"),
    ],
)
def test_setting_mistakes_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        JiraSource(base_url="https://x.atlassian.net/", token="t", **settings)


def test_the_documented_defaults():
    source = JiraSource(base_url="https://x.atlassian.net/", email="e", api_token="t")
    assert (source.rate, source.burst, source.default_prune) == (10.0, 10, 3600.0)
    assert source.api_version == 3 and source.restriction == ""


def test_data_center_takes_a_bearer_token(datacenter, make_source):
    datacenter.add_issue("Issue", updated=T0)
    assert len(documents(make_source(datacenter).read(None))) == 1
    wrong = make_source(datacenter, token=PAT + "x")
    with pytest.raises(JiraError, match="401.*not authenticated"):
        list(wrong.read(None))


def test_times_are_parsed_strictly(fake, make_source):
    issue = fake.add_issue("Issue")
    fake.issues[issue]["fields"]["updated"] = jira_time(T0).replace("+0000", "")
    source = make_source()
    assert documents(source.read(None)) == [] and source.failed[0].id == issue
