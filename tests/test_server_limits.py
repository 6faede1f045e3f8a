"""The HTTP server under clients that stall it: slow headers and bodies, huge
headers, idle and excess connections, a state database locked by another process,
clients that hang up mid-body. Real uvicorn on 127.0.0.1, raw sockets."""

import os
import re
import resource
import select
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
import requests

from eventhub import _localapi as localapi
from eventhub.auth.apitokens import APITokenStore
from eventhub.errors import ConfigError
from eventhub.server import HTTPServer
from eventhub.server.settings import ServerSettings, connection_budget
from eventhub.webhooks.signatures import github_signature

from .test_daemon import Daemon
from .test_server_daemon import free_port

SECRET = "limits-secret"
GITHUB = {"github": {"kind": "github", "secret": SECRET}}
DEADLINE = 30  # seconds: generous, never what a test measures


def connect(server, bind=0):
    return socket.create_connection(server.addresses[bind], timeout=DEADLINE)


def read_all(sock):
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def trickle(sock, head, meanwhile=lambda: None):
    """Send ``head``, then one byte whenever the server has been silent for a
    moment, until it answers; returns what it answered before closing."""
    sock.sendall(head)
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if select.select([sock], [], [], 0.1)[0]:
            return read_all(sock)
        meanwhile()
        sock.sendall(b"x")
    raise AssertionError("the server never cut the connection")


def delivery(body=b'{"zen": "Keep it logically awesome."}', delivery_id=None):
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(SECRET, body),
    }, body


def deliver(server, headers, body):
    return requests.post(
        f"{server.url}/webhooks/github", data=body, headers=headers, timeout=DEADLINE
    )


def health(server, bind=0):
    host, port = server.addresses[bind]
    return requests.get(f"http://{host}:{port}/health", timeout=DEADLINE)


def metric(server, name, **labels):
    """A sample of ``/metrics`` (0 when absent)."""
    text = requests.get(f"{server.url}/metrics", timeout=DEADLINE).text
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = re.escape(f"{name}{{{selector}}}" if labels else name)
    found = re.search(rf"^{series} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for(condition, what):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


# Headers and bodies ---------------------------------------------------------------


def test_headers_sent_a_byte_at_a_time_are_cut_while_health_answers(serve):
    server = serve(header_timeout=1)
    answers = []
    with connect(server) as sock:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
        cut = trickle(sock, head, lambda: answers.append(health(server).status_code))
    assert cut.startswith(b"HTTP/1.1 408 ") and b"server.header_timeout" in cut
    assert answers and set(answers) == {200}
    assert (
        metric(
            server, "eventhub_http_connections_refused_total", reason="header_timeout"
        )
        == 1
    )


def test_a_slow_second_request_on_a_kept_alive_connection_is_cut(serve):
    server = serve(header_timeout=1, keep_alive_timeout=60)
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):
            first += sock.recv(65536)
        cut = trickle(sock, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert first.startswith(b"HTTP/1.1 200 ") and cut.startswith(b"HTTP/1.1 408 ")


def test_a_body_sent_a_byte_at_a_time_is_cut_and_nothing_is_stored(serve, hub):
    server = serve(GITHUB, body_timeout=1)
    headers, _body = delivery()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with connect(server) as sock:
        request = f"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n{head}"
        cut = trickle(sock, f"{request}Content-Length: 1000\r\n\r\n{{".encode())
    assert cut.startswith(b"HTTP/1.1 408 ") and b"server.body_timeout" in cut
    assert hub.bus.history() == []
    requests_408 = dict(method="POST", route="/webhooks/{name}", status="408")
    assert metric(server, "eventhub_http_requests_total", **requests_408) == 1


def test_idle_connections_are_closed_at_the_header_timeout(serve):
    server = serve(header_timeout=1)
    idle = [connect(server) for _ in range(50)]
    assert health(server).status_code == 200
    for sock in idle:
        with sock:
            assert read_all(sock) == b""  # closed without a word: nothing was asked


def test_a_huge_header_is_431_before_it_is_read(serve):
    server = serve(max_header_bytes=16 * 1024)
    sent = 0
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while not select.select([sock], [], [], 0)[0] and sent < 64 * 2**20:
            sock.sendall(b"a" * 65536)
            sent += 65536
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"server.max_header_bytes" in answer
    assert sent < 32 * 2**20  # answered long before 64 MiB (socket buffers aside)
    assert health(server).status_code == 200


@pytest.mark.parametrize(("size", "status"), [(12_000, 200), (20_000, 431)])
def test_headers_read_at_once_are_measured_exactly(serve, size, status):
    server = serve(max_header_bytes=16 * 1024)
    with connect(server) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"X-Big: %s\r\n\r\n" % (b"a" * size)
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 %d " % status)


def test_a_kept_alive_connection_idles_for_keep_alive_timeout(serve):
    server = serve(keep_alive_timeout=1, header_timeout=60)
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")  # then closed when idle


# Connections ------------------------------------------------------------------------


def test_connections_past_max_connections_are_refused_until_some_close(serve):
    server = serve(max_connections=4, header_timeout=60)
    held = [connect(server) for _ in range(4)]
    with connect(server) as extra:
        refused = read_all(extra)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in refused
    for sock in held:
        sock.close()
    wait_for(lambda: _up(server.url), "a connection to be accepted again")
    assert health(server).status_code == 200
    reason = {"reason": "too_many_connections"}
    assert metric(server, "eventhub_http_connections_refused_total", **reason) >= 1


class LimitedDaemon(Daemon):
    """`eventhub run` with at most ``files`` open files (``ulimit -n``)."""

    files = 512

    def start(self):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventhub", "run", "--config", str(self.config)],
            env=dict(os.environ, NOTIFY_SOCKET=self.sock_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_NOFILE, (self.files, hard)
            ),
        )
        assert self.notification() == "READY=1"
        return self


