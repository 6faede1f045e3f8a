import os
import sys
from pathlib import Path

import pytest

# Installed third-party plugins must not change test results (also in child processes).
os.environ["EVENTHUB_NO_ENTRYPOINTS"] = "1"

from eventhub.testing import FakeClock, make_hub  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REALDATA = ROOT.parent / "shared" / "realdata"
HELPERS = Path(__file__).resolve().parent / "helpers"


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
