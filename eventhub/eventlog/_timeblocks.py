"""A block range index over event times: where in the log a time range can be.

An event's ``time`` is set by whoever made the event (``publish(time=...)``, a
webhook, an import), so it does not grow with ``sequence``; mostly it does, though.
A B-tree index on ``time`` would cost every publish an index entry; instead the log
keeps, per block of ``BLOCK_SIZE`` sequences, the lowest and highest time stored in
it (the idea of PostgreSQL's BRIN indexes): one row per block, updated once per
written batch. A time range is then looked for in the blocks whose bounds meet it,
newest block first, and only their rows are read.

An event whose time is more than ``SLACK`` off the writer's clock (an import, a
replayed backlog, a wrong clock) would widen its block for every query; it is an
*outlier* instead, kept with its time in ``events_time_outliers`` (indexed by time)
and looked up there. So is a row whose time is changed in place (a trigger). The
answer is exact either way, as rows are still filtered by time: the blocks and the
outliers only say where to look. Deleting events leaves their block's bounds as they
were (wider than needed, still correct).

The bounds compare as the ``time`` column does (``TEXT`` affinity, SQLite's own
ordering of values). Rows written before these tables existed are counted in their
blocks' bounds, whatever their time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ..events import format_time
from ._rows import given

#: log2 of the number of sequences per block.
BLOCK_BITS = 12
BLOCK_SIZE = 1 << BLOCK_BITS

#: Seconds an event's time may be off the writer's clock and still count in its
#: block's bounds; an event further off is an outlier, kept in a table of its own.
SLACK = 3600.0

CREATE = (
    """
    CREATE TABLE IF NOT EXISTS events_time_blocks (
        block INTEGER PRIMARY KEY,
        low TEXT NOT NULL,
        high TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS events_time_outliers (
        sequence INTEGER PRIMARY KEY,
        time TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS events_time_outliers_time"
    " ON events_time_outliers (time)",
    """
    CREATE TRIGGER IF NOT EXISTS events_time_update
    AFTER UPDATE OF time ON events BEGIN
        INSERT OR REPLACE INTO events_time_outliers (sequence, time)
        VALUES (new.sequence, new.time);
    END
    """,
)

#: The bounds of every block of the stored events (for a migration, or a log whose
#: rows were written by other means).
REBUILD = f"""
INSERT INTO events_time_blocks (block, low, high)
SELECT sequence >> {BLOCK_BITS}, min(time), max(time) FROM events WHERE true
GROUP BY sequence >> {BLOCK_BITS}
ON CONFLICT (block) DO UPDATE SET
    low = min(low, excluded.low), high = max(high, excluded.high)
"""

_WIDEN = (
    "INSERT INTO events_time_blocks (block, low, high) VALUES (?, ?, ?)"
    " ON CONFLICT (block) DO UPDATE SET"
    " low = min(low, excluded.low), high = max(high, excluded.high)"
)


def note_times(
    conn: sqlite3.Connection, rows: Iterable[Sequence[Any]], now: float
) -> None:
    """Widen the blocks of rows just written (``(sequence, ..., time at [5])``),
    in the writer's transaction: one statement per block touched; a row whose
    time is more than ``SLACK`` off ``now`` (the writer's clock) is an outlier."""
    earliest = format_time(datetime.fromtimestamp(now - SLACK, UTC))
    latest = format_time(datetime.fromtimestamp(now + SLACK, UTC))
    bounds: dict[int, list[str]] = {}
    outliers: list[tuple[int, str]] = []
    for row in rows:
        moment = row[5]
        if not earliest <= moment <= latest:
            outliers.append((row[0], moment))
            continue
        block = row[0] >> BLOCK_BITS
        found = bounds.get(block)
        if found is None:
            bounds[block] = [moment, moment]
        elif moment < found[0]:
            found[0] = moment
        elif moment > found[1]:
            found[1] = moment
    conn.executemany(_WIDEN, [(b, low, high) for b, (low, high) in bounds.items()])
    if outliers:
        conn.executemany(
            "INSERT OR REPLACE INTO events_time_outliers (sequence, time)"
            " VALUES (?, ?)",
            outliers,
        )


def outlier_select(
    since: str | None,
    until: str | None,
    *,
    after: int | None = None,
    before: int | None = None,
    first: int | None = None,
    ascending: bool = False,
) -> tuple[str, list[Any]]:
    """The sequences of the outliers whose time is in the range (and whose
    sequence is in ``(after, before)``); with ``first``, only the first so many
    of them in sequence order (newest first unless ``ascending``), found by
    walking the outliers in that order."""
    where, params = given(
        ("time >= ?", since),
        ("time < ?", until),
        ("sequence > ?", after),
        ("sequence < ?", before),
    )
    sql = "SELECT sequence FROM events_time_outliers"
    if first is not None:
        sql += " NOT INDEXED"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if first is not None:
        order = "" if ascending else " DESC"
        sql += f" ORDER BY sequence{order} LIMIT {int(first)}"
    return sql, params


def count_outliers(
    conn: sqlite3.Connection, since: str | None, until: str | None, cap: int
) -> int:
    """How many outliers have a time in the range, counting up to ``cap``."""
    inner, params = outlier_select(since, until)
    row = conn.execute(
        f"SELECT count(*) FROM ({inner} LIMIT {int(cap)})", params
    ).fetchone()
    return int(row[0])


def sequence_runs(
    conn: sqlite3.Connection,
    since: str | None,
    until: str | None,
    after: int | None,
    before: int | None,
    descending: bool,
) -> Iterator[tuple[int, int]]:
    """Inclusive sequence ranges that hold every event whose time is in
    ``[since, until)`` (and whose sequence is in ``(after, before)``), consecutive
    blocks merged, newest first when ``descending``."""
    where, params = given(("high >= ?", since), ("low < ?", until))
    low = (after + 1) if after is not None else None
    high = (before - 1) if before is not None else None
    if low is not None:
        where.append("block >= ?")
        params.append(low >> BLOCK_BITS)
    if high is not None:
        if low is not None and high < low:
            return
        where.append("block <= ?")
        params.append(high >> BLOCK_BITS)
    sql = "SELECT block FROM events_time_blocks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY block" + (" DESC" if descending else "")
    run: tuple[int, int] | None = None
    # Read lazily: a query that stops at its limit reads the newest blocks only.
    for (block,) in conn.execute(sql, params):
        if run is not None and abs(block - run[1]) == 1:
            run = (run[0], block)
            continue
        if run is not None:
            yield from _clip(run, low, high)
        run = (block, block)
    if run is not None:
        yield from _clip(run, low, high)


def _clip(
    run: tuple[int, int], low: int | None, high: int | None
) -> Iterator[tuple[int, int]]:
    """The inclusive sequence range of a run of blocks, within ``[low, high]``."""
    start, end = sorted(run)
    start_seq = start << BLOCK_BITS
    end_seq = ((end + 1) << BLOCK_BITS) - 1
    if low is not None:
        start_seq = max(start_seq, low)
    if high is not None:
        end_seq = min(end_seq, high)
    if start_seq <= end_seq:
        yield start_seq, end_seq


def forget_below(conn: sqlite3.Connection, sequence: int) -> None:
    """Drop the blocks that lie wholly below ``sequence``, and the outliers below
    it (all their events are gone)."""
    conn.execute(
        "DELETE FROM events_time_blocks WHERE block < ?", (sequence >> BLOCK_BITS,)
    )
    conn.execute("DELETE FROM events_time_outliers WHERE sequence < ?", (sequence,))


def forget(conn: sqlite3.Connection, sequences: Sequence[int]) -> None:
    """Drop the outliers of deleted events."""
    conn.executemany(
        "DELETE FROM events_time_outliers WHERE sequence = ?", [(s,) for s in sequences]
    )
