"""POST /events and GET /events speak the CloudEvents HTTP binding 1.0.2: events
sent with the official Python SDK (structured, binary, batched mode) over real HTTP
on 127.0.0.1, read back and parsed with the SDK."""

import base64
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
import requests
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from eventhub.auth.apitokens import APITokenStore

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
TIME = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))

# (name, attributes beyond type/source, data): together, every kind of data and
# every optional attribute.
CASES = [
    ("json-object", {"datacontenttype": "application/json"}, {"id": 7, "n": [1]}),
    ("json-no-content-type", {}, {"nested": {"ok": True}}),
    ("json-string", {"datacontenttype": "application/json"}, "hello"),
    ("json-array-vnd", {"datacontenttype": "application/vnd.api+json"}, [1, 2, 3]),
    ("text", {"datacontenttype": "text/plain"}, "hello"),
    ("text-unicode", {"datacontenttype": "text/plain; charset=utf-8"}, "é\n€ 🎉"),
    ("xml", {"datacontenttype": "application/xml"}, '<much wow="xml"/>'),
    ("binary", {"datacontenttype": "application/octet-stream"}, b"\x00\xff\x80"),
    ("binary-png", {"datacontenttype": "image/png"}, PNG),
    (
        "extensions",
        {"tenant": "acme", "priority": 2**31 - 1, "vip": True, "a" * 25: "long"},
        {"x": 1},
    ),
    (
        "dataschema-subject",
        {"dataschema": "https://example.com/s.json", "subject": "orders/7"},
        {"order": 7},
    ),
    (
        "upper-case-type",
        {"type": "Microsoft.Storage.BlobCreated", "time": TIME},
        {"url": "https://acct.blob.core.windows.net/c/b.txt"},
    ),
    ("no-data", {"subject": "ping"}, None),
]
IDS = [c[0] for c in CASES]


@pytest.fixture
def token(hub):
    return APITokenStore(hub.db).create("producer")


@pytest.fixture
def url(serve):
    return serve().url


def sdk_event(name, attributes, data):
    attrs = {"type": "com.example.test", "source": f"/tests/{name}", **attributes}
    return CloudEvent(attrs, data)


def post(url, token, headers, body):
    headers = {**headers, "Authorization": f"Bearer {token}"}
    return requests.post(url + "/events", data=body, headers=headers, timeout=30)


