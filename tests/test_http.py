"""The HTTP client, over real HTTP on 127.0.0.1: retries, Retry-After, idempotency,
timeouts, pagination, redirects, the SSRF guard and secrets kept out of errors/logs."""

import datetime
import json
import socket
import ssl
import threading

import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Response

from eventhub.errors import ConfigError, TransientError, is_retryable
from eventhub.http import (
    HostNotAllowed,
    HttpClient,
    HttpError,
    HttpTransientError,
    RateLimiter,
    redact_url,
)
from eventhub.http._netguard import address_problem

from .conftest import REALDATA

SLACK = REALDATA / "slack" / "sdk-fixtures"
JIRA = REALDATA / "jira" / "jira-ruby-mock_responses"


class Listener:
    """A raw TCP listener on 127.0.0.1 counting the connections it accepts; it
    answers 200 to each, or (``reply=None``) holds them open without a word."""

    def __init__(self, reply=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.accepted = 0
        self.held = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.reply is None:
                self.held.append(conn)
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(self.reply)

    def close(self):
        if self.sock.fileno() != -1:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def servers():
    started = [HTTPServer(host="127.0.0.1", port=0) for _ in range(2)]
    for server in started:
        server.start()
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def server(servers):
    yield servers[0]
    servers[0].clear()


@pytest.fixture
def other_server(servers):
    yield servers[1]
    servers[1].clear()


@pytest.fixture
def waits():
    return []


@pytest.fixture
def client(server, waits):
    with HttpClient(
        f"http://127.0.0.1:{server.port}/api/",
        allow_private=True,
        attempts=3,
        sleep=waits.append,
    ) as http:
        yield http


def requests_seen(server):
    return [request for request, _response in server.log]


# -- retries and Retry-After


def test_429_with_retry_after_seconds_waits_that_long(client, server, waits):
    server.expect_oneshot_request("/api/x").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3"}
    )
    server.expect_request("/api/x").respond_with_data("ok")
    assert client.get("x").text == "ok"
    assert waits == [3.0] and len(server.log) == 2


