"""The sync engine over a change feed: checkpoints, tombstones, resyncs, per-document
failures and the prune cadence, driven by a scripted source."""

from datetime import UTC, datetime, timedelta

import pytest

from eventhub.documents import (
    Checkpoint,
    CheckpointExpired,
    Deleted,
    Document,
    Source,
    SourceError,
)
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed, parse_prune
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


class Boom(Exception):
    """The vendor's API fell over."""


class FeedSource(Source):
    """A source whose feed is a script: ``feeds[checkpoint]`` is what ``read``
    yields from that checkpoint (an exception in it is raised there)."""

    kind = "feed"
    default_prune = None

    def __init__(self, documents, feeds, **config):
        super().__init__(**config)
        self.name = "feed"
        self.documents = {d.id: d for d in documents}
        self.feeds = feeds
        self.reads = []
        self.fetch_errors = {}

    def read(self, checkpoint, *, overlap=0.0):
        self.reads.append(checkpoint)
        key = None if checkpoint is None else checkpoint.get("page")
        for change in self.feeds[key]:
            if isinstance(change, BaseException):
                raise change
            if callable(change):
                change(self)
                continue
            yield change

    def fetch(self, id):
        if id in self.fetch_errors:
            raise self.fetch_errors[id]
        return self.documents.get(id)

    def ids(self):
        return list(self.documents)


def doc(doc_id, text, minutes=0):
    return Document(
        doc_id, "feed", doc_id.title(), text, None, T0 + timedelta(minutes=minutes)
    )


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, source, **options):
    return hub.documents.engine.sync(source, **options)


def held(hub):
    return hub.documents.index.document_ids("feed")


def saved(hub):
    return hub.documents.engine.state("feed")["checkpoint"]


A, B, C = doc("a", "apples and pears"), doc("b", "boats on the bay"), doc("c", "cats")


def test_a_checkpoint_is_saved_after_what_it_covers_and_handed_back():
    feeds = {
        None: [A, Checkpoint({"page": 1}), B, Checkpoint({"page": 2})],
        2: [C, Checkpoint({"page": 3})],
        3: [],
    }
    source = FeedSource([A, B, C], feeds)
    with make_hub_documents() as hub:
        assert sync(hub, source).added == 2 and saved(hub) == {"page": 2}
        assert sync(hub, source).added == 1 and saved(hub) == {"page": 3}
        assert sync(hub, source).added == 0 and saved(hub) == {"page": 3}
    assert source.reads == [None, {"page": 2}, {"page": 3}]


def test_a_tombstone_deletes_and_a_later_version_wins(hub):
    feeds = {
        None: [A, B, Checkpoint({"page": 1})],
        1: [Deleted("a"), Deleted("zzz"), Checkpoint({"page": 2})],
    }
    source = FeedSource([A, B], feeds)
    sync(hub, source)
    report = sync(hub, source)
    assert report.deleted == 1 and held(hub) == {"b"}
    assert [e.data["document_id"] for e in hub.bus.history("document.deleted")] == ["a"]
    back = {None: [Deleted("b"), B, Checkpoint({"page": 9})]}
    sync(hub, FeedSource([A, B], back), full=True)
    assert held(hub) == {"b"}


def test_a_failure_keeps_what_was_committed_and_the_checkpoint_before_it(hub):
    feeds = {
        None: [A, Checkpoint({"page": 1}), B, Boom("HTTP 503 from api.example.com")]
    }
    source = FeedSource([A, B], feeds)
    with pytest.raises(SourceFailed) as failed:
        sync(hub, source)
    assert (
        str(failed.value)
        == "sync of 'feed' failed: Boom: HTTP 503 from api.example.com"
    )
    assert saved(hub) == {"page": 1}  # never past B, whose commit came after it
    assert held(hub) == {"a", "b"}  # what was read is true: kept


def test_a_failure_before_any_checkpoint_moves_nothing(hub):
    sync(hub, FeedSource([A], {None: [A, Checkpoint({"page": 1})]}))
    failing = FeedSource([A, B], {1: [B, SourceError("401 Unauthorized")]})
    with pytest.raises(SourceFailed, match="'feed' failed: 401 Unauthorized"):
        sync(hub, failing)
    assert saved(hub) == {"page": 1}
    assert hub.bus.history("sync.completed")[-1].data["added"] == 1


