"""Shared pieces of the benchmarks: interleaved timing, ratios, rows, payloads.

Every benchmark runs eventhub and its reference in the same process, interleaved
(A B A B ...), with warm-up rounds that are not counted. A *pair* is one eventhub
measurement and the reference measurement taken right after it; the ratio of each
pair is computed, and the median and min-max of those ratios are reported.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson

from eventhub import Hub
from eventhub.statedb import Synchronous

#: A side of a benchmark: does its setup, runs the timed work, tears down, and
#: returns the seconds spent in the timed region only.
Side = Callable[[], float]
#: ``score``: a quality figure (nDCG, recall), eventhub's over the reference's.
RatioKind = Literal["time", "throughput", "score"]
TimeKind = Literal["time", "throughput"]
#: A latency side: sets up, measures one round of latencies (seconds, one per
#: sample), tears down, and returns them.
LatencySide = Callable[[], list[float]]
T = TypeVar("T")

SOURCE = "/bench"
CONTENT_TYPE = "application/json"
NOISY = 1.2  # largest third-to-first quartile ratio of a row that is not flagged


@dataclass(frozen=True)
class Settings:
    """How hard to run: ``quick`` means fewer repetitions and smaller sizes;
    ``full_corpus`` runs the SciFact quality benchmark on the whole corpus instead of
    its subset (minutes of model time)."""

    quick: bool = False
    full_corpus: bool = False

    @property
    def warmup(self) -> int:
        """Uncounted rounds before the counted ones."""
        return 1

    def reps(self, full: int) -> int:
        """Counted repetitions: ``full`` normally, 3 with ``--quick``."""
        return 3 if self.quick else full

    def size(self, full: int, quick: int) -> int:
        """A problem size: ``full`` normally, ``quick`` with ``--quick``."""
        return quick if self.quick else full


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    eventhub: str
    reference: str
    kind: RatioKind
    ratios: list[float]
    target: float | None = None
    note: str = ""

    @property
    def median(self) -> float:
        """The median per-pair ratio."""
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        """The smallest and largest per-pair ratio."""
        return min(self.ratios), max(self.ratios)

    @property
    def target_text(self) -> str:
        """The target, in words."""
        if self.target is None:
            return "none (informative)"
        if self.kind == "time":
            return f"time ratio <= {self.target:.2f}"
        return f"{self.kind} ratio >= {self.target:.2f}"

    @property
    def met(self) -> bool | None:
        """Whether the median meets the target (None without a target)."""
        if self.target is None:
            return None
        if self.kind == "time":
            return self.median <= self.target
        return self.median >= self.target

    @property
    def met_text(self) -> str:
        """``yes``, ``NO`` or ``n/a``."""
        met = self.met
        if met is None:
            return "n/a"
        return "yes" if met else "NO"

    @property
    def quartiles(self) -> tuple[float, float]:
        """The first and third quartiles of the per-pair ratios."""
        if len(self.ratios) < 2:
            return self.ratios[0], self.ratios[0]
        q1, _, q3 = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q1, q3

    @property
    def noisy(self) -> bool:
        """Whether the middle half of the pairs disagree by more than 20 %: a busy
        machine. (Min-max always widens with more pairs, so it is not the test.)"""
        q1, q3 = self.quartiles
        return q1 > 0 and q3 / q1 > NOISY


def interleave(
    sides: Sequence[tuple[str, Callable[[], T]]], reps: int, warmup: int
) -> dict[str, list[T]]:
    """Run each side once per round, in the given order, for ``warmup`` uncounted
    rounds and then ``reps`` counted ones. Returns the counted results per side
    (seconds for a :data:`Side`, a list of latencies for a :data:`LatencySide`)."""
    samples: dict[str, list[T]] = {name: [] for name, _ in sides}
    for round_ in range(warmup + reps):
        for name, side in sides:
            gc.collect()
            seconds = side()
            if round_ >= warmup:
                samples[name].append(seconds)
    return samples


def pair_ratios(
    eventhub: Sequence[float], reference: Sequence[float], kind: TimeKind
) -> list[float]:
    """Per-pair ratios from seconds for the same work on both sides.

    ``time``: eventhub seconds / reference seconds (lower is better for eventhub).
    ``throughput``: reference seconds / eventhub seconds, i.e. eventhub throughput /
    reference throughput (higher is better for eventhub).
    """
    if kind == "time":
        return [e / r for e, r in zip(eventhub, reference, strict=True)]
    return [r / e for e, r in zip(eventhub, reference, strict=True)]


def rate(units: int, seconds: Sequence[float], unit: str = "ev/s") -> str:
    """The median throughput of a side, human-readable."""
    per_second = units / statistics.median(seconds)
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M {unit}"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k {unit}"
    return f"{per_second:.0f} {unit}"


def per_event(units: int, seconds: Sequence[float]) -> str:
    """The median cost of one unit of work, in microseconds."""
    return f"{statistics.median(seconds) / units * 1e6:.2f} us/ev"


# Latency ------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values``, interpolated linearly between the closest
    ranks (numpy's default method): p50 is the median, p100 the maximum."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def millis(seconds: float) -> str:
    """A latency in milliseconds, with two significant decimals below 10 ms."""
    ms = seconds * 1e3
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def latency_text(rounds: Sequence[Sequence[float]]) -> str:
    """p50 and p99 of every counted sample of a side (all rounds pooled)."""
    pooled = [x for r in rounds for x in r]
    return (
        f"p50 {millis(percentile(pooled, 50))} / "
        f"p99 {millis(percentile(pooled, 99))} (n={len(pooled)})"
    )


def latency_rows(
    benchmark: str,
    eventhub: Sequence[Sequence[float]],
    reference: Sequence[Sequence[float]],
    reference_name: str,
    note: str,
    target: float | None = None,
) -> list[Row]:
    """A p50 row and a p99 row comparing two sides' latencies, round by round.

    The eventhub and reference cells give the percentiles of all counted samples of
    each side; the ratios are per round (the eventhub round and the reference round
    right after it): that round's p50 (or p99) of eventhub over the reference's.
    """
    eh_text = latency_text(eventhub)
    ref_text = f"{reference_name} {latency_text(reference)}"
    return [
        Row(
            benchmark=f"{benchmark}, p{pct}",
            eventhub=eh_text,
            reference=ref_text,
            kind="time",
            ratios=[
                percentile(e, pct) / percentile(r, pct)
                for e, r in zip(eventhub, reference, strict=True)
            ],
            target=target,
            note=f"{note}; ratio of each round's p{pct}",
        )
        for pct in (50, 99)
    ]


@contextmanager
def scratch_dir(prefix: str) -> Iterator[str]:
    """A temporary folder on the default temp filesystem, removed afterwards."""
    path = tempfile.mkdtemp(prefix=f"eventhub-bench-{prefix}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class ScratchFiles:
    """Numbered database files in a scratch folder, plus what the raw side must match:
    eventhub's pragmas and its events schema, read from a hub eventhub created."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._counter = 0
        template = self.fresh("template")
        with make_hub(template, "FULL") as hub:
            self.eventhub_pragmas = pragmas(hub.db.connection())
        self.schema = events_schema(template)

    def fresh(self, name: str) -> str:
        """A path for a new database file."""
        self._counter += 1
        return os.path.join(self.folder, f"{name}-{self._counter}.db")


