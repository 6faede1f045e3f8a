"""A block range index over event times: where in the log a time range can be.

An event's ``time`` is set by whoever made the event (``publish(time=...)``, a
webhook, an import), so it does not grow with ``sequence``; mostly it does, though.
A B-tree index on ``time`` would cost every publish an index entry; instead the log
keeps, per block of ``BLOCK_SIZE`` sequences, the lowest and highest time stored in
it (the idea of PostgreSQL's BRIN indexes): one row per block, updated once per
written batch. A time range is then looked for in the blocks whose bounds meet it,
newest block first, and only their rows are read. It is exact, as the rows are still
filtered by time; a block that holds one event with a far-off time is read for
nothing when a query asks for that far-off time, which costs a block's worth of rows.

The bounds compare as the ``time`` column does (``TEXT`` affinity, SQLite's own
ordering of values), so even a damaged row's time is found where a scan would find
it; a trigger widens a block when a row's time is changed in place. Deleting events
leaves their block's bounds as they were (wider than needed, still correct).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

#: log2 of the number of sequences per block.
BLOCK_BITS = 12
BLOCK_SIZE = 1 << BLOCK_BITS

CREATE = (
    """
    CREATE TABLE IF NOT EXISTS events_time_blocks (
        block INTEGER PRIMARY KEY,
        low TEXT NOT NULL,
        high TEXT NOT NULL
    )
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS events_time_blocks_update
    AFTER UPDATE OF time ON events BEGIN
        INSERT INTO events_time_blocks (block, low, high)
        VALUES (new.sequence >> {BLOCK_BITS}, new.time, new.time)
        ON CONFLICT (block) DO UPDATE SET
            low = min(low, excluded.low), high = max(high, excluded.high);
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


def note_times(conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Widen the blocks of rows just written (``(sequence, ..., time at [5])``),
    in the writer's transaction: one statement per block touched."""
    bounds: dict[int, list[str]] = {}
    for row in rows:
        block = row[0] >> BLOCK_BITS
        moment = row[5]
        found = bounds.get(block)
        if found is None:
            bounds[block] = [moment, moment]
        elif moment < found[0]:
            found[0] = moment
        elif moment > found[1]:
            found[1] = moment
    conn.executemany(_WIDEN, [(b, low, high) for b, (low, high) in bounds.items()])


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
    where = []
    params: list[Any] = []
    if since is not None:
        where.append("high >= ?")
        params.append(since)
    if until is not None:
        where.append("low < ?")
        params.append(until)
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
    """Drop the blocks that lie wholly below ``sequence`` (all their events are
    gone)."""
    conn.execute(
        "DELETE FROM events_time_blocks WHERE block < ?", (sequence >> BLOCK_BITS,)
    )