def read_back(url, token, **params):
    response = requests.get(
        url + "/events",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200
    return [JSONFormat().read(None, orjson.dumps(obj)) for obj in response.json()]


def extensions(event):
    core = {"specversion", "id", "source", "type", "subject", "time"}
    core |= {"datacontenttype", "dataschema"}
    return {k: v for k, v in event.get_attributes().items() if k not in core}


def assert_same(sent, got, *, binary_mode=False):
    assert got.get_id() == sent.get_id() and got.get_source() == sent.get_source()
    assert got.get_type() == sent.get_type()
    assert got.get_time() == sent.get_time()  # the same instant
    assert got.get_subject() == sent.get_subject()
    assert got.get_dataschema() == sent.get_dataschema()
    if sent.get_datacontenttype() is not None:
        assert got.get_datacontenttype() == sent.get_datacontenttype()
    for name, value in extensions(sent).items():
        # Binary mode carries every attribute as a string.
        assert got.get_extension(name) == (str(value) if binary_mode else value)
    assert got.get_data() == sent.get_data()


@pytest.mark.parametrize(("name", "attributes", "data"), CASES, ids=IDS)
def test_structured_mode_round_trips(url, token, name, attributes, data):
    sent = sdk_event(name, attributes, data)
    message = ce_http.to_structured(sent, JSONFormat())
    response = post(url, token, message.headers, message.body)
    assert response.status_code == 201, response.text
    assert response.json()["sequence"] == 1
    (got,) = read_back(url, token)
    assert_same(sent, got)


@pytest.mark.parametrize(("name", "attributes", "data"), CASES, ids=IDS)
def test_binary_mode_round_trips(url, token, name, attributes, data):
    sent = sdk_event(name, attributes, data)
    message = ce_http.to_binary(sent, JSONFormat())
    response = post(url, token, message.headers, message.body)
    assert response.status_code == 201, response.text
    (got,) = read_back(url, token)
    assert_same(sent, got, binary_mode=True)


def test_the_answer_to_a_publish_is_a_cloudevent_the_sdk_reads(url, token):
    sent = sdk_event("answer", {"datacontenttype": "text/plain"}, "hi")
    message = ce_http.to_structured(sent, JSONFormat())
    response = post(url, token, message.headers, message.body)
    got = ce_http.from_http(
        ce_http.HTTPMessage(dict(response.headers), response.content), JSONFormat()
    )
    assert_same(sent, got)


def batch_body(*events):
    return b"[" + b",".join(JSONFormat().write(e) for e in events) + b"]"


def test_a_batch_is_stored_in_order_and_answered_with_the_events(url, token, hub):
    sent = [sdk_event(*case) for case in CASES[:4]]
    response = post(url, token, {"Content-Type": BATCH}, batch_body(*sent))
    assert response.status_code == 201
    assert [e["sequence"] for e in response.json()] == [1, 2, 3, 4]
    for original, got in zip(sent, read_back(url, token), strict=True):
        assert_same(original, got)


def test_an_invalid_member_refuses_the_whole_batch_naming_it(url, token, hub):
    good = sdk_event("good", {}, {"n": 1})
    body = orjson.dumps(
        [orjson.loads(JSONFormat().write(good)), {"specversion": "1.0", "id": "x"}]
    )
    response = post(url, token, {"Content-Type": BATCH}, body)
    assert response.status_code == 422
    assert "events[1].source" in response.json()["error"]
    assert hub.bus.history() == []


def test_an_empty_batch_is_valid(url, token, hub):
    response = post(url, token, {"Content-Type": BATCH}, b"[]")
    assert response.status_code == 201 and response.json() == []


def test_a_batch_is_one_transaction_with_duplicates_stored_once(url, token, hub):
    appends = []
    original = hub.log.append
    hub.log.append = lambda events: appends.append(len(events)) or original(events)
    event = sdk_event("twice", {"id": "same"}, {"n": 1})
    response = post(url, token, {"Content-Type": BATCH}, batch_body(event, event))
    assert response.status_code == 201 and appends == [2]
    assert [e["sequence"] for e in response.json()] == [1, 1]
    assert len(hub.bus.history()) == 1


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_a_duplicate_source_and_id_is_stored_once(url, token, hub, mode):
    event = sdk_event("dup", {"id": "order-7"}, {"n": 1})
    to_http = ce_http.to_structured if mode == "structured" else ce_http.to_binary
    message = to_http(event, JSONFormat())
    first = post(url, token, message.headers, message.body)
    again = post(url, token, message.headers, message.body)
    assert first.status_code == again.status_code == 201
    assert again.json()["sequence"] == first.json()["sequence"] == 1
    assert len(hub.bus.history()) == 1


def test_binary_mode_headers_are_case_insensitive_and_percent_decoded(url, token):
    headers = {
        "CE-SpecVersion": "1.0",
        "Ce-Id": "1",
        "ce-source": "/shop",
        "CE-TYPE": "Order.Paid",
        "ce-subject": "caf%C3%A9 %22seven%22 100%25",
        "Content-Type": "text/plain",
    }
    assert post(url, token, headers, b"hello").status_code == 201
    (got,) = read_back(url, token)
    assert got.get_subject() == 'café "seven" 100%' and got.get_type() == "Order.Paid"
    assert got.get_data() == "hello"


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain"])
def test_a_binary_mode_body_that_is_not_utf8_is_data(url, token, content_type):
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    body = b"\xff\xfe\x00not utf-8"
    response = post(url, token, {**headers, "Content-Type": content_type}, body)
    assert response.status_code == 201
    assert base64.b64decode(response.json()["data_base64"]) == body
    (got,) = read_back(url, token)
    assert got.get_data() == body


def test_a_body_that_is_not_utf8_is_a_422_not_a_dropped_connection(url, token, hub):
    for path in ("/events", "/workflows/x/runs"):
        response = requests.post(
            url + path,
            data=b"\xff\xfe{",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
            timeout=30,
        )
        assert response.status_code in (400, 422)
        assert set(response.json()) == {"error"}
    assert hub.bus.history() == []


def attrs(**changes):
    event = {"specversion": "1.0", "id": "1", "source": "/s", "type": "a.b"}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


FORBIDDEN = [
    ("upper-case-name", attrs(BadExt="x"), "BadExt"),
    ("underscore-name", attrs(my_ext="x"), "my_ext"),
    ("int-over-32-bits", attrs(big=2**31), "big"),
    ("int-under-32-bits", attrs(small=-(2**31) - 1), "small"),
    ("int-with-fraction", attrs(ratio=1.5), "ratio"),
    ("int-written-1.0", attrs(count=1.0), "count"),
    ("object-extension", attrs(meta={"a": 1}), "meta"),
    ("time-with-space", attrs(time="2026-01-01 12:00:00Z"), "time"),
    ("time-no-offset", attrs(time="2026-01-01T12:00:00"), "time"),
    ("time-no-seconds", attrs(time="2026-01-01T12:00Z"), "time"),
    ("time-comma-fraction", attrs(time="2026-01-01T12:00:00,5Z"), "time"),
    ("time-basic-format", attrs(time="20260101T120000Z"), "time"),
    ("time-not-a-date", attrs(time="2026-02-30T12:00:00Z"), "time"),
    ("empty-id", attrs(id=""), "id"),
    ("no-id", attrs(id=...), "id"),
    ("empty-type", attrs(type=""), "type"),
    ("specversion-0.3", attrs(specversion="0.3"), "specversion"),
    ("no-specversion", attrs(specversion=...), "specversion"),
    ("relative-dataschema", attrs(dataschema="schema.json"), "dataschema"),
    ("empty-subject", attrs(subject=""), "subject"),
    ("control-character", attrs(subject="a\nb"), "subject"),
    ("data-and-base64", attrs(data=1, data_base64="AA=="), "data"),
    ("bad-base64", attrs(data_base64="%%%"), "data_base64"),
    ("sequence-is-ours", attrs(sequence=5), "sequence"),
]


@pytest.mark.parametrize(
    ("name", "event", "attribute"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN]
)
def test_what_the_spec_forbids_is_refused(url, token, hub, name, event, attribute):
    response = post(url, token, {"Content-Type": STRUCTURED}, orjson.dumps(event))
    assert response.status_code == 422
    assert set(response.json()) == {"error"}
    assert f"{attribute}:" in response.json()["error"]
    assert hub.bus.history() == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce-id", ""),
        ("ce-time", "yesterday"),
        ("ce-Bad_Name", "x"),
        ("ce-sequence", "1"),
    ],
)
def test_binary_mode_refuses_bad_attributes(url, token, hub, header, value):
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    headers[header] = value
    response = post(url, token, headers, b"{}")
    assert response.status_code == 422 and set(response.json()) == {"error"}
    assert hub.bus.history() == []


