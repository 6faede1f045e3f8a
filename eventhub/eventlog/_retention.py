"""Retention of the SQLite log: deleting what the rules no longer keep, in batches.

A sweep finds its candidates through the indexes (a rule's types through
``events_type``, its age through the time blocks of :mod:`._timeblocks`) and deletes
them ``DELETE_BATCH`` at a time, each batch a write transaction of its own, pausing
between batches (half as long as the batch held the lock) so that publishers waiting
for the write lock get it: a sweep over millions of events delays a publish by about
one batch at most, and publishers keep a third of the lock's time or more. Each
batch reads the subscriptions' cursors again, so that an event that a subscription
opened since the sweep began has yet to handle is kept. Long sweeps log their
progress.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog

from ..events import format_time
from ..statedb import StateDB
from ._rows import given, select
from ._timeblocks import forget, forget_below, outlier_select, sequence_runs
from ._types import matching_types, type_condition
from .base import RetentionRule

log = structlog.get_logger(__name__)

#: Events deleted per write transaction.
DELETE_BATCH = 1000
#: Sequences looked at per query while looking for candidates.
WINDOW = 1 << 14
#: Seconds between batches, for waiting writers to take the lock: at least this,
#: and at least half the time the last batch held the lock.
PAUSE = 0.001
SHARE = 0.5
#: Seconds between progress messages of a long sweep.
PROGRESS_EVERY = 5.0


def trim_log(
    db: StateDB,
    rules: Iterable[RetentionRule],
    now: float,
    *,
    batch: int = DELETE_BATCH,
    pause: float = PAUSE,
) -> int:
    """Delete the events that ``rules`` no longer keep and no subscription has yet
    to handle; returns how many were deleted."""
    rules = list(rules)
    if not rules:
        return 0
    conn = db.connection()
    row = conn.execute("SELECT MIN(sequence), MAX(sequence) FROM events").fetchone()
    if row[0] is None:
        return 0
    lowest = int(row[0])
    floor = _floor(conn)
    sweep = _Sweep(db, floor, batch, pause)
    for rule in rules:
        plan = _Plan(conn, rule, now)
        for first, last in plan.candidate_ranges(conn, lowest, floor):
            for start in range(first, last + 1, WINDOW):
                end = min(start + WINDOW - 1, last)
                sweep.add(plan.doomed(conn, start, end))
        sweep.add(plan.doomed_outliers(conn, lowest, floor))
    sweep.flush()
    if sweep.deleted:
        with db.write() as writer:
            row = writer.execute("SELECT MIN(sequence) FROM events").fetchone()
            forget_below(writer, row[0] if row[0] is not None else _last(writer) + 1)
    sweep.finished()
    return sweep.deleted


class _Sweep:
    """Doomed sequences, deleted a batch per write transaction."""

    def __init__(self, db: StateDB, floor: int, batch: int, pause: float) -> None:
        self.db = db
        self.floor = floor
        self.batch = batch
        self.pause = pause
        self.doomed: list[int] = []
        self.deleted = 0
        self.batches = 0
        self.started = time.monotonic()
        self._reported = self.started
        self._held = 0.0

    def add(self, sequences: list[int]) -> None:
        self.doomed.extend(sequences)
        while len(self.doomed) >= self.batch:
            self._delete(self.doomed[: self.batch])
            del self.doomed[: self.batch]

    def flush(self) -> None:
        if self.doomed:
            self._delete(self.doomed)
            self.doomed = []

    def _delete(self, sequences: list[int]) -> None:
        if self.batches and self.pause:
            # Waiting publishers take the lock meanwhile.
            time.sleep(max(self.pause, SHARE * self._held))
        started = time.monotonic()
        with self.db.write() as conn:
            # A subscription opened since the sweep began keeps what it has yet
            # to handle.
            floor = min(self.floor, _floor(conn))
            doomed = [s for s in sequences if s <= floor]
            before = conn.total_changes
            conn.executemany(
                "DELETE FROM events WHERE sequence = ?", [(s,) for s in doomed]
            )
            self.deleted += conn.total_changes - before
            forget(conn, doomed)
        self._held = time.monotonic() - started
        self.batches += 1
        moment = time.monotonic()
        if moment - self._reported >= PROGRESS_EVERY:
            self._reported = moment
            log.info(
                "retention sweep in progress",
                deleted=self.deleted,
                upto=sequences[-1],
                batches=self.batches,
                seconds=round(moment - self.started, 1),
            )

    def finished(self) -> None:
        seconds = time.monotonic() - self.started
        if seconds >= PROGRESS_EVERY:
            log.info(
                "retention sweep done",
                deleted=self.deleted,
                batches=self.batches,
                seconds=round(seconds, 1),
            )


def _floor(conn: Any) -> int:
    """The highest sequence that every subscription has handled (all when none)."""
    row = conn.execute("SELECT MIN(cursor) FROM subscriptions").fetchone()
    if row[0] is not None:
        return int(row[0])
    return _last(conn)


def _last(conn: Any) -> int:
    found = conn.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
    ).fetchone()
    return int(found[0]) if found else 0


class _Plan:
    """What one rule deletes, worked out once per sweep."""

    def __init__(self, conn: Any, rule: RetentionRule, now: float) -> None:
        self.rule = rule
        self.cutoff = (
            None
            if rule.max_age is None
            else format_time(datetime.fromtimestamp(now - rule.max_age, UTC))
        )
        self.type_sql, self.type_params, self.exact = _type_sql(conn, rule)
        self.bound = self._count_bound(conn)

    def candidate_ranges(
        self, conn: Any, lowest: int, floor: int
    ) -> list[tuple[int, int]]:
        """Inclusive sequence ranges holding every event the rule may delete."""
        ranges: list[tuple[int, int]] = []
        if self.bound is not None:
            ranges.append((lowest, min(self.bound, floor)))
        if self.cutoff is not None:
            ranges.extend(
                sequence_runs(
                    conn, None, self.cutoff, lowest - 1, floor + 1, descending=False
                )
            )

        ranges.sort()
        merged: list[tuple[int, int]] = []
        for first, last in ranges:
            if first > last:
                continue
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged

    def _count_bound(self, conn: Any) -> int | None:
        """The newest sequence beyond the rule's ``max_count`` newest matching
        events (every matching event up to it is to go), or None."""
        count = self.rule.max_count
        if count is None:
            return None
        where = f" WHERE {self.type_sql}" if self.type_sql else ""
        if self.exact:
            found = conn.execute(
                f"SELECT sequence FROM events{where}"
                " ORDER BY sequence DESC LIMIT 1 OFFSET ?",
                [*self.type_params, count],
            ).fetchone()
            return int(found[0]) if found else None
        # A matcher SQL cannot express: count the matches, newest first.
        kept = 0
        top = conn.execute("SELECT MAX(sequence) FROM events").fetchone()[0] or 0
        lowest = conn.execute("SELECT MIN(sequence) FROM events").fetchone()[0] or 0
        for end in range(top, lowest - 1, -WINDOW):
            rows = self._select(
                conn, max(end - WINDOW + 1, lowest), end, [], [], descending=True
            )
            for sequence, type_name in rows:
                if type(type_name) is str and self.rule.match(type_name):
                    kept += 1
                    if kept > count:
                        return int(sequence)
        return None

    def doomed_outliers(self, conn: Any, lowest: int, floor: int) -> list[int]:
        """The outliers of the time blocks that the rule's age deletes."""
        if self.cutoff is None:
            return []
        outliers, params = outlier_select(None, self.cutoff)
        rows = self._select(conn, lowest, floor, [f"sequence IN ({outliers})"], params)
        return self._matching(rows)

    def doomed(self, conn: Any, first: int, last: int) -> list[int]:
        """The sequences in ``[first, last]`` that the rule deletes, in order."""
        ages, values = given(("time < ?", self.cutoff), ("sequence <= ?", self.bound))
        if not ages:
            return []
        rows = self._select(conn, first, last, ["(" + " OR ".join(ages) + ")"], values)
        return self._matching(rows)

    def _matching(self, rows: Any) -> list[int]:
        """The sequences of ``(sequence, type)`` rows whose type the rule names
        (all of them when the SQL already selected by type exactly)."""
        if self.exact:
            return [int(r[0]) for r in rows]
        return [int(s) for s, t in rows if type(t) is str and self.rule.match(t)]

    def _select(
        self,
        conn: Any,
        first: int,
        last: int,
        where: list[str],
        values: list[Any],
        descending: bool = False,
    ) -> list[Any]:
        conditions = ["sequence BETWEEN ? AND ?", *where]
        params: list[Any] = [first, last, *values]
        if self.type_sql:
            conditions.append(self.type_sql)
            params.extend(self.type_params)
        sql = f"SELECT sequence, type FROM events WHERE {' AND '.join(conditions)}"
        sql += " ORDER BY sequence" + (" DESC" if descending else "")
        rows, _ = select(conn, sql, params)
        return rows


def _type_sql(conn: Any, rule: RetentionRule) -> tuple[str | None, list[Any], bool]:
    """A SQL condition on the rule's types, its parameters, and whether it is exact
    (else the rule's matcher narrows the rows)."""
    names = matching_types(conn, rule.match)
    if names is not None:
        if not names:
            return "0", [], True
        return f"type IN ({','.join('?' * len(names))})", list(names), True
    condition = type_condition(rule.match)
    if condition is None:
        return None, [], False
    return condition
