"""Intake: appends from an asyncio server, one transaction per turn of the loop.

Every webhook delivery must be durable before it is answered. Handing each one to
a thread pool costs a thread hop and a transaction per request, and a writer thread
fights the event loop for the GIL at every SQLite call. Instead a delivery's events
are queued and the request awaits a future; the first delivery of a turn schedules
a flush with ``loop.call_soon``, so every delivery the loop reads in that turn is
appended in the same transaction (one fsync), and their futures are resolved. The
busier the server, the larger the batches.

The loop is blocked while a batch commits (well under a millisecond on a local
SSD at ``synchronous=FULL``); requests arriving meanwhile wait in the socket
buffers and join the next batch.

A delivery whose events are invalid fails alone: events are built and checked one
delivery at a time before the batch is appended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from starlette.datastructures import Headers

from .bus import EventBus
from .errors import InvalidEvent
from .events import Event
from .signatures import SignatureError
from .webhooks import BadDelivery, WebhookReceiver, WebhookRequest

log = structlog.get_logger("eventhub.intake")

_Item = tuple[Sequence[Mapping[str, Any]], asyncio.Future[list[Event]]]


class IntakeWriter:
    """Batches the deliveries of each event-loop turn into one append.

    Args:
        bus: The bus to publish on (inline subscribers run on the loop's thread).
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> list[Event]:
        """Store one delivery's events durably; returns them once committed.

        Raises:
            InvalidEvent: if one of these events is invalid (none of them stored).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Event]] = loop.create_future()
        pending = self._pending.setdefault(loop, [])
        pending.append((events, future))
        if len(pending) == 1:
            loop.call_soon(self._flush, loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        prepared: list[Event] = []
        slots: list[tuple[asyncio.Future[list[Event]], int, int]] = []
        for events, future in batch:
            try:
                built = [self.bus.prepare(spec) for spec in events]
            except Exception as exc:
                _settle(future, error=exc)
                continue
            slots.append((future, len(prepared), len(built)))
            prepared.extend(built)
        if not slots:
            return
        try:
            stored = self.bus.publish_many(prepared)
        except Exception as exc:
            log.error("intake append failed", deliveries=len(slots), exc_info=exc)
            for future, _start, _count in slots:
                _settle(future, error=exc)
            return
        for future, start, count in slots:
            _settle(future, result=stored[start : start + count])


def _settle(
    future: asyncio.Future[list[Event]],
    *,
    result: list[Event] | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return  # the request was cancelled (the client went away): stored anyway
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a webhook delivery: a status and a JSON body (None for an
    empty body)."""

    status: int
    body: Mapping[str, Any] | None = None

    def encode(self) -> bytes:
        return b"" if self.body is None else orjson.dumps(self.body)


class WebhookIntake:
    """Verified deliveries in, durable events out: the work of
    ``POST /webhooks/{name}``, independent of the web framework.

    Args:
        bus: Where the events go (its clock is the receivers' "now").
        receivers: The configured receivers, by name.
    """

    def __init__(self, bus: EventBus, receivers: Mapping[str, WebhookReceiver]) -> None:
        self.bus = bus
        self.receivers = receivers
        self.writer = IntakeWriter(bus)

    async def answer(
        self, name: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """Check, map and store one delivery; the answer once it is durable."""
        receiver = self.receivers.get(name)
        if receiver is None:
            return Answer(404, {"error": f"no webhook receiver named {name!r}"})
        delivery = WebhookRequest(headers, body, self.bus.clock())
        try:
            receiver.check(delivery)
        except SignatureError as exc:
            log.warning("webhook rejected", receiver=name, reason=exc.reason)
            return Answer(401, {"error": "invalid signature"})
        try:
            intake = receiver.intake(delivery)
        except BadDelivery as exc:
            return Answer(400, {"error": str(exc)})
        stored: list[Event] = []
        if intake.events:
            try:
                stored = await self.writer.publish(intake.events)
            except InvalidEvent as exc:
                if exc.field == "data" and "over the limit" in str(exc):
                    message = f"{exc} (the [bus] max_data_bytes setting)"
                    return Answer(413, {"error": message})
                return Answer(422, {"error": str(exc)})
        if intake.reply is not None:
            return Answer(200, intake.reply)
        if receiver.kind == "slack":
            return Answer(200)  # Slack shows a response body to the user
        return Answer(200, {"stored": [e.id for e in stored]})


class _Template:
    """Stands for the matched route in the ASGI scope (the metrics label)."""

    path = "/webhooks/{name}"


class WebhookRoute:
    """ASGI middleware answering ``POST /webhooks/{name}`` straight from
    :class:`WebhookIntake`: the busiest route skips the framework's routing and
    dependency solving. Everything else goes to ``app``.

    Args:
        app: The application behind it.
        intake: Does the work.
    """

    PREFIX = "/webhooks/"

    def __init__(self, app: Any, intake: WebhookIntake) -> None:
        self.app = app
        self.intake = intake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        name = path[len(self.PREFIX) :]
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(self.PREFIX)
            or not name
            or "/" in name
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        answer = await self.intake.answer(name, Headers(scope=scope), b"".join(chunks))
        scope["route"] = _Template
        content = answer.encode()
        headers = [(b"content-length", str(len(content)).encode())]
        if answer.body is not None:
            headers.append((b"content-type", b"application/json"))
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})
