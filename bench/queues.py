"""Benchmark 13: messages through the queue integrations, and the SQL source.

Real servers on loopback, as the test suite starts them (``tests/servers.py``): a
RabbitMQ node and a redis-server of this run's own.

- 13a / 13b, RabbitMQ inbound: N persistent JSON messages (with a ``message_id``)
  wait in a durable queue. eventhub: a hub with a ``rabbitmq`` integration
  consuming it (prefetch 100, ``synchronous=FULL``); the clock runs from
  ``hub.start()`` until all N events are in the log (each batch is acknowledged to
  the broker right after its transaction; the queue is checked empty once the hub
  has stopped). Reference: raw pika, the same pattern without a log: a consumer
  with prefetch 100 acknowledging each batch (``multiple``) as it arrives, until N.
- 13b, RabbitMQ outbound: eventhub: ``publish_many`` of N events matched by the
  integration's ``publish`` entry; the clock stops when the bound queue holds N
  messages (each published persistent, with publisher confirms, before its event
  is acknowledged). Reference: raw pika, N persistent ``basic_publish`` calls on a
  confirming channel (each waits for its confirm, as eventhub's do).
- 13c / 13d, Redis, the same two directions with the reliable-queue pattern:
  inbound, eventhub's ``redis_queue`` (``BLMOVE`` into a processing list, batches
  of 100 published in one transaction, ``LREM`` after) against raw redis-py doing
  the same moves and removals without a log; outbound, eventhub's ``LPUSH`` per
  event against raw ``LPUSH`` per message.
- 13e, the SQL source's first sync of N rows of a SQLite table (hashing embedder:
  no model time) against a bare SQLAlchemy keyset scan of the same rows, pages of
  500, into dicts: what reading the rows costs by itself. Informative: the sync
  also chunks, hashes, writes the index and publishes events.

Targets: at least 0.5 of the raw client's messages/s, each direction (the raw
sides store nothing; eventhub makes every message durable first).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .common import Row, Settings, interleave, pair_ratios, rate, scratch_dir

NAME = "queues"
TARGET = 0.5
BATCH = 100
WAIT_LIMIT = 120.0


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done within {WAIT_LIMIT:.0f} s")
        time.sleep(0.001)


def run(settings: Settings) -> list[Row]:
    """Run the queue and SQL benchmarks; returns their rows."""
    from tests.servers import RabbitMQ, Redis

    logging.getLogger("pika").setLevel(logging.CRITICAL)
    total = settings.size(5000, 1000)
    reps = settings.reps(5)
    rows: list[Row] = []
    with scratch_dir(NAME) as tmp:
        rabbit = RabbitMQ()
        try:
            rows += _rabbit_rows(rabbit, Path(tmp), total, reps, settings)
        finally:
            rabbit.stop()
        redis = Redis()
        try:
            rows += _redis_rows(redis, Path(tmp), total, reps, settings)
        finally:
            redis.stop()
        rows.append(_sql_row(Path(tmp), settings.size(10_000, 2000), reps, settings))
    return rows


def _hub(folder: Path) -> Any:
    from .common import make_hub

    return make_hub(str(folder / f"hub-{uuid.uuid4().hex[:8]}.db"), "FULL")


def _messages(total: int) -> list[bytes]:
    return [
        orjson.dumps({"id": f"m{n}", "n": n, "note": "x" * 100}) for n in range(total)
    ]


# RabbitMQ ------------------------------------------------------------------------


def _rabbit_rows(
    server: Any, folder: Path, total: int, reps: int, settings: Settings
) -> list[Row]:
    import pika
    from eventhub.integrations.rabbitmq import RabbitMQIntegration

    bodies = _messages(total)
    control = server.connection()
    channel = control.channel()
    persistent = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def fill() -> str:
        queue = f"in-{uuid.uuid4().hex[:8]}"
        channel.queue_declare(queue, durable=True)
        for n, body in enumerate(bodies):
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(
                    delivery_mode=2, content_type="application/json", message_id=f"m{n}"
                ),
            )
        return queue

    def depth(queue: str) -> int:
        return int(channel.queue_declare(queue, passive=True).method.message_count)

    def eventhub_in() -> float:
        queue = fill()
        with _hub(folder) as hub:
            hub.register_integration(
                "rabbit",
                RabbitMQIntegration(
                    url=server.url,
                    consume=[{"queue": queue, "type": "order.created"}],
                    batch_size=BATCH,
                ),
            )
            started = time.perf_counter()
            hub.start()
            _wait(lambda: hub.log.last_sequence() >= total, "rabbitmq inbound")
            seconds = time.perf_counter() - started
            hub.stop()
            if hub.log.last_sequence() != total:
                raise RuntimeError(f"{hub.log.last_sequence()} events of {total}")
        if depth(queue) != 0:
            raise RuntimeError(f"{depth(queue)} messages left unacknowledged")
        return seconds

    def raw_in() -> float:
        queue = fill()
        connection = server.connection()
        consumer = connection.channel()
        consumer.basic_qos(prefetch_count=BATCH)
        seen = 0
        started = time.perf_counter()
        pending = None
        for method, _properties, _body in consumer.consume(
            queue, inactivity_timeout=0.05
        ):
            if method is not None:
                seen += 1
                pending = method.delivery_tag
                if seen % BATCH and seen < total:
                    continue
            if pending is not None:
                consumer.basic_ack(pending, multiple=True)
                pending = None
            if seen >= total:
                break
        seconds = time.perf_counter() - started
        consumer.cancel()
        connection.close()
        if depth(queue) != 0:
            raise RuntimeError("raw pika left messages unacknowledged")
        return seconds

    def outbound_queue() -> tuple[str, str]:
        tag = uuid.uuid4().hex[:8]
        exchange, queue = f"x-{tag}", f"out-{tag}"
        channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key="#")
        return exchange, queue

    def eventhub_out() -> float:
        exchange, queue = outbound_queue()
        with _hub(folder) as hub:
            hub.register_integration(
                "rabbit",
                RabbitMQIntegration(
                    url=server.url,
                    publish=[{"pattern": "invoice.*", "exchange": exchange}],
                ),
            )
            hub.start()
            events = [
                {"type": "invoice.paid", "data": orjson.loads(body)} for body in bodies
            ]
            started = time.perf_counter()
            hub.bus.publish_many(events)
            _wait(lambda: depth(queue) >= total, "rabbitmq outbound")
            seconds = time.perf_counter() - started
            hub.stop()
        return seconds

    def raw_out() -> float:
        exchange, queue = outbound_queue()
        connection = server.connection()
        publisher = connection.channel()
        publisher.confirm_delivery()
        started = time.perf_counter()
        for body in bodies:
            publisher.basic_publish(
                exchange, "invoice.paid", body, persistent, mandatory=True
            )
        _wait(lambda: depth(queue) >= total, "raw pika outbound")
        seconds = time.perf_counter() - started
        connection.close()
        return seconds

    inbound = interleave(
        [("eventhub", eventhub_in), ("raw", raw_in)], reps, settings.warmup
    )
    outbound = interleave(
        [("eventhub", eventhub_out), ("raw", raw_out)], reps, settings.warmup
    )
    control.close()
    return [
        _row(
            "13a. RabbitMQ inbound, acknowledged, vs raw pika",
            inbound,
            total,
            "raw pika",
            f"{total} persistent JSON messages with message ids; prefetch {BATCH};"
            " eventhub: every message an event in the log (FULL) before its"
            " acknowledgement; raw: acknowledged per batch, stored nowhere",
        ),
        _row(
            "13b. RabbitMQ outbound, confirmed, vs raw pika",
            outbound,
            total,
            "raw pika",
            f"{total} events matched by a publish entry; both sides: persistent"
            " messages, publisher confirms, mandatory, one confirm at a time;"
            " the clock stops when the bound queue holds them all",
        ),
    ]


# Redis ---------------------------------------------------------------------------


def _redis_rows(
    server: Any, folder: Path, total: int, reps: int, settings: Settings
) -> list[Row]:
    from eventhub.integrations.redis_queue import RedisQueueIntegration

    bodies = _messages(total)
    r = server.client()

    def fill() -> str:
        name = f"jobs-{uuid.uuid4().hex[:8]}"
        for start in range(0, total, 1000):
            r.lpush(name, *bodies[start : start + 1000])
        return name

    def eventhub_in() -> float:
        name = fill()
        with _hub(folder) as hub:
            queue = RedisQueueIntegration(
                url=server.url,
                consume=[{"list": name, "type": "job.requested"}],
                batch_size=BATCH,
                block_timeout=0.2,
            )
            hub.register_integration("jobs", queue)
            started = time.perf_counter()
            hub.start()
            processing = queue.processing_list(name)
            _wait(
                lambda: hub.log.last_sequence() >= total and r.llen(processing) == 0,
                "redis inbound",
            )
            seconds = time.perf_counter() - started
            hub.stop()
        if r.llen(name) != 0:
            raise RuntimeError("redis inbound left messages")
        return seconds

    def raw_in() -> float:
        name = fill()
        processing = f"{name}:processing:raw"
        seen = 0
        started = time.perf_counter()
        while seen < total:
            first = r.blmove(name, processing, 1, "RIGHT", "LEFT")
            if first is None:
                continue
            with r.pipeline(transaction=False) as pipe:
                for _ in range(BATCH - 1):
                    pipe.lmove(name, processing, "RIGHT", "LEFT")
                batch = [first, *(m for m in pipe.execute() if m is not None)]
            with r.pipeline(transaction=True) as pipe:
                for message in batch:
                    pipe.lrem(processing, 1, message)
                pipe.execute()
            seen += len(batch)
        return time.perf_counter() - started

    def eventhub_out() -> float:
        name = f"results-{uuid.uuid4().hex[:8]}"
        with _hub(folder) as hub:
            hub.register_integration(
                "jobs",
                RedisQueueIntegration(
                    url=server.url, publish=[{"pattern": "job.done", "list": name}]
                ),
            )
            hub.start()
            events = [{"type": "job.done", "data": orjson.loads(b)} for b in bodies]
            started = time.perf_counter()
            hub.bus.publish_many(events)
            _wait(lambda: r.llen(name) >= total, "redis outbound")
            seconds = time.perf_counter() - started
            hub.stop()
        return seconds

    def raw_out() -> float:
        name = f"results-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        for body in bodies:
            r.lpush(name, body)
        return time.perf_counter() - started

    inbound = interleave(
        [("eventhub", eventhub_in), ("raw", raw_in)], reps, settings.warmup
    )
    outbound = interleave(
        [("eventhub", eventhub_out), ("raw", raw_out)], reps, settings.warmup
    )
    r.close()
    return [
        _row(
            "13c. Redis inbound (reliable queue), vs raw redis-py",
            inbound,
            total,
            "raw redis-py",
            f"{total} JSON messages with ids; both sides: BLMOVE + LMOVE batches of"
            f" {BATCH} into a processing list, LREM after; eventhub publishes each"
            " batch in one transaction of the log (FULL) first",
        ),
        _row(
            "13d. Redis outbound, vs raw redis-py",
            outbound,
            total,
            "raw redis-py",
            f"{total} events matched by a publish entry, one LPUSH each, against"
            " one LPUSH per message",
        ),
    ]


def _row(
    name: str, samples: dict[str, list[float]], total: int, peer: str, note: str
) -> Row:
    eh, raw = samples["eventhub"], samples["raw"]
    return Row(
        benchmark=name,
        eventhub=rate(total, eh, "msg/s"),
        reference=f"{peer} {rate(total, raw, 'msg/s')}",
        kind="throughput",
        ratios=pair_ratios(eh, raw, "throughput"),
        target=TARGET,
        note=note,
    )


# SQL -----------------------------------------------------------------------------


def _sql_row(folder: Path, total: int, reps: int, settings: Settings) -> Row:
    import sqlalchemy as sa
    from eventhub.integrations.sql import SQLSource

    from eventhub.documents.embeddings import HashEmbedder
    from eventhub.documents.service import DocumentService
    from eventhub.testing import make_hub

    path = folder / "kb.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, body TEXT,"
            " category TEXT, updated_at TEXT)"
        )
        db.execute("CREATE INDEX articles_keyset ON articles (updated_at, id)")
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?)",
            [
                (
                    n,
                    f"Article {n}",
                    f"How team {n % 97} handles request {n}: " + "details " * 30,
                    f"c{n % 7}",
                    f"2026-06-{1 + n % 28:02d} 08:{n % 60:02d}:00",
                )
                for n in range(total)
            ],
        )
    url = f"sqlite:///{path}"
    columns = ["id", "updated_at", "title", "body", "category"]

    def eventhub_side() -> float:
        source = SQLSource(
            url=url,
            table="articles",
            updated_column="updated_at",
            title_column="title",
            text_columns=["body"],
            metadata_columns=["category"],
        )
        source.name = "kb"
        with make_hub(folder, f"docs-{uuid.uuid4().hex[:8]}.db") as hub:
            hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
            started = time.perf_counter()
            report = hub.documents.engine.sync(source)
            seconds = time.perf_counter() - started
        source.stop()
        if report.added != total:
            raise RuntimeError(f"the sync added {report.added} of {total}")
        return seconds

    def bare_side() -> float:
        engine = sa.create_engine(url)
        table = sa.table("articles", *(sa.column(c) for c in columns))
        statement = (
            sa.select(*table.c).order_by(table.c.updated_at, table.c.id).limit(500)
        )
        seen = 0
        started = time.perf_counter()
        page = statement
        with engine.connect() as conn:
            while True:
                rows = [dict(row._mapping) for row in conn.execute(page)]
                seen += len(rows)
                if len(rows) < 500:
                    break
                last = rows[-1]
                page = statement.where(
                    sa.tuple_(table.c.updated_at, table.c.id)
                    > sa.tuple_(sa.literal(last["updated_at"]), sa.literal(last["id"]))
                )
        seconds = time.perf_counter() - started
        engine.dispose()
        if seen != total:
            raise RuntimeError(f"the scan read {seen} of {total}")
        return seconds

    samples = interleave(
        [("eventhub", eventhub_side), ("bare", bare_side)], reps, settings.warmup
    )
    eh, bare = samples["eventhub"], samples["bare"]
    return Row(
        benchmark="13e. SQL source first sync vs a bare SQLAlchemy keyset scan",
        eventhub=rate(total, eh, "rows/s"),
        reference=f"bare keyset scan {rate(total, bare, 'rows/s')}",
        kind="throughput",
        ratios=pair_ratios(eh, bare, "throughput"),
        target=None,
        note=f"{total} rows of a SQLite table, pages of 500 by (updated_at, id);"
        " eventhub: the whole first sync (rows to documents, chunks, hashing"
        " embedder, index, events); informative",
    )
