import re
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from eventhub import Event, InvalidEvent
from eventhub.events import decode_data, parse_time, uuid7

UUID7 = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


def test_create_stamps_uuid7_id_and_utc_time():
    event = Event.create("user.created", {"id": 1}, source="/crm")
    assert UUID7.fullmatch(event.id)
    assert event.time.tzinfo is UTC
    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"
    assert event.sequence is None


def test_uuid7_is_time_ordered_and_unique():
    ids = [uuid7() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "type_name",
    ["Microsoft.Storage.BlobCreated", "user..created", "user created", "üser", "a*b"],
)
def test_any_cloudevents_string_is_a_type_kept_as_given(type_name):
    assert Event.create(type_name, source="/crm").type == type_name


@pytest.mark.parametrize("type_name", ["", None, 7, "line\nbreak", "nul\x00", "\x85"])
def test_a_type_is_a_non_empty_string_without_control_characters(type_name):
    with pytest.raises(InvalidEvent) as info:
        Event.create(type_name, source="/crm")
    assert info.value.field == "type"


@pytest.mark.parametrize("source", [None, "", 42])
def test_source_is_required(source):
    with pytest.raises(InvalidEvent) as info:
        Event.create("user.created", source=source)
    assert info.value.field == "source"


def test_data_must_be_json_serialisable():
    with pytest.raises(InvalidEvent, match="data: is not JSON-serialisable") as info:
        Event.create("user.created", {"when": object()}, source="/crm")
    assert info.value.field == "data"


def test_data_over_the_size_limit_is_rejected():
    Event.create("blob.stored", "x" * 1000, source="/s", max_data_bytes=1002)
    with pytest.raises(InvalidEvent, match="over the limit of 1000 bytes"):
        Event.create("blob.stored", "x" * 1000, source="/s", max_data_bytes=1000)


def test_default_size_limit_is_one_mebibyte():
    with pytest.raises(InvalidEvent, match="1048576"):
        Event.create("blob.stored", "x" * (1024 * 1024), source="/s")


def test_naive_time_is_rejected_and_offsets_become_utc():
    with pytest.raises(InvalidEvent, match="timezone-aware"):
        Event.create("a.b", source="/s", time=datetime(2026, 1, 1))
    cet = timezone(timedelta(hours=1))
    event = Event.create("a.b", source="/s", time=datetime(2026, 1, 1, 12, tzinfo=cet))
    assert event.time == datetime(2026, 1, 1, 11, tzinfo=UTC)


def test_structured_json_round_trip_keeps_every_attribute():
    event = Event.create(
        "order.paid",
        {"total": 12.5, "items": [1, 2]},
        source="/shop",
        subject="order/7",
        correlationid="c-1",
        causationid="e-0",
        extensions={"tenant": "acme", "priority": 3},
    ).with_sequence(42)
    text = event.to_json()
    obj = orjson.loads(text)
    assert obj["specversion"] == "1.0" and obj["sequence"] == 42
    assert obj["tenant"] == "acme" and obj["time"].endswith("Z")
    assert Event.from_json(text) == event


def test_binary_data_travels_as_data_base64():
    event = Event.create("file.uploaded", b"\x00\x01binary", source="/s")
    obj = event.to_dict()
    assert "data" not in obj and obj["data_base64"] == "AAFiaW5hcnk="
    assert obj["datacontenttype"] == "application/octet-stream"
    assert Event.from_dict(obj).data == b"\x00\x01binary"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (
            {"specversion": "0.3", "id": "1", "source": "/s", "type": "a.b"},
            "specversion",
        ),
        ({"specversion": "1.0", "source": "/s", "type": "a.b"}, "id"),
        ({"specversion": "1.0", "id": "1", "type": "a.b"}, "source"),
        ({"specversion": "1.0", "id": "1", "source": "/s"}, "type"),
        (
            {
                "specversion": "1.0",
                "id": "1",
                "source": "/s",
                "type": "a.b",
                "time": "2026-01-01T00:00:00",
            },
            "time",
        ),
        (
            {
                "specversion": "1.0",
                "id": "1",
                "source": "/s",
                "type": "a.b",
                "data_base64": "%%%",
            },
            "data_base64",
        ),
        (
            {
                "specversion": "1.0",
                "id": "1",
                "source": "/s",
                "type": "a.b",
                "BadExt": "x",
            },
            "BadExt",
        ),
    ],
)
def test_from_dict_names_the_bad_attribute(obj, field):
    with pytest.raises(InvalidEvent) as info:
        Event.from_dict(obj)
    assert info.value.field == field