@pytest.mark.parametrize("value", [str(10**12), "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_huge_retry_after_is_capped(server, waits, value):
    server.expect_oneshot_request("/x").respond_with_data(
        "", status=503, headers={"Retry-After": value}
    )
    server.expect_request("/x").respond_with_data("ok")
    http = HttpClient(allow_private=True, max_retry_after=7.0, sleep=waits.append)
    assert http.get(server.url_for("/x")).status_code == 200
    assert waits == [7.0] and len(server.log) == 2


@pytest.mark.parametrize("value", ["soon", "-5", "", "nan"])
def test_unreadable_retry_after_falls_back_to_jittered_backoff(server, waits, value):
    server.expect_request("/x").respond_with_data(
        "", status=429, headers={"Retry-After": value}
    )
    http = HttpClient(
        allow_private=True, attempts=3, backoff=2.0, max_backoff=3.0, sleep=waits.append
    )
    with pytest.raises(HttpTransientError):
        http.get(server.url_for("/x"))
    assert len(waits) == 2 and len(server.log) == 3
    assert 0 <= waits[0] <= 2.0 and 0 <= waits[1] <= 3.0  # windows 2 s, then capped


def test_a_limiter_is_acquired_per_attempt_and_paused_by_retry_after(server, waits):
    class Recorder:
        def __init__(self):
            self.calls = []

        def acquire(self, tokens=1):
            self.calls.append("acquire")
            return 0.0

        def pause(self, seconds):
            self.calls.append(("pause", seconds))

    server.expect_oneshot_request("/x").respond_with_data(
        "", status=429, headers={"Retry-After": "5"}
    )
    server.expect_request("/x").respond_with_data("ok")
    limiter = Recorder()
    HttpClient(allow_private=True, limiter=limiter, sleep=waits.append).get(
        server.url_for("/x")
    )
    assert limiter.calls == ["acquire", ("pause", 5.0), "acquire"]


def test_503_every_time_raises_a_transient_error_after_all_attempts(
    client, server, waits
):
    server.expect_request("/api/x").respond_with_data("down", status=503)
    with pytest.raises(HttpTransientError) as caught:
        client.get("x")
    assert isinstance(caught.value, TransientError) and is_retryable(caught.value)
    assert caught.value.status == 503 and caught.value.body == "down"
    assert len(server.log) == 3 and len(waits) == 2


def test_404_fails_at_once(client, server, waits):
    server.expect_request("/api/x").respond_with_json({"error": "no such x"}, 404)
    with pytest.raises(HttpError) as caught:
        client.get("x")
    assert not isinstance(caught.value, TransientError)
    assert not is_retryable(caught.value)
    assert caught.value.status == 404 and "no such x" in str(caught.value)
    assert len(server.log) == 1 and waits == []


def test_slack_200_ratelimited_is_retried_after_its_retry_after(client, server, waits):
    server.expect_oneshot_request("/api/users.info").respond_with_json(
        {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "2"}
    )
    server.expect_request("/api/users.info").respond_with_json({"ok": True})
    page = client.get_json("users.info")
    assert page == {"ok": True} and len(server.log) == 2 and waits == [2.0]


GOOGLE_RATE = {"error": {"errors": [{"reason": "userRateLimitExceeded"}], "code": 403}}
GOOGLE_FORBIDDEN = {"error": {"errors": [{"reason": "forbidden"}], "code": 403}}


def test_google_403_rate_limit_is_retried(client, server):
    server.expect_oneshot_request("/api/files").respond_with_json(GOOGLE_RATE, 403)
    server.expect_request("/api/files").respond_with_json({"files": []})
    assert client.get_json("files") == {"files": []} and len(server.log) == 2


def test_google_403_forbidden_is_not_retried(client, server):
    server.expect_request("/api/files").respond_with_json(GOOGLE_FORBIDDEN, 403)
    with pytest.raises(HttpError) as caught:
        client.get("files")
    assert not is_retryable(caught.value) and len(server.log) == 1


def test_a_retry_is_logged_with_its_reason_and_wait(client, server):
    server.expect_oneshot_request("/api/x").respond_with_data(
        "", status=429, headers={"Retry-After": "4"}
    )
    server.expect_request("/api/x").respond_with_data("ok")
    with structlog.testing.capture_logs() as logs:
        client.get("x", params={"q": "1"})
    attempts = [line for line in logs if line["event"] == "http attempt"]
    (retry,) = [line for line in logs if line["event"] == "http retry"]
    assert [line["status"] for line in attempts] == [429, 200]
    assert attempts[1]["attempt"] == 2 and attempts[1]["url"].endswith("/api/x?q=1")
    assert retry["reason"] == "rate limited" and retry["wait"] == 4.0
    assert retry["client"] == "http"


# -- idempotency


def test_post_without_idempotency_key_is_sent_once(client, server, waits):
    server.expect_request("/api/issues", method="POST").respond_with_data("", 503)
    with pytest.raises(HttpTransientError) as caught:
        client.post("issues", json={"title": "x"})
    assert len(server.log) == 1 and waits == []
    assert "idempotency key" in str(caught.value)


def test_a_rate_limited_post_is_repeated_without_a_key(client, server, waits):
    server.expect_ordered_request("/api/chat", method="POST").respond_with_json(
        {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}
    )
    server.expect_ordered_request("/api/chat", method="POST").respond_with_data("", 429)
    server.expect_ordered_request("/api/chat", method="POST").respond_with_json(
        {"ok": True}
    )
    assert client.post("chat", json={"text": "hi"}).json() == {"ok": True}
    assert len(server.log) == 3 and waits[0] == 1.0


def test_post_with_idempotency_key_is_retried_with_the_same_key(client, server):
    server.expect_ordered_request("/api/pay").respond_with_data("", 503)
    server.expect_ordered_request("/api/pay").respond_with_data("", 429)
    server.expect_ordered_request("/api/pay").respond_with_json({"id": 1}, 201)
    assert client.post("pay", json={"n": 1}, idempotency_key="k-42").status_code == 201
    keys = [r.headers.get("Idempotency-Key") for r in requests_seen(server)]
    bodies = [r.get_json() for r in requests_seen(server)]
    assert keys == ["k-42"] * 3 and bodies == [{"n": 1}] * 3


def test_idempotency_key_true_makes_one_key_for_all_attempts(client, server):
    server.expect_oneshot_request("/api/pay").respond_with_data("", 502)
    server.expect_request("/api/pay").respond_with_data("ok")
    client.patch("pay", data=b"x", idempotency_key=True)
    first, second = (r.headers["Idempotency-Key"] for r in requests_seen(server))
    assert first == second and len(first) == 36


def test_post_is_retried_when_it_never_reached_a_server(waits, listener):
    listener.close()  # nothing listens on the port any more
    http = HttpClient(allow_private=True, attempts=3, sleep=waits.append)
    with pytest.raises(HttpTransientError, match="cannot connect"):
        http.post(f"http://127.0.0.1:{listener.port}/x", json={})
    assert len(waits) == 2


# -- timeouts


def test_a_stalled_server_times_out_on_every_attempt(waits):
    silent = Listener(reply=None)
    try:
        http = HttpClient(
            allow_private=True, timeout=0.2, attempts=2, sleep=waits.append
        )
        with pytest.raises(HttpTransientError, match="read timeout"):
            http.get(f"http://127.0.0.1:{silent.port}/x")
        assert silent.accepted == 2 and len(waits) == 1
    finally:
        silent.close()


def test_a_per_call_timeout_overrides_the_client_one(waits):
    silent = Listener(reply=None)
    try:
        http = HttpClient(allow_private=True, timeout=600, attempts=1)
        with pytest.raises(HttpTransientError, match="read timeout"):
            http.get(f"http://127.0.0.1:{silent.port}/x", timeout=0.2)
    finally:
        silent.close()


def test_a_client_without_timeout_is_refused():
    with pytest.raises(ConfigError, match="timeout"):
        HttpClient(timeout=None)


# -- URLs and bodies


def test_paths_are_appended_to_the_base_path(client, server):
    server.expect_request("/api/rest/issue/1").respond_with_json({"key": "P-1"})
    assert client.get_json("rest/issue/1") == {"key": "P-1"}
    assert client.get_json("/rest/issue/1") == {"key": "P-1"}


def test_get_json_refuses_a_body_that_is_not_json(client, server):
    server.expect_request("/api/x").respond_with_data("<html>login</html>")
    with pytest.raises(HttpError, match="not JSON"):
        client.get_json("x")


# -- pagination


def test_link_pagination_fetches_every_page_in_order(client, server):
    for page in (1, 2, 3):
        headers = (
            {"Link": f'</api/items?page={page + 1}>; rel="next"'} if page < 3 else {}
        )
        server.expect_request(
            "/api/items", query_string=f"page={page}"
        ).respond_with_json([page], headers=headers)
    pages = [r.json() for r in client.paginate_link("items", params={"page": 1})]
    assert pages == [[1], [2], [3]] and len(server.log) == 3


def test_link_pagination_refuses_a_loop(client, server):
    server.expect_request("/api/items").respond_with_json(
        [], headers={"Link": '</api/items?page=1>; rel="next"'}
    )
    with pytest.raises(HttpError, match="loops"):
        list(client.paginate_link("items", params={"page": 1}))


def test_link_pagination_sends_no_credentials_to_another_origin(server, other_server):
    next_url = f"http://localhost:{other_server.port}/more"
    server.expect_request("/items").respond_with_json(
        [1], headers={"Link": f'<{next_url}>; rel="next"'}
    )
    other_server.expect_request("/more").respond_with_json([2])
    http = HttpClient(
        f"http://127.0.0.1:{server.port}", auth=("u", "pw"), allow_private=True
    )
    assert [r.json() for r in http.paginate_link("items")] == [[1], [2]]
    assert "Authorization" in requests_seen(server)[0].headers
    assert "Authorization" not in requests_seen(other_server)[0].headers


def test_cursor_pagination_follows_slack_next_cursor(client, server):
    files = ["", "_has_page2", "_has_page3"]
    for cursor, suffix in zip(["", "has_page2", "has_page3"], files, strict=True):
        body = SLACK / f"web_response_conversations_list_pagination{suffix}.json"
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        server.expect_request(
            "/api/conversations.list", query_string=query
        ).respond_with_data(body.read_bytes(), content_type="application/json")
    pages = client.paginate_cursor(
        "conversations.list",
        params={"limit": 1},
        cursor_param="cursor",
        next_cursor=lambda page: page.get("response_metadata", {}).get("next_cursor"),
    )
    channels = [c["id"] for page in pages for c in page["channels"]]
    assert len(channels) == 3 and len(server.log) == 3


def test_cursor_pagination_refuses_a_repeating_cursor(client, server):
    following = {None: "A", "A": "B", "B": "A"}

    def page(request):
        return Response(json.dumps({"next": following[request.args.get("cursor")]}))

    server.expect_request("/api/list").respond_with_handler(page)
    pages = client.paginate_cursor(
        "list", cursor_param="cursor", next_cursor=lambda page: page["next"]
    )
    with pytest.raises(HttpError, match="repeats"):
        list(pages)
    assert len(server.log) == 3


def test_cursor_pagination_can_carry_the_cursor_in_a_post_body(client, server):
    def page(request):
        cursor = request.get_json().get("start_cursor")
        return Response(
            json.dumps(
                {"results": [cursor or "first"], "next": None if cursor else "c2"}
            )
        )

    server.expect_request("/api/query", method="POST").respond_with_handler(page)
    pages = client.paginate_cursor(
        "query",
        method="POST",
        in_body=True,
        json={"filter": {}},
        cursor_param="start_cursor",
        next_cursor=lambda page: page["next"],
    )
    assert [p["results"] for p in pages] == [["first"], ["c2"]]
    assert [r.get_json() for r in requests_seen(server)][1] == {
        "filter": {},
        "start_cursor": "c2",
    }


def test_offset_pagination_reads_a_real_jira_search(client, server):
    server.expect_request("/api/search").respond_with_data(
        (JIRA / "project" / "SAMPLEPROJECT.issues.json").read_bytes(),
        content_type="application/json",
    )
    issues = client.paginate_offset(
        "search",
        params={"jql": "project=SAMPLEPROJECT"},
        items=lambda page: page["issues"],
        offset_param="startAt",
        limit_param="maxResults",
        page_size=50,
        total=lambda page: page["total"],
    )
    assert len({issue["key"] for issue in issues}) == 11 and len(server.log) == 1


def test_offset_pagination_survives_a_server_that_caps_the_page_size(client, server):
    def search(request):
        start = int(request.args["startAt"])
        keys = list(range(start, min(start + 50, 120)))  # asks 100, gets 50
        return Response(json.dumps({"issues": keys, "total": 120}))

    server.expect_request("/api/search").respond_with_handler(search)
    issues = client.paginate_offset(
        "search",
        items=lambda page: page["issues"],
        offset_param="startAt",
        limit_param="maxResults",
        total=lambda page: page["total"],
    )
    assert list(issues) == list(range(120))
    assert [r.args["startAt"] for r in requests_seen(server)] == ["0", "50", "100"]


def test_offset_pagination_without_total_stops_on_a_short_page(client, server):
    def page(request):
        offset = int(request.args["offset"])
        return Response(json.dumps(list(range(offset, min(offset + 10, 25)))))

    server.expect_request("/api/rows").respond_with_handler(page)
    rows = client.paginate_offset("rows", items=lambda page: page, page_size=10)
    assert list(rows) == list(range(25)) and len(server.log) == 3


# -- redirects


@pytest.fixture
def credentialed(waits):
    return HttpClient(
        auth=("user", "pw"),
        headers={"X-Api-Key": "k-1", "Cookie": "sid=1"},
        credential_headers=["X-Api-Key"],
        allow_private=True,
        sleep=waits.append,
    )


def test_a_redirect_to_another_origin_carries_no_credentials(
    credentialed, server, other_server
):
    target = f"http://localhost:{other_server.port}/landing"
    server.expect_request("/start").respond_with_data("", 302, {"Location": target})
    other_server.expect_request("/landing").respond_with_data("here")
    response = credentialed.get(f"http://127.0.0.1:{server.port}/start")
    assert response.text == "here"
    (sent,) = requests_seen(other_server)
    for name in ("Authorization", "X-Api-Key", "Cookie"):
        assert name in requests_seen(server)[0].headers
        assert name not in sent.headers


def test_a_same_origin_redirect_keeps_credentials(credentialed, server):
    server.expect_request("/start").respond_with_data("", 301, {"Location": "/landing"})
    server.expect_request("/landing").respond_with_data("here")
    credentialed.get(f"http://127.0.0.1:{server.port}/start")
    landed = requests_seen(server)[1]
    assert landed.path == "/landing"
    assert landed.headers["X-Api-Key"] == "k-1" and landed.headers["Cookie"] == "sid=1"
    assert landed.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("status", "method", "body"), [(303, "GET", b""), (307, "POST", b'{"a": 1}')]
)
def test_redirected_post_becomes_get_except_after_307(
    client, server, status, method, body
):
    server.expect_request("/api/a").respond_with_data(
        "", status, {"Location": "/api/b"}
    )
    server.expect_request("/api/b").respond_with_data("done")
    client.post("a", json={"a": 1}, idempotency_key="k")
    landed = requests_seen(server)[1]
    assert landed.method == method and landed.get_data() == body


def test_endless_redirects_fail(client, server):
    server.expect_request("/api/a").respond_with_data("", 302, {"Location": "/api/a"})
    with pytest.raises(HttpError, match="redirects"):
        client.get("a")
    assert len(server.log) == 11


# -- SSRF guard


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
    ],
)
def test_loopback_in_any_spelling_is_refused_before_connecting(listener, host):
    with pytest.raises(HostNotAllowed, match="loopback"):
        HttpClient().get(f"http://{host}:{listener.port}/")
    assert listener.accepted == 0


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "[::ffff:a9fe:a9fe]",
        "[::ffff:169.254.169.254]",
    ],
)
def test_the_metadata_address_is_refused(host):
    with pytest.raises(HostNotAllowed, match="link-local") as caught:
        HttpClient(attempts=1).get(f"http://{host}/latest/meta-data/")
    assert not is_retryable(caught.value)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/"]
)
def test_schemes_other_than_http_are_refused(url):
    with pytest.raises(HostNotAllowed, match="is not http/https"):
        HttpClient(allow_private=True).get(url)


