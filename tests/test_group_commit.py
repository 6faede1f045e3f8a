"""One publisher's bad event fails that publisher only: text attributes are checked
as strictly as data, and a group commit refused for one member's row commits the
other members all the same."""

import sqlite3
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from eventhub import Event, InvalidEvent
from eventhub.auth.apitokens import APITokenStore
from eventhub.errors import StorageBusy, StorageCorrupt, StorageFull
from eventhub.eventlog._groupcommit import is_refusal
from eventhub.events import uuid7
from eventhub.webhooks import signatures

SURROGATE = "\ud800"


def raw_event(**attributes):
    """An event made with the dataclass constructor: none of create()'s checks."""
    fields = {"type": "bad.event", "source": "/bad", "id": uuid7()}
    fields.update(attributes)
    return Event(time=datetime.now(UTC), **fields)


@pytest.mark.parametrize(
    "attributes",
    [
        {"subject": SURROGATE},
        {"source": "/a" + SURROGATE},
        {"id": SURROGATE + "1"},
        {"correlationid": SURROGATE},
        {"causationid": SURROGATE},
        {"dataschema": "https://example.com/" + SURROGATE},
        {"datacontenttype": "text/plain; x=" + SURROGATE},
        {"extensions": {"tenant": SURROGATE}},
    ],
    ids=lambda a: next(iter(a)),
)
def test_a_lone_surrogate_in_any_text_attribute_is_an_invalid_event(attributes):
    name = next(iter(attributes))
    with pytest.raises(InvalidEvent) as caught:
        Event.create("a.b", None, **{"source": "/s", **attributes})
    assert caught.value.field == ("tenant" if name == "extensions" else name)


@pytest.mark.parametrize(
    "data",
    [{"k": SURROGATE}, {SURROGATE: 1}, [{"deep": [SURROGATE]}], "text" + SURROGATE],
)
def test_a_lone_surrogate_in_data_or_its_keys_is_an_invalid_event(data):
    content_type = "text/plain" if isinstance(data, str) else None
    with pytest.raises(InvalidEvent) as caught:
        Event.create("a.b", data, source="/s", datacontenttype=content_type)
    assert caught.value.field == "data"


def test_a_type_with_a_lone_surrogate_is_refused_and_nothing_is_stored(hub):
    with pytest.raises(InvalidEvent, match="type"):
        hub.bus.publish("user." + SURROGATE)
    assert hub.bus.history() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"subject": SURROGATE},  # not encodable as UTF-8
        {"subject": {"not": "text"}},  # a value SQLite cannot bind
        {"source": None},  # a NOT NULL constraint
        {"extensions": {"big": 2**70}},  # not JSON-encodable
    ],
    ids=["surrogate", "bind-error", "constraint", "extension"],
)
def test_a_member_refused_in_a_shared_commit_fails_alone(hub, bad):
    outcome = _share_one_commit(hub, [raw_event(**bad)], "good.event")
    assert isinstance(outcome["bad"], Exception)
    assert outcome["good"].sequence is not None
    stored = hub.bus.history(limit=None)
    assert [e.type for e in stored] == ["first.event", "good.event"]
    assert stored[1] == outcome["good"]


def test_a_refused_member_gets_an_invalid_event_naming_the_attribute(hub):
    outcome = _share_one_commit(hub, [raw_event(subject=SURROGATE)], "good.x")
    assert isinstance(outcome["bad"], InvalidEvent)
    assert outcome["bad"].field == "subject"


def test_a_refused_publish_many_stores_none_of_its_events(hub):
    fine = Event.create("bad.batch", None, source="/s")
    outcome = _share_one_commit(hub, [fine, raw_event(subject=7j)], "good.x")
    assert isinstance(outcome["bad"], Exception)
    assert [e.type for e in hub.bus.history()] == ["first.event", "good.x"]


def test_8_threads_of_good_publishes_beside_a_bad_publisher_all_commit(hub):
    failures: list[BaseException] = []
    refused = []
    done = threading.Event()

    def good(t):
        for i in range(500):
            try:
                hub.bus.publish("good.event", {"i": i}, subject=f"t{t}")
            except Exception as exc:  # counted, not hidden
                failures.append(exc)

    def bad():
        while not done.is_set():
            try:
                hub.bus.publish_many([raw_event(subject=SURROGATE)])
            except InvalidEvent as exc:
                refused.append(exc)

    threads = [threading.Thread(target=good, args=(t,)) for t in range(8)]
    spoiler = threading.Thread(target=bad)
    spoiler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    spoiler.join()
    assert failures == []
    assert len(hub.bus.history("good.event", limit=None)) == 4000
    assert refused and hub.bus.history("bad.event") == []


