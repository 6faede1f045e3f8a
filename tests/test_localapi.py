"""The daemon's local socket: `eventhub search` answered by a running daemon."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import requests

from eventhub import _localapi as localapi

from .test_daemon import Daemon, run_cli
from .test_server_daemon import free_port

pytestmark = pytest.mark.slow

DOCS = {
    "tides.md": "# Tides\n\nThe moon pulls the oceans into tides twice a day.",
    "bread.txt": "Bread\n\nKnead the dough, let it rise, then bake it hot.",
    "stars.md": "# Stars\n\nStars fuse hydrogen into helium in their cores.",
}

# Runs the CLI in this process; at exit, says whether it opened the index itself.
INDEX_PROBE = """
import atexit, sys
atexit.register(lambda: print("index loaded:", "faiss" in sys.modules, file=sys.stderr))
from eventhub.cli import main
main(sys.argv[1:])
"""


def write_config(folder, server=True):
    docs = folder / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    port = free_port()
    config = folder / "eventhub.toml"
    config.write_text(
        textwrap.dedent("""
        db = "hub.db"
        [log]
        level = "WARNING"
        [index]
        model = "hash:64"
        [sources.docs]
        kind = "filesystem"
        path = "docs"
    """)
        + (f'[server]\nhost = "127.0.0.1"\nport = {port}\n' if server else "")
    )
    assert run_cli("--config", str(config), "sync", "docs").returncode == 0
    return config, f"http://127.0.0.1:{port}"


@pytest.fixture
def daemon(tmp_path):
    config, url = write_config(tmp_path)
    running = Daemon(tmp_path, config).start()
    yield running, url
    running.close()


def probe(config, *args):
    return subprocess.run(
        [sys.executable, "-c", INDEX_PROBE, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_search_is_answered_by_the_running_daemon(daemon):
    running, _ = daemon
    proc = probe(running.config, "search", "moon oceans tides", "-k", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "index loaded: False" in proc.stderr  # the daemon did the work
    assert json.loads(proc.stdout)[0]["document_id"] == "tides.md"


def test_search_through_the_daemon_equals_its_http_api(daemon):
    running, url = daemon
    config = ["--config", str(running.config)]
    token = run_cli(*config, "tokens", "create", "reader", "--read-only").stdout
    api = requests.get(
        f"{url}/search",
        params={"q": "knead dough bake", "k": 3},
        headers={"Authorization": f"Bearer {token.strip()}"},
    )
    local = run_cli(*config, "search", "knead dough bake", "-k", "3", "--json")
    assert api.status_code == 200 and local.returncode == 0
    assert json.loads(local.stdout) == api.json()


def test_text_output_is_the_same_with_and_without_the_daemon(daemon):
    running, _ = daemon
    args = ["--config", str(running.config), "search", "stars helium", "-k", "2"]
    through_daemon = run_cli(*args)
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(60) == 0
    alone = run_cli(*args)
    assert through_daemon.returncode == alone.returncode == 0
    assert through_daemon.stdout == alone.stdout and "stars.md" in alone.stdout


def test_a_user_mistake_through_the_daemon_is_one_line_and_exit_2(daemon):
    running, _ = daemon
    proc = run_cli("--config", str(running.config), "search", "x", "--source", "no")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "Error: no source named 'no' (known: docs)"


def test_the_local_socket_is_read_only(daemon):
    running, _ = daemon
    db = running.folder / "hub.db"
    answer = localapi.ask_daemon(db, "/events", {"limit": 5})
    assert answer is not None and answer.status == 200
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(localapi.socket_path(db)))
    body = b'{"type": "user.created"}'
    sock.sendall(
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    reply = b"".join(iter(lambda: sock.recv(4096), b""))
    sock.close()
    assert reply.startswith(b"HTTP/1.1 403") and b"read-only" in reply


def test_the_socket_is_open_to_those_who_may_read_the_database(daemon):
    running, _ = daemon
    db = running.folder / "hub.db"
    mode = os.stat(localapi.socket_path(db)).st_mode & 0o777
    assert mode == localapi.socket_mode(db)
    os.chmod(db, 0o600)
    assert localapi.socket_mode(db) == 0o600


def test_an_answer_for_another_database_is_not_trusted(daemon, tmp_path):
    running, _ = daemon
    other = tmp_path / "other"
    other.mkdir()
    config, _ = write_config(other, server=False)
    os.symlink(
        localapi.socket_path(running.folder / "hub.db"),
        localapi.socket_path(other / "hub.db"),
    )
    assert localapi.ask_daemon(other / "hub.db", "/health") is None
    proc = probe(config, "search", "moon tides", "--json")
    assert proc.returncode == 0 and "index loaded: True" in proc.stderr


def test_a_killed_daemons_socket_is_ignored_then_replaced(daemon):
    running, _ = daemon
    db = running.folder / "hub.db"
    running.proc.kill()
    running.proc.wait()
    assert localapi.socket_path(db).exists()  # left behind
    proc = probe(running.config, "search", "moon tides", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "index loaded: True" in proc.stderr
    assert json.loads(proc.stdout)[0]["document_id"] == "tides.md"
    again = Daemon(running.folder, running.config).start()
    try:
        assert localapi.ask_daemon(db, "/health").status == 200
    finally:
        again.close()


def test_a_daemon_without_server_section_serves_the_local_socket(tmp_path):
    config, _ = write_config(tmp_path, server=False)
    running = Daemon(tmp_path, config).start()
    try:
        proc = probe(config, "search", "bread dough", "--json")
        assert proc.returncode == 0 and "index loaded: False" in proc.stderr
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(60) == 0
        assert not localapi.socket_path(tmp_path / "hub.db").exists()
    finally:
        running.close()


def test_a_long_database_path_gets_a_socket_in_the_temporary_folder(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = localapi.socket_path(deep / "hub.db")
    assert len(str(path)) <= 100 and path.name.startswith("eventhub-api-")
    assert path == localapi.socket_path(deep / "hub.db")
    shutil.rmtree(tmp_path / ("d" * 60), ignore_errors=True)
