"""The event log at scale: history filters, publish and retention at 1M events
(10M with ``--full``), part of ``python -m bench scale`` (``bench/scale.py`` calls
:func:`run_log` and appends its rows).

The big log is built straight into a SQLite file that eventhub created (so the
schema and indexes are the current migrations'), with ``executemany`` in 100k-row
transactions (``synchronous=OFF`` while building only) in the format
``SQLiteLog`` writes, time blocks included; then it is opened as a hub. Its events:
20 types in 4 namespaces, 5 sources (one of them 0.1 % of events), a subject per
order (``order/<n>``, ten events each, consecutive orders close together), a time
10 ms after the previous event's, except 1 % of events whose time is up to a year
earlier (imported or late events), ~150 bytes of JSON data.

- **History**: latest 100 (oldest first after ``after``) for each filter and a few
  combinations, 40 queries each, parameters varied; p50 and p99. Each row is the
  median p50 against a stated target of 10 ms (``time ratio <= 1.00``); the note
  gives the p99 and the ratio to the type filter's p50 in the same run.
- **Publish**: ``publish_many`` of 1000 events, 10 transactions per repetition,
  ``synchronous=FULL``, into the big log against an empty log, interleaved (A B A B),
  5 counted repetitions: the throughput ratio, target >= 0.90.
- **Retention**: deleting the oldest 1M events by age (a ``max_age`` rule,
  ``trim``) while 4 threads publish one event at a time: the p99 of those
  publishes during the sweep against 4 s of the same publishing without a sweep,
  and the sweep's rate. One round (the sweep is destructive).

Run time on this 2-core machine: about 50 s by default (1M events, a ~450 MB
scratch file); with ``--full`` (10M events, a ~4.5 GB scratch file) about 4 minutes,
about 2 minutes of it building the log. Nothing is kept outside the scratch
folder.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from eventhub import Hub
from eventhub.eventlog import RetentionRule
from eventhub.eventlog._retention import DELETE_BATCH
from eventhub.eventlog._rows import EVENT_COLUMNS
from eventhub.eventlog._timeblocks import note_times
from eventhub.events import format_time
from eventhub.patterns import TypePattern

from .common import (
    Row,
    Settings,
    interleave,
    make_hub,
    millis,
    order_events,
    pair_ratios,
    percentile,
    rate,
    scratch_dir,
    timed,
)

TARGET_MS = 10.0
TYPES = [
    f"{ns}.{verb}"
    for ns in ("order", "user", "document", "billing")
    for verb in ("created", "updated", "paid", "deleted", "viewed")
]
SOURCES = ["/shop", "/crm", "/docs", "/billing"]
RARE_SOURCE = "/audit"
SPACING = timedelta(milliseconds=10)
START = datetime(2025, 1, 1, tzinfo=UTC)
_INSERT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({','.join('?' * 13)})"


def run_log(settings: Settings) -> list[Row]:
    """The event-log rows of the scale benchmark."""
    size = 10_000_000 if settings.full_corpus else 1_000_000
    label = f"{size // 1_000_000}M"
    rows: list[Row] = []
    with scratch_dir("scale-log") as folder:
        path = os.path.join(folder, "big.db")
        build_seconds = build_log(path, size)
        hub = make_hub(path, "FULL")
        try:
            rows += history_rows(hub, size, label, build_seconds)
            rows += publish_rows(hub, folder, label, settings)
            rows += retention_rows(hub, size, label)
        finally:
            hub.close()
    return rows


# Building the log -------------------------------------------------------------


def event_time(i: int, rng: random.Random) -> datetime:
    if rng.random() < 0.01:
        return START + i * SPACING - timedelta(seconds=rng.randrange(365 * 86400))
    return START + i * SPACING


def build_log(path: str, size: int) -> float:
    """A log of ``size`` events in a file eventhub created; returns the seconds."""
    make_hub(path, "FULL").close()  # the schema, by eventhub's own migrations
    started = time.perf_counter()
    rng = random.Random(15)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    data = orjson.dumps({"order": "ord-00000000", "total": 119.94, "note": "x" * 90})
    chunk = 100_000
    for start in range(1, size + 1, chunk):
        batch: list[tuple[Any, ...]] = []
        for i in range(start, min(start + chunk, size + 1)):
            source = RARE_SOURCE if i % 1000 == 7 else SOURCES[i % 4]
            batch.append(
                (
                    i,
                    f"{i:012x}-bench",
                    source,
                    TYPES[(i * 2654435761 >> 7) % len(TYPES)],
                    f"order/{i // 10}",
                    format_time(event_time(i, rng)),
                    "application/json",
                    data,
                    None,
                    None,
                    None,
                    None,
                    "json",
                )
            )
        # The writer's clock when these were published: the middle of the chunk.
        now = (START + (start + chunk // 2) * SPACING).timestamp()
        conn.execute("BEGIN")
        conn.executemany(_INSERT, batch)
        note_times(conn, batch, now)
        conn.execute("COMMIT")
    conn.execute(
        "INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('events', ?)",
        (size,),
    )
    conn.close()
    return time.perf_counter() - started


# History ----------------------------------------------------------------------


def history_cases(size: int) -> list[tuple[str, Callable[[random.Random], dict]]]:
    """Each filter: a name and a function making varied keyword arguments."""

    def at(fraction: float) -> datetime:
        return START + int(size * fraction) * SPACING

    def recent(rng: random.Random) -> datetime:
        return at(1.0) - timedelta(minutes=rng.randrange(5, 60))

    return [
        ("type", lambda r: {"type": r.choice(TYPES)}),
        ("pattern order.*", lambda r: {"type": "order.*"}),
        ("pattern *.paid", lambda r: {"type": "*.paid"}),
        ("source", lambda r: {"source": r.choice(SOURCES)}),
        ("source, 0.1 % of events", lambda r: {"source": RARE_SOURCE}),
        ("subject", lambda r: {"subject": f"order/{r.randrange(size // 10)}"}),
        ("since (last hour)", lambda r: {"since": recent(r)}),
        ("until (mid-log)", lambda r: {"until": at(r.uniform(0.3, 0.7))}),
        (
            "since + until (a day, mid-log)",
            lambda r: {
                "since": (s := at(r.uniform(0.2, 0.7))),
                "until": s + timedelta(days=1),
            },
        ),
        ("after (sequence, oldest first)", lambda r: {"after": r.randrange(size)}),
        ("before (sequence)", lambda r: {"before": r.randrange(100, size)}),
        (
            "type + subject",
            lambda r: {
                "type": r.choice(TYPES),
                "subject": f"order/{r.randrange(size // 10)}",
            },
        ),
        (
            "type + source",
            lambda r: {"type": r.choice(TYPES), "source": r.choice(SOURCES)},
        ),
        (
            "pattern + until (mid-log)",
            lambda r: {"type": "user.*", "until": at(r.uniform(0.3, 0.7))},
        ),
        (
            "source + since + until",
            lambda r: {
                "source": r.choice(SOURCES),
                "since": (s := at(r.uniform(0.2, 0.7))),
                "until": s + timedelta(hours=6),
            },
        ),
    ]


def history_rows(hub: Hub, size: int, label: str, build_seconds: float) -> list[Row]:
    rng = random.Random(7)
    history = hub.bus.history
    cases = history_cases(size)
    rounds, per_round = 5, 8
    samples: dict[str, list[list[float]]] = {name: [] for name, _ in cases}
    for _name, make in cases:  # warm-up: the pages each plan reads
        history(limit=100, **make(rng))
    for _ in range(rounds):
        for name, make in cases:
            times = []
            for _ in range(per_round):
                kwargs = make(rng)
                start = time.perf_counter()
                history(limit=100, **kwargs)
                times.append(time.perf_counter() - start)
            samples[name].append(times)
    type_p50 = statistics.median(percentile(r, 50) for r in samples["type"])
    rows = []
    for name, _ in cases:
        pooled = [x for r in samples[name] for x in r]
        p50, p99 = percentile(pooled, 50), percentile(pooled, 99)
        rows.append(
            Row(
                benchmark=f"14e. history latest 100 at {label} events: {name}",
                eventhub=f"p50 {millis(p50)} / p99 {millis(p99)}",
                reference=f"target {TARGET_MS:.0f} ms",
                kind="time",
                ratios=[percentile(r, 50) / (TARGET_MS / 1e3) for r in samples[name]],
                target=1.0,
                note=(
                    f"p50 against 10 ms; {p50 / type_p50:.1f}x the type filter's p50"
                    f" ({millis(type_p50)}); {rounds}x{per_round} queries;"
                    f" log built in {build_seconds:.0f} s"
                ),
            )
        )
    return rows


# Publish ----------------------------------------------------------------------


def publish_rows(hub: Hub, folder: str, label: str, settings: Settings) -> list[Row]:
    mappings = order_events(1000)
    batches = 10
    counter = [0]

    def publish_into(target: Hub) -> float:
        def work() -> None:
            for _ in range(batches):
                counter[0] += 1
                # Fresh subjects each time, as new orders would have.
                target.bus.publish_many(
                    [
                        {**m, "subject": f"order/new-{counter[0]}-{k}"}
                        for k, m in enumerate(mappings)
                    ]
                )

        return timed(work)

    def big() -> float:
        return publish_into(hub)

    def empty() -> float:
        path = os.path.join(folder, f"empty-{counter[0]}.db")
        with make_hub(path, "FULL") as fresh:
            fresh.bus.publish_many(mappings[:10])
            seconds = publish_into(fresh)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return seconds

    samples = interleave([("big", big), ("empty", empty)], settings.reps(5), 1)
    total = 1000 * batches
    return [
        Row(
            benchmark=f"14f. publish_many(1000) into a {label}-event log vs empty",
            eventhub=rate(total, samples["big"]),
            reference=f"empty log {rate(total, samples['empty'])}",
            kind="throughput",
            ratios=pair_ratios(samples["big"], samples["empty"], "throughput"),
            target=0.90,
            note=(
                f"{batches} transactions of 1000 events, ~400 B JSON, WAL, FULL,"
                " same indexes on both sides"
            ),
        )
    ]


# Retention --------------------------------------------------------------------


def retention_rows(hub: Hub, size: int, label: str) -> list[Row]:
    doomed = 1_000_000
    cutoff = START + doomed * SPACING
    # Rows past the cutoff that were given an earlier time go too.
    expected = (
        hub.db.connection()
        .execute("SELECT count(*) FROM events WHERE time < ?", (format_time(cutoff),))
        .fetchone()[0]
    )
    quiet_seconds = 4.0
    quiet = _publish_while(hub, lambda: time.sleep(quiet_seconds))
    swept: dict[str, float] = {}

    def sweep() -> None:
        now = time.time()
        rule = RetentionRule(TypePattern("#"), max_age=now - cutoff.timestamp())
        start = time.perf_counter()
        swept["deleted"] = hub.bus.log.trim([rule], now)
        swept["seconds"] = time.perf_counter() - start

    during = _publish_while(hub, sweep)
    if swept["deleted"] != expected:
        raise RuntimeError(f"trim deleted {swept['deleted']}, expected {expected}")
    p99_quiet, p99_during = percentile(quiet, 99), percentile(during, 99)
    return [
        Row(
            benchmark=(
                f"14g. publish p99 at {label} events while retention deletes 1M,"
                " 4 publishers"
            ),
            eventhub=f"p99 {millis(p99_during)} (p50 {millis(percentile(during, 50))})",
            reference=(
                f"no sweep: p99 {millis(p99_quiet)}"
                f" (p50 {millis(percentile(quiet, 50))})"
            ),
            kind="time",
            ratios=[p99_during / p99_quiet],
            target=None,
            note=(
                f"sweep deleted {swept['deleted']:,} events in"
                f" {swept['seconds']:.1f} s"
                f" ({swept['deleted'] / swept['seconds'] / 1e3:.0f} k/s),"
                f" {DELETE_BATCH} per"
                f" transaction; publishes/s during it"
                f" {len(during) / swept['seconds']:.0f}, without"
                f" {len(quiet) / quiet_seconds:.0f}; one round"
            ),
        )
    ]


def _publish_while(hub: Hub, action: Callable[[], None]) -> list[float]:
    """Latencies of single publishes by 4 threads while ``action`` runs."""
    done = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def publisher(mine: list[float]) -> None:
        publish = hub.bus.publish
        try:
            while not done.is_set():
                start = time.perf_counter()
                publish("metric.sampled", {"v": 1}, subject="host/1")
                mine.append(time.perf_counter() - start)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(m,)) for m in latencies]
    for thread in threads:
        thread.start()
    try:
        action()
    finally:
        done.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return [x for mine in latencies for x in mine]
