"""eventhub.cloudevents, the wire formats on their own: what the queue bridges
reuse. Checked against the official SDK's readers and writers."""

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from eventhub import Event, InvalidEvent
from eventhub import cloudevents as ce

HEADERS = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "a.b"}


@pytest.mark.parametrize(
    ("headers", "mode"),
    [
        ({"Content-Type": "application/cloudevents+json"}, "structured"),
        ({"content-type": "Application/CloudEvents+JSON; charset=utf-8"}, "structured"),
        ({"Content-Type": "application/cloudevents-batch+json"}, "batch"),
        ({**HEADERS, "Content-Type": "application/json"}, "binary"),
        ({"CE-ID": "1"}, "binary"),
        ({"Content-Type": "application/json"}, None),
        ({}, None),
    ],
)
def test_content_mode_follows_the_http_binding(headers, mode):
    assert ce.content_mode(headers) == mode


def test_other_cloudevents_formats_are_unsupported():
    with pytest.raises(ce.UnsupportedContentType) as info:
        ce.content_mode({"Content-Type": "application/cloudevents+avro"})
    assert info.value.content_type == "application/cloudevents+avro"


@pytest.mark.parametrize(
    "event",
    [
        Event.create("a.b", {"n": [1, 2]}, source="/s", subject="x/1"),
        Event.create("a.b", "héllo\n", source="/s", datacontenttype="text/plain"),
        Event.create("a.b", b"\x00\xff", source="/s", dataschema="urn:schema:1"),
        Event.create("a.B", None, source="/s", extensions={"n": -5, "ok": False}),
    ],
)
def test_to_binary_is_read_back_by_the_sdk_and_by_from_binary(event):
    headers, body = ce.to_binary(event)
    sdk = ce_http.from_binary(ce_http.HTTPMessage(headers, body), JSONFormat())
    assert sdk.get_id() == event.id and sdk.get_time() == event.time
    assert sdk.get_subject() == event.subject
    assert sdk.get_dataschema() == event.dataschema
    again = ce.from_binary(headers, body)
    assert again.data == event.data and again.datacontenttype == event.datacontenttype
    assert again.time == event.time


def test_to_binary_percent_encodes_what_headers_cannot_carry():
    event = Event.create("a.b", source="/s", subject='café "x" 100%')
    headers, _ = ce.to_binary(event)
    assert headers["ce-subject"] == "caf%C3%A9%20%22x%22%20100%25"
    assert ce.from_binary(headers, b"").subject == 'café "x" 100%'


def test_to_structured_and_to_batch_are_read_by_the_sdk():
    events = [
        Event.create("a.b", b"\x01", source="/s"),
        Event.create("Upper.Case", "t", source="/s", datacontenttype="text/csv"),
    ]
    headers, body = ce.to_structured(events[1])
    sdk = ce_http.from_http(ce_http.HTTPMessage(headers, body), JSONFormat())
    assert sdk.get_type() == "Upper.Case" and sdk.get_data() == "t"
    headers, body = ce.to_batch(events)
    assert headers["content-type"] == ce.BATCH_CONTENT_TYPE
    assert [e.data for e in ce.from_batch(body)] == [b"\x01", "t"]


def test_from_structured_reads_the_sdk_output():
    sent = CloudEvent({"type": "x.y", "source": "/s", "vip": True}, {"a": 1})
    event = ce.from_structured(JSONFormat().write(sent))
    assert event.id == sent.get_id() and event.time == sent.get_time()
    assert event.extensions == {"vip": True} and event.data == {"a": 1}


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("application/json", b'{"a": 1}', {"a": 1}),
        ("application/json", b"not json", "not json"),
        ("application/json", b"\xff", b"\xff"),
        (None, b"[1]", [1]),
        ("text/plain", "é".encode(), "é"),
        ("text/plain; charset=latin-1", b"\xe9", b"\xe9"),
        ("application/xml", b"<a/>", "<a/>"),
        ("application/octet-stream", b"abc", b"abc"),
        ("text/plain", b"", None),
    ],
)
def test_binary_mode_data_by_content_type(content_type, body, data):
    headers = dict(HEADERS)
    if content_type:
        headers["Content-Type"] = content_type
    assert ce.from_binary(headers, body).data == data


def test_binary_mode_refuses_a_repeated_attribute():
    class Repeated(dict):
        def multi_items(self):
            return [*self.items(), ("ce-id", "2")]

    with pytest.raises(InvalidEvent, match="twice"):
        ce.from_binary(Repeated(HEADERS), b"")


def test_a_batch_names_its_invalid_member():
    with pytest.raises(InvalidEvent) as info:
        ce.from_batch(b'[{"specversion": "1.0", "id": "1", "source": "/s"}]')
    assert info.value.field == "events[0].type"
    with pytest.raises(InvalidEvent, match="JSON array"):
        ce.from_batch(b"{}")
    assert ce.from_batch(b"[]") == []


def test_producers_cannot_set_the_log_position():
    with pytest.raises(InvalidEvent) as info:
        ce.from_object(
            {
                "specversion": "1.0",
                "id": "1",
                "source": "/s",
                "type": "t",
                "sequence": 3,
            }
        )
    assert info.value.field == "sequence"