def test_http_publishers_beside_a_bad_one_all_get_201(serve, hub):
    server = serve()
    headers = {"Authorization": f"Bearer {APITokenStore(hub.db).create('ci')}"}
    statuses: list[int] = []

    def publish(n):
        with requests.Session() as session:
            for i in range(n):
                response = session.post(
                    server.url + "/events",
                    json={"type": "good.event", "data": {"i": i}},
                    headers=headers,
                    timeout=30,
                )
                statuses.append(response.status_code)

    done = threading.Event()

    def spoil():
        while not done.is_set():
            try:
                hub.bus.publish_many([raw_event(subject=SURROGATE)])
            except Exception:  # refused, as it should be: spoil again
                pass

    threads = [threading.Thread(target=publish, args=(50,)) for _ in range(4)]
    spoiler = threading.Thread(target=spoil)
    spoiler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    spoiler.join()
    assert statuses == [201] * 200
    assert len(hub.bus.history("good.event", limit=None)) == 200


def test_post_events_with_an_encoded_lone_surrogate_is_422(serve, hub):
    server = serve()
    headers = {"Authorization": f"Bearer {APITokenStore(hub.db).create('ci')}"}
    binary = requests.post(
        server.url + "/events",
        data=b"{}",
        headers={
            **headers,
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "/s",
            "ce-type": "a.b",
            "ce-subject": "%ED%A0%80",
            "content-type": "application/json",
        },
        timeout=30,
    )
    assert binary.status_code == 422 and "subject" in binary.json()["error"]
    for content_type, body in [
        ("application/json", b'{"type": "a.b", "subject": "\\ud800"}'),
        ("application/json", b'{"type": "a.b", "data": {"k": ["\\ud800"]}}'),
        (
            "application/cloudevents+json",
            b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "a.b",'
            b' "subject": "\\ud800"}',
        ),
    ]:
        response = requests.post(
            server.url + "/events",
            data=body,
            headers={**headers, "content-type": content_type},
            timeout=30,
        )
        assert response.status_code == 422, body
        assert "invalid event" in response.json()["error"]
    assert hub.bus.history() == []


def test_a_webhook_delivery_with_a_lone_surrogate_is_refused(serve, hub):
    server = serve({"github": {"kind": "github", "secret": "s3cret"}})
    body = b'{"zen": "\\ud800"}'
    response = requests.post(
        server.url + "/webhooks/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signatures.github_signature("s3cret", body),
        },
        timeout=30,
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    assert hub.bus.history() == []


def _share_one_commit(hub, bad_events, good_type):
    """Publish ``bad_events`` (one publish_many) and one good event so that they
    share a transaction: a first publisher holds the commit while another
    connection holds the database's write lock, and the two queue behind it."""
    blocker = sqlite3.connect(hub.db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    outcome: dict[str, object] = {}

    def run(name, action):
        try:
            outcome[name] = action()
        except Exception as exc:  # the outcome under test
            outcome[name] = exc

    first = threading.Thread(
        target=run, args=("first", lambda: hub.bus.publish("first.event"))
    )
    first.start()
    # Its request is taken from the queue: it is the leader, blocked on the lock.
    _wait_for(lambda: hub.log._group._committing and not hub.log._group._queue)
    others = [
        threading.Thread(
            target=run, args=("bad", lambda: hub.bus.publish_many(bad_events))
        ),
        threading.Thread(target=run, args=("good", lambda: hub.bus.publish(good_type))),
    ]
    for thread in others:
        thread.start()
    _wait_for(lambda: len(hub.log._group._queue) == 2)
    blocker.execute("ROLLBACK")
    blocker.close()
    for thread in [first, *others]:
        thread.join(30)
    return outcome


def _wait_for(condition, deadline=10.0):
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.001)


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (sqlite3.IntegrityError("NOT NULL constraint failed: events.source"), True),
        (sqlite3.ProgrammingError("Error binding parameter 5"), True),
        (sqlite3.DataError("string or blob too big"), True),
        (UnicodeEncodeError("utf-8", SURROGATE, 0, 1, "surrogates not allowed"), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
        (sqlite3.OperationalError("disk I/O error"), False),
        (sqlite3.DatabaseError("database disk image is malformed"), False),
        (StorageFull("hub.db", "database or disk is full"), False),
        (StorageCorrupt("hub.db", "database disk image is malformed"), False),
        (StorageBusy("hub.db", 60.0), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_only_a_refused_row_splits_a_group_commit(error, refusal):
    # A refusal is retried member by member; a fault of the database fails the
    # whole group, as before.
    assert is_refusal(error) is refusal
