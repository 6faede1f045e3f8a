"""The webhook intake: ``POST /webhooks/{name}``, from the raw request to the
answer once its events are durable.

:class:`WebhookIntake` does the work without a web framework: it finds the
receiver, has it verify and map the delivery, stores the events through a
:class:`~eventhub.webhooks.appender.BatchAppender` and says what to answer.
:class:`WebhookRoute` serves it as an ASGI middleware in front of the server's
routing. The answers:

* 404: no receiver of that name; 401: the signature did not verify (nothing is
  parsed); 400: the content cannot become an event (:class:`BadDelivery`);
* 413: an event's data is over ``[bus] max_data_bytes`` (:class:`EventTooLarge`);
  422: another invalid event;
* 503 with ``Retry-After`` (or 500 for a damaged database): the state database
  failed, as the error says (:class:`~eventhub.errors.StorageError`);
* 200 once stored: ``{"stored": [ids]}``, the receiver's reply (Slack's challenge),
  or an empty body for a receiver with ``empty_reply``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from starlette.datastructures import Headers

from ..bus import EventBus
from ..errors import EventTooLarge, InvalidEvent, StorageError, TransientError
from ..events import Event
from .appender import BatchAppender
from .base import BadDelivery, WebhookReceiver, WebhookRequest
from .signatures import SignatureError

log = structlog.get_logger(__name__)

#: Seconds a sender is asked to wait after a 503 that is not the database's.
RETRY_AFTER = TransientError.http_retry_after


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a webhook delivery: a status, a JSON body (None for an
    empty body) and, for a 503, the seconds to wait before trying again."""

    status: int
    body: Mapping[str, Any] | None = None
    retry_after: int | None = None

    def encode(self) -> bytes:
        return b"" if self.body is None else orjson.dumps(self.body)


class WebhookIntake:
    """Verified deliveries in, durable events out: the work of
    ``POST /webhooks/{name}``, independent of the web framework.

    Args:
        bus: Where the events go (its clock is the receivers' "now").
        receivers: The configured receivers, by name.
        writer: Appends the events (default: a :class:`BatchAppender` of its own
            that waits as long as it takes).
    """

    def __init__(
        self,
        bus: EventBus,
        receivers: Mapping[str, WebhookReceiver],
        writer: BatchAppender | None = None,
    ) -> None:
        self.bus = bus
        self.receivers = receivers
        self.writer = writer or BatchAppender(bus)

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
            mapped = receiver.to_events(delivery)
        except BadDelivery as exc:
            return Answer(400, {"error": str(exc)})
        stored: list[Event] = []
        if mapped.events:
            try:
                stored = await self.writer.publish(mapped.events)
            except EventTooLarge as exc:
                message = f"{exc} (the [bus] max_data_bytes setting)"
                return Answer(413, {"error": message})
            except InvalidEvent as exc:
                return Answer(422, {"error": str(exc)})
            except StorageError as exc:
                # Logged by the writer; the sender is not told where the database
                # is: busy, full or failing is 503 with Retry-After, damaged 500.
                return Answer(
                    exc.http_status,
                    {"error": exc.public},
                    retry_after=exc.http_retry_after,
                )
            except TransientError:
                return Answer(
                    503, {"error": "try again later"}, retry_after=RETRY_AFTER
                )
        if mapped.reply is not None:
            return Answer(200, mapped.reply)
        if receiver.empty_reply:
            return Answer(200)
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
        scope["route"] = _Template
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        answer = await self.intake.answer(name, Headers(scope=scope), b"".join(chunks))
        content = answer.encode()
        headers = [(b"content-length", str(len(content)).encode())]
        if answer.body is not None:
            headers.append((b"content-type", b"application/json"))
        if answer.retry_after is not None:
            headers.append((b"retry-after", str(answer.retry_after).encode()))
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})
