"""The ``slack`` source against a fake Slack Web API on 127.0.0.1 (tests/fakes/slack.py)
fed with Slack's documented response bodies (../shared/realdata/slack)."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from eventhub.integrations.slack import SlackIntegration, SlackSource
from eventhub.integrations.slack.source import MAX_PAGE_SIZE

from eventhub import Hub
from eventhub.documents import Checkpoint, CheckpointExpired, Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .fakes.slack import REALDATA, START, FakeSlack, example

pytestmark = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"the real Slack responses are missing: {REALDATA}"
)

SDK = REALDATA / "sdk-fixtures"
WRONG_TOKEN = "xoxb-00000000000-00000000000-wrongwrongwrongwrongwron"


def at(minutes):
    return START + timedelta(minutes=minutes)


@pytest.fixture
def fake():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def general(fake):
    return fake.add_channel("general")


@pytest.fixture
def waits():
    return []


@pytest.fixture
def make_source(fake, waits):
    def make(**settings):
        settings.setdefault("token", fake.token)
        source = SlackSource(
            base_url=fake.url,
            allow_private=True,
            rate=None,
            sleep=waits.append,
            **settings,
        )
        source.name = "chat"
        return source

    return make


def write_config(tmp_path, fake, extra=""):
    """A config with the slack source beside the slack integration (one kind name,
    two kinds)."""
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [integrations.notify]
        kind = "slack"
        token = {{ env = "SLACK_BOT_TOKEN" }}
        base_url = "{fake.url}"
        allow_private = true
        [sources.chat]
        kind = "slack"
        token = {{ env = "SLACK_BOT_TOKEN" }}
        base_url = "{fake.url}"
        allow_private = true
        rate = 1000
        schedule = false
        """)
        + textwrap.dedent(extra)
    )
    return config


@pytest.fixture
def hub_from(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", fake.token)
    hubs = []

    def make(extra=""):
        hubs.append(Hub.from_config(write_config(tmp_path, fake, extra)))
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture
def hub(tmp_path, make_source):
    with make_hub(tmp_path) as hub:
        hub.register_integration("chat", make_source())
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, **options):
    return hub.documents.sync("chat", **options)


def indexed(hub):
    return hub.documents.index.document_ids("chat")


def titles(hub):
    return {d["id"]: d["title"] for d in hub.documents.index.documents("chat")}


def found(hub, query):
    return [hit.document_id for hit in hub.documents.search(query, 3, source="chat")]


def threads(fake, channel):
    """The ids of the threads a channel holds at the fake."""
    return {
        f"{channel}/{ts}"
        for ts, m in fake.channels[channel]["messages"].items()
        if m.get("thread_ts") in (None, ts) and not m.get("hidden")
    }


def feed(source, checkpoint=None, overlap=0.0):
    return list(source.read(checkpoint, overlap=overlap))


def documents(changes):
    return {c.id: c for c in changes if isinstance(c, Document)}


def last_checkpoint(changes):
    return [c for c in changes if isinstance(c, Checkpoint)][-1].value


# Sync through a hub ----------------------------------------------------------------


def test_full_then_incremental_sync_matches_the_workspace(hub_from, fake, general):
    random = fake.add_channel("random")
    posted = [
        fake.post(general, f"Runbook {i}: restart the worker", at=at(i))
        for i in range(4)
    ]
    fake.post(random, "Lunch is at noon", at=at(5))
    hub = hub_from()
    report = hub.documents.sync("chat")
    assert report.added == 5
    assert hub.documents.index.document_ids("chat") == threads(fake, general) | threads(
        fake, random
    )
    fake.post(
        general, "Use the blue button", user="W07QCRPA4", at=at(10), thread=posted[1]
    )
    fake.edit(general, posted[2], "Runbook 2: rotate the signing keys", at(11))
    added = fake.post(random, "The tombstone marks a deletion", at=at(12))
    fake.delete(general, posted[3])
    report = hub.documents.sync("chat", prune=0)
    assert (report.added, report.updated, report.deleted) == (1, 2, 1)
    assert hub.documents.index.document_ids("chat") == threads(fake, general) | threads(
        fake, random
    )
    hits = hub.documents.search("rotate signing keys", 1, source="chat")
    assert hits[0].document_id == f"{general}/{posted[2]}"
    assert (
        hub.documents.search("tombstone deletion", 1)[0].document_id
        == f"{random}/{added}"
    )
    shown = {d["id"]: d for d in hub.documents.index.documents("chat")}
    assert (
        shown[f"{general}/{posted[2]}"]["title"]
        == "#general: Runbook 2: rotate the signing keys"
    )
    assert isinstance(hub.get_integration("notify"), SlackIntegration)