@contextmanager
def scratch_files(prefix: str) -> Iterator[ScratchFiles]:
    """:class:`ScratchFiles` in a temporary folder, removed afterwards."""
    with scratch_dir(prefix) as folder:
        yield ScratchFiles(folder)


def timed(action: Callable[[], Any]) -> float:
    """Seconds taken by ``action()``."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_threads(
    workers: list[Callable[[], None]],
    prepare: Callable[[], Any] | None = None,
    until: Callable[[], None] | None = None,
) -> float:
    """Start the workers, release them together, and time until all have ended
    (and then, if given, until ``until()`` returns).

    ``prepare`` runs in each worker thread before the clock starts.
    """
    barrier = threading.Barrier(len(workers) + 1)
    errors: list[BaseException] = []

    def body(work: Callable[[], None]) -> None:
        if prepare is not None:
            prepare()
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if until is not None and not errors:
        until()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


# Payloads and rows ------------------------------------------------------------


def order_data(i: int) -> dict[str, Any]:
    """An order payload of about 400 bytes of JSON (varies a little with ``i``)."""
    return {
        "order_id": f"ord-{i:08d}",
        "customer": {
            "id": 100_000 + i % 977,
            "email": f"customer{i % 977}@example.com",
            "name": "Ada Lovelace",
            "tier": "gold" if i % 3 == 0 else "standard",
        },
        "items": [
            {"sku": f"SKU-{(i * 7 + k) % 5000:05d}", "qty": 1 + k, "price": 19.99 + k}
            for k in range(3)
        ],
        "currency": "EUR",
        "total": 119.94,
        "shipping": {"method": "express", "country": "DE", "postcode": "10115"},
        "note": "Leave the parcel with the neighbour if nobody answers the door.",
    }


def order_events(count: int, type_: str = "order.created") -> list[dict[str, Any]]:
    """``count`` event mappings as ``EventBus.publish_many`` takes them."""
    return [
        {"type": type_, "data": order_data(i), "subject": f"order/{i:08d}"}
        for i in range(count)
    ]


def now_text() -> str:
    """Now in UTC, in the fixed-width text form eventhub stores."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def raw_row(spec: dict[str, Any]) -> tuple[Any, ...]:
    """The events-table row for an event mapping, built the plain way: a fresh id,
    the current time, the payload encoded with orjson."""
    return (
        str(uuid.uuid4()),
        SOURCE,
        spec["type"],
        spec.get("subject"),
        now_text(),
        CONTENT_TYPE,
        orjson.dumps(spec["data"]),
        None,
        None,
        None,
    )


