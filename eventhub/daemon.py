"""``eventhub run``: the long-running daemon.

Start-up: read the config, set up logging, build the hub (plugins, integrations,
workflows), start the scheduler and the delivery workers, then the HTTP server if
``[server]`` is configured (webhooks and the API), log one line with versions
and settings (secrets as their references), then tell systemd ``READY=1`` when
``NOTIFY_SOCKET`` is set.

Shutdown on SIGTERM or SIGINT: ``STOPPING=1``; the HTTP server stops taking
requests (those in flight finish); the scheduler stops (no new runs);
delivery workers stop taking events and in-flight handlers get
``daemon.shutdown_timeout`` seconds (20) to finish. Deliveries not finished stay
unacknowledged and are redelivered at the next start. Exit status 0. A second signal
exits at once (128 + the signal number).
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

import structlog

from . import __version__
from . import log as eventhub_log
from .config import Config
from .errors import ConfigError, MissingDependency
from .hub import Hub

if TYPE_CHECKING:
    from .server import HTTPServer

log = structlog.get_logger("eventhub.daemon")


def check(config: Config) -> str:
    """Build the hub as the daemon would, then close it. Returns a summary line.

    Raises:
        ConfigError: for anything wrong in the config, plugins, integrations or
            workflow modules.
    """
    with Hub.from_config(config) as hub:
        workflows = hub.workflows()
        integrations = hub.get_integrations()
        server = make_server(config, hub)
        served = (
            f", HTTP on {server.settings.host}:{server.settings.port}" if server else ""
        )
        return (
            f"config OK: {len(workflows)} workflow{'s' * (len(workflows) != 1)}, "
            f"{len(integrations)} integration{'s' * (len(integrations) != 1)}, "
            f"state database {hub.path}{served}"
        )


def make_server(config: Config, hub: Hub) -> HTTPServer | None:
    """The HTTP server ``[server]`` asks for (not started), or None.

    Raises:
        ConfigError: for bad ``[server]``/``[webhooks]`` settings, or webhooks
            configured without a server.
        MissingDependency: if the ``server`` extra is not installed.
    """
    sections = config.sections
    if "server" not in sections:
        if sections.get("webhooks"):
            raise ConfigError(
                "webhooks are received by the HTTP server: add a [server] section"
            )
        return None
    try:
        from .server import HTTPServer, ServerSettings
    except ImportError as exc:
        raise MissingDependency(exc.name or "fastapi", "server") from None
    settings = ServerSettings.from_section(sections["server"])
    return HTTPServer(hub, settings)


def run(config: Config) -> int:
    """Run the daemon until SIGTERM or SIGINT. Returns the exit status."""
    eventhub_log.configure(json=config.log_json, level=config.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # a second signal: no more waiting
        stop.set()

    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    server: HTTPServer | None = None
    try:
        hub = Hub.from_config(config)
        try:
            server = make_server(config, hub)
        except BaseException:
            hub.close()
            raise
        hub.start(run_scheduler=config.run_scheduler)
        if server is not None:
            try:
                server.start()
            except BaseException:
                hub.stop(timeout=config.shutdown_timeout)
                hub.close()
                raise
        log.info(
            "eventhub started",
            version=__version__,
            python=platform.python_version(),
            sqlite=sqlite3.sqlite_version,
            pid=os.getpid(),
            config=str(config.path),
            db=hub.path,
            workflows=sorted(hub.workflows()),
            integrations=sorted(hub.get_integrations()),
            subscriptions=[
                s.name for s in hub.bus.subscriptions() if s.mode == "durable"
            ],
            settings=config.written,
            http=[f"{h}:{p}" for h, p in server.addresses] if server else None,
        )
        notify("READY=1")
        while not stop.wait(1.0):
            pass
        notify("STOPPING=1")
        log.info("eventhub stopping", deadline=config.shutdown_timeout)
        if server is not None:
            server.stop()  # no new intake; what was acknowledged is in the log
        finished = hub.stop(timeout=config.shutdown_timeout)
        if finished:
            hub.close()
            log.info("eventhub stopped")
        else:
            # Handlers still running: their deliveries stay unacknowledged and are
            # redelivered at the next start. Leave their connections alone.
            log.warning("handlers still running at the deadline; exiting anyway")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def notify(message: str) -> None:
    """Send a systemd notification (``READY=1``, ``STOPPING=1``) if asked to."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("systemd notification failed", message=message, error=str(exc))
