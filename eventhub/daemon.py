"""``eventhub run``: the long-running daemon.

Start-up: read the config, set up logging, build the hub (plugins, integrations,
workflows), start the scheduler and the delivery workers, log one line with versions
and settings (secrets as their references), then tell systemd ``READY=1`` when
``NOTIFY_SOCKET`` is set.

Shutdown on SIGTERM or SIGINT: ``STOPPING=1``; the scheduler stops (no new runs);
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
from typing import Any

import structlog

from . import __version__
from . import log as eventhub_log
from .config import Config
from .hub import Hub

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
        return (
            f"config OK: {len(workflows)} workflow{'s' * (len(workflows) != 1)}, "
            f"{len(integrations)} integration{'s' * (len(integrations) != 1)}, "
            f"state database {hub.path}"
        )


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
    try:
        hub = Hub.from_config(config)
        hub.start(run_scheduler=config.run_scheduler)
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
        )
        notify("READY=1")
        while not stop.wait(1.0):
            pass
        notify("STOPPING=1")
        log.info("eventhub stopping", deadline=config.shutdown_timeout)
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
