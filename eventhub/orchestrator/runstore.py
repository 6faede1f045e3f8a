"""Run history, per-workflow state and schedule bookkeeping in the state database.

A run's error and result are redacted as they are stored (:mod:`eventhub.redact`:
registered secrets and credential-shaped text), so a token that an upstream server
echoed into an exception or a response never reaches the run history.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlite_utils.migrations import Migrations

from ..events import format_time, parse_time
from ..redact import redact_json_bytes, redact_text
from ..statedb import StateDB

Status = Literal["running", "succeeded", "failed"]
Trigger = Literal["event", "schedule", "catchup", "start", "manual"]

migrations = Migrations("eventhub.runs")


@migrations()
def m001_runs(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            workflow TEXT NOT NULL,
            trigger TEXT NOT NULL,
            event_id TEXT,
            event_sequence INTEGER,
            status TEXT NOT NULL,
            started TEXT NOT NULL,
            finished TEXT,
            duration REAL,
            error TEXT,
            result TEXT,
            attempt INTEGER NOT NULL DEFAULT 1,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL
        );
        CREATE INDEX runs_workflow ON runs (workflow, seq);
        CREATE INDEX runs_status ON runs (status) WHERE status = 'running';
        CREATE TABLE workflow_state (
            workflow TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (workflow, key)
        );
        CREATE TABLE schedules (
            workflow TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            anchor TEXT NOT NULL,
            last_fire TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_scheduled_retries(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE scheduled_retries (
            workflow TEXT NOT NULL,
            run_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            due TEXT NOT NULL,
            PRIMARY KEY (workflow, run_id)
        );
        """
    )


_RESULT_LIMIT = 2000