RAW_INSERT = (
    "INSERT INTO events (id, source, type, subject, time, datacontenttype, data,"
    " correlationid, causationid, extensions) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


def events_schema(hub_db_path: str) -> list[str]:
    """The CREATE statements of eventhub's ``events`` table and its indexes, read
    from a database that eventhub itself created (so the raw side always matches the
    current migrations)."""
    conn = sqlite3.connect(hub_db_path)
    try:
        rows = conn.execute(
            "SELECT sql FROM sqlite_master"
            " WHERE tbl_name = 'events' AND sql IS NOT NULL"
            " AND type IN ('table', 'index')"  # not the trigger on updates of time
            " ORDER BY type DESC"  # the table before its indexes
        ).fetchall()
    finally:
        conn.close()
    if not rows:
        raise RuntimeError("eventhub created no events table")
    return [r[0] for r in rows]


def raw_connect(
    path: str, synchronous: str, busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """A plain sqlite3 connection with eventhub's pragmas (WAL, ``synchronous``)."""
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


def raw_database(
    path: str, schema: Sequence[str], synchronous: str
) -> sqlite3.Connection:
    """A fresh raw database holding the events table; returns its connection."""
    conn = raw_connect(path, synchronous)
    for statement in schema:
        conn.execute(statement)
    return conn


def pragmas(conn: sqlite3.Connection) -> tuple[str, int]:
    """``(journal_mode, synchronous)`` of a connection, to check both sides match."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    return str(mode).lower(), int(sync)


def make_hub(path: str, synchronous: Synchronous = "FULL") -> Hub:
    """A Hub on a file, without plugin discovery (which is not being measured)."""
    return Hub(path, synchronous=synchronous, load_entrypoints=False)


def cpu_note() -> str:
    """Load averages, to tell a busy machine."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load {one:.2f} (1 min), {five:.2f} (5 min)"