def test_a_thread_is_one_document_of_name_text_lines(make_source, fake, general):
    parent = fake.post(general, "Who owns the deploy?", at=at(0))
    fake.post(general, "I do", user="W07QCRPA4", at=at(1), thread=parent)
    fake.post(general, "Thanks!", at=at(2), thread=parent)
    (doc,) = documents(feed(make_source())).values()
    assert doc.id == f"{general}/{parent}"
    assert doc.text == (
        "spengler: Who owns the deploy?\n"
        "Glinda the Fairly Good: I do\n"
        "spengler: Thanks!"
    )
    assert doc.title == "#general: Who owns the deploy?"
    permalink = f"archives/{general}/p{parent.replace('.', '')}"
    assert doc.url == f"https://subarachnoid.slack.com/{permalink}"
    assert doc.updated_at == at(2) + timedelta(microseconds=3)
    assert doc.metadata == {
        "channel": general,
        "channel_name": "general",
        "thread_ts": parent,
        "replies": 2,
    }


def test_mentions_channels_and_links_are_rendered_readably(make_source, fake, general):
    fake.post(
        general,
        "<!here> <@W07QCRPA4> see <#C024BE7LR|ops> and "
        "<https://ci.example.com|the CI>, <mailto:a@example.com|a@example.com>, "
        "<!subteam^S1|@oncall> &amp; <http://x.io>",
        at=at(0),
    )
    (doc,) = documents(feed(make_source())).values()
    assert doc.text == (
        "spengler: @here @Glinda the Fairly Good see #ops and the CI (https://ci.example.com),"
        " a@example.com, @oncall & http://x.io"
    )


def test_the_real_example_bodies_become_text(make_source, fake, general):
    for message in example("conversations.history.ok")["messages"]:
        fake.put_message(general, message)
    for message in example("conversations.replies.ok")["messages"]:
        fake.put_message(general, message)
    fake.add_user("U061F7AUR", "Dorothy", "Dorothy Gale")
    docs = documents(feed(make_source()))
    assert docs[f"{general}/1482960137.003543"].text == (
        "Dorothy: island\nDorothy: one island\nDorothy: two island\n"
        "Dorothy: three for the land"
    )
    assert docs[f"{general}/1512085950.000216"].text == (
        "U012AB3CDE: I find you punny and would like to smell your nose letter"
    )  # users.info says user_not_found: the id stays
    assert docs[f"{general}/1512104434.000490"].title == (
        "#general: What, you want to smell my shoes better?"
    )


def test_pages_are_followed_to_the_end(make_source, fake, general):
    posted = [fake.post(general, f"Message {i}", at=at(i)) for i in range(12)]
    long = posted[0]
    for i in range(7):
        fake.post(general, f"Reply {i}", at=at(20 + i), thread=long)
    source = make_source(page_size=5)
    docs = documents(feed(source))
    assert set(docs) == {f"{general}/{ts}" for ts in posted}
    assert docs[f"{general}/{long}"].text.count("\n") == 7
    assert fake.calls["conversations.history"] == 3  # 12 parents, 5 a page
    assert fake.calls["conversations.replies"] == 2  # 8 messages, 5 a page
    assert sorted(source.ids()) == sorted(docs)


def test_the_page_size_cap_is_respected(make_source, fake, general):
    fake.max_limit = 15  # an app outside the Marketplace: at most 15 a page
    for i in range(40):
        fake.post(general, f"Message {i}", at=at(i))
    docs = documents(feed(make_source(page_size=MAX_PAGE_SIZE)))
    assert len(docs) == 40 and fake.calls["conversations.history"] == 3
    limits = [int(p["limit"]) for _, p in fake.log if "limit" in p]
    assert limits and max(limits) <= MAX_PAGE_SIZE
    with pytest.raises(ConfigError, match="page_size"):
        make_source(page_size=MAX_PAGE_SIZE + 1)


def test_a_429_in_the_middle_of_paging_is_waited_out(hub, fake, general, waits):
    for i in range(6):
        fake.post(general, f"Message {i}", at=at(i))
    hub.get_integration("chat").page_size = 2
    fake.retry_after = "7"
    fake.ratelimit("conversations.history", after=1)
    report = sync(hub)
    assert report.added == 6 and indexed(hub) == threads(fake, general)
    assert waits == [7.0]
    assert fake.calls["conversations.history"] == 3 + 1 + 3  # ids(), the 429, read()


def test_ratelimited_as_http_200_is_waited_out_too(make_source, fake, general):
    fake.post(general, "hello", at=at(0))
    fake.script("conversations.history", [{"ok": False, "error": "ratelimited"}])
    assert len(documents(feed(make_source()))) == 1
    assert fake.calls["conversations.history"] == 2


