"""Type patterns as SQL over the ``events_type`` index of the SQLite log.

A wildcard pattern is resolved into the stored types it matches, found by skipping
through the index (as many lookups as distinct types, whatever the number of events),
and those are looked up; past ``MAX_TYPES`` distinct types, a range on the pattern's
literal prefix and GLOB narrow the rows instead. SQLite compares text with its BINARY
collation and GLOB is case-sensitive, as patterns match.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

from ..patterns import TypePattern
from ._rows import select
from .base import TypeMatch

# The most distinct types a wildcard pattern is resolved into (else GLOB narrows).
MAX_TYPES = 1000


def matching_types(conn: sqlite3.Connection, match: TypeMatch) -> list[str] | None:
    """The stored types that a :class:`~eventhub.patterns.TypePattern` matches,
    so that SQL looks them up in the ``events_type`` index. A wildcard pattern is
    matched against the distinct types within the range of its literal prefix
    (``nomatch.*``: from ``'nomatch.'`` up to ``'nomatch/'``), found by skipping
    through the index: as many index lookups as distinct types, whatever the
    number of events. None when there are more than ``MAX_TYPES`` of them, or
    for a matcher that is not a TypePattern."""
    if not isinstance(match, TypePattern):
        return None
    if match.exact_types is not None:
        return list(match.exact_types)
    names: set[str] = set()
    for pattern in match.patterns:
        segments = pattern.split(".")
        if not _WILDCARDS.intersection(segments):
            names.add(pattern)
            continue
        low, high = _literal_range(segments)
        stored = _distinct_types(conn, low, high)
        if stored is None:
            return None
        names.update(t for t in stored if match.matches(t))
    return sorted(names)


def _distinct_types(
    conn: sqlite3.Connection, low: str, high: str | None
) -> list[str] | None:
    """The distinct stored types in ``[low, high)``, at most ``MAX_TYPES`` (None
    beyond). Types that are not valid UTF-8 are left out: no pattern can tell."""
    bound = "" if high is None else " AND type < :high"
    rows, _ = select(
        conn,
        f"""
        WITH RECURSIVE t(type) AS (
            SELECT (SELECT MIN(type) FROM events WHERE type >= :low{bound})
            UNION ALL
            SELECT (SELECT MIN(type) FROM events WHERE type > t.type{bound})
            FROM t WHERE t.type IS NOT NULL
            LIMIT :cap
        )
        SELECT type FROM t WHERE type IS NOT NULL
        """,
        {"low": low, "high": high, "cap": MAX_TYPES + 2},
    )
    if len(rows) > MAX_TYPES:
        return None
    return [r[0] for r in rows if type(r[0]) is str]


def _literal_range(segments: list[str]) -> tuple[str, str | None]:
    """The range of types that a wildcard pattern's literal prefix allows."""
    literal: list[str] = []
    for segment in segments:
        if segment in _WILDCARDS:
            break
        literal.append(segment)
    prefix = ".".join(literal)
    if literal and segments[len(literal)] == "*":
        prefix += "."  # '*' stands for one segment at least
    return prefix, _successor(prefix) if prefix else None


def type_condition(match: TypeMatch) -> tuple[str, list[Any], bool] | None:
    """A SQL condition on ``type`` for a :class:`~eventhub.patterns.TypePattern`
    whose stored types are too many to list (:func:`matching_types`), its
    parameters, and whether it is exact (else it selects a superset, which the
    pattern itself narrows). None when SQL cannot narrow it down.

    A wildcard pattern's literal prefix becomes a range on the ``events_type``
    index, and GLOB narrows the range: ``*`` is ``?*`` with the count of dots
    fixed, which makes patterns without ``**`` exact. SQLite compares with its
    BINARY collation and GLOB is case-sensitive, as patterns match."""
    if not isinstance(match, TypePattern):
        return None
    names: list[str] = []
    terms: list[str] = []
    params: list[Any] = []
    exact = True
    for pattern in match.patterns:
        segments = pattern.split(".")
        if not any(s in _WILDCARDS for s in segments):
            names.append(pattern)
            continue
        term = _wildcard_condition(segments)
        if term is None:
            return None  # matches (nearly) everything: nothing to narrow
        sql, values, term_exact = term
        terms.append(sql)
        params.extend(values)
        exact = exact and term_exact
    if names:
        terms.insert(0, f"type IN ({','.join('?' * len(names))})")
        params[:0] = names
    if len(terms) == 1:
        return terms[0], params, exact
    return "(" + " OR ".join(f"({t})" for t in terms) + ")", params, exact


_WILDCARDS = frozenset({"*", "**", "#"})
_DEEP = frozenset({"**", "#"})
_GLOB_SPECIAL = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})


def _wildcard_condition(segments: list[str]) -> tuple[str, list[Any], bool] | None:
    prefix, upper = _literal_range(segments)
    conditions: list[str] = []
    params: list[Any] = []
    if prefix:
        conditions.append("type >= ?")
        params.append(prefix)
        if upper is not None:
            conditions.append("type < ?")
            params.append(upper)
    # Over "." + type, as the pattern's regex: each segment is "." and its text,
    # '*' is one or more characters, '**' any characters.
    glob = "".join(
        "*" if s in _DEEP else "." + ("?*" if s == "*" else s.translate(_GLOB_SPECIAL))
        for s in segments
    )
    deep = any(s in _DEEP for s in segments)
    if deep:
        if not prefix and set(glob) <= {"*"}:
            return None
        conditions.append("('.' || type) GLOB ?")
        params.append(glob)
        return " AND ".join(conditions), params, False
    conditions.append("type GLOB ?")
    params.append(glob[1:])
    # With as many dots as the pattern, no '*' can span a dot: exact.
    conditions.append("length(type) - length(replace(type, '.', '')) = ?")
    params.append(len(segments) - 1)
    return " AND ".join(conditions), params, True


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``."""
    last = ord(prefix[-1]) + 1
    if last > sys.maxunicode:
        return _successor(prefix[:-1]) if len(prefix) > 1 else None
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000  # surrogates are not text: the next code point that is
    return prefix[:-1] + chr(last)
