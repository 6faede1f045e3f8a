"""The event envelope: CloudEvents 1.0 attributes plus eventhub's log position.

An :class:`Event` is immutable. :meth:`Event.create` validates and stamps a new one
(UUIDv7 id, UTC time); :meth:`Event.from_dict` / :meth:`Event.from_json` read a
structured-mode CloudEvent, :meth:`Event.to_dict` / :meth:`Event.to_json` write one.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from .errors import InvalidEvent

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
DEFAULT_MAX_DATA_BYTES = 1024 * 1024

_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*")
_EXTENSION_NAME_RE = re.compile(r"[a-z0-9]{1,20}")
_MAX_TYPE_LENGTH = 255
_MAX_ATTRIBUTE_LENGTH = 2048
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
        correlationid: str | None = None,
        causationid: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ) -> Event:
        """Validate and stamp a new event.

        Args:
            type: Lowercase dotted name such as ``document.updated``.
            data: A JSON-serialisable value, or ``bytes`` for binary payloads.
            source: Who produced the event (a URI-reference such as ``/crm``).
            subject: What the event is about; also the default partition key.
            id: Event id; a new UUIDv7 when omitted.
            time: When it happened; now (UTC) when omitted.
            datacontenttype: JSON by default; ``application/octet-stream`` for bytes.
            correlationid: Id of the conversation this event belongs to.
            causationid: Id of the event that caused this one.
            extensions: Further CloudEvents extension attributes.
            max_data_bytes: Largest encoded payload accepted.

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
        payload = encode_data(data, max_data_bytes)
        if datacontenttype is None:
            datacontenttype = (
                "application/octet-stream"
                if isinstance(data, bytes | bytearray)
                else JSON_CONTENT_TYPE
            )
        return cls(
            type=type,
            source=source,
            id=id or uuid7(),
            time=_utc(time) if time is not None else datetime.now(UTC),
            data=bytes(data) if isinstance(data, bytearray) else data,
            subject=subject,
            datacontenttype=datacontenttype,
            correlationid=correlationid,
            causationid=causationid,
            extensions=_check_extensions(extensions) if extensions else _NO_EXTENSIONS,
            _payload=payload,
        )

    @property
    def payload(self) -> bytes | None:
        """The data as stored: JSON bytes, the raw bytes, or ``None`` without data."""
        if self._payload is None and self.data is not None:
            return encode_data(self.data, None)
        return self._payload

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
        """Read a structured-mode CloudEvents object.

        Raises:
            InvalidEvent: when a required attribute is missing or malformed.
        """
        if not isinstance(obj, Mapping):
            raise InvalidEvent("event", "a CloudEvent must be a JSON object")
        version = obj.get("specversion")
        if version != SPECVERSION:
            raise InvalidEvent(
                "specversion", f"must be {SPECVERSION!r}, got {version!r}"
            )
        for name in ("id", "source", "type"):
            if not obj.get(name):
                raise InvalidEvent(name, "is required")
        if "data" in obj and "data_base64" in obj:
            raise InvalidEvent("data", "data and data_base64 are mutually exclusive")
        data = obj.get("data")
        if "data_base64" in obj:
            try:
                data = base64.b64decode(obj["data_base64"], validate=True)
            except (ValueError, TypeError) as exc:
                raise InvalidEvent("data_base64", "is not valid base64") from exc
        raw_time = obj.get("time")
        sequence = obj.get("sequence")
        if sequence is not None and (type(sequence) is not int or sequence < 1):
            raise InvalidEvent("sequence", "must be a positive integer")
        extensions = {k: v for k, v in obj.items() if k not in _CORE_ATTRIBUTES}
        event = cls.create(
            obj["type"],
            data,
            source=obj["source"],
            subject=obj.get("subject"),
            id=obj["id"],
            time=parse_time(raw_time) if raw_time is not None else None,
            datacontenttype=obj.get("datacontenttype"),
            correlationid=obj.get("correlationid"),
            causationid=obj.get("causationid"),
            extensions=extensions,
            max_data_bytes=max_data_bytes,
        )
        return event if sequence is None else event.with_sequence(sequence)

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


def encode_data(data: Any, limit: int | None) -> bytes | None:
    """Encode an event payload (JSON, or bytes as they are) and enforce the size limit.

    Raises:
        InvalidEvent: for data that is not JSON-serialisable or is over ``limit`` bytes.
    """
    if data is None:
        return None
    if isinstance(data, bytes | bytearray):
        payload = bytes(data)
    else:
        try:
            payload = orjson.dumps(data)
        except TypeError as exc:
            raise InvalidEvent("data", f"is not JSON-serialisable ({exc})") from exc
    if limit is not None and len(payload) > limit:
        raise InvalidEvent(
            "data", f"is {len(payload)} bytes, over the limit of {limit} bytes"
        )
    return payload


def decode_data(payload: bytes | None, datacontenttype: str | None) -> Any:
    """Inverse of :func:`encode_data` for a stored payload."""
    if payload is None:
        return None
    if is_json_type(datacontenttype):
        return orjson.loads(payload)
    return bytes(payload)


def is_json_type(datacontenttype: str | None) -> bool:
    """Whether a content type carries JSON (CloudEvents: a missing one means JSON)."""
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
    """Parse an RFC 3339 timestamp; a timestamp without an offset is rejected.

    Raises:
        InvalidEvent: naming ``time``.
    """
    if not isinstance(text, str):
        raise InvalidEvent("time", "must be an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(
            text.replace("Z", "+00:00").replace("z", "+00:00")
        )
    except ValueError as exc:
        raise InvalidEvent("time", f"{text!r} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise InvalidEvent("time", f"{text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise InvalidEvent("time", "must be a datetime")
    if moment.tzinfo is None:
        raise InvalidEvent("time", "must be timezone-aware (naive times are ambiguous)")
    return moment.astimezone(UTC)


def _check_type(value: Any) -> None:
    if value in _valid_types:
        return
    if not isinstance(value, str) or not value:
        raise InvalidEvent("type", "is required")
    if len(value) > _MAX_TYPE_LENGTH or not _TYPE_RE.fullmatch(value):
        raise InvalidEvent(
            "type",
            f"{value[:80]!r} is not lowercase dotted segments "
            "such as 'document.updated'",
        )
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
    if not value and required:
        raise InvalidEvent(name, "is required")
    if len(value) > _MAX_ATTRIBUTE_LENGTH:
        raise InvalidEvent(name, f"is over {_MAX_ATTRIBUTE_LENGTH} characters")


def _check_extensions(extensions: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not extensions:
        return {}
    for name, value in extensions.items():
        if not isinstance(name, str) or not _EXTENSION_NAME_RE.fullmatch(name):
            raise InvalidEvent(
                str(name), "extension names are 1-20 lowercase letters or digits"
            )
        if name in _CORE_ATTRIBUTES:
            raise InvalidEvent(name, "is a reserved attribute, not an extension")
        if not isinstance(value, str | int | bool) or value is None:
            raise InvalidEvent(
                name, "extension values are strings, integers or booleans"
            )
    return dict(extensions)


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