def test_hosts_outside_allow_hosts_are_refused(listener):
    http = HttpClient(allow_hosts=["*.example.com", "127.0.0.1"], allow_private=True)
    with pytest.raises(HostNotAllowed, match="not in allow_hosts") as caught:
        http.get(f"http://example.com.evil.test:{listener.port}/")
    assert caught.value.host == "example.com.evil.test"
    assert http.get(f"http://127.0.0.1:{listener.port}/").status_code == 200


def test_a_redirect_to_a_host_not_allowed_is_refused(server, listener):
    target = f"http://localhost:{listener.port}/"
    server.expect_request("/start").respond_with_data("", 302, {"Location": target})
    http = HttpClient(allow_hosts=["127.0.0.1"], allow_private=True)
    with pytest.raises(HostNotAllowed, match="host localhost not allowed"):
        http.get(f"http://127.0.0.1:{server.port}/start")
    assert listener.accepted == 0


def test_dns_rebinding_between_check_and_connect_is_refused(monkeypatch, listener):
    real = socket.getaddrinfo
    answers = [("93.184.216.34",), ("127.0.0.1",)]  # public for the check, then rebound

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        (address,) = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(HostNotAllowed, match="resolves to 127.0.0.1"):
        HttpClient(attempts=1).get(f"http://rebind.test:{listener.port}/")
    assert listener.accepted == 0 and len(answers) == 1


