"""``redis_queue``: Redis lists as queues, in both directions (redis-py).

::

    [integrations.jobs]
    kind = "redis_queue"
    url = { env = "REDIS_URL" }
    consume = [{ list = "jobs", type = "job.requested" }]
    publish = [{ pattern = "job.done", list = "results" }]

**Inbound, the reliable-queue pattern.** Producers ``LPUSH`` JSON onto the list; a
thread per consumed list takes the oldest item with ``BLMOVE list processing RIGHT
LEFT``, which moves it atomically into a processing list of this integration
(``<list>:processing:<consumer>``), publishes it as an event, and only once the
event is durable in the log removes it from the processing list (``LREM``). A crash
at any point leaves the item in one of the two lists: at start, whatever the
processing list holds is moved back to the consuming end of the list, oldest
first, and read again. Messages are taken in batches (up to ``batch_size``, one
round trip) and published in one transaction of the log. The event's id is the
message's ``id`` field (``id_field``) when it has one, so a message read again
after a crash is one event (the log deduplicates on source and id); without one, a
crash can repeat the messages in flight (one batch per consumed list), never lose
one.

A message that cannot become an event (not JSON, larger than ``max_bytes``) is
moved to the list's dead-letter list (``<list>:dead`` by default), with a warning
in the log: never dropped, never put back to be read again at once.

**Outbound.** A durable subscription (``integration.<name>``) to the ``publish``
patterns ``LPUSH``-es each matching event, as CloudEvents structured JSON, onto its
list; the event is acknowledged once Redis has answered, and retried with the
subscription's backoff while Redis cannot be reached.

**In-app calls**, as the seeds had them: ``enqueue(queue, message)`` and
``dequeue(queue, timeout)``.

Inbound events have ``source = "<integration name>/<list>"`` and the decoded JSON as
``data``. Connection errors are retried with capped exponential backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
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

__all__ = ["RedisQueueIntegration"]

log = structlog.get_logger(__name__)


def _redis() -> Any:
    try:
        import redis
    except ImportError:
        raise MissingDependency("redis", "redis") from None
    return redis


@dataclass(frozen=True)
class _Consume:
    list: str
    type: str
    id_field: str | None
    subject_field: str | None


@dataclass(frozen=True)
class _Publish:
    pattern: TypePattern
    list: str


class RedisQueueIntegration(Integration):
    """Redis lists in and out of the bus (see the module).

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://`` for TLS, or
            ``unix:///path``.
        consume: Tables of ``list`` and ``type`` (and optionally ``id_field``,
            default ``"id"``, and ``subject_field``): each list's messages become
            events of that type.
        publish: Tables of ``pattern`` and ``list``: events whose type matches are
            pushed onto the list.
        consumer: Names this consumer's processing lists (default: the
            integration's name). Daemons sharing a name share them: one that
            starts re-reads what another had in flight (ids keep that harmless).
        dead_letter_suffix: Appended to a list's name for its dead letters.
        max_bytes: Largest message taken in (default: the bus's largest
            payload).
        block_timeout: Seconds a ``BLMOVE`` waits before the consumer checks
            whether it should stop.
        batch_size: Most messages taken at once: published in one transaction
            of the log and acknowledged together (the in-flight window a crash
            can repeat).
    """

    kind = "redis_queue"

    def __init__(
        self,
        *,
        url: str = "",
        consume: Sequence[Mapping[str, Any]] = (),
        publish: Sequence[Mapping[str, Any]] = (),
        consumer: str | None = None,
        dead_letter_suffix: str = ":dead",
        max_bytes: int | None = None,
        block_timeout: float = 1.0,
        batch_size: int = 100,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        redis = _redis()
        where = "redis_queue integration"
        if not isinstance(url, str) or urlsplit(url).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            raise ConfigError(
                f"{where}: url must be redis://, rediss:// or unix:// (got"
                f" {redact_url(str(url))!r})"
            )
        register_secret(urlsplit(url).password)
        self.consume = [_consume_entry(where, i, e) for i, e in enumerate(consume)]
        self.publish = [_publish_entry(where, i, e) for i, e in enumerate(publish)]
        self.handle_events = [
            p for entry in self.publish for p in entry.pattern.patterns
        ]
        if not isinstance(block_timeout, int | float) or not 0 < block_timeout <= 60:
            raise ConfigError(f"{where}: block_timeout must be seconds, up to 60")
        self.block_timeout = float(block_timeout)
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not (1 <= batch_size <= 10_000)
        ):
            raise ConfigError(f"{where}: batch_size must be between 1 and 10000")
        self.batch_size = batch_size
        self.consumer = consumer
        self.dead_letter_suffix = dead_letter_suffix
        self.max_bytes = max_bytes
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=5,
            socket_timeout=self.block_timeout + 10,
            health_check_interval=30,
        )
        self._redis = redis
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

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
                name=f"eventhub-redis-{self.name}-{entry.list}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.block_timeout + 15)
        self._threads.clear()
        self.client.close()

    def processing_list(self, name: str) -> str:
        """Where this consumer keeps the messages of ``name`` it is handling."""
        return f"{name}:processing:{self.consumer or self.name}"

    # Inbound ----------------------------------------------------------------------

    def _consume_loop(self, entry: _Consume) -> None:
        processing = self.processing_list(entry.list)
        backoff = 0.1
        recovered = False
        while not self._stopping.is_set():
            try:
                if not recovered:
                    self._recover(entry.list, processing)
                    recovered = True
                raw = self.client.blmove(
                    entry.list, processing, self.block_timeout, "RIGHT", "LEFT"
                )
                if raw is not None:
                    self._take(entry, processing, raw)
                backoff = 0.1
            except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
                log.warning(
                    "redis unreachable; retrying",
                    integration=self.name,
                    list=entry.list,
                    error=redact_text(str(exc)),
                    retry_in=backoff,
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as exc:  # the bus refused it (a full disk, say)
                log.error(
                    "inbound message not taken; retrying",
                    integration=self.name,
                    list=entry.list,
                    error=redact_text(str(exc)),
                    retry_in=backoff,
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                recovered = False  # the message waits in processing: put it back

    def _recover(self, name: str, processing: str) -> None:
        """Put back what a previous run left in ``processing``, oldest first to the
        consuming end."""
        moved = 0
        while self.client.lmove(processing, name, "LEFT", "RIGHT") is not None:
            moved += 1
        if moved:
            log.info(
                "messages left in flight put back",
                integration=self.name,
                list=name,
                count=moved,
            )

    def _take(self, entry: _Consume, processing: str, first: bytes) -> None:
        """Publish ``first`` and up to ``batch_size - 1`` more messages as events in
        one transaction of the log, then acknowledge them (``LREM``); move the
        ones that cannot be events to the dead-letter list."""
        assert self.hub is not None and self.max_bytes is not None
        raws = [first]
        if self.batch_size > 1:
            with self.client.pipeline(transaction=False) as pipe:
                for _ in range(self.batch_size - 1):
                    pipe.lmove(entry.list, processing, "RIGHT", "LEFT")
                raws += [raw for raw in pipe.execute() if raw is not None]
        taken: list[tuple[bytes, Event]] = []
        dead: list[tuple[bytes, str]] = []
        for raw in raws:
            try:
                taken.append((raw, self._event_of(entry, raw)))
            except Rejected as exc:
                dead.append((raw, str(exc)))
        if taken:
            self.hub.bus.publish_many([event for _, event in taken])
        dead_list = entry.list + self.dead_letter_suffix
        with self.client.pipeline(transaction=True) as pipe:
            for raw, _ in dead:
                pipe.lpush(dead_list, raw)
            for raw in [raw for raw, _ in dead] + [raw for raw, _ in taken]:
                pipe.lrem(processing, 1, raw)  # acknowledged: the event is durable
            pipe.execute()
        for _, problem in dead:
            log.warning(
                "message moved to the dead-letter list",
                integration=self.name,
                list=entry.list,
                dead_letters=dead_list,
                reason=problem,
            )

    def _event_of(self, entry: _Consume, raw: bytes) -> Event:
        assert self.hub is not None and self.max_bytes is not None
        if len(raw) > self.max_bytes:
            raise Rejected(f"larger than max_bytes ({len(raw)} > {self.max_bytes})")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejected(f"not JSON ({exc})") from None
        ident = body_field(data, entry.id_field)
        subject = body_field(data, entry.subject_field)
        try:
            return self.hub.bus.prepare(
                {
                    "type": entry.type,
                    "data": data,
                    "source": f"{self.name}/{entry.list}",
                    "id": ident,
                    "subject": subject,
                }
            )
        except InvalidEvent as exc:
            raise Rejected(f"not an event: {exc}") from None

    # Outbound ---------------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        body = event.to_json()
        for entry in self.publish:
            if entry.pattern.matches(event.type):
                try:
                    self.client.lpush(entry.list, body)
                except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
                    raise TransientError(
                        f"redis_queue {self.name!r}: cannot push to {entry.list!r}:"
                        f" {redact_text(str(exc))}"
                    ) from None

    # In-app calls -----------------------------------------------------------------

    def enqueue(self, queue: str, message: Any) -> int:
        """Push ``message`` (JSON-serialisable, or bytes/str as they are) onto the
        list ``queue``; the list's length after."""
        raw = message if isinstance(message, bytes | str) else orjson.dumps(message)
        return int(self.client.lpush(queue, raw))

    def dequeue(self, queue: str, timeout: float = 1.0) -> Any:
        """The oldest message of ``queue`` (decoded JSON, else the raw bytes),
        waiting up to ``timeout`` seconds (0: do not wait); None when there is
        none. (No processing list: a message dequeued is the caller's.)"""
        if timeout <= 0:
            raw = self.client.rpop(queue)
        else:
            popped = self.client.brpop([queue], timeout=timeout)
            raw = popped[1] if popped else None
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw


def _consume_entry(where: str, index: int, entry: Any) -> _Consume:
    table = config_table(
        where, "consume", index, entry, ("list", "type"), ("id_field", "subject_field")
    )
    return _Consume(
        table["list"],
        table["type"],
        table.get("id_field", "id"),
        table.get("subject_field"),
    )


def _publish_entry(where: str, index: int, entry: Any) -> _Publish:
    table = config_table(where, "publish", index, entry, ("pattern", "list"))
    return _Publish(TypePattern(table["pattern"]), table["list"])


@hookimpl
def register_integrations(register: Any) -> None:
    register(RedisQueueIntegration)