@pytest.mark.slow
def test_a_flood_of_idle_connections_leaves_the_daemon_its_descriptors(
    tmp_path, monkeypatch
):
    port = free_port()
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [log]
        level = "WARNING"
        [server]
        port = {port}
        header_timeout = 3
        [webhooks.github]
        kind = "github"
        secret = {{ env = "EH_TEST_GITHUB_SECRET" }}
    """)
    )
    monkeypatch.setenv("EH_TEST_GITHUB_SECRET", SECRET)
    daemon = LimitedDaemon(tmp_path, config).start()
    url = f"http://127.0.0.1:{port}"
    try:
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(1100)]
        wait_for(lambda: _up(url), "the daemon to answer again")  # idle ones cut
        headers, body = delivery()
        stored = requests.post(f"{url}/webhooks/github", data=body, headers=headers)
        assert stored.status_code == 200 and daemon.proc.poll() is None
        for sock in flood:
            sock.close()
    finally:
        daemon.close()


def _up(url):
    try:
        return requests.get(f"{url}/health", timeout=DEADLINE).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_default_bound_leaves_descriptors_for_the_daemon():
    assert ServerSettings().connection_limit() <= connection_budget()
    with pytest.raises(ConfigError, match=r"max_connections = \d+ .*\(ulimit -n\)"):
        ServerSettings.from_section({"max_connections": connection_budget() + 1})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("header_timeout", 0),
        ("body_timeout", -1),
        ("keep_alive_timeout", "5"),
        ("write_timeout", True),
        ("header_timeout", 3601),
        ("max_header_bytes", 100),
        ("max_header_bytes", 1.5),
        ("max_connections", 0),
    ],
)
def test_limit_settings_are_checked(key, value):
    with pytest.raises(ConfigError, match=rf"^server\.{key} must be"):
        ServerSettings.from_section({key: value})


# A database locked by another process ---------------------------------------------


@pytest.fixture
def lock(hub):
    """``lock()`` takes the state database's write lock on a connection of its
    own, as another process would; ``lock.release()`` lets go."""

    class Lock:
        conn = sqlite3.connect(hub.db.path, isolation_level=None)

        def __call__(self):
            self.conn.execute("BEGIN IMMEDIATE")

        def release(self):
            self.conn.execute("ROLLBACK")

    held = Lock()
    yield held
    if held.conn.in_transaction:
        held.release()
    held.conn.close()


def test_health_answers_while_a_webhook_waits_for_the_lock(serve, hub, lock):
    server = serve(GITHUB, write_timeout=DEADLINE)
    lock()
    headers, body = delivery()
    answer = []
    sender = threading.Thread(
        target=lambda: answer.append(deliver(server, headers, body))
    )
    sender.start()
    wait_for(
        lambda: metric(server, "eventhub_http_writes_waiting") == 1,
        "the delivery to wait for the database",
    )
    assert health(server).json()["status"] == "ok"
    lock.release()
    sender.join(DEADLINE)
    assert answer[0].status_code == 200
    assert [e.id for e in hub.bus.history()] == [headers["X-GitHub-Delivery"]]


def test_a_webhook_is_503_past_write_timeout_and_not_stored(serve, hub, lock):
    server = serve(GITHUB, write_timeout=0.5)
    lock()
    headers, body = delivery()
    busy = deliver(server, headers, body)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.json() == {"error": "the state database is busy; try again later"}
    lock.release()
    assert hub.bus.history() == []
    assert deliver(server, headers, body).status_code == 200  # the sender's retry
    assert len(hub.bus.history()) == 1


def test_deliveries_queued_behind_a_busy_write_are_503_too(serve, hub, lock):
    server = serve(GITHUB, write_timeout=0.5)
    lock()
    answers = []

    def send():
        answers.append(deliver(server, *delivery()).status_code)

    senders = [threading.Thread(target=send) for _ in range(8)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(DEADLINE)
    assert answers == [503] * 8
    lock.release()
    assert hub.bus.history() == []


def test_post_events_is_503_past_write_timeout_and_not_stored(serve, hub, lock):
    server = serve(write_timeout=0.5)
    token = APITokenStore(hub.db).create("ci")
    lock()
    response = requests.post(
        f"{server.url}/events",
        json={"type": "user.created", "id": "u-1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=DEADLINE,
    )
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    lock.release()
    assert hub.bus.history() == []


# Metrics ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/github", "/events"])
def test_a_client_gone_mid_body_is_499_not_500(serve, path):
    server = serve(GITHUB)
    with connect(server) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b"{")
    route = "/webhooks/{name}" if "webhooks" in path else path
    counted = dict(method="POST", route=route)
    wait_for(
        lambda: metric(server, "eventhub_http_requests_total", **counted, status="499"),
        "the request to be counted",
    )
    assert metric(server, "eventhub_http_requests_total", **counted, status="500") == 0


# The operations bind -------------------------------------------------------------


def test_with_metrics_port_health_and_metrics_move_off_the_main_bind(serve):
    server = serve(metrics_port=0)
    assert health(server, bind=0).status_code == 404
    assert health(server, bind=1).json()["status"] == "ok"
    host, port = server.addresses[0]
    assert (
        requests.get(f"http://{host}:{port}/metrics", timeout=DEADLINE).status_code
        == 404
    )
    paths = requests.get(f"{server.url}/openapi.json", timeout=DEADLINE).json()["paths"]
    assert "/health" not in paths and "/metrics" not in paths


def test_the_local_socket_answers_health_when_it_moved(hub):
    server = HTTPServer(hub, ServerSettings(port=0, metrics_port=0), local_socket=True)
    server.start()
    try:
        assert localapi.ask_daemon(hub.db.path, "/health").status == 200
        assert health(server, bind=0).status_code == 404
    finally:
        server.stop()
