"""Rows of the SQLite log read back as events, damaged rows included.

SQLite keeps no checksums of values, so a row can be damaged and still pass the
integrity check: data or extensions that are no longer JSON, a time that no longer
parses, text that is no longer UTF-8. :func:`row_event` raises
:class:`~eventhub.errors.UndecodableEvent` for such a row, naming what is wrong;
:func:`select` reads text that is not UTF-8 instead of failing the whole query, and
:func:`placeholder` keeps what could be read, for a dead letter.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import InvalidEvent, UndecodableEvent
from ..events import Event, decode_data, parse_time
from .base import HistoryQuery, TypeMatch, undecodable_placeholder

EVENT_COLUMNS = (
    "sequence, id, source, type, subject, time, datacontenttype, data,"
    " correlationid, causationid, extensions, dataschema, datakind"
)
EVENT_COLUMN_NAMES = tuple(name.strip() for name in EVENT_COLUMNS.split(","))


def given(*clauses: tuple[str, Any]) -> tuple[list[str], list[Any]]:
    """The SQL conditions among ``(condition, value)`` whose value is not None,
    and their values, in order (a query's optional filters)."""
    kept = [(condition, value) for condition, value in clauses if value is not None]
    return [c for c, _ in kept], [v for _, v in kept]


SELECT_EVENTS = f"SELECT {EVENT_COLUMNS} FROM events"
# Events read back are not held to a publisher's size limit.
ANY_SIZE = sys.maxsize


def row_event(row: Sequence[Any]) -> Event:
    """The event of a row of ``SELECT_EVENTS``.

    Raises:
        UndecodableEvent: for a damaged row.
    """
    (
        sequence,
        id_,
        source,
        type_,
        subject,
        time_text,
        content_type,
        data,
        correlationid,
        causationid,
        extensions,
        dataschema,
        kind,
    ) = row
    if type(type_) is not str or type(source) is not str or type(id_) is not str:
        raise UndecodableEvent(sequence, "its type, source or id is not text")
    try:
        moment = datetime.fromisoformat(time_text)
    except (TypeError, ValueError) as exc:
        raise UndecodableEvent(
            sequence, f"its time {_excerpt(time_text)} is not a timestamp"
        ) from exc
    if moment.tzinfo is None:
        raise UndecodableEvent(
            sequence, f"its time {_excerpt(time_text)} has no time zone"
        )
    try:
        value = decode_data(data, content_type, kind)
    except (TypeError, ValueError) as exc:
        what = "UTF-8 text" if kind == "text" else "JSON"
        raise UndecodableEvent(
            sequence, f"its data is not valid {what} ({_excerpt(exc, 200)})"
        ) from exc
    attributes: Any = {}
    if extensions:
        try:
            attributes = orjson.loads(extensions)
        except (TypeError, ValueError) as exc:
            raise UndecodableEvent(
                sequence, f"its extensions are not valid JSON ({_excerpt(exc, 200)})"
            ) from exc
        if type(attributes) is not dict:
            raise UndecodableEvent(sequence, "its extensions are not a JSON object")
    return Event(
        type=type_,
        source=source,
        id=id_,
        time=moment,
        data=value,
        subject=subject,
        datacontenttype=content_type,
        dataschema=dataschema,
        sequence=sequence,
        correlationid=correlationid,
        causationid=causationid,
        extensions=attributes,
        _payload=data,
    )


def decode_row(row: Sequence[Any], lenient: bool) -> Event:
    """The event of a row read by :func:`select` (``lenient`` as it says)."""
    return _checked_row_event(row) if lenient else row_event(row)


def row_decoder(lenient: bool) -> Callable[[Sequence[Any]], Event]:
    """:func:`decode_row` for the rows of one :func:`select`."""
    return _checked_row_event if lenient else row_event


def _checked_row_event(row: Sequence[Any]) -> Event:
    """:func:`row_event` of a leniently read row, after looking for text that is
    not UTF-8."""
    bad = [
        name
        for name, value in zip(EVENT_COLUMN_NAMES, row, strict=True)
        if type(value) is _NotUTF8
    ]
    if bad:
        raise UndecodableEvent(
            row[0],
            f"its {', '.join(bad)} {'is' if len(bad) == 1 else 'are'}"
            " not valid UTF-8 text",
        )
    return row_event(row)


def placeholder(row: Sequence[Any], problem: UndecodableEvent) -> Event:
    """The placeholder of an undecodable row (what could be read of it)."""
    try:
        moment: datetime | None = datetime.fromisoformat(row[5])
    except (TypeError, ValueError):
        moment = None
    return undecodable_placeholder(
        row[0],
        problem.problem,
        type=row[3],
        source=row[2],
        id=row[1],
        subject=row[4],
        time=moment,
        raw=row[7],
    )


def collect(
    rows: Iterable[Sequence[Any]],
    match: TypeMatch | None,
    query: HistoryQuery,
    lenient: bool,
) -> tuple[list[Event], list[UndecodableEvent]]:
    """The events of history rows up to the query's limit, and the undecodable ones
    left out (raised at once when the query has no ``on_undecodable``)."""
    found: list[Event] = []
    skipped: list[UndecodableEvent] = []
    limit = query.limit
    decode = row_decoder(lenient)
    for row in rows:
        if match is not None and type(row[3]) is str and not match(row[3]):
            continue
        try:
            found.append(decode(row))
        except UndecodableEvent as exc:
            if query.on_undecodable is None:
                raise
            skipped.append(exc)
            continue
        if limit is not None and len(found) >= limit:
            break
    return found, skipped


def letter_event(sequence: int, copy: Any) -> Event:
    """The event kept in a dead letter, or a placeholder if that copy is damaged."""
    try:
        return Event.from_json(copy, max_data_bytes=ANY_SIZE)
    except Exception as exc:
        return undecodable_placeholder(
            sequence,
            f"the dead letter's copy of the event is damaged ({_excerpt(exc, 200)})",
            raw=copy,
        )


def stored_time(text: Any) -> datetime:
    try:
        return parse_time(text)
    except InvalidEvent:
        return datetime.fromtimestamp(0, UTC)


def _excerpt(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of a stored value or an error message."""
    if isinstance(value, BaseException):
        return str(value)[:limit]
    if isinstance(value, str):
        return repr(value[:limit])
    return f"of type {type(value).__name__}"


class _NotUTF8(str):
    """A TEXT value that is not valid UTF-8, its bad bytes shown as escapes."""


def _lenient_text_factory(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _NotUTF8(raw.decode("utf-8", "backslashreplace"))


@contextmanager
def lenient_text(conn: sqlite3.Connection) -> Iterator[None]:
    """Read TEXT that is not UTF-8 as :class:`_NotUTF8` (instead of failing the
    query) on this thread's connection, for the time of a query."""
    conn.text_factory = _lenient_text_factory
    try:
        yield
    finally:
        conn.text_factory = str


def is_not_utf8(exc: sqlite3.OperationalError) -> bool:
    return str(exc).startswith("Could not decode to UTF-8")


def select(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
) -> tuple[list[Any], bool]:
    """All rows of a query, and whether they were read leniently: when some TEXT
    value is not UTF-8 (a damaged row), the query runs again with such values
    read as :class:`_NotUTF8`."""
    try:
        return conn.execute(sql, params).fetchall(), False
    except sqlite3.OperationalError as exc:
        if not is_not_utf8(exc):
            raise
    with lenient_text(conn):
        return conn.execute(sql, params).fetchall(), True


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Queries in one read transaction (one snapshot of the log), unless the
    connection is in a transaction already."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")
