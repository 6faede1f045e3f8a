"""History queries of the SQLite log, planned so that each reads about as many rows
as it returns.

Every plan reads the log in sequence order, newest first (oldest first after
``after``), and stops at the limit, through an index that holds the rows of one
filter in sequence order:

- a type or pattern: ``events_type (type, sequence)``, the pattern resolved into its
  stored types (:mod:`eventhub.eventlog._types`); SQLite walks each type's rows in
  order and stops each after the limit;
- a source: ``events_source_type (source, type, sequence)``, the source's stored types
  found by skipping through the index, so that a source is read as types are (with a
  type, the same index serves both);
- a subject: ``events_subject (subject, sequence)`` (events with a subject only);
- a time range: the blocks of the log whose times can meet it, each read as a
  sequence range with the other filters, and the outliers whose time is in it
  (:mod:`eventhub.eventlog._timeblocks`);
- a sequence range: the table itself.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import nullcontext
from typing import Any

from ..errors import UndecodableEvent
from ..events import Event, format_time
from ._rows import SELECT_EVENTS, collect, given, is_not_utf8, lenient_text, select
from ._timeblocks import (
    count_outliers,
    outlier_select,
    sequence_runs,
)
from ._types import MAX_TYPES, matching_types, type_condition
from .base import HistoryQuery

Found = tuple[list[Event], list[UndecodableEvent]]


def run_history(conn: sqlite3.Connection, query: HistoryQuery) -> Found:
    """The events of a history query, newest first (oldest first after ``after``),
    and the undecodable ones left out; in the caller's read transaction."""
    since = format_time(query.since) if query.since is not None else None
    until = format_time(query.until) if query.until is not None else None
    where, params = given(
        ("source = ?", query.source),
        ("subject = ?", query.subject),
        ("time >= ?", since),
        ("time < ?", until),
    )
    match = query.type
    if match is not None:
        names = matching_types(conn, match)
        if names is not None:
            if not names:
                return [], []
            where.append(f"type IN ({','.join('?' * len(names))})")
            params.extend(names)
            match = None
        else:
            condition = type_condition(match)
            if condition is not None:
                where.append(condition[0])
                params.extend(condition[1])
                if condition[2]:
                    match = None
    elif query.source is not None and query.subject is None:
        names = _source_types(conn, query.source)
        if names is not None:
            if not names:
                return [], []
            where.append(f"type IN ({','.join('?' * len(names))})")
            params.extend(names)
    ascending = query.after is not None
    if since is None and until is None:
        if query.after is not None:
            where.append("sequence > ?")
            params.append(query.after)
        if query.before is not None:
            where.append("sequence < ?")
            params.append(query.before)
        return _read(conn, where, params, match, query, query.limit, ascending)
    # The outliers of the range first (few), then the blocks, newest first, until
    # they alone give the limit: the answer is the first ``limit`` of both.
    odd, odd_skipped = _read_outliers(conn, where, params, match, query, since, until)
    found: list[Event] = []
    skipped: list[UndecodableEvent] = []
    runs = sequence_runs(
        conn, since, until, query.after, query.before, descending=not ascending
    )
    for first, last in runs:
        remaining = None if query.limit is None else query.limit - len(found)
        if remaining is not None and remaining <= 0:
            break
        more, left_out = _read(
            conn,
            [*where, "sequence BETWEEN ? AND ?"],
            [*params, first, last],
            match,
            query,
            remaining,
            ascending,
        )
        found.extend(more)
        skipped.extend(left_out)
    return _merge(found, odd, query.limit, ascending), _merge_skipped(
        skipped, odd_skipped
    )