@dataclass
class WorkflowRun:
    """One run of a workflow, as recorded in the run history."""

    id: str
    workflow: str
    trigger: Trigger
    status: Status
    started: datetime
    finished: datetime | None = None
    duration: float | None = None
    error: str | None = None
    result: Any = None
    event_id: str | None = None
    event_sequence: int | None = None
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as RFC 3339 text."""
        out = asdict(self)
        out["started"] = format_time(self.started)
        out["finished"] = format_time(self.finished) if self.finished else None
        return out


class RunStore:
    """Run history, workflow state and schedule state of one state database."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate(migrations)
        self.host = socket.gethostname()

    def start(self, run: WorkflowRun) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO runs (id, workflow, trigger, event_id, event_sequence,"
                " status, started, attempt, host, pid)"
                " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    run.id,
                    run.workflow,
                    run.trigger,
                    run.event_id,
                    run.event_sequence,
                    format_time(run.started),
                    run.attempt,
                    self.host,
                    os.getpid(),
                ),
            )

    def finish(self, run: WorkflowRun) -> bool:
        """Record the outcome of a run that is still ``running``; False when it was
        already finished (e.g. marked failed by its timeout).

        The error is stored redacted, and left so on ``run`` (what is published
        about the run says the same); the result is stored redacted.
        """
        if run.error is not None:
            run.error = redact_text(run.error)
        result = None if run.result is None else _summary(run.result)
        with self.db.write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, finished = ?, duration = ?, error = ?,"
                " result = ? WHERE id = ? AND status = 'running'",
                (
                    run.status,
                    format_time(run.finished or datetime.now(UTC)),
                    run.duration,
                    run.error,
                    result,
                    run.id,
                ),
            )
            return cursor.rowcount == 1

    def get(self, run_id: str) -> WorkflowRun | None:
        row = (
            self.db.connection()
            .execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
            .fetchone()
        )
        return _row_run(row) if row else None

    def list(
        self, workflow: str | None = None, limit: int | None = 50
    ) -> list[WorkflowRun]:
        """Runs, newest first."""
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        params: list[Any] = []
        if workflow is not None:
            sql += " WHERE workflow = ?"
            params.append(workflow)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row_run(r) for r in self.db.connection().execute(sql, params)]

    def counts(self) -> dict[tuple[str, str], int]:
        """How many runs are recorded, by (workflow, status)."""
        rows = (
            self.db.connection()
            .execute("SELECT workflow, status, count(*) FROM runs GROUP BY 1, 2")
            .fetchall()
        )
        return {(workflow, status): count for workflow, status, count in rows}

    def fail_interrupted(self, now: datetime) -> int:
        """Mark as failed the runs of this host whose process no longer exists (a
        daemon that was killed mid-run). Returns how many."""
        rows = (
            self.db.connection()
            .execute(
                "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?",
                (self.host,),
            )
            .fetchall()
        )
        dead = [run_id for run_id, pid in rows if not _alive(pid)]
        if dead:
            with self.db.write() as conn:
                conn.executemany(
                    "UPDATE runs SET status = 'failed', finished = ?,"
                    " error = 'interrupted: the process running it exited'"
                    " WHERE id = ? AND status = 'running'",
                    [(format_time(now), run_id) for run_id in dead],
                )
        return len(dead)

    # Schedules --------------------------------------------------------------

    def schedule_state(self, workflow: str) -> tuple[str, datetime, datetime] | None:
        """``(spec, anchor, last_fire)`` of a scheduled workflow, if recorded."""
        row = (
            self.db.connection()
            .execute(
                "SELECT spec, anchor, last_fire FROM schedules WHERE workflow = ?",
                (workflow,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return row[0], parse_time(row[1]), parse_time(row[2])

    def set_schedule_state(
        self, workflow: str, spec: str, anchor: datetime, last_fire: datetime
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO schedules (workflow, spec, anchor, last_fire)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (workflow) DO UPDATE SET"
                " spec = excluded.spec, anchor = excluded.anchor,"
                " last_fire = excluded.last_fire",
                (workflow, spec, format_time(anchor), format_time(last_fire)),
            )

    def record_fire(self, workflow: str, moment: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE schedules SET last_fire = ?"
                " WHERE workflow = ? AND last_fire < ?",
                (format_time(moment), workflow, format_time(moment)),
            )

    def add_retry(
        self, workflow: str, run_id: str, attempt: int, due: datetime
    ) -> None:
        """Remember that a failed scheduled run is to be retried at ``due`` (so a
        restart, or another process taking over the scheduler, still does it)."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO scheduled_retries VALUES (?, ?, ?, ?)",
                (workflow, run_id, attempt, format_time(due)),
            )

    def take_retry(self, workflow: str, run_id: str) -> bool:
        """Claim a remembered retry; False if it was already taken or dropped."""
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    "DELETE FROM scheduled_retries WHERE workflow = ? AND run_id = ?",
                    (workflow, run_id),
                ).rowcount
            )

    def retries(self) -> Sequence[tuple[str, str, int, datetime]]:
        """Remembered retries: (workflow, run id, attempt, due), soonest first."""
        rows = (
            self.db.connection()
            .execute(
                "SELECT workflow, run_id, attempt, due FROM scheduled_retries"
                " ORDER BY due"
            )
            .fetchall()
        )
        return [(w, r, a, parse_time(d)) for w, r, a, d in rows]

    def state(self, workflow: str) -> WorkflowState:
        return WorkflowState(self.db, workflow)


class WorkflowState(MutableMapping[str, Any]):
    """A workflow's persistent key/value store (JSON values), e.g. sync cursors.

    Every assignment is committed at once: ``ctx.state["cursor"] = "2026-01-01"``.
    """

    def __init__(self, db: StateDB, workflow: str) -> None:
        self._db = db
        self._workflow = workflow

    def __getitem__(self, key: str) -> Any:
        row = (
            self._db.connection()
            .execute(
                "SELECT value FROM workflow_state WHERE workflow = ? AND key = ?",
                (self._workflow, key),
            )
            .fetchone()
        )
        if row is None:
            raise KeyError(key)
        return orjson.loads(row[0])

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError("workflow state keys are strings")
        encoded = orjson.dumps(value)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO workflow_state (workflow, key, value, updated)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (workflow, key) DO UPDATE SET"
                " value = excluded.value, updated = excluded.updated",
                (self._workflow, key, encoded, format_time(datetime.now(UTC))),
            )

    def __delitem__(self, key: str) -> None:
        with self._db.write() as conn:
            cursor = conn.execute(
                "DELETE FROM workflow_state WHERE workflow = ? AND key = ?",
                (self._workflow, key),
            )
            if cursor.rowcount == 0:
                raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        rows = (
            self._db.connection()
            .execute(
                "SELECT key FROM workflow_state WHERE workflow = ? ORDER BY key",
                (self._workflow,),
            )
            .fetchall()
        )
        return iter([r[0] for r in rows])

    def __len__(self) -> int:
        row = (
            self._db.connection()
            .execute(
                "SELECT COUNT(*) FROM workflow_state WHERE workflow = ?",
                (self._workflow,),
            )
            .fetchone()
        )
        return int(row[0])


_RUN_COLUMNS = (
    "id, workflow, trigger, status, started, finished, duration, error, result,"
    " event_id, event_sequence, attempt"
)


def _row_run(row: Any) -> WorkflowRun:
    (
        id_,
        workflow,
        trigger,
        status,
        started,
        finished,
        duration,
        error,
        result,
        event_id,
        event_sequence,
        attempt,
    ) = row
    return WorkflowRun(
        id=id_,
        workflow=workflow,
        trigger=trigger,
        status=status,
        started=parse_time(started),
        finished=parse_time(finished) if finished else None,
        duration=duration,
        error=error,
        result=orjson.loads(result) if result is not None else None,
        event_id=event_id,
        event_sequence=event_sequence,
        attempt=attempt,
    )


def _summary(result: Any) -> bytes:
    """The result as stored: JSON, redacted, cut to a summary when long or not JSON
    (redacted before it is cut, so that no secret is cut below recognition)."""
    try:
        encoded = redact_json_bytes(orjson.dumps(result))
    except TypeError:
        encoded = orjson.dumps(redact_text(repr(result))[:_RESULT_LIMIT])
    if len(encoded) > _RESULT_LIMIT:
        encoded = orjson.dumps(
            encoded[: _RESULT_LIMIT - 20].decode(errors="ignore") + "…"
        )
    return encoded


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
