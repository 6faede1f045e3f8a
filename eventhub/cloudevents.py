"""CloudEvents on the wire: the HTTP protocol binding 1.0.2 and the JSON formats.

Three content modes, told apart by the message's headers (:func:`content_mode`):

* **structured**: ``Content-Type: application/cloudevents+json``, the body is one
  event in the JSON format;
* **batched**: ``Content-Type: application/cloudevents-batch+json``, the body is a
  JSON array of such events (``[]`` included);
* **binary**: the attributes are ``ce-*`` headers (names case-insensitive, values
  percent-encoded), ``Content-Type`` is the ``datacontenttype`` and the body is the
  data, whatever its bytes.

Readers (:func:`from_structured`, :func:`from_batch`, :func:`from_binary`) check
every attribute per the spec (:meth:`eventhub.events.Event.from_attributes`) and
raise :class:`~eventhub.errors.InvalidEvent` naming it; writers
(:func:`to_structured`, :func:`to_batch`, :func:`to_binary`) give ``(headers, body)``
for any transport that has headers and a body (HTTP, AMQP, Redis stream fields).
``sequence`` is eventhub's log position: producers cannot set it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias
from urllib.parse import quote, unquote

import orjson

from .errors import InvalidEvent
from .events import (
    DEFAULT_MAX_DATA_BYTES,
    SPECVERSION,
    Event,
    is_json_type,
    is_text_type,
)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
HEADER_PREFIX = "ce-"
ContentMode: TypeAlias = Literal["structured", "batch", "binary"]

# HTTP binding 3.1.3.2: printable ASCII stays as it is, except space, '"' and '%'.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')
_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


class UnsupportedContentType(InvalidEvent):
    """A message whose ``Content-Type`` names a format or media type that is not
    read here (e.g. ``application/cloudevents+xml``)."""

    http_status = 415

    def __init__(self, content_type: str, problem: str) -> None:
        self.content_type = content_type
        super().__init__("content-type", problem)


EVENT_SCHEMA: dict[str, Any] = {
    "title": "CloudEvent",
    "description": "A CloudEvents 1.0 event in the JSON format. Extension "
    "attributes are further members: names of lower-case letters and digits, "
    "values strings, booleans or 32-bit integers.",
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"type": "string", "const": SPECVERSION},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1, "format": "uri-reference"},
        "type": {"type": "string", "minLength": 1},
        "subject": {"type": "string", "minLength": 1},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string"},
        "dataschema": {"type": "string", "format": "uri"},
        "data": {"description": "JSON, or text for a non-JSON datacontenttype."},
        "data_base64": {"type": "string", "contentEncoding": "base64"},
        "sequence": {
            "type": "integer",
            "readOnly": True,
            "description": "The event's position in the log, set by eventhub.",
        },
        "correlationid": {"type": "string"},
        "causationid": {"type": "string"},
    },
    "additionalProperties": {"type": ["string", "integer", "boolean", "null"]},
    "examples": [
        {
            "specversion": SPECVERSION,
            "id": "order-7-paid",
            "source": "/shop",
            "type": "order.paid",
            "time": "2026-01-01T12:00:00Z",
            "datacontenttype": "application/json",
            "data": {"order": 7, "total": 12.5},
        }
    ],
}


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, lower-case, without parameters."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def content_mode(headers: Mapping[str, str]) -> ContentMode | None:
    """How a message carries CloudEvents: by its ``Content-Type`` (structured or
    batched), else by ``ce-*`` headers (binary); ``None`` when it carries none.

    Raises:
        UnsupportedContentType: for a CloudEvents format other than JSON.
    """
    content_type = _header(headers, "content-type")
    media = media_type(content_type)
    if media.startswith("application/cloudevents-batch"):
        if media != BATCH_CONTENT_TYPE:
            raise UnsupportedContentType(
                media, f"{media} is not read here; use {BATCH_CONTENT_TYPE}"
            )
        return "batch"
    if media.startswith("application/cloudevents"):
        if media != STRUCTURED_CONTENT_TYPE:
            raise UnsupportedContentType(
                media, f"{media} is not read here; use {STRUCTURED_CONTENT_TYPE}"
            )
        return "structured"
    if any(name.lower().startswith(HEADER_PREFIX) for name in headers):
        return "binary"
    return None


def from_structured(
    body: bytes | str, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES
) -> Event:
    """One structured-mode event (``application/cloudevents+json``).

    Raises:
        InvalidEvent: naming the attribute that is wrong.
    """
    return from_object(_load_json(body), max_data_bytes=max_data_bytes)


def from_batch(
    body: bytes | str, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES
) -> list[Event]:
    """The events of a batch (``application/cloudevents-batch+json``), in order.

    Raises:
        InvalidEvent: for the first invalid member, its field naming its index
            (``events[2].type``).
    """
    items = _load_json(body)
    if not isinstance(items, list):
        raise InvalidEvent("batch", "must be a JSON array of CloudEvents")
    events = []
    for index, item in enumerate(items):
        try:
            events.append(from_object(item, max_data_bytes=max_data_bytes))
        except InvalidEvent as exc:
            raise InvalidEvent(f"events[{index}].{exc.field}", exc.problem) from None
    return events


def from_object(obj: Any, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> Event:
    """A producer's event in the JSON format, already parsed.

    Raises:
        InvalidEvent: naming the attribute that is wrong.
    """
    if isinstance(obj, Mapping) and obj.get("sequence") is not None:
        raise _reserved_sequence()
    return Event.from_dict(obj, max_data_bytes=max_data_bytes)


def from_binary(
    headers: Mapping[str, str],
    body: bytes,
    *,
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
) -> Event:
    """A binary-mode event: attributes from ``ce-*`` headers, data from the body.

    The body is read by its ``Content-Type``, as the CloudEvents SDKs read it: JSON
    types, and no ``Content-Type``, are parsed (a body that does not parse is kept
    as a JSON string if it is UTF-8, else as bytes); text types (``text/*``, XML,
    YAML) are text if the body is UTF-8; anything else is bytes. An empty body is
    no data.

    Raises:
        InvalidEvent: naming the attribute that is wrong.
    """
    attributes: dict[str, Any] = {}
    content_type: str | None = None
    # Starlette's Headers.multi_items() lists a repeated header each time.
    pairs: Iterable[tuple[str, str]] = getattr(headers, "multi_items", headers.items)()
    for raw_name, value in pairs:
        name = raw_name.lower()
        if name == "content-type":
            content_type = value.strip() or None
            continue
        if not name.startswith(HEADER_PREFIX):
            continue
        attribute = name[len(HEADER_PREFIX) :]
        if attribute in attributes:
            raise InvalidEvent(attribute, f"the {raw_name} header is given twice")
        if attribute == "datacontenttype":
            raise InvalidEvent(attribute, "is the Content-Type header in binary mode")
        if attribute == "sequence":
            raise _reserved_sequence()
        try:
            attributes[attribute] = unquote(value.strip(), errors="strict")
        except UnicodeDecodeError:
            raise InvalidEvent(
                attribute, "percent-encodes bytes that are not UTF-8"
            ) from None
    attributes["datacontenttype"] = content_type
    return Event.from_attributes(
        attributes, _body_data(body, content_type), max_data_bytes=max_data_bytes
    )


def to_structured(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of a structured-mode message."""
    return {"content-type": STRUCTURED_CONTENT_TYPE}, event.to_json()


def to_batch(events: Iterable[Event]) -> tuple[dict[str, str], bytes]:
    """Headers and body of a batched-mode message."""
    return {"content-type": BATCH_CONTENT_TYPE}, orjson.dumps(
        [e.to_dict() for e in events]
    )


def to_binary(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of a binary-mode message: ``ce-*`` headers (values
    percent-encoded), ``content-type`` and the data as stored (JSON, UTF-8 text or
    the bytes)."""
    headers: dict[str, str] = {}
    for name, value in event.to_dict().items():
        if name in ("data", "data_base64"):
            continue
        if name == "datacontenttype":
            headers["content-type"] = value
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        headers[HEADER_PREFIX + name] = quote(text, safe=_HEADER_SAFE)
    return headers, event.payload or b""


def _body_data(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    if is_json_type(content_type):  # a missing Content-Type too, as the SDKs send
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return _text_or_bytes(body)
    if (
        content_type is not None
        and is_text_type(content_type)
        and _charset(content_type) in _UTF8_CHARSETS
    ):
        return _text_or_bytes(body)
    return bytes(body)


def _text_or_bytes(body: bytes) -> str | bytes:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(body)


def _charset(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return "utf-8"


def _header(headers: Mapping[str, str], wanted: str) -> str | None:
    value = headers.get(wanted)
    if value is not None:
        return value
    for name, value in headers.items():
        if name.lower() == wanted:
            return value
    return None


def _load_json(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("event", f"the body is not valid JSON ({exc})") from None


def _reserved_sequence() -> InvalidEvent:
    return InvalidEvent(
        "sequence", "is eventhub's log position, set when the event is stored"
    )
