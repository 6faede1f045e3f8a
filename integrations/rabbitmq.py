"""``rabbitmq``: AMQP 0-9-1 queues and exchanges in and out of the bus (pika).

::

    [integrations.rabbit]
    kind = "rabbitmq"
    url = { env = "AMQP_URL" }             # amqp://user:password@host:5672/vhost
    consume = [{ queue = "orders", type = "order.created" }]
    publish = [{ pattern = "invoice.*", exchange = "billing", routing_key = "{type}" }]

**Inbound.** A thread per consumed queue, on a connection of its own, takes
messages with a prefetch window (``batch_size``), publishes what has arrived as
events in one transaction of the log, and only then acknowledges them to the broker
(``basic_ack`` with ``multiple``). A crash before the acknowledgement makes the
broker deliver them again; the event's id is the AMQP ``message_id`` (or the body's
``id_field``), so a redelivery is one event (the log deduplicates on source and
id). Bodies whose ``content_type`` is JSON (or absent) become the event's data;
other bodies are kept as they are (binary data with their content type).

A message that cannot become an event (a JSON content type with a body that is not
JSON, a body over ``max_bytes``, an invalid id) is never dropped nor requeued hot:
with ``dead_letters = "broker"`` it is rejected (``requeue=false``) to the queue's
dead-letter exchange, which the queue must have; by default (``"eventhub"``) it is
kept in the log as a ``message.rejected`` event (the body as binary data, the
reason, the queue) and acknowledged. A body too large for the log keeps its first
``max_bytes`` there, with its size and SHA-256: use a dead-letter exchange to keep
such messages whole.

**Outbound.** A durable subscription (``integration.<name>``) to the ``publish``
patterns publishes each matching event as a persistent message (CloudEvents
structured JSON, ``message_id`` the event's id) with publisher confirms and
``mandatory``: the event is acknowledged only once the broker has confirmed it;
a message the broker cannot route, or a connection lost, makes the delivery fail
and be retried with the subscription's backoff. ``routing_key`` may name the
event's ``{type}``, ``{subject}`` and ``{source}``.

Connections are made again with capped exponential backoff. In-app calls as the
seeds had them: ``publish_message(queue, message)`` and
``consume_messages(queue, callback)``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog

from eventhub.errors import (
    ConfigError,
    InvalidEvent,
    MissingDependency,
    TransientError,
)
from eventhub.events import Event
from eventhub.hookspecs import hookimpl
from eventhub.integration import Integration
from eventhub.patterns import TypePattern
from eventhub.redact import redact_text, redact_url, register_secret

from ._queues import MAX_BACKOFF, Rejected, body_field, config_table

__all__ = ["RabbitMQIntegration"]

log = structlog.get_logger(__name__)

REJECTED = "message.rejected"
_FIELDS = re.compile(r"\{(\w+)\}")
_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json\b", re.IGNORECASE)


def _pika() -> Any:
    try:
        import pika
    except ImportError:
        raise MissingDependency("pika", "rabbitmq") from None
    return pika


@dataclass(frozen=True)
class _Consume:
    queue: str
    type: str
    id_field: str | None
    dead_letters: str


@dataclass(frozen=True)
class _Publish:
    pattern: TypePattern
    exchange: str
    routing_key: str


class RabbitMQIntegration(Integration):
    """RabbitMQ queues in, exchanges out (see the module).

    Args:
        url: ``amqp://user:password@host:5672/vhost`` (``amqps://`` for TLS).
        consume: Tables of ``queue`` and ``type``, optionally ``id_field`` (a
            body field used when a message has no ``message_id``) and
            ``dead_letters`` (``"eventhub"``, default, or ``"broker"``).
        publish: Tables of ``pattern``, ``exchange`` (``""``: the default
            exchange) and ``routing_key`` (``{type}``, ``{subject}``,
            ``{source}`` replaced).
        batch_size: The prefetch window: most messages unacknowledged at once,
            published in one transaction of the log.
        max_bytes: Largest message body taken in (default: the bus's largest
            payload).
    """

    kind = "rabbitmq"

    def __init__(
        self,
        *,
        url: str = "",
        consume: Sequence[Mapping[str, Any]] = (),
        publish: Sequence[Mapping[str, Any]] = (),
        batch_size: int = 100,
        max_bytes: int | None = None,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        pika = _pika()
        where = "rabbitmq integration"
        if not isinstance(url, str) or urlsplit(url).scheme not in ("amqp", "amqps"):
            raise ConfigError(
                f"{where}: url must be amqp:// or amqps:// (got"
                f" {redact_url(str(url))!r})"
            )
        register_secret(urlsplit(url).password)
        try:
            self.parameters = pika.URLParameters(url)
        except Exception as exc:
            raise ConfigError(f"{where}: url: {redact_text(str(exc))}") from None
        self.parameters.heartbeat = 30
        self.parameters.blocked_connection_timeout = 60
        self.consume = [_consume_entry(where, i, e) for i, e in enumerate(consume)]
        self.publish = [_publish_entry(where, i, e) for i, e in enumerate(publish)]
        self.handle_events = [
            p for entry in self.publish for p in entry.pattern.patterns
        ]
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not (1 <= batch_size <= 10_000)
        ):
            raise ConfigError(f"{where}: batch_size must be between 1 and 10000")
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self._pika = pika
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()  # a publishing channel per thread
        self._publishers: list[Any] = []
        self._lock = threading.Lock()

    # Lifecycle --------------------------------------------------------------------

    def start(self, hub: Any) -> None:
        super().start(hub)
        if self.max_bytes is None:
            self.max_bytes = hub.bus.max_data_bytes
        self._stopping.clear()
        for entry in self.consume:
            thread = threading.Thread(
                target=self._consume_loop,
                args=(entry,),
                name=f"eventhub-rabbitmq-{self.name}-{entry.queue}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(15)
        self._threads.clear()
        with self._lock:
            publishers, self._publishers = self._publishers, []
        for connection in publishers:
            _close_quietly(connection)

    def _connect(self) -> Any:
        return self._pika.BlockingConnection(self.parameters)

    # Inbound ----------------------------------------------------------------------

    def _consume_loop(self, entry: _Consume) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            connection = None
            try:
                connection = self._connect()
                channel = connection.channel()
                channel.basic_qos(prefetch_count=self.batch_size)
                backoff = 0.1
                self._consume(entry, channel)
            except self._pika.exceptions.AMQPError as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "rabbitmq unreachable; retrying",
                    integration=self.name,
                    queue=entry.queue,
                    error=redact_text(repr(exc)),
                    retry_in=backoff,
                )
            except Exception as exc:  # the bus refused (a full disk, say)
                log.error(
                    "inbound messages not taken; retrying",
                    integration=self.name,
                    queue=entry.queue,
                    error=redact_text(str(exc)),
                    retry_in=backoff,
                )
            finally:
                if connection is not None:
                    _close_quietly(connection)  # unacknowledged: delivered again
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _consume(self, entry: _Consume, channel: Any) -> None:
        """Take messages until told to stop: a batch is published and
        acknowledged when it is full, or when no message came for 50 ms."""
        batch: list[tuple[Any, Any, bytes]] = []
        for method, properties, body in channel.consume(
            entry.queue, inactivity_timeout=0.05
        ):
            if method is not None:
                batch.append((method, properties, body))
                if len(batch) < self.batch_size:
                    continue
            if batch:
                self._take(entry, channel, batch)
                batch = []
            if self._stopping.is_set():
                break
        channel.cancel()

    def _take(
        self, entry: _Consume, channel: Any, batch: list[tuple[Any, Any, bytes]]
    ) -> None:
        """Publish the events of ``batch`` in one transaction, then acknowledge
        the whole batch; the messages that cannot be events are rejected or kept
        as ``message.rejected`` events (see the module)."""
        assert self.hub is not None
        events: list[Event] = []
        to_broker: list[int] = []
        for method, properties, body in batch:
            try:
                events.append(self._event_of(entry, properties, body))
            except Rejected as exc:
                log.warning(
                    "message rejected",
                    integration=self.name,
                    queue=entry.queue,
                    reason=str(exc),
                    to=entry.dead_letters,
                )
                if entry.dead_letters == "broker":
                    to_broker.append(method.delivery_tag)
                else:
                    events.append(
                        self._rejected_event(entry, properties, body, str(exc))
                    )
        if events:
            self.hub.bus.publish_many(events)
        for tag in to_broker:
            channel.basic_reject(tag, requeue=False)
        last = batch[-1][0].delivery_tag
        if to_broker and len(to_broker) == len(batch):
            return
        # Every message of the batch is now an event, or rejected; acknowledging
        # the last acknowledges all before it (rejected ones are settled already).
        channel.basic_ack(last, multiple=True)

    def _event_of(self, entry: _Consume, properties: Any, body: bytes) -> Event:
        assert self.hub is not None and self.max_bytes is not None
        if len(body) > self.max_bytes:
            raise Rejected(f"larger than max_bytes ({len(body)} > {self.max_bytes})")
        content_type = properties.content_type
        data: Any
        if content_type is None or _JSON_TYPE.match(content_type):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Rejected(f"not JSON ({exc})") from None
            content_type = "application/json"
        else:
            data = bytes(body)
        ident = properties.message_id or body_field(data, entry.id_field)
        spec: dict[str, Any] = {
            "type": entry.type,
            "data": data,
            "source": f"{self.name}/{entry.queue}",
            "id": ident,
        }
        if content_type != "application/json":
            spec["datacontenttype"] = content_type
        try:
            return self.hub.bus.prepare(spec)
        except InvalidEvent as exc:
            raise Rejected(f"not an event: {exc}") from None

    def _rejected_event(
        self, entry: _Consume, properties: Any, body: bytes, reason: str
    ) -> Event:
        assert self.hub is not None and self.max_bytes is not None
        kept = body[: max(0, self.max_bytes - 1024)]
        return self.hub.bus.prepare(
            {
                "type": REJECTED,
                "data": bytes(kept),
                "source": f"{self.name}/{entry.queue}",
                "datacontenttype": properties.content_type
                or "application/octet-stream",
                "extensions": {
                    "reason": reason[:500],
                    "bodysize": len(body),
                    "bodysha256": hashlib.sha256(body).hexdigest(),
                    "truncated": len(kept) < len(body),
                },
            }
        )

    # Outbound ---------------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        body = event.to_json()
        for entry in self.publish:
            if entry.pattern.matches(event.type):
                self._publish(
                    entry.exchange,
                    _routing_key(entry.routing_key, event),
                    body,
                    event.id,
                )

    def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str | None,
        content_type: str = "application/cloudevents+json",
    ) -> None:
        pika = self._pika
        properties = pika.BasicProperties(
            delivery_mode=2,  # persistent
            content_type=content_type,
            message_id=message_id,
        )
        try:
            channel = self._channel()
            channel.basic_publish(
                exchange, routing_key, body, properties, mandatory=True
            )
        except pika.exceptions.UnroutableError:
            raise TransientError(
                f"rabbitmq {self.name!r}: the broker could not route a message to"
                f" exchange {exchange!r} with routing key {routing_key!r}"
            ) from None
        except pika.exceptions.NackError:
            raise TransientError(
                f"rabbitmq {self.name!r}: the broker refused a message"
                f" (exchange {exchange!r})"
            ) from None
        except pika.exceptions.AMQPError as exc:
            self._drop_channel()
            raise TransientError(
                f"rabbitmq {self.name!r}: cannot publish: {redact_text(repr(exc))}"
            ) from None

    def _channel(self) -> Any:
        """This thread's confirming channel, made (again) when needed."""
        channel = getattr(self._local, "channel", None)
        if channel is not None and channel.is_open:
            return channel
        self._drop_channel()
        connection = self._connect()
        with self._lock:
            self._publishers.append(connection)
        channel = connection.channel()
        channel.confirm_delivery()
        self._local.connection, self._local.channel = connection, channel
        return channel

    def _drop_channel(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = self._local.channel = None
        if connection is not None:
            with self._lock:
                if connection in self._publishers:
                    self._publishers.remove(connection)
            _close_quietly(connection)

    # In-app calls -----------------------------------------------------------------

    def publish_message(self, queue: str, message: Any) -> None:
        """Publish ``message`` (JSON-serialisable, or bytes) to ``queue`` through
        the default exchange, persistent, once the broker has confirmed it.

        Raises:
            TransientError: the broker could not be reached or route it.
        """
        if isinstance(message, bytes):
            body, content_type = message, "application/octet-stream"
        else:
            body, content_type = orjson.dumps(message), "application/json"
        self._publish("", queue, body, None, content_type)

    def consume_messages(
        self,
        queue: str,
        callback: Callable[[Any], Any],
        *,
        max_messages: int | None = None,
        timeout: float = 1.0,
    ) -> int:
        """Call ``callback`` with each message of ``queue`` (decoded JSON, else
        the bytes), acknowledging it after the callback returns, until
        ``max_messages`` or ``timeout`` seconds without a message. A callback
        that raises leaves its message to the broker (requeued) and the error
        propagates. Returns the messages handled."""
        connection = self._connect()
        handled = 0
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1)
            for method, _properties, body in channel.consume(
                queue, inactivity_timeout=timeout
            ):
                if method is None:
                    break
                try:
                    message: Any = orjson.loads(body)
                except orjson.JSONDecodeError:
                    message = bytes(body)
                try:
                    callback(message)
                except BaseException:
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    raise
                channel.basic_ack(method.delivery_tag)
                handled += 1
                if max_messages is not None and handled >= max_messages:
                    break
            channel.cancel()
        finally:
            _close_quietly(connection)
        return handled