def _read_outliers(
    conn: sqlite3.Connection,
    where: list[str],
    params: list[Any],
    match: Any,
    query: HistoryQuery,
    since: str | None,
    until: str | None,
) -> Found:
    """The events of the query among the outliers of its time range. Few outliers
    in the range are read whole (through their time index); among many, the newest
    (oldest after ``after``) are walked in sequence order, twice as many each time,
    until the limit is found among them or none are left."""
    ascending = query.after is not None
    limit = query.limit
    few = limit is None or count_outliers(conn, since, until, _FEW) < _FEW
    first = None if few or limit is None else 4 * limit
    while True:
        inner, values = outlier_select(
            since,
            until,
            after=query.after,
            before=query.before,
            first=first,
            ascending=ascending,
        )
        found, skipped = _read(
            conn,
            [*where, f"sequence IN ({inner})"],
            [*params, *values],
            match,
            query,
            query.limit,
            ascending,
        )
        if first is None or limit is None or len(found) >= limit:
            return found, skipped
        (walked,) = conn.execute(f"SELECT count(*) FROM ({inner})", values).fetchone()
        if walked < first:
            return found, skipped
        first *= 2


#: Outliers in a time range that are read whole rather than walked.
_FEW = 2000


def _merge(
    found: list[Event], odd: list[Event], limit: int | None, ascending: bool
) -> list[Event]:
    """Two lists of events in sequence order as one, without repeats, cut to
    ``limit``."""
    if not odd:
        return found[:limit] if limit is not None else found
    merged = {e.sequence: e for e in found}
    merged.update((e.sequence, e) for e in odd)
    ordered = sorted(merged.values(), key=lambda e: e.sequence or 0)
    if not ascending:
        ordered.reverse()
    return ordered[:limit] if limit is not None else ordered


def _merge_skipped(
    skipped: list[UndecodableEvent], odd: list[UndecodableEvent]
) -> list[UndecodableEvent]:
    seen = {p.sequence for p in skipped}
    return skipped + [p for p in odd if p.sequence not in seen]


def _read(
    conn: sqlite3.Connection,
    where: list[str],
    params: list[Any],
    match: Any,
    query: HistoryQuery,
    limit: int | None,
    ascending: bool,
) -> Found:
    """At most ``limit`` decoded events of the rows that meet ``where`` (and
    ``match``, a filter SQL could not express exactly), in sequence order."""
    sql = SELECT_EVENTS + (f" WHERE {' AND '.join(where)}" if where else "")
    sql += " ORDER BY sequence" if ascending else " ORDER BY sequence DESC"
    if limit != query.limit:
        query = dataclasses.replace(query, limit=limit)
    if match is None and limit is not None:
        # Only the rows returned are decoded; an undecodable one left out is
        # made up for by asking for as many more.
        sql_limit = limit
        while True:
            rows, lenient = select(conn, f"{sql} LIMIT {int(sql_limit)}", params)
            found, skipped = collect(rows, None, query, lenient)
            if len(found) >= limit or len(rows) < sql_limit:
                return found, skipped
            sql_limit = limit + len(skipped)
    for lenient in (False, True):
        with lenient_text(conn) if lenient else nullcontext():
            cursor = conn.execute(sql, params)
            try:
                return collect(cursor, match, query, lenient)
            except sqlite3.OperationalError as exc:
                if lenient or not is_not_utf8(exc):
                    raise
                # Some text is not UTF-8: read again, such text marked.
            finally:
                cursor.close()
    raise AssertionError("unreachable")


def _source_types(conn: sqlite3.Connection, source: str) -> list[str] | None:
    """The distinct types stored for a source, found by skipping through
    ``events_source_type``; None past ``MAX_TYPES`` of them, or when one is not
    text that reads back as stored (a damaged row: then the source is read whole)."""
    rows, lenient = select(
        conn,
        """
        WITH RECURSIVE t(type) AS (
            SELECT (SELECT MIN(type) FROM events WHERE source = :source)
            UNION ALL
            SELECT (SELECT MIN(type) FROM events WHERE source = :source
                AND type > t.type)
            FROM t WHERE t.type IS NOT NULL
            LIMIT :cap
        )
        SELECT type FROM t WHERE type IS NOT NULL
        """,
        {"source": source, "cap": MAX_TYPES + 2},
    )
    if lenient or len(rows) > MAX_TYPES or any(type(r[0]) is not str for r in rows):
        return None
    return [r[0] for r in rows]