def test_a_refused_token_fails_the_sync_in_one_line_and_keeps_the_checkpoint(
    tmp_path, fake, general
):
    fake.post(general, "hello", at=at(0))
    config = write_config(tmp_path, fake)
    env = {**os.environ, "SLACK_BOT_TOKEN": fake.token}
    run = [sys.executable, "-m", "eventhub", "--config", str(config), "sync", "chat"]
    good = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
    assert good.returncode == 0, good.stderr
    fake.post(general, "posted later", at=at(5))
    env["SLACK_BOT_TOKEN"] = WRONG_TOKEN
    bad = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0
    (error,) = [line for line in bad.stderr.splitlines() if line.startswith("Error:")]
    assert "'chat'" in error and "invalid_auth" in error
    assert "Traceback" not in bad.stderr and WRONG_TOKEN not in bad.stderr + bad.stdout
    with Hub.from_config(config) as hub:
        state = hub.documents.engine.state("chat")
    assert state["checkpoint"]["channels"] == {
        general: f"{int(at(0).timestamp())}.000001"
    }


def test_a_refused_token_is_a_source_failure_not_an_empty_listing(hub, fake, general):
    fake.post(general, "hello", at=at(0))
    sync(hub)
    fake.token = "xoxb-rotated"
    with pytest.raises(SourceFailed, match="invalid_auth") as failed:
        sync(hub, prune=0)
    assert "\n" not in str(failed.value)
    assert indexed(hub) == threads(fake, general)  # nothing deleted


def test_an_unchanged_incremental_sync_of_1000_threads_costs_four_requests(
    hub, fake, general
):
    for i in range(1000):  # a thread every six hours: eight months of a channel
        ts = fake.post(general, f"Note {i} about queue {i % 37}", at=at(360 * i))
        if i % 10 == 0:
            fake.post(
                general,
                f"Reply to {i}",
                user="W07QCRPA4",
                at=at(360 * i + 5),
                thread=ts,
            )
    assert sync(hub).added == 1000
    before = dict(fake.calls)
    report = sync(hub)
    assert (report.added, report.updated, report.deleted, report.unchanged) == (
        0,
        0,
        0,
        1,
    )
    made = {m: n - before.get(m, 0) for m, n in fake.calls.items()}
    assert {m: n for m, n in made.items() if n} == {
        "auth.test": 1,
        "users.conversations": 1,
        "conversations.history": 1,  # one page: the 14 days looked back on
        "users.info": 1,  # the author of the thread read again in the overlap
    }


def test_an_unchanged_sync_lists_the_threads_within_the_lookback(
    make_source, fake, general
):
    for i in range(1000):  # all within one day: the lookback re-lists them all
        fake.post(general, f"Note {i}", at=at(i))
    source = make_source()
    checkpoint = last_checkpoint(feed(source))
    before = fake.requests
    assert documents(feed(make_source(), checkpoint)) == {}
    assert fake.requests - before == 2 + 5  # 1000 parents, 200 a page
    before = fake.requests
    assert documents(feed(make_source(lookback_days=0), checkpoint)) == {}
    assert fake.requests - before == 3


def test_a_new_reply_to_an_older_thread_within_the_lookback_is_read(
    make_source, fake, general
):
    old = fake.post(general, "Is the backup running?", at=at(0))
    for i in range(1, 30):
        fake.post(general, f"Chatter {i}", at=at(60 * i))
    checkpoint = last_checkpoint(feed(make_source()))
    fake.post(general, "Yes, nightly", user="W07QCRPA4", at=at(60 * 31), thread=old)
    changes = feed(make_source(), checkpoint)
    assert set(documents(changes)) == {f"{general}/{old}"}
    assert documents(changes)[f"{general}/{old}"].text.endswith("Yes, nightly")
    assert (
        last_checkpoint(changes)["channels"][general] > checkpoint["channels"][general]
    )


def test_a_reply_to_a_thread_beyond_the_lookback_waits_for_a_full_sync(
    make_source, fake, general
):
    old = fake.post(general, "Is the backup running?", at=at(0))
    fake.post(general, "Much later", at=at(60 * 24 * 30))
    checkpoint = last_checkpoint(feed(make_source()))
    fake.post(general, "Yes, nightly", at=at(60 * 24 * 30 + 1), thread=old)
    assert documents(feed(make_source(), checkpoint)) == {}  # the documented limit
    assert documents(feed(make_source(lookback_days=31), checkpoint))
    full = documents(feed(make_source()))
    assert full[f"{general}/{old}"].text.endswith("Yes, nightly")


