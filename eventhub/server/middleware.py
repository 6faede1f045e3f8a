"""The ASGI middlewares of the daemon's HTTP server.

* :class:`Observed` counts and times every request by route template.
* :class:`BodyLimit` answers 413 to a body over the limit before reading it whole.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match

from .metrics import HubMetrics

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]

#: The key of the scope's ``state`` where the HTTP protocol notes the status it
#: answered a request with itself (:mod:`eventhub.server._protocol`).
ANSWERED_KEY = "eventhub.answered"

#: The status counted for a request whose client went away before it was
#: answered (nginx's "client closed request"): it was never sent.
CLIENT_CLOSED = 499


class Observed:
    """Counts and times every HTTP request by route template (pure ASGI).

    A request is counted with the status it was answered with; one the server
    cut off itself (a body that did not arrive in time) with that answer (408); one
    whose client went away before the answer with 499, whatever the application
    did next.

    Args:
        app: The application behind it.
        metrics: Where to count.
        routes: The application's routes, to name the route of a request that
            ended before routing (a 413, a client gone mid-body).
    """

    def __init__(
        self, app: ASGIApp, metrics: HubMetrics, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status: list[int | None] = [None]
        gone = [False]

        async def receiving() -> MutableMapping[str, Any]:
            message = await receive()
            if message["type"] == "http.disconnect" and status[0] is None:
                gone[0] = True
            return message

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and status[0] is None:
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            if gone[0]:
                answered = scope.get("state", {}).get(ANSWERED_KEY)
                counted = answered or CLIENT_CLOSED
            else:
                counted = status[0] or 500
            self.metrics.observe_request(
                scope["method"],
                self._route(scope),
                counted,
                time.perf_counter() - began,
            )

    def _route(self, scope: MutableMapping[str, Any]) -> str:
        path = getattr(scope.get("route"), "path", None)
        if path is None:
            for route in self.routes:
                if route.matches(scope)[0] is Match.FULL:
                    return str(getattr(route, "path", "unmatched"))
        return path or "unmatched"


class BodyLimit:
    """Answers 413 to a body over the limit before it is read whole: at once when
    ``Content-Length`` says so, else as soon as the chunks received pass it."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, int], default: int) -> None:
        self.app = app
        self.limits = dict(limits)
        self.default = default

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, b'{"error":"bad Content-Length"}')
                return
            if int(declared) > limit:
                await _too_large(send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Any, limit: int) -> None:
    await _reply(
        send, 413, b'{"error":"the body is over the limit of %d bytes"}' % limit
    )


async def _reply(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
