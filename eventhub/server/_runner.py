"""Running the HTTP server: :class:`HTTPServer` serves the application of
:func:`~eventhub.server.app.create_app` with uvicorn, on threads of the daemon
process: the API bind, a separate bind for ``/health`` and ``/metrics`` if
``[server] metrics_port`` is set, and the read-only local socket beside the state
database (:mod:`eventhub._localapi`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI

from ..errors import ConfigError
from ..webhooks.base import WebhookReceiver
from ._routes import add_operation_routes
from .app import create_app
from .metrics import HubMetrics
from .settings import SIDE_CONNECTIONS, ServerSettings

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["HTTPServer"]

log = structlog.get_logger(__name__)


class HTTPServer:
    """The API (and, if configured, a separate metrics bind) served by uvicorn on
    threads of the daemon process.

    Args:
        hub: The hub to serve.
        settings: The ``[server]`` settings.
        receivers: Webhook receivers (default: from ``hub.config``).
        tcp: Serve the API on ``settings.host``/``port`` (off: the local socket
            alone, for a daemon without ``[server]``).
        local_socket: Also serve the read-only API, without tokens, on the Unix
            socket beside the state database (see :mod:`eventhub._localapi`).
    """

    def __init__(
        self,
        hub: Hub,
        settings: ServerSettings,
        receivers: Mapping[str, WebhookReceiver] | None = None,
        *,
        tcp: bool = True,
        local_socket: bool = False,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.tcp = tcp
        self.metrics = HubMetrics(hub)
        separate = settings.metrics_port is not None
        self.app = create_app(
            hub,
            settings,
            receivers if tcp else {},
            metrics=self.metrics,
            serve_metrics=not separate,
        )
        # (app, host, port, connections it may have open)
        self._binds: list[tuple[Any, str, int, int]] = []
        if tcp:
            limit = settings.connection_limit()
            self._binds.append((self.app, settings.host, settings.port, limit))
        self._local_app: Any = self.app
        if separate:
            ops = FastAPI(title="eventhub operations", openapi_url=None)
            add_operation_routes(ops.router, hub, self.metrics)
            host = settings.metrics_host or settings.host
            port = int(settings.metrics_port or 0)
            if tcp:
                self._binds.append((ops, host, port, SIDE_CONNECTIONS))
            # The local socket keeps answering /health (eventhub._localapi).
            self._local_app = _Operations(ops, self.app)
        self.local_socket = local_socket
        self._local: tuple[socket.socket, Path, int] | None = None
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []
        self.addresses: list[tuple[str, int]] = []

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve; returns once every bind accepts connections.

        Raises:
            ConfigError: if an address cannot be bound (in use, not local...).
        """
        sockets = [_bind(host, port) for _app, host, port, _n in self._binds]
        self.metrics.connect()
        for (app, _host, _port, limit), sock in zip(self._binds, sockets, strict=True):
            self._serve(app, sock, limit, self.settings.access_log)
            self.addresses.append(sock.getsockname()[:2])
        if self.local_socket:
            self._start_local()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline or not all(
                t.is_alive() for t in self._threads
            ):
                self.stop()
                raise ConfigError("the HTTP server did not start")
            time.sleep(0.01)
        if self.addresses:
            log.info(
                "HTTP server listening",
                addresses=[f"{h}:{p}" for h, p in self.addresses],
            )

    def _serve(
        self, app: Any, sock: socket.socket, connections: int, access_log: bool
    ) -> None:
        import uvicorn

        from ._protocol import ConnectionLimits, LimitedHttpToolsProtocol

        settings = self.settings
        limits = ConnectionLimits(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_connections=connections,
            keep_alive_timeout=settings.keep_alive_timeout,
        )
        config = uvicorn.Config(
            app,
            # uvicorn's httptools protocol with timeouts and limits of ours.
            http=LimitedHttpToolsProtocol.configured(limits, self.metrics),
            ws="none",  # no WebSocket routes: upgrades are not offered
            log_config=None,
            access_log=access_log,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="eventhub-http",
            daemon=True,
        )
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def _start_local(self) -> None:
        """The local socket; a daemon that cannot have it (another daemon of the
        database holds it, the path is taken) runs on without it."""
        from .. import _localapi as localapi

        address = localapi.socket_path(self.hub.db.path)
        try:
            sock = localapi.bind_socket(self.hub.db.path)
        except OSError as exc:
            log.warning(
                "local socket not served", path=str(address), error=exc.strerror
            )
            return
        if sock is None:
            log.info("local socket served by another daemon", path=str(address))
            return
        self._local = (sock, address, os.stat(address).st_ino)
        app = localapi.local_only(self._local_app, self.hub.db.identity)
        self._serve(app, sock, SIDE_CONNECTIONS, access_log=False)
        log.info("local socket listening", path=str(address))

    @property
    def url(self) -> str:
        host, port = self.addresses[0]
        return f"http://{host}:{port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests; requests in flight get ``timeout`` seconds."""
        for server in self._servers:
            server.should_exit = True
        for thread in self._threads:
            thread.join(timeout)
        if self._local is not None:
            from .._localapi import remove_socket

            remove_socket(*self._local)
            self._local = None
        self.app.state.appender.close(timeout)
        self.metrics.disconnect()
        self._servers.clear()
        self._threads.clear()


class _Operations:
    """``/health`` and ``/metrics`` from ``ops``, everything else from ``app``."""

    PATHS = ("/health", "/metrics")

    def __init__(self, ops: Any, app: Any) -> None:
        self.ops = ops
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        inner = self.ops if scope.get("path") in self.PATHS else self.app
        await inner(scope, receive, send)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"server: cannot resolve {host!r}: {exc.strerror}") from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"server: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    sock.set_inheritable(True)
    return sock