def _routing_key(template: str, event: Event) -> str:
    values = {
        "type": event.type,
        "subject": event.subject or "",
        "source": event.source,
    }
    return _FIELDS.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # closing a broken connection: nothing left to do
        pass


def _consume_entry(where: str, index: int, entry: Any) -> _Consume:
    table = config_table(
        where, "consume", index, entry, ("queue", "type"), ("id_field", "dead_letters")
    )
    dead = table.get("dead_letters", "eventhub")
    if dead not in ("eventhub", "broker"):
        raise ConfigError(
            f"{where}: consume[{index}].dead_letters must be 'eventhub' or 'broker'"
        )
    return _Consume(table["queue"], table["type"], table.get("id_field"), dead)


def _publish_entry(where: str, index: int, entry: Any) -> _Publish:
    table = config_table(
        where, "publish", index, entry, ("pattern",), ("exchange", "routing_key")
    )
    exchange = table.get("exchange", "")
    key = table.get("routing_key", "{type}")
    if not isinstance(exchange, str) or not isinstance(key, str):
        raise ConfigError(
            f"{where}: publish[{index}]: exchange and routing_key must be strings"
        )
    unknown_fields = set(_FIELDS.findall(key)) - {"type", "subject", "source"}
    if unknown_fields:
        raise ConfigError(
            f"{where}: publish[{index}].routing_key may name {{type}}, {{subject}}"
            f" and {{source}}, not {', '.join(sorted(unknown_fields))}"
        )
    return _Publish(TypePattern(entry["pattern"]), exchange, key)


@hookimpl
def register_integrations(register: Any) -> None:
    register(RabbitMQIntegration)