def test_from_json_rejects_malformed_json():
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        Event.from_json(b"{not json")


def test_empty_id_is_refused_not_replaced():
    with pytest.raises(InvalidEvent) as info:
        Event.create("a.b", source="/s", id="")
    assert info.value.field == "id"


@pytest.mark.parametrize(
    ("data", "content_type", "kind", "payload"),
    [
        ({"a": 1}, None, "json", b'{"a":1}'),
        ("hello", "application/json", "json", b'"hello"'),
        ("hello", "text/plain", "text", b"hello"),
        ("<a/>", "application/xml", "text", b"<a/>"),
        (b"\x00\xff", None, "binary", b"\x00\xff"),
        (b"hello", "text/plain", "binary", b"hello"),
        ({"a": 1}, "text/plain", "json", b'{"a":1}'),
    ],
)
def test_data_kinds_and_what_is_stored(data, content_type, kind, payload):
    event = Event.create("a.b", data, source="/s", datacontenttype=content_type)
    assert event.datakind == kind and event.payload == payload
    assert decode_data(event.payload, event.datacontenttype, kind) == data
    assert Event.from_json(event.to_json()).data == data


def test_text_data_travels_as_the_text_not_a_quoted_string():
    event = Event.create("a.b", "hello", source="/s", datacontenttype="text/plain")
    obj = event.to_dict()
    assert obj["data"] == "hello" and obj["datacontenttype"] == "text/plain"
    assert Event.from_dict(obj) == event


def test_payloads_stored_without_a_kind_read_back_as_they_always_did():
    assert decode_data(b'{"a":1}', "application/json") == {"a": 1}
    assert decode_data(b'"hello"', "text/plain") == b'"hello"'
    assert decode_data(b"\x00", "application/octet-stream") == b"\x00"


def test_dataschema_is_an_absolute_uri():
    event = Event.create("a.b", source="/s", dataschema="https://example.com/s.json")
    assert Event.from_dict(event.to_dict()).dataschema == "https://example.com/s.json"
    with pytest.raises(InvalidEvent) as info:
        Event.create("a.b", source="/s", dataschema="s.json")
    assert info.value.field == "dataschema"


@pytest.mark.parametrize(
    "extensions",
    [
        {"n": 2**31 - 1, "m": -(2**31)},
        {"flag": True, "text": "x"},
        {"averyveryverylongextensionname": "longer than 20 is a SHOULD"},
        {"unset": None},
    ],
)
def test_extension_values_of_the_cloudevents_type_system(extensions):
    event = Event.create("a.b", source="/s", extensions=extensions)
    expected = {k: v for k, v in extensions.items() if v is not None}
    assert event.extensions == expected
    assert Event.from_json(event.to_json()).extensions == expected


@pytest.mark.parametrize(
    ("extensions", "field"),
    [
        ({"n": 2**31}, "n"),
        ({"n": -(2**31) - 1}, "n"),
        ({"f": 1.0}, "f"),
        ({"l": [1]}, "l"),
        ({"Upper": "x"}, "Upper"),
        ({"dash-name": "x"}, "dash-name"),
        ({"dataschema": "x"}, "dataschema"),
    ],
)
def test_extensions_outside_the_type_system_are_refused(extensions, field):
    with pytest.raises(InvalidEvent) as info:
        Event.create("a.b", source="/s", extensions=extensions)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T12:00:00Z", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2026-01-01t12:00:00z", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2026-01-01T17:30:00+05:30", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2026-01-01T12:00:00.5-00:00", datetime(2026, 1, 1, 12, 0, 0, 500000, UTC)),
        ("2026-01-01T12:00:00.123456789Z", datetime(2026, 1, 1, 12, 0, 0, 123456, UTC)),
    ],
)
def test_rfc3339_times_are_read_as_the_same_instant(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01",
        "2026-01-01T12:00:00",
        "2026-01-01 12:00:00Z",
        "2026-01-01T12:00Z",
        "2026-01-01T12:00:00,5Z",
        "2026-W01-1T12:00:00Z",
        "2026-13-01T12:00:00Z",
        "2026-01-01T12:00:00+0100",
        "٢٠٢٦-01-01T12:00:00Z",
    ],
)
def test_what_is_not_rfc3339_is_refused(text):
    with pytest.raises(InvalidEvent) as info:
        parse_time(text)
    assert info.value.field == "time"


def test_null_members_count_as_absent():
    obj = {"specversion": "1.0", "id": "1", "source": "/s", "type": "a.b"}
    event = Event.from_dict({**obj, "subject": None, "tenant": None, "data": None})
    assert event.subject is None and event.extensions == {} and event.data is None