def test_a_reply_also_sent_to_the_channel_brings_its_old_thread(
    make_source, fake, general
):
    old = fake.post(general, "Is the backup running?", at=at(0))
    fake.post(general, "Much later", at=at(60 * 24 * 30))
    checkpoint = last_checkpoint(feed(make_source()))
    fake.post(general, "Yes, nightly", at=at(60 * 24 * 31), thread=old, broadcast=True)
    docs = documents(feed(make_source(), checkpoint))
    assert set(docs) == {f"{general}/{old}"}
    assert docs[f"{general}/{old}"].text.endswith("spengler: Yes, nightly")


def test_a_reply_posted_while_a_channel_is_read_is_read_next_time(
    make_source, fake, general
):
    parent = fake.post(general, "Release today?", at=at(0))
    fake.post(general, "Yes", at=at(1), thread=parent)
    source = make_source()
    source._clock = lambda: at(0).timestamp() + 30  # the listing began at 00:30
    checkpoint = last_checkpoint(feed(source))
    assert checkpoint["channels"][general] == f"{int(at(0).timestamp()) + 30}.000000"
    assert set(documents(feed(make_source(), checkpoint))) == {f"{general}/{parent}"}


def test_checkpoints_are_per_channel_decimal_ts(make_source, fake, general):
    random = fake.add_channel("random")
    fake.post(general, "a", at=at(0))
    fake.post(random, "b", at=at(1))
    changes = feed(make_source())
    marks = [c.value["channels"] for c in changes if isinstance(c, Checkpoint)]
    assert marks == [
        {general: f"{int(at(0).timestamp())}.000001"},
        {
            general: f"{int(at(0).timestamp())}.000001",
            random: f"{int(at(1).timestamp())}.000002",
        },
    ]
    assert json.loads(json.dumps(changes[-1].value)) == changes[-1].value
    # 9.9 < 10.1 as decimals, though "9.9" > "10.1" as strings
    fake.post(general, "c", at=at(2))
    later = last_checkpoint(feed(make_source(), last_checkpoint(changes)))
    assert later["channels"][general] == f"{int(at(2).timestamp())}.000003"


@pytest.mark.parametrize(
    "checkpoint",
    [
        {"updated_at": "2026-03-01T12:00:00Z"},
        {"team": "T12345678", "channels": {"C1": 1512085950.000216}},
        {"team": "T12345678", "channels": {"general": "1512085950.000216"}},
        "1512085950.000216",
    ],
)
def test_a_checkpoint_of_another_shape_expires(make_source, general, checkpoint):
    with pytest.raises(CheckpointExpired, match="not a Slack checkpoint"):
        feed(make_source(), checkpoint)


def test_a_checkpoint_of_another_workspace_expires(make_source, fake, general):
    fake.post(general, "a", at=at(0))
    checkpoint = last_checkpoint(feed(make_source()))
    fake.team_id = "T0OTHER00"
    with pytest.raises(CheckpointExpired, match="workspace T12345678"):
        feed(make_source(), checkpoint)


def test_one_thread_that_cannot_be_read_fails_alone_and_is_retried(hub, fake, general):
    broken = fake.post(general, "Broken thread", at=at(0))
    fake.post(general, "a reply", at=at(1), thread=broken)
    garbled = fake.post(general, "Garbled thread", at=at(2))
    fake.post(general, "a reply", at=at(3), thread=garbled)
    fine = fake.post(general, "Fine message", at=at(4))
    fake.break_thread(general, broken, 404)
    fake.break_thread(general, garbled, "garbage")
    report = sync(hub)
    assert (report.added, report.failed) == (1, 2)
    assert indexed(hub) == {f"{general}/{fine}"}
    fake._broken.clear()
    again = sync(hub)
    assert (again.added, again.failed) == (2, 0)
    assert indexed(hub) == threads(fake, general)


def test_channels_are_chosen_by_id_or_name(make_source, fake, general):
    random = fake.add_channel("random")
    fake.add_channel("elsewhere")
    for channel in (general, random):
        fake.post(channel, f"in {channel}", at=at(0))
    docs = documents(feed(make_source(channels=[general, "#random"])))
    assert {d.metadata["channel"] for d in docs.values()} == {general, random}
    assert fake.calls["conversations.list"] == 1
    assert fake.calls["users.conversations"] == 0


def test_by_default_every_channel_the_bot_is_in_is_read(make_source, fake, general):
    outside = fake.add_channel("outside", member=False)
    fake.post(general, "member", at=at(0))
    fake.post(outside, "not a member", at=at(1))
    docs = documents(feed(make_source()))
    assert [d.metadata["channel"] for d in docs.values()] == [general]


