"""``eventhub run``: the long-running daemon.

Start-up: read the config, set up logging, check that every secret it refers to
can be read (naming all the missing ones at once), build the hub (plugins,
integrations, workflows), check the state database with SQLite's ``quick_check``
(refusing to start on a damaged one; skipped, with a warning, for a file over
:data:`START_CHECK_MAX_BYTES`), start the scheduler and the delivery workers, then the
HTTP server if ``[server]`` is configured (webhooks and the API), log one line with
versions and settings (secrets as their references), then tell systemd
``READY=1`` when ``NOTIFY_SOCKET`` is set. :func:`check` (``run --check``) goes
through the same steps without starting anything, binds the server's ports for a
moment, and reports every problem it finds.

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

from . import log as eventhub_log
from ._version import __version__
from .config import Config, missing_secrets, resolve_secrets
from .errors import ConfigError, ConfigProblems, MissingDependency, StorageError
from .hub import Hub

if TYPE_CHECKING:
    from .server import HTTPServer, ServerSettings

log = structlog.get_logger(__name__)

#: The largest state database checked page by page at start (the check reads the
#: whole file: about a second per gigabyte when it is in the page cache).
START_CHECK_MAX_BYTES = 1 << 30


def check(config: Config) -> str:
    """Check what ``run`` would start, without starting it: every secret the
    config refers to, plugins, integrations, workflows, the ``[server]`` and
    ``[webhooks]`` settings, and that the server's ports are free. Returns a
    summary line.

    Raises:
        ConfigProblems: listing everything found wrong, not only the first.
    """
    problems = config.missing_secrets()
    summary = ""
    try:
        hub = Hub.from_config(config)
    except ConfigError as exc:
        problems.append(str(exc))
    else:
        with hub:
            configured = [
                *(
                    (name, f"integrations.{name}", settings)
                    for name, settings in config.integrations.items()
                ),
                *(
                    (name, f"sources.{name}", settings)
                    for name, settings in config.sections.get("sources", {}).items()
                ),
            ]
            for name, where, settings in configured:
                if missing_secrets(settings, where):
                    continue  # reported above
                try:
                    hub.get_integration(name)
                except ConfigError as exc:
                    problems.append(str(exc))
            try:
                check_state_database(hub)
            except StorageError as exc:
                problems.append(str(exc))
            settings = _check_server(config, hub, problems)
            if not problems:
                workflows = hub.workflows()
                integrations = hub.get_integrations()
                served = (
                    f", HTTP on {settings.host}:{settings.port}" if settings else ""
                )
                summary = (
                    f"config OK: {len(workflows)} workflow"
                    f"{'s' * (len(workflows) != 1)}, {len(integrations)} integration"
                    f"{'s' * (len(integrations) != 1)}, state database {hub.path}"
                    f"{served}"
                )
    if problems:
        raise ConfigProblems(str(config.path), list(dict.fromkeys(problems)))
    return summary


def check_state_database(hub: Hub) -> None:
    """SQLite's ``quick_check`` of the hub's state database, unless the file is
    over :data:`START_CHECK_MAX_BYTES` (then a warning says how to check it).

    Raises:
        StorageCorrupt: naming the first problems and how to recover.
    """
    size = hub.db.path.stat().st_size
    if size > START_CHECK_MAX_BYTES:
        log.warning(
            "state database too large to check at start; eventhub status checks it",
            db=str(hub.db.path),
            bytes=size,
        )
        return
    hub.db.check_integrity()


def _check_server(
    config: Config, hub: Hub, problems: list[str]
) -> ServerSettings | None:
    """Check ``[server]``, each ``[webhooks.NAME]`` receiver and the ports
    (bound and released at once); add what is wrong to ``problems``."""
    sections = config.sections
    if "server" not in sections:
        if sections.get("webhooks"):
            problems.append(_NO_SERVER)
        return None
    try:
        from .server import HTTPServer, ServerSettings
        from .webhooks.receivers import make_receivers, receiver_kinds
    except ImportError as exc:
        raise MissingDependency(exc.name or "fastapi", "server") from None
    try:
        settings = ServerSettings.from_section(sections["server"])
    except ConfigError as exc:
        problems.append(str(exc))
        return None
    webhooks = sections.get("webhooks", {})
    if not isinstance(webhooks, dict):
        problems.append("webhooks must be tables: [webhooks.NAME]")
        webhooks = {}
    for name, receiver in webhooks.items():
        if not missing_secrets(receiver, f"webhooks.{name}"):
            try:
                make_receivers({name: receiver}, receiver_kinds(hub.pm))
            except ConfigError as exc:
                problems.append(str(exc))
    if not missing_secrets(sections["server"], "server"):
        try:  # the JWT settings, and the app itself
            HTTPServer(hub, _server_settings(config), receivers={})
        except ConfigError as exc:
            problems.append(str(exc))
    problems.extend(_ports_in_use(settings))
    return settings


def _ports_in_use(settings: ServerSettings) -> list[str]:
    """Bind each configured address as the server would, then let go: the
    problems, such as a port another process listens on."""
    binds = [(settings.host, settings.port)]
    if settings.metrics_port is not None:
        binds.append((settings.metrics_host or settings.host, settings.metrics_port))
    problems = []
    held: list[socket.socket] = []
    try:
        for host, port in binds:
            if port == 0:
                continue  # any free port
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                problems.append(f"server: cannot resolve {host!r}: {exc.strerror}")
                continue
            family, _type, _proto, _name, address = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
                sock.listen(1)
            except OSError as exc:
                problems.append(
                    f"server: cannot listen on {host}:{port}: {exc.strerror}"
                )
    finally:
        for sock in held:
            sock.close()
    return problems


_NO_SERVER = "webhooks are received by the HTTP server: add a [server] section"


def _server_settings(config: Config) -> ServerSettings:
    from .server import ServerSettings

    return ServerSettings.from_section(
        resolve_secrets(config.sections["server"], "server")
    )


def make_server(config: Config, hub: Hub) -> HTTPServer | None:
    """The HTTP server ``[server]`` asks for (not started), or None. Its secrets
    (``[server.jwt]``, the webhook receivers') are read now. Unless ``[daemon]
    local_socket = false``, it also serves the read-only API on the local socket
    (see :mod:`eventhub._localapi`); without ``[server]``, that alone, when the
    server extra is installed.

    Raises:
        ConfigError: for bad ``[server]``/``[webhooks]`` settings, a secret that
            cannot be read, or webhooks configured without a server.
        MissingDependency: if the ``server`` extra is not installed.
    """
    sections = config.sections
    if "server" not in sections:
        if sections.get("webhooks"):
            raise ConfigError(_NO_SERVER)
        if not config.local_socket:
            return None
        try:
            from .server import HTTPServer, ServerSettings
        except ImportError:
            return None  # no server extra: no local socket either
        # The read-only API on the local socket alone (eventhub._localapi).
        return HTTPServer(hub, ServerSettings(), tcp=False, local_socket=True)
    try:
        from .server import HTTPServer
    except ImportError as exc:
        raise MissingDependency(exc.name or "fastapi", "server") from None
    return HTTPServer(hub, _server_settings(config), local_socket=config.local_socket)


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
        problems = config.missing_secrets()
        if problems:  # every one of them now, rather than one per attempt
            raise ConfigProblems(str(config.path), problems)
        hub = Hub.from_config(config)
        try:
            check_state_database(hub)  # a damaged database is refused
            server = make_server(config, hub)
        except BaseException:
            hub.close()
            raise
        try:
            hub.start(run_scheduler=config.run_scheduler)
            if server is not None:
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
            lingering = [
                t.name
                for t in threading.enumerate()
                if not t.daemon and t is not threading.current_thread()
            ]
            if lingering:  # the process cannot exit before they end
                log.warning("threads still running after stop", threads=lingering)
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
