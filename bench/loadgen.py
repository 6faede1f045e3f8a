"""A small HTTP/1.1 load generator for the webhook benchmark (its own process).

``python -m bench.loadgen HOST PORT PATH BODY_FILE SECRET COUNT CONCURRENCY``
sends COUNT signed GitHub ``push`` deliveries (each with its own
``X-GitHub-Delivery``, all built before the clock starts) over CONCURRENCY
keep-alive connections, and prints one JSON line: the seconds from the first
request to the last answer, and every request's latency. Any answer other than 200
is an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import Iterator


def build(host: str, path: str, body: bytes, secret: str, count: int) -> list[bytes]:
    """COUNT requests, ready to write."""
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: push\r\n"
        f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n"
    )
    return [
        f"{head}X-GitHub-Delivery: {uuid.uuid4()}\r\n\r\n".encode() + body
        for _ in range(count)
    ]


async def _worker(
    host: str, port: int, requests: Iterator[bytes], latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"answered {head[:40]!r}")
            latencies.append(time.perf_counter() - began)
    finally:
        writer.close()


async def _run(
    host: str, port: int, requests: list[bytes], concurrency: int
) -> tuple[float, list[float]]:
    shared = iter(requests)  # one iterator: each request is sent once
    latencies: list[float] = []
    began = time.perf_counter()
    await asyncio.gather(
        *(_worker(host, port, shared, latencies) for _ in range(concurrency))
    )
    return time.perf_counter() - began, latencies


def main(argv: list[str]) -> None:
    host, port, path, body_file, secret, count, concurrency = argv
    with open(body_file, "rb") as file:
        body = file.read()
    requests = build(host, path, body, secret, int(count))
    seconds, latencies = asyncio.run(_run(host, int(port), requests, int(concurrency)))
    print(json.dumps({"seconds": seconds, "latencies": latencies}))


if __name__ == "__main__":
    main(sys.argv[1:])