def test_unreadable_channels_are_skipped_with_the_reason(make_source, fake, general):
    outside = fake.add_channel("outside", member=False)
    fake.post(general, "readable", at=at(0))
    source = make_source(channels=["general", outside, "C0GONE000", "nosuch"])
    docs = documents(feed(source))
    assert [d.metadata["channel"] for d in docs.values()] == [general]
    reasons = {s.id: s.reason for s in source.skipped}
    assert reasons["#nosuch"].startswith("channel_not_found")
    assert reasons[outside].startswith("not_in_channel: #outside")
    assert reasons["C0GONE000"].startswith("channel_not_found")
    with pytest.raises(Exception, match="not found|not_in_channel"):
        list(make_source(channels=["general", "nosuch"]).ids())


def test_channel_names_follow_the_sdk_pagination_fixture(make_source, fake):
    fake.add_channel("third", id="C3")
    fake.post("C3", "found on the third page", at=at(0))
    pages = [
        json.loads(
            (SDK / f"web_response_conversations_list_pagination{s}.json").read_text()
        )
        for s in ("", "_has_page2", "_has_page3")
    ]
    fake.script("conversations.list", pages)
    docs = documents(feed(make_source(channels=["C3"])))
    assert [d.metadata["channel"] for d in docs.values()] == ["C3"]
    cursors = [p.get("cursor") for m, p in fake.log if m == "conversations.list"]
    assert cursors == [None, "has_page2", "has_page3"]


def test_a_deleted_thread_leaves_at_the_prune(hub, fake, general):
    keep = {fake.post(general, f"keep me {i}", at=at(i)) for i in range(4)}
    gone = fake.post(general, "delete me", at=at(1))
    parent_gone = fake.post(general, "parent deleted", at=at(2))
    fake.post(general, "a reply stays", at=at(3), thread=parent_gone)
    sync(hub)
    fake.delete(general, gone)
    fake.delete(general, parent_gone)  # leaves a hidden tombstone
    assert sync(hub, prune=None).deleted == 0  # deletions come from listings
    report = sync(hub, prune=0)
    assert report.deleted == 2 and indexed(hub) == {f"{general}/{k}" for k in keep}


def test_a_slack_source_prunes_daily_by_default():
    assert SlackSource.default_prune == 24 * 3600
    assert SlackSource.default_rate <= 50 / 60  # Tier 3: 50+ a minute


def test_fetch_by_id(make_source, fake, general):
    parent = fake.post(general, "Parent", at=at(0))
    reply = fake.post(general, "Reply", at=at(1), thread=parent)
    source = make_source()
    doc = source.fetch(f"{general}/{parent}")
    assert doc is not None and doc.text == "spengler: Parent\nspengler: Reply"
    assert doc == documents(feed(make_source()))[doc.id]
    assert source.fetch(f"{general}/{reply}") is None  # a reply is not a thread
    assert source.fetch(f"{general}/1.000000") is None  # thread_not_found
    assert source.fetch("not an id") is None
    assert source.fetch("C0GONE000/1.000000") is None
    assert [s.id for s in source.skipped] == ["C0GONE000/1.000000"]


def test_a_document_updated_hint_refetches_the_thread(hub, fake, general):
    parent = fake.post(general, "Parent", at=at(0))
    sync(hub)
    fake.edit(general, parent, "Parent, edited through a hint", at(1))
    report = hub.documents.engine.sync_ids(
        hub.get_integration("chat"), [f"{general}/{parent}"]
    )
    assert report.updated == 1
    assert found(hub, "edited through a hint") == [f"{general}/{parent}"]


def test_the_settings_are_checked():
    with pytest.raises(ConfigError, match="slack source: token is missing"):
        SlackSource()
    for bad in (
        {"channels": "general"},
        {"types": ["public_channel", "dm"]},
        {"page_size": 0},
        {"lookback_days": -1},
    ):
        with pytest.raises(ConfigError):
            SlackSource(token="xoxb-1", **bad)
    source = SlackSource(token="xoxb-1")
    assert source.base_url == "https://slack.com/api/" and source.rate == 0.8


def test_the_token_never_shows(make_source, fake, general, capsys):
    from structlog.testing import capture_logs

    fake.post(general, "hello", at=at(0))
    source = make_source(token=WRONG_TOKEN)
    with capture_logs() as logs, pytest.raises(Exception) as failed:
        feed(source)
    shown = f"{logs!r} {failed.value} {failed.value!r} {source!r}"
    assert WRONG_TOKEN not in shown and "wrongwrong" not in shown