def test_a_dead_checkpoint_resyncs_from_the_start(hub):
    sync(hub, FeedSource([A, B], {None: [A, B, Checkpoint({"page": 1})]}))
    resynced = FeedSource(
        [B, C],
        {
            1: [CheckpointExpired("410 Gone: the delta link expired")],
            None: [B, C, Checkpoint({"page": 7})],
        },
    )
    report = sync(hub, resynced)
    assert (
        report.resync == "410 Gone: the delta link expired" and report.mode == "resync"
    )
    assert (report.added, report.deleted, report.pruned) == (1, 1, True)
    assert held(hub) == {"b", "c"} and saved(hub) == {"page": 7}
    (event,) = hub.bus.history("sync.resync")
    assert event.data == {
        "source": "feed",
        "reason": "410 Gone: the delta link expired",
    }


def test_a_resync_that_would_delete_too_much_deletes_nothing(hub):
    sync(hub, FeedSource([A, B, C], {None: [A, B, C, Checkpoint({"page": 1})]}))
    empty = FeedSource(
        [], {1: [CheckpointExpired("token revoked")], None: [Checkpoint({"page": 2})]}
    )
    report = sync(hub, empty)
    assert (
        report.resync
        and report.deleted == 0
        and "run a full sync" in report.deletions_skipped
    )
    assert held(hub) == {"a", "b", "c"}


def test_an_expired_checkpoint_on_a_fresh_read_fails_the_sync(hub):
    with pytest.raises(SourceFailed, match="cannot start"):
        sync(hub, FeedSource([], {None: [CheckpointExpired("cannot start")]}))


def test_a_document_the_source_could_not_fetch_is_fetched_next_time(hub):
    def fail_b(source):
        source.fail("b", "HTTP 404 for page b (in passing)")

    source = FeedSource([A, B], {None: [A, fail_b, Checkpoint({"page": 1})], 1: []})
    report = sync(hub, source)
    assert report.failed == 1 and held(hub) == {"a"}
    state = hub.documents.engine.state("feed")
    assert state["failures"][0]["document_id"] == "b"
    again = sync(hub, source)
    assert again.added == 1 and held(hub) == {"b", "a"}
    assert hub.documents.engine.state("feed")["failures"] == []


def test_a_retried_fetch_that_raises_stays_a_failure(hub):
    source = FeedSource(
        [A, B],
        {None: [A, lambda s: s.fail("b", "timeout"), Checkpoint({"page": 1})], 1: []},
    )
    sync(hub, source)
    source.fetch_errors["b"] = Boom("connection reset")
    report = sync(hub, source)
    assert report.failed == 1
    (failure,) = hub.documents.engine.state("feed")["failures"]
    assert failure["attempts"] == 2 and "connection reset" in failure["error"]


def test_a_checkpoint_that_is_not_json_is_refused(hub):
    source = FeedSource([A], {None: [A, Checkpoint({"when": T0})]})
    with pytest.raises(SourceFailed, match="must be JSON"):
        sync(hub, source)


def test_the_prune_cadence(hub):
    source = FeedSource(
        [A, B], {None: [A, B, Checkpoint({"page": 1})], 1: [Checkpoint({"page": 1})]}
    )
    first = sync(hub, source, prune=3600)
    assert first.pruned  # never enumerated before
    del source.documents["a"]
    assert not sync(hub, source, prune=3600).pruned and held(hub) == {"a", "b"}
    assert not sync(hub, source, prune=None).pruned
    engine = hub.documents.engine
    with hub.db.write() as conn:
        conn.execute("UPDATE sync_state SET last_prune = '2020-01-01T00:00:00.000000Z'")
    due = sync(hub, source, prune=3600)
    assert due.pruned and due.deleted == 1 and held(hub) == {"b"}
    assert engine.state("feed")["last_prune"] > "2020"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("every 6h", 21600.0), ("30m", 1800.0), (90, 90.0), (False, None), (True, 0.0)],
)
def test_prune_settings(value, seconds):
    assert parse_prune(value, "sources.x") == seconds


@pytest.mark.parametrize("value", ["sometimes", -1, "every", [1]])
def test_a_bad_prune_setting_names_itself(value):
    with pytest.raises(ConfigError, match="sources.x: prune must be"):
        parse_prune(value, "sources.x")


class make_hub_documents:
    def __enter__(self):
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        self._hub = make_hub(self._tmp.name)
        hub = self._hub.__enter__()
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        return hub

    def __exit__(self, *exc):
        self._hub.__exit__(*exc)
        self._tmp.cleanup()


def test_a_failure_line_leaves_out_query_strings(hub):
    url = "https://example.atlassian.net/rest/api/3/search/jql?jql=project+in+(ENG)"
    source = FeedSource([], {None: [Boom(f"GET {url} HTTP 401 Unauthorized")]})
    with pytest.raises(SourceFailed) as failed:
        sync(hub, source)
    assert str(failed.value) == (
        "sync of 'feed' failed: Boom: GET"
        " https://example.atlassian.net/rest/api/3/search/jql HTTP 401 Unauthorized"
    )
