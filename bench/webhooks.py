"""Benchmark 10: signed GitHub deliveries accepted per second, and ack latency.

eventhub: the daemon's HTTP server (``eventhub.server.HTTPServer``: FastAPI on
uvicorn, on a thread of this process) with a ``github`` receiver, over a Hub on its
own file (``synchronous=FULL``). A delivery is answered 200 only after its
signature is verified (HMAC-SHA256 over the raw bytes) and its event is durable in
the log.

Reference: a bare endpoint of the same server stack, ``POST /bare``, added to the
same app (so the same uvicorn, FastAPI, middlewares and process), which reads the
body and answers 200: no verification, nothing stored. eventhub answers webhooks
from an ASGI middleware in front of FastAPI's routing (``eventhub.webhooks.intake
.WebhookRoute``); row 10a compares it with a bare ASGI handler in front of FastAPI's
routing too (and of eventhub's metrics and body-limit middlewares), which leaves the
cost of verification and durable storage. Informative.

The load comes from ``bench/loadgen.py`` in a child process: keep-alive HTTP/1.1
over 127.0.0.1, every request built before the clock starts, each with its own
``X-GitHub-Delivery`` (so no delivery is a duplicate) and the real ``push`` payload
of ``shared/realdata/github-webhooks`` in compact JSON (about 5 KB).

* Throughput: COUNT deliveries over 16 connections; rounds alternate eventhub and
  bare. Target: eventhub >= 0.5x the bare endpoint's throughput.
* Ack latency: one connection, requests back to back, while a slow workflow (a
  durable subscription on ``github.*`` whose handler sleeps 20 ms per event) is
  consuming the same log; against the bare endpoint's latency in the same rounds.
  Informative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastapi import Request, Response

from eventhub.server import HTTPServer, ServerSettings
from eventhub.webhooks import make_receivers

from .common import (
    Row,
    Settings,
    interleave,
    latency_rows,
    make_hub,
    pair_ratios,
    rate,
    scratch_dir,
)

NAME = "webhooks"
SECRET = "bench-webhook-secret"
CONCURRENCY = 16
SLOW_HANDLER = 0.020
PAYLOAD = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "realdata"
    / "github-webhooks"
    / "payloads"
    / "push"
    / "payload.json"
)
_FALLBACK = {"ref": "refs/heads/main", "commits": [], "repository": {"id": 1}}


def _payload() -> bytes:
    """The real push payload in compact JSON (a stand-in if it is not there)."""
    try:
        data = json.loads(PAYLOAD.read_bytes())
    except OSError:
        data = _FALLBACK
    return json.dumps(data, separators=(",", ":")).encode()


def _load(
    server: HTTPServer, path: str, body_file: str, count: int, concurrency: int
) -> tuple[float, list[float]]:
    host, port = server.addresses[0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            host,
            str(port),
            path,
            body_file,
            SECRET,
            str(count),
            str(concurrency),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed: {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    return report["seconds"], report["latencies"]


class _BareASGI:
    """``POST /bare-asgi``: reads the body and answers 200 from an ASGI middleware,
    in front of FastAPI's routing like eventhub's webhook route (and in front of
    eventhub's metrics and body-limit middlewares too)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/bare-asgi":
            await self.app(scope, receive, send)
            return
        while (await receive()).get("more_body", False):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _serve(hub: Any) -> HTTPServer:
    receivers = make_receivers({"github": {"kind": "github", "secret": SECRET}})
    server = HTTPServer(hub, ServerSettings(port=0), receivers)

    @server.app.post("/bare", include_in_schema=False)
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    server.app.add_middleware(_BareASGI)  # outermost: before eventhub's middlewares
    server.start()
    return server


def run(settings: Settings) -> list[Row]:
    """Run the webhook intake benchmark; returns its rows."""
    count = settings.size(3000, 400)
    latency_count = settings.size(300, 60)
    reps = settings.reps(5)
    with scratch_dir(NAME) as tmp:
        body_file = os.path.join(tmp, "push.json")
        with open(body_file, "wb") as file:
            file.write(_payload())
        size = os.path.getsize(body_file)
        with make_hub(os.path.join(tmp, "hub.db"), "FULL") as hub:
            server = _serve(hub)
            try:
                throughput = interleave(
                    [
                        (
                            side,
                            lambda path=path: _load(
                                server, path, body_file, count, CONCURRENCY
                            )[0],
                        )
                        for side, path in (
                            ("eventhub", "/webhooks/github"),
                            ("bare", "/bare"),
                            ("bare-asgi", "/bare-asgi"),
                        )
                    ],
                    reps,
                    settings.warmup,
                )

                def slow(event: Any) -> None:
                    time.sleep(SLOW_HANDLER)

                hub.bus.subscribe("github.*", slow, name="slow-workflow")
                hub.start()
                latency = interleave(
                    [
                        (
                            "eventhub",
                            lambda: _load(
                                server, "/webhooks/github", body_file, latency_count, 1
                            )[1],
                        ),
                        (
                            "bare",
                            lambda: _load(server, "/bare", body_file, latency_count, 1)[
                                1
                            ],
                        ),
                    ],
                    reps,
                    settings.warmup,
                )
                backlog = hub.log.last_sequence()
            finally:
                server.stop()
                hub.stop(timeout=1)
    eh, bare = throughput["eventhub"], throughput["bare"]
    return [
        Row(
            benchmark="10. signed GitHub deliveries accepted, vs bare endpoint",
            eventhub=rate(count, eh, "req/s"),
            reference=f"bare FastAPI/uvicorn endpoint {rate(count, bare, 'req/s')}",
            kind="throughput",
            ratios=pair_ratios(eh, bare, "throughput"),
            target=0.5,
            note=(
                f"{count} deliveries per round, {CONCURRENCY} keep-alive connections "
                f"over 127.0.0.1, {size} B push payload, verified + durable (FULL) "
                "before the 200; load generator in a child process"
            ),
        ),
        Row(
            benchmark="10a. same, vs a bare ASGI handler in the webhook route's place",
            eventhub=rate(count, eh, "req/s"),
            reference=f"bare ASGI {rate(count, throughput['bare-asgi'], 'req/s')}",
            kind="throughput",
            ratios=pair_ratios(eh, throughput["bare-asgi"], "throughput"),
            note=(
                "the cost of verifying and storing alone: eventhub answers webhooks "
                "from an ASGI middleware in front of FastAPI's routing, so this "
                "reference skips the same framework work"
            ),
        ),
        *latency_rows(
            "10b. webhook ack latency while a slow workflow consumes",
            latency["eventhub"],
            latency["bare"],
            "bare endpoint",
            f"{latency_count} deliveries per round on one connection; a durable "
            f"subscription sleeping {SLOW_HANDLER * 1000:.0f} ms per event consumes "
            f"the same log ({backlog} events by the end)",
        ),
    ]