def test_a_cloudevents_format_other_than_json_is_415(url, token):
    response = post(
        url, token, {"Content-Type": "application/cloudevents+xml"}, b"<x/>"
    )
    assert response.status_code == 415 and "cloudevents+xml" in response.json()["error"]
    plain = post(url, token, {"Content-Type": "text/plain"}, b"hello")
    assert plain.status_code == 415


def test_a_cloudevent_sent_as_plain_json_gets_a_hint(url, token):
    body = orjson.dumps(attrs())
    response = post(url, token, {"Content-Type": "application/json"}, body)
    assert response.status_code == 422
    assert STRUCTURED in response.json()["error"]


def test_the_plain_body_keeps_working(url, token, hub):
    body = orjson.dumps({"type": "user.created", "data": {"id": 7}, "id": "u7"})
    response = post(url, token, {"Content-Type": "application/json"}, body)
    assert response.status_code == 201
    stored = response.json()
    assert stored["id"] == "u7" and stored["data"] == {"id": 7}
    assert stored["source"] == hub.bus.source and stored["sequence"] == 1


def test_type_patterns_on_get_events_are_case_sensitive(url, token, hub):
    hub.bus.publish("Microsoft.Storage.BlobCreated", source="/azure")
    hub.bus.publish("microsoft.storage.blobcreated", source="/azure")
    for pattern in ("Microsoft.Storage.*", "Microsoft.Storage.BlobCreated"):
        (got,) = read_back(url, token, type=pattern)
        assert got.get_type() == "Microsoft.Storage.BlobCreated"


def test_get_events_answers_the_batch_media_type_when_asked(url, token, hub):
    hub.bus.publish("a.b", {"n": 1})
    response = requests.get(
        url + "/events",
        headers={"Authorization": f"Bearer {token}", "Accept": BATCH},
        timeout=30,
    )
    assert response.headers["Content-Type"] == BATCH
    assert [e["type"] for e in response.json()] == ["a.b"]


def test_the_producers_time_is_kept(url, token, hub):
    event = {**attrs(), "time": "2026-03-01T09:30:15.123456789+02:00"}
    post(url, token, {"Content-Type": STRUCTURED}, orjson.dumps(event))
    (stored,) = hub.bus.history()
    assert stored.time == datetime(2026, 3, 1, 7, 30, 15, 123456, tzinfo=UTC)
