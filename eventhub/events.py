"""The event envelope: CloudEvents 1.0 attributes plus eventhub's log position.

An :class:`Event` is immutable. :meth:`Event.create` validates and stamps a new one
(UUIDv7 id, UTC time); :meth:`Event.from_dict` / :meth:`Event.from_json` read a
structured-mode CloudEvent, :meth:`Event.to_dict` / :meth:`Event.to_json` write one.
The HTTP wire formats (structured, batched and binary mode) are in
:mod:`eventhub.cloudevents`.

Data is one of three kinds (:func:`data_kind`), and round-trips as that kind: JSON (a
JSON value with a JSON ``datacontenttype``, or none), text (a ``str`` with any other
``datacontenttype``, stored as UTF-8) and binary (``bytes``, ``data_base64`` in JSON).

:meth:`Event.create` replaces the secrets registered with
:func:`eventhub.redact.register_secret` in the data (inside JSON strings; in the bytes
of text and binary data), the subject and string extensions, so that no event written
carries one: a failure event quoting a vendor's error, a workflow publishing a
response body. Without a registered secret this costs nothing measurable.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import threading
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import orjson

from .errors import EventTooLarge, InvalidEvent
from .redact import (
    has_secrets,
    redact_bytes,
    redact_json_bytes,
    redact_secrets,
    secret_in,
)

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
DEFAULT_MAX_DATA_BYTES = 1024 * 1024
DataKind: TypeAlias = Literal["json", "text", "binary"]

# CloudEvents 1.0.2: attribute names MUST be lower-case ASCII letters or digits; the
# spec says they SHOULD NOT exceed 20 characters, so longer ones are accepted.
_ATTRIBUTE_NAME_RE = re.compile(r"[a-z0-9]+")
_MAX_ATTRIBUTE_LENGTH = 2048
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
# The CloudEvents String type excludes control characters, surrogates and
# noncharacters.
_NOT_STRING_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(
        chr(plane + 0xFFFE) + chr(plane + 0xFFFF)
        for plane in range(0, 0x110000, 0x10000)
    )
    + "]"
)
# RFC 3339 section 5.6, strictly (datetime.fromisoformat also takes other ISO forms).
_RFC3339_RE = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# RFC 3986: an absolute URI starts with a scheme.
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# RFC 2046 / RFC 9110: type "/" subtype, then parameters.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE_RE = re.compile(rf"{_TOKEN}/{_TOKEN}[ \t]*(?:;.*)?", re.DOTALL)
# Media types carried as text (UTF-8) when they are not JSON.
_TEXT_SUBTYPES = frozenset({"xml", "yaml", "x-yaml", "javascript", "ecmascript"})
# Attributes with a place of their own in Event; anything else is an extension.
_NO_EXTENSIONS: Mapping[str, Any] = MappingProxyType({})
_CORE_ATTRIBUTES = frozenset(
    {
        "id",
        "source",
        "type",
        "specversion",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
        "sequence",
        "correlationid",
        "causationid",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """One event: CloudEvents 1.0 attributes plus ``sequence``, ``correlationid``
    and ``causationid``.

    ``sequence`` is the event's position in the log; it is ``None`` until the event
    has been appended. ``(source, id)`` identifies an event: publishing the same pair
    twice stores and delivers it once.
    """

    type: str
    source: str
    id: str
    time: datetime
    data: Any = None
    subject: str | None = None
    datacontenttype: str | None = JSON_CONTENT_TYPE
    dataschema: str | None = None
    specversion: str = SPECVERSION
    sequence: int | None = None
    correlationid: str | None = None
    causationid: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=lambda: _NO_EXTENSIONS)
    # The encoded payload, kept so that storing the event does not encode it twice.
    _payload: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        type: str,
        data: Any = None,
        *,
        source: str,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        datacontenttype: str | None = None,
        dataschema: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ) -> Event:
        """Validate and stamp a new event.

        Args:
            type: Any non-empty CloudEvents string, kept as given; by convention
                lower-case dotted, such as ``document.updated``.
            data: A JSON-serialisable value; ``bytes`` for binary data; a ``str``
                with a non-JSON ``datacontenttype`` (``text/plain``...) for text.
            source: Who produced the event (a URI-reference such as ``/crm``).
            subject: What the event is about; also the default partition key.
            id: Event id; a new UUIDv7 when omitted (an empty one is refused).
            time: When it happened; now (UTC) when omitted.
            datacontenttype: JSON by default; ``application/octet-stream`` for bytes.
            dataschema: An absolute URI of the schema ``data`` adheres to.
            correlationid: Id of the conversation this event belongs to.
            causationid: Id of the event that caused this one.
            extensions: Further CloudEvents extension attributes: names of
                lower-case letters and digits; values strings, booleans or 32-bit
                integers (``None`` means unset).
            max_data_bytes: Largest encoded payload accepted.

        Registered secrets in ``data``, ``subject`` and string extensions are
        replaced by ``[REDACTED]`` (:mod:`eventhub.redact`).

        Raises:
            InvalidEvent: naming the attribute that is wrong.
        """
        _check_type(type)
        _check_text("source", source, required=True)
        # The optional attributes are usually absent: check only those given.
        if subject is not None:
            _check_text("subject", subject)
        if id is not None:
            _check_text("id", id)
        if correlationid is not None:
            _check_text("correlationid", correlationid)
        if causationid is not None:
            _check_text("causationid", causationid)
        if datacontenttype is None:
            datacontenttype = (
                BINARY_CONTENT_TYPE
                if isinstance(data, bytes | bytearray)
                else JSON_CONTENT_TYPE
            )
        elif datacontenttype != JSON_CONTENT_TYPE:
            _check_media_type(datacontenttype)
        if dataschema is not None:
            _check_uri("dataschema", dataschema)
        payload = encode_data(data, max_data_bytes, datacontenttype)
        if has_secrets():
            payload, data, subject = _redacted(payload, data, datacontenttype, subject)
        return cls(
            type=type,
            source=source,
            id=uuid7() if id is None else id,
            time=_utc(time) if time is not None else datetime.now(UTC),
            data=bytes(data) if isinstance(data, bytearray) else data,
            subject=subject,
            datacontenttype=datacontenttype,
            dataschema=dataschema,
            correlationid=correlationid,
            causationid=causationid,
            extensions=_check_extensions(extensions) if extensions else _NO_EXTENSIONS,
            _payload=payload,
        )

    @property
    def payload(self) -> bytes | None:
        """The data as stored: JSON, UTF-8 text or the raw bytes (see
        :attr:`datakind`); ``None`` without data."""
        if self._payload is None and self.data is not None:
            payload = encode_data(self.data, None, self.datacontenttype)
            return _redacted(payload, self.data, self.datacontenttype, None)[0]
        return self._payload

    @property
    def datakind(self) -> DataKind | None:
        """``"json"``, ``"text"`` or ``"binary"`` (:func:`data_kind`); ``None``
        without data."""
        return data_kind(self.data, self.datacontenttype)

    def with_sequence(self, sequence: int) -> Event:
        """A copy of this event carrying its log position."""
        # A slot-by-slot copy: dataclasses.replace re-runs __init__, twice as slow,
        # and this runs for every appended event.
        clone = object.__new__(Event)
        for name in _EVENT_SLOTS:
            _set_slot(clone, name, getattr(self, name))
        _set_slot(clone, "sequence", sequence)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """The event as a structured-mode CloudEvents object (a plain dict)."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        out["time"] = format_time(self.time)
        if self.datacontenttype is not None:
            out["datacontenttype"] = self.datacontenttype
        if self.dataschema is not None:
            out["dataschema"] = self.dataschema
        if self.sequence is not None:
            out["sequence"] = self.sequence
        if self.correlationid is not None:
            out["correlationid"] = self.correlationid
        if self.causationid is not None:
            out["causationid"] = self.causationid
        out.update(self.extensions)
        if isinstance(self.data, bytes):
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.data is not None:
            out["data"] = self.data
        return out

    def to_json(self) -> bytes:
        """The event as structured-mode CloudEvents JSON."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(
        cls, obj: Mapping[str, Any], *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES
    ) -> Event:
        """Read a structured-mode CloudEvents object (JSON format 1.0.2).

        ``null`` members count as absent. ``data_base64`` is binary data; ``data``
        is a JSON value, or text when ``datacontenttype`` is not JSON. A
        ``sequence`` member is taken as the log position (this reads events that
        eventhub wrote; :mod:`eventhub.cloudevents` reads producers' events).

        Raises:
            InvalidEvent: when a required attribute is missing or malformed.
        """
        if not isinstance(obj, Mapping):
            raise InvalidEvent("event", "a CloudEvent must be a JSON object")
        attributes = dict(obj)
        data = attributes.pop("data", None)
        encoded = attributes.pop("data_base64", None)
        if encoded is not None:
            if data is not None:
                raise InvalidEvent(
                    "data", "data and data_base64 are mutually exclusive"
                )
            data = decode_base64(encoded)
        sequence = attributes.pop("sequence", None)
        if sequence is not None and (type(sequence) is not int or sequence < 1):
            raise InvalidEvent("sequence", "must be a positive integer")
        event = cls.from_attributes(attributes, data, max_data_bytes=max_data_bytes)
        return event if sequence is None else event.with_sequence(sequence)

    @classmethod
    def from_attributes(
        cls,
        attributes: Mapping[str, Any],
        data: Any = None,
        *,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ) -> Event:
        """An event from its CloudEvents attributes, each under its own name
        (``specversion``, ``id``, ``source``, ``type``, optional ones, extensions),
        and its data. ``time`` is an RFC 3339 string; ``None`` values are unset.

        Raises:
            InvalidEvent: naming the attribute that is wrong.
        """
        attrs = {k: v for k, v in attributes.items() if v is not None}
        version = attrs.pop("specversion", None)
        if version != SPECVERSION:
            raise InvalidEvent(
                "specversion",
                "is required"
                if version is None
                else f"must be {SPECVERSION!r}, got {str(version)[:20]!r}",
            )
        for name in ("id", "source", "type"):
            value = attrs.get(name)
            if not isinstance(value, str) or not value:
                raise InvalidEvent(
                    name,
                    "is required" if value is None else "must be a non-empty string",
                )
        for name in ("data", "data_base64", "sequence"):
            if name in attrs:
                raise InvalidEvent(name, "is not an attribute")
        raw_time = attrs.pop("time", None)
        core = {k: attrs.pop(k) for k in _CREATE_ATTRIBUTES if k in attrs}
        return cls.create(
            core.pop("type"),
            data,
            time=parse_time(raw_time) if raw_time is not None else None,
            extensions=attrs,
            max_data_bytes=max_data_bytes,
            **core,
        )

    @classmethod
    def from_json(
        cls, raw: bytes | str, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES
    ) -> Event:
        """Read structured-mode CloudEvents JSON.

        Raises:
            InvalidEvent: for malformed JSON or a malformed event.
        """
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("event", f"not valid JSON ({exc})") from exc
        return cls.from_dict(obj, max_data_bytes=max_data_bytes)


_EVENT_SLOTS = tuple(f.name for f in fields(Event))
_set_slot = object.__setattr__
# The attributes that Event.create takes as keyword arguments of their own.
_CREATE_ATTRIBUTES = (
    "type",
    "source",
    "id",
    "subject",
    "datacontenttype",
    "dataschema",
    "correlationid",
    "causationid",
)


def check_event(event: Event) -> None:
    """Check an event's attributes as :meth:`Event.create` checks its arguments
    (an event made with the dataclass constructor skipped those checks).

    Raises:
        InvalidEvent: naming the attribute that is wrong.
    """
    Event.create(
        event.type,
        event.data,
        source=event.source,
        subject=event.subject,
        id=event.id,
        time=event.time,
        datacontenttype=event.datacontenttype,
        dataschema=event.dataschema,
        correlationid=event.correlationid,
        causationid=event.causationid,
        extensions=event.extensions,
        max_data_bytes=sys.maxsize,
    )


def is_valid_text(value: Any) -> bool:
    """Whether a value is a non-empty CloudEvents string that :meth:`Event.create`
    accepts as an attribute."""
    try:
        _check_text("value", value, required=True)
    except InvalidEvent:
        return False
    return True


def data_kind(data: Any, datacontenttype: str | None) -> DataKind | None:
    """How data is carried: ``"binary"`` for bytes; ``"text"`` for a ``str`` whose
    ``datacontenttype`` is not JSON; ``"json"`` for anything else (a missing content
    type means JSON); ``None`` without data."""
    if data is None:
        return None
    if isinstance(data, bytes | bytearray):
        return "binary"
    if isinstance(data, str) and not is_json_type(datacontenttype):
        return "text"
    return "json"


def encode_data(
    data: Any, limit: int | None, datacontenttype: str | None = None
) -> bytes | None:
    """Encode an event payload by its :func:`data_kind` (JSON, UTF-8 text, bytes as
    they are) and enforce the size limit.

    Raises:
        InvalidEvent: for data that is not JSON-serialisable.
        EventTooLarge: for data over ``limit`` bytes (an :class:`InvalidEvent`).
    """
    if data is None:
        return None
    if isinstance(data, bytes | bytearray):
        payload = bytes(data)
    elif isinstance(data, str) and not is_json_type(datacontenttype):
        try:
            payload = data.encode()
        except UnicodeEncodeError as exc:
            raise InvalidEvent("data", "is not valid Unicode text") from exc
    else:
        try:
            payload = orjson.dumps(data)
        except TypeError as exc:
            raise InvalidEvent("data", f"is not JSON-serialisable ({exc})") from exc
    if limit is not None and len(payload) > limit:
        raise EventTooLarge(len(payload), limit)
    return payload


def _redacted(
    payload: bytes | None, data: Any, datacontenttype: str | None, subject: str | None
) -> tuple[bytes | None, Any, str | None]:
    """Payload, data and subject with the registered secrets replaced
    (:mod:`eventhub.redact`): in JSON strings, or in the bytes of text and binary
    data. When none occurs, the same objects, after one search of the payload per
    secret."""
    if payload is not None and secret_in(payload):
        if isinstance(data, bytes | bytearray):
            payload = data = redact_bytes(payload)
        elif isinstance(data, str) and not is_json_type(datacontenttype):
            payload = redact_bytes(payload)
            data = payload.decode()
        else:
            payload = redact_json_bytes(payload)
            data = orjson.loads(payload)
    if subject is not None:
        subject = redact_secrets(subject)
    return payload, data, subject


def decode_data(
    payload: bytes | None, datacontenttype: str | None, kind: str | None = None
) -> Any:
    """Inverse of :func:`encode_data` for a stored payload of a known ``kind``.

    Without a kind (rows stored before kinds were recorded), JSON content types
    are parsed and anything else is bytes, as those rows were always read.
    """
    if payload is None:
        return None
    if kind == "json":
        return orjson.loads(payload)
    if kind == "text":
        return bytes(payload).decode()
    if kind == "binary" or not _was_json_type(datacontenttype):
        return bytes(payload)
    return orjson.loads(payload)


def decode_base64(text: Any) -> bytes:
    """``data_base64`` (RFC 4648) as bytes.

    Raises:
        InvalidEvent: naming ``data_base64``.
    """
    if not isinstance(text, str):
        raise InvalidEvent("data_base64", "must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise InvalidEvent("data_base64", "is not valid base64") from exc


def is_json_type(datacontenttype: str | None) -> bool:
    """Whether a content type declares JSON: ``*/json`` or ``*/*+json`` without
    parameters (CloudEvents JSON format 3.1.1; a missing one means JSON)."""
    if datacontenttype is None:
        return True
    media = datacontenttype.split(";", 1)[0].strip().lower()
    return media.endswith(("/json", "+json"))


def is_text_type(datacontenttype: str | None) -> bool:
    """Whether a content type that is not JSON carries text: ``text/*``, XML,
    YAML, JavaScript."""
    if datacontenttype is None:
        return False
    media = datacontenttype.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "text" or subtype in _TEXT_SUBTYPES or subtype.endswith("+xml")


def _was_json_type(datacontenttype: str | None) -> bool:
    """:func:`is_json_type` as it was when rows carried no data kind."""
    if datacontenttype is None:
        return True
    media = datacontenttype.split(";", 1)[0].strip().lower()
    return media == JSON_CONTENT_TYPE or media.endswith("+json") or media == "text/json"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: fixed width, so it sorts as text."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # "2026-01-01T00:00:00.000000+00:00" -> "...00.000000Z"
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: Any) -> datetime:
    """Parse an RFC 3339 timestamp (strictly: ``T``, seconds and an offset are
    required) into a UTC datetime. Digits past microseconds are dropped.

    Raises:
        InvalidEvent: naming ``time``.
    """
    if not isinstance(text, str):
        raise InvalidEvent("time", "must be an RFC 3339 string")
    if not _RFC3339_RE.fullmatch(text):
        raise InvalidEvent(
            "time",
            f"{text[:40]!r} is not an RFC 3339 timestamp "
            "such as '2026-01-01T12:00:00Z' or '2026-01-01T13:00:00.5+01:00'",
        )
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise InvalidEvent("time", f"{text!r} is not a valid date and time") from exc
    return moment.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise InvalidEvent("time", "must be a datetime")
    if moment.tzinfo is None:
        raise InvalidEvent("time", "must be timezone-aware (naive times are ambiguous)")
    return moment.astimezone(UTC)


def _check_type(value: Any) -> None:
    if isinstance(value, str) and value in _valid_types:
        return
    _check_text("type", value, required=True)
    if len(_valid_types) >= 4096:
        _valid_types.clear()
    _valid_types.add(value)


# Types already validated: an application publishes few distinct types, many times.
_valid_types: set[str] = set()


def _check_text(name: str, value: Any, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise InvalidEvent(name, "is required")
        return
    if not isinstance(value, str):
        raise InvalidEvent(name, f"must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidEvent(name, "is required" if required else "must not be empty")
    if len(value) > _MAX_ATTRIBUTE_LENGTH:
        raise InvalidEvent(name, f"is over {_MAX_ATTRIBUTE_LENGTH} characters")
    # Printable ASCII, the usual case, is the quick check.
    if not (value.isascii() and value.isprintable()) and _NOT_STRING_RE.search(value):
        raise InvalidEvent(
            name,
            "contains a control character, a surrogate or a noncharacter "
            "(CloudEvents strings exclude them)",
        )


def _check_uri(name: str, value: Any) -> None:
    _check_text(name, value)
    if not _URI_SCHEME_RE.match(value) or " " in value:
        raise InvalidEvent(
            name, f"{value[:80]!r} is not an absolute URI such as 'https://...'"
        )


def _check_media_type(value: Any) -> None:
    _check_text("datacontenttype", value)
    if not _MEDIA_TYPE_RE.fullmatch(value):
        raise InvalidEvent(
            "datacontenttype",
            f"{value[:80]!r} is not a media type such as 'text/plain'",
        )


def _check_extensions(extensions: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Names of lower-case letters and digits; values of the CloudEvents type
    system as JSON carries them: Boolean, Integer (signed 32-bit), String (and
    String-encoded Binary, URI, URI-reference, Timestamp). ``None`` is unset."""
    checked: dict[str, Any] = {}
    if not extensions:
        return checked
    for name, value in extensions.items():
        if not isinstance(name, str) or not _ATTRIBUTE_NAME_RE.fullmatch(name):
            raise InvalidEvent(
                str(name)[:80],
                "attribute names are lower-case letters a-z and digits 0-9",
            )
        if name in _CORE_ATTRIBUTES:
            raise InvalidEvent(name, "is a reserved attribute, not an extension")
        if value is None:
            continue
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not _INT32_MIN <= value <= _INT32_MAX:
                raise InvalidEvent(
                    name, "integers must fit in 32 bits (-2147483648 to 2147483647)"
                )
        elif isinstance(value, float):
            raise InvalidEvent(name, "must be an integer without a fraction")
        elif isinstance(value, str):
            _check_text(name, value)
            value = redact_secrets(value)
        else:
            raise InvalidEvent(
                name, "extension values are strings, integers or booleans"
            )
        checked[name] = value
    return checked


_uuid_lock = threading.Lock()
_uuid_last_ms = 0
_uuid_counter = 0
_RANDOM_POOL_SIZE = 8 * 1024
_random_pool = b""
_random_offset = _RANDOM_POOL_SIZE


def uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562), monotonic within this process.

    48 bits of Unix milliseconds, a 12-bit counter for ids within one millisecond, and
    62 random bits from the operating system's CSPRNG (read in blocks, not per id).
    """
    global _uuid_last_ms, _uuid_counter, _random_pool, _random_offset
    ms = _time.time_ns() // 1_000_000
    with _uuid_lock:
        if _random_offset + 10 > _RANDOM_POOL_SIZE:
            _random_pool = os.urandom(_RANDOM_POOL_SIZE)
            _random_offset = 0
        random = int.from_bytes(_random_pool[_random_offset : _random_offset + 10])
        _random_offset += 10
        if ms > _uuid_last_ms:
            _uuid_last_ms = ms
            _uuid_counter = (random >> 69) & 0x7FF
        else:
            # Same (or an earlier, if the clock stepped back) millisecond: count up in
            # the 12-bit rand_a field, borrowing the next millisecond when it is full.
            _uuid_counter += 1
            if _uuid_counter > 0xFFF:
                _uuid_last_ms += 1
                _uuid_counter = 0
            ms = _uuid_last_ms
        counter = _uuid_counter
    rand_b = random & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