def test_a_name_connects_to_its_checked_address_and_keeps_its_host(monkeypatch, server):
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        return real("127.0.0.1" if host == "api.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    server.expect_request("/x").respond_with_data("ok")
    HttpClient(allow_private=True).get(f"http://api.test:{server.port}/x")
    assert requests_seen(server)[0].headers["Host"] == f"api.test:{server.port}"


def test_proxies_from_the_environment_are_ignored(monkeypatch, server, listener):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{listener.port}")
    server.expect_request("/x").respond_with_data("direct")
    assert HttpClient(allow_private=True).get(server.url_for("/x")).text == "direct"
    assert listener.accepted == 0


def _self_signed(folder, name="localhost"):
    """A throw-away certificate for ``name`` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, str(cert)
    server.stop()


def test_tls_through_the_pinned_connection_still_checks_the_host_name(tls_server):
    server, ca_bundle = tls_server
    server.expect_request("/x").respond_with_data("secure")
    http = HttpClient(allow_private=True, verify=ca_bundle, attempts=3)
    assert http.get(f"https://localhost:{server.port}/x").text == "secure"
    with pytest.raises(HttpError, match="TLS error") as caught:
        http.get(f"https://127.0.0.1:{server.port}/x")  # not the certificate's name
    assert not is_retryable(caught.value) and len(server.log) == 1


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("10.1.2.3", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("fe80::1%eth0", "a link-local address"),
        ("2002:7f00:1::", "a loopback address (IPv4 127.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (IPv4 169.254.169.254)"),
        ("240.0.0.1", "a private address"),
    ],
)
def test_address_problems(address, problem):
    assert address_problem(address) == problem


# -- secrets


def test_secrets_stay_out_of_errors_and_logs(client, server):
    server.expect_request("/api/x").respond_with_data(
        '{"detail": "bad token=abc123secret"}', status=401
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(HttpError) as caught:
        client.get(
            "x?token=abc123secret&sig=s1gn4ture",
            headers={"Authorization": "Bearer xyz-secret"},
        )
    shown = str(caught.value) + repr(vars(caught.value)) + repr(logs)
    for secret in ("abc123secret", "xyz-secret", "s1gn4ture"):
        assert secret not in shown
    assert "token=[REDACTED]" in caught.value.url


def test_secrets_stay_out_of_connection_errors(listener):
    listener.close()
    http = HttpClient(allow_private=True, attempts=2, sleep=lambda s: None)
    with structlog.testing.capture_logs() as logs, pytest.raises(HttpError) as caught:
        http.get(
            f"http://bob:pw-secret@127.0.0.1:{listener.port}/x?access_token=abc123secret",
            headers={"Authorization": "Bearer xyz-secret"},
        )
    shown = str(caught.value) + repr(logs)
    # requests' own exception (whose message holds the URL) is not chained.
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    for secret in ("abc123secret", "xyz-secret", "pw-secret"):
        assert secret not in shown


def test_redact_url_keeps_what_is_harmless():
    url = (
        "https://u:p@h.test/a?page=2&api_key=k&X-Amz-Signature=s&code=c#access_token=t"
    )
    assert redact_url(url) == (
        "https://[REDACTED]@h.test/a?page=2&api_key=[REDACTED]"
        "&X-Amz-Signature=[REDACTED]&code=[REDACTED]#access_token=[REDACTED]"
    )


def test_error_bodies_are_cut_to_500_characters(client, server):
    server.expect_request("/api/x").respond_with_data("x" * 5000, status=400)
    with pytest.raises(HttpError) as caught:
        client.get("x")
    assert len(caught.value.body) == 500


def test_limiter_and_client_work_together(server, waits):
    now = [0.0]

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(rate=1, burst=2, clock=lambda: now[0], sleep=sleep)
    server.expect_request("/x").respond_with_data("ok")
    http = HttpClient(allow_private=True, limiter=limiter)
    for _ in range(4):
        http.get(server.url_for("/x"))
    assert waits == [1.0, 1.0] and len(server.log) == 4
