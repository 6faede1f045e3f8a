"""Benchmark 2: durable batch publish, ``synchronous=FULL``.

eventhub ``hub.bus.publish_many(mappings)`` with 1000 event mappings (``order.created``,
a ~400-byte JSON payload, a subject) against raw sqlite3 ``executemany`` of the same
rows into a table with the schema and indexes of eventhub's ``events`` table (read
from a database eventhub created), same pragmas (WAL, ``synchronous=FULL``), one
``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction.

Inside the timed region the raw side builds each row the plain way: a fresh UUID, the
current time as text, the payload encoded with orjson (as eventhub does). A stricter
variant builds the ids and times before the timed region, leaving only the JSON
encoding and the write inside it. Each repetition uses a fresh database file on both
sides and times 10 such transactions (2 with ``--quick``) one after the other (each
``publish_many`` call is one transaction), which evens out the fsync latency of
single commits.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

import orjson

from .common import (
    CONTENT_TYPE,
    RAW_INSERT,
    SOURCE,
    Row,
    Settings,
    Side,
    interleave,
    make_hub,
    now_text,
    order_events,
    pair_ratios,
    pragmas,
    rate,
    raw_database,
    raw_row,
    scratch_files,
    timed,
)

NAME = "publish_many"


def run(settings: Settings) -> list[Row]:
    """Run the batch-publish benchmark; returns its rows."""
    count = 1000  # the batch size is the point of this benchmark, even with --quick
    batches = settings.size(10, 2)
    reps = settings.reps(15)
    mappings = order_events(count)

    with scratch_files(NAME) as files:
        fresh, schema = files.fresh, files.schema
        eventhub_pragmas = files.eventhub_pragmas

        def eventhub_side() -> float:
            with make_hub(fresh("eventhub"), "FULL") as hub:
                publish_many = hub.bus.publish_many
                publish_many(mappings[:10])  # open the connection, warm it

                def work() -> None:
                    for _ in range(batches):
                        publish_many(mappings)

                return timed(work)

        def raw_side() -> float:
            conn = raw_database(fresh("raw"), schema, "FULL")
            if pragmas(conn) != eventhub_pragmas:
                raise RuntimeError(f"pragmas differ: {pragmas(conn)}")
            _raw_write(conn, [raw_row(m) for m in mappings[:10]])

            def work() -> None:
                for _ in range(batches):
                    _raw_write(conn, [raw_row(m) for m in mappings])

            seconds = timed(work)
            conn.close()
            return seconds

        def raw_precomputed_side() -> float:
            conn = raw_database(fresh("rawpre"), schema, "FULL")
            _raw_write(conn, [raw_row(m) for m in mappings[:10]])
            stamps = [
                [(str(uuid.uuid4()), now_text()) for _ in mappings]
                for _ in range(batches)
            ]
            dumps = orjson.dumps

            def work() -> None:
                for batch in stamps:
                    rows = [
                        (
                            i,
                            SOURCE,
                            m["type"],
                            m["subject"],
                            t,
                            CONTENT_TYPE,
                            dumps(m["data"]),
                            None,
                            None,
                            None,
                        )
                        for (i, t), m in zip(batch, mappings, strict=True)
                    ]
                    _raw_write(conn, rows)

            seconds = timed(work)
            conn.close()
            return seconds

        sides: list[tuple[str, Side]] = [
            ("eventhub", eventhub_side),
            ("raw", raw_side),
            ("eventhub2", eventhub_side),
            ("raw_pre", raw_precomputed_side),
        ]
        samples = interleave(sides, reps, settings.warmup)

    eh, raw = samples["eventhub"], samples["raw"]
    eh2, pre = samples["eventhub2"], samples["raw_pre"]
    what = (
        f"{batches} transactions of {count} events per repetition, ~400 B JSON,"
        " WAL, FULL"
    )
    total = count * batches
    return [
        Row(
            benchmark="2. publish_many(1000) vs raw executemany",
            eventhub=rate(total, eh),
            reference=f"raw sqlite3 {rate(total, raw)}",
            kind="throughput",
            ratios=pair_ratios(eh, raw, "throughput"),
            target=0.70,
            note=what + "; raw makes ids, times, JSON in the timed region",
        ),
        Row(
            benchmark="2b. same, raw ids/times precomputed",
            eventhub=rate(total, eh2),
            reference=f"raw sqlite3 {rate(total, pre)}",
            kind="throughput",
            ratios=pair_ratios(eh2, pre, "throughput"),
            target=None,
            note=what + "; raw times only JSON encoding + write",
        ),
    ]


def _raw_write(conn: sqlite3.Connection, rows: Sequence[Sequence[object]]) -> None:
    """Insert the rows in one write transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RAW_INSERT, rows)
    conn.execute("COMMIT")
