"""The HTTP/1.1 protocol of the daemon's server: uvicorn's, with limits it lacks.

uvicorn reads requests with ``httptools`` and has a keep-alive timeout, but no
bound on how long a request's headers or body may take to arrive, nor on their
size, nor on the connections it accepts: a client sending a byte at a time, a
64 MiB header or a thousand idle connections stalls the server without any
credentials. :class:`LimitedHttpToolsProtocol` is uvicorn's ``HttpToolsProtocol``
(``uvicorn.Config(http=...)``) with:

* ``header_timeout``: the request line and headers must arrive within it, counted
  from the connection (or, on a kept-alive connection, the request's first byte);
  else 408 and the connection is closed (an idle connection is closed silently).
* ``body_timeout``: the whole body must arrive within it of the headers; else 408
  and the connection is closed (the application sees the client go away).
* ``max_header_bytes``: a request line and headers over it are answered 431 and
  the connection closed, cut off before more than one further read is buffered.
* ``max_connections``: a connection beyond it is answered 503 and closed at once,
  so that open descriptors stay below the process's limit.
* ``keep_alive_timeout``: uvicorn's, as a number of seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson
import structlog

from ..errors import MissingDependency
from .middleware import ANSWERED_KEY

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError as exc:  # httptools comes with uvicorn[standard]
    raise MissingDependency("httptools", "server") from exc

log = structlog.get_logger(__name__)

#: Seconds a refused connection is kept half-open for its client to read the answer.
LINGER = 2.0


class RefusalCounter(Protocol):
    """Counts the connections cut by the protocol, by reason: ``header_timeout``,
    ``body_timeout``, ``headers_too_large``, ``too_many_connections``."""

    def connection_refused(self, reason: str) -> None: ...


@dataclass(frozen=True)
class ConnectionLimits:
    """What a connection may take: seconds and bytes (see the module docs)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 1024
    keep_alive_timeout: float = 5.0


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol with the limits of :class:`ConnectionLimits`.

    Use :meth:`configured` for the class to give ``uvicorn.Config(http=...)``.
    """

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    #: Told the reason of every connection the protocol cuts (the metrics).
    counter: ClassVar[RefusalCounter | None] = None

    @classmethod
    def configured(
        cls, limits: ConnectionLimits, counter: RefusalCounter | None = None
    ) -> type[LimitedHttpToolsProtocol]:
        """A subclass with these limits (uvicorn makes one instance per
        connection, with its own arguments only)."""
        return type(cls.__name__, (cls,), {"limits": limits, "counter": counter})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # reading a request line and headers
        self._in_body = False  # between the headers and the end of the body
        self._raw_header_bytes = 0  # bytes received while awaiting headers
        self._refused = False

    # Connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                "too_many_connections",
                503,
                "the server has too many connections; try again later",
                retry_after=1,
            )
            return
        self._arm(self.limits.header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            self._raw_header_bytes += len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._awaiting_headers:
            if self._raw_header_bytes > self.limits.max_header_bytes:
                self._headers_too_large()
            elif self._raw_header_bytes and self._timer is None:
                # Part of a request has come (not just the end of the last one).
                self._arm(self.limits.header_timeout, self._header_timed_out)
        elif self._in_body and self._timer is None:
            self._arm(self.limits.body_timeout, self._body_timed_out)

    # Parser callbacks -------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self._refused:
            return  # the rest of a read after a refusal is parsed and ignored
        self._awaiting_headers = False
        if self._raw_header_bytes > self.limits.max_header_bytes:
            # Over the limit in all that was read: measure the headers themselves.
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.limits.max_header_bytes:
                self._headers_too_large()
                return
        self._raw_header_bytes = 0
        self._disarm()
        self._in_body = True
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_body = False
        self._awaiting_headers = True
        self._raw_header_bytes = 0
        self._disarm()
        super().on_message_complete()

    # Limits -------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timed_out(self) -> None:
        self._timer = None
        if not self._raw_header_bytes:
            # Connected and never sent a byte: nobody to answer.
            self._refuse("header_timeout", None, "")
            return
        self._refuse(
            "header_timeout",
            408,
            f"the request headers did not arrive within "
            f"{self.limits.header_timeout:g} s (server.header_timeout)",
        )

    def _body_timed_out(self) -> None:
        self._timer = None
        self._refuse(
            "body_timeout",
            408,
            f"the request body did not arrive within "
            f"{self.limits.body_timeout:g} s (server.body_timeout)",
        )

    def _headers_too_large(self) -> None:
        self._refuse(
            "headers_too_large",
            431,
            f"the request line and headers are over the limit of "
            f"{self.limits.max_header_bytes} bytes (server.max_header_bytes)",
        )

    def _refuse(
        self,
        reason: str,
        status: int | None,
        message: str,
        retry_after: int | None = None,
    ) -> None:
        """Answer ``status`` (unless the request was answered already, or an
        earlier one is still being answered), stop parsing, close the connection."""
        self._refused = True
        self._disarm()
        self._count(reason)
        cycle = self.cycle  # the request in its body, else the one before
        busy = cycle is not None and not cycle.response_complete
        if self._in_body:  # answered already (a GET not reading its body)?
            write = status is not None and not (cycle and cycle.response_started)
        else:  # an earlier request still being answered: just close
            write = status is not None and not busy
        if cycle is not None and busy:
            # The application, if it waits for the body, sees the client go away;
            # whatever it sends now is dropped.
            if write and self._in_body:
                cycle.scope["state"][ANSWERED_KEY] = status
            cycle.disconnected = True
            cycle.message_event.set()
        if write and status is not None:
            self.transport.write(_response(status, message, retry_after))
            within = len(self.connections) <= self.limits.max_connections
            if within and self.transport.can_write_eof():
                # Lingering close: closing with unread bytes would reset the
                # connection, and the client might never see the answer. Say no
                # more, read and drop what it still sends, close when it does
                # (eof_received) or after LINGER seconds. Not for a connection
                # past the limit: its descriptor is given back at once.
                self.transport.write_eof()
                self._arm(LINGER, self.transport.close)
                return
        self.transport.close()

    def _count(self, reason: str) -> None:
        log.debug("HTTP connection cut", reason=reason, client=self.client)
        if self.counter is not None:
            self.counter.connection_refused(reason)


def _response(status: int, message: str, retry_after: int | None) -> bytes:
    from http import HTTPStatus

    body = orjson.dumps({"error": message})
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
