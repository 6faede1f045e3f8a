import os
import shutil
import sys
from pathlib import Path

import pytest

# Installed third-party plugins must not change test results (also in child processes).
os.environ["EVENTHUB_NO_ENTRYPOINTS"] = "1"

from eventhub.testing import FakeClock, make_hub  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REALDATA = ROOT.parent / "shared" / "realdata"
HELPERS = Path(__file__).resolve().parent / "helpers"
#: Set by .ci/run: a test that needs a server binary fails when it is missing,
#: instead of being skipped (CI installs every server the suite uses).
REQUIRE_SERVERS = os.environ.get("EVENTHUB_REQUIRE_SERVERS") == "1"


def require_binary(name: str, *places: str, package: str) -> str:
    """The path of a server binary a test needs (looked up on PATH and in
    ``places``). Missing, the test is skipped with the reason, or fails under
    ``EVENTHUB_REQUIRE_SERVERS=1`` (CI).

    Args:
        name: The program (``dovecot``).
        places: Other paths to try (``/usr/sbin/dovecot``).
        package: The Debian package that brings it, for the message.
    """
    found = shutil.which(name) or next(
        (p for p in places if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    reason = f"needs {name} (Debian package {package}), which is not installed"
    if REQUIRE_SERVERS:
        pytest.fail(reason + "; EVENTHUB_REQUIRE_SERVERS=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def hub(tmp_path, clock):
    with make_hub(tmp_path, clock=clock) as hub:
        yield hub


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "hub.db"


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture
def serve(hub):
    """Start the hub's HTTP server on a free port: ``serve(webhooks, **settings)``
    with a ``[webhooks]`` table and ``[server]`` settings; stopped at the end."""
    from eventhub.server import HTTPServer, ServerSettings
    from eventhub.webhooks import make_receivers

    servers = []

    def start(webhooks=None, **settings):
        receivers = make_receivers(webhooks or {})
        server = HTTPServer(hub, ServerSettings(port=0, **settings), receivers)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgresql():
    """A PostgreSQL server of the test session (:class:`tests.servers.PostgreSQL`);
    a test takes a database of its own with ``create_database``."""
    from .servers import PostgreSQL

    server = PostgreSQL()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server():
    """A redis-server of the test's own (:class:`tests.servers.Redis`)."""
    from .servers import Redis

    server = Redis()
    try:
        yield server
    finally:
        server.stop()
