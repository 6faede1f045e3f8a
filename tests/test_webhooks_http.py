"""Webhook intake over real HTTP on 127.0.0.1: verification, mapping, limits."""

import hmac
import json
import socket
import threading
import uuid

import pytest
import requests

from eventhub.errors import ConfigError
from eventhub.server import HTTPServer, ServerSettings
from eventhub.webhooks import github as github_receiver
from eventhub.webhooks import make_receivers
from eventhub.webhooks import signatures as sig

from .conftest import REALDATA

VECTORS = json.loads((REALDATA / "signature-vectors" / "vectors.json").read_text())
GITHUB_SECRET = VECTORS["github_x_hub_signature_256"]["secret"]
SLACK = VECTORS["slack_v0_request_signing"]
PAYLOADS = sorted((REALDATA / "github-webhooks" / "payloads").glob("*/*.json"))
PUSH = (
    REALDATA / "github-webhooks" / "payloads" / "push" / "payload.json"
).read_bytes()


@pytest.fixture
def github(serve):
    return serve({"github": {"kind": "github", "secret": GITHUB_SECRET}})


@pytest.fixture
def parsed(monkeypatch):
    """Counts the JSON parses the GitHub receiver does."""
    calls = []
    original = github_receiver.parse_json
    monkeypatch.setattr(
        github_receiver,
        "parse_json",
        lambda body: calls.append(body) or original(body),
    )
    return calls


def deliver(server, body, headers, name="github"):
    return requests.post(
        f"{server.url}/webhooks/{name}", data=body, headers=headers, timeout=30
    )


def github_headers(body, event="push", secret=GITHUB_SECRET, delivery=None):
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sig.github_signature(secret, body),
    }


def test_the_documented_github_vector_is_accepted_and_stored(github, hub):
    body = b'{"zen": "Hello, World!"}'
    headers = github_headers(body, event="ping")
    response = deliver(github, body, headers)
    assert response.status_code == 200
    (event,) = hub.bus.history()
    assert event.type == "github.ping"
    assert event.id == headers["X-GitHub-Delivery"]
    assert response.json() == {"stored": [event.id]}


def _hex(secret, body, algorithm="sha256"):
    return hmac.new(secret.encode(), body, algorithm).hexdigest()


FORGERIES = {
    "flipped bit": lambda b: (
        bytes([b[0] ^ 1]) + b[1:],
        {"X-Hub-Signature-256": "sha256=" + _hex(GITHUB_SECRET, b)},
    ),
    "missing header": lambda b: (b, {}),
    "empty header": lambda b: (b, {"X-Hub-Signature-256": ""}),
    "sha1= prefix": lambda b: (
        b,
        {"X-Hub-Signature-256": "sha1=" + _hex(GITHUB_SECRET, b, "sha1")},
    ),
    "no prefix": lambda b: (b, {"X-Hub-Signature-256": _hex(GITHUB_SECRET, b)}),
    "wrong-length hex": lambda b: (
        b,
        {"X-Hub-Signature-256": "sha256=" + _hex(GITHUB_SECRET, b)[:-2]},
    ),
    "uppercase hex": lambda b: (
        b,
        {"X-Hub-Signature-256": "sha256=" + _hex(GITHUB_SECRET, b).upper()},
    ),
    "non-ASCII header": lambda b: (
        b,
        {"X-Hub-Signature-256": ("sha256=é" + _hex(GITHUB_SECRET, b)[1:]).encode()},
    ),
    "only the SHA-1 header": lambda b: (
        b,
        {"X-Hub-Signature": "sha1=" + _hex(GITHUB_SECRET, b, "sha1")},
    ),
    "signed with an empty secret": lambda b: (
        b,
        {"X-Hub-Signature-256": "sha256=" + _hex("", b)},
    ),
    "trailing newline added": lambda b: (
        b + b"\n",
        {"X-Hub-Signature-256": "sha256=" + _hex(GITHUB_SECRET, b)},
    ),
    "body re-serialised": lambda b: (
        json.dumps(json.loads(b), separators=(",", ":")).encode(),
        {"X-Hub-Signature-256": "sha256=" + _hex(GITHUB_SECRET, b)},
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forgeries_are_401_unparsed_and_unstored(github, hub, parsed, forgery):
    body, signature = FORGERIES[forgery](PUSH)
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    response = deliver(github, body, {**headers, **signature})
    assert response.status_code == 401
    assert parsed == []
    assert hub.bus.history() == []


def test_an_empty_secret_at_run_time_fails_closed(github, hub, parsed):
    receiver = github.app.state.receivers["github"]
    receiver.secrets = [""]
    body = PUSH
    headers = {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + _hex("", body),
    }
    assert deliver(github, body, headers).status_code == 401
    assert parsed == [] and hub.bus.history() == []


@pytest.mark.parametrize("secret", ["", None])
def test_a_receiver_without_a_secret_refuses_to_start(secret):
    settings = (
        {"kind": "github"} if secret is None else {"kind": "github", "secret": ""}
    )
    with pytest.raises(ConfigError, match="webhooks.github"):
        make_receivers({"github": settings})


def test_an_insecure_receiver_must_say_so(serve, hub):
    server = serve({"open": {"kind": "github", "insecure": True}})
    response = deliver(server, PUSH, {"X-GitHub-Event": "push"}, name="open")
    assert response.status_code == 200
    assert [e.type for e in hub.bus.history()] == ["github.push"]


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_github_payload_is_accepted_and_typed(github, hub, path):
    body = path.read_bytes()
    event_name = path.parent.name
    response = deliver(github, body, github_headers(body, event=event_name))
    assert response.status_code == 200
    payload = json.loads(body)
    expected = f"github.{event_name}"
    if "action" in payload:
        expected += "." + payload["action"]
    (event,) = hub.bus.history()
    assert event.type == expected
    owner = (
        payload.get("repository")
        or payload.get("organization")
        or payload["installation"]["account"]
    )
    assert event.source == owner.get("html_url", owner.get("url"))
    assert event.data == payload


def test_push_carries_ref_commits_and_repository(github, hub):
    deliver(github, PUSH, github_headers(PUSH))
    (event,) = hub.bus.history()
    assert event.subject == event.data["ref"] == "refs/tags/simple-tag"
    assert event.source == "https://github.com/Codertocat/Hello-World"
    assert event.data["repository"]["full_name"] == "Codertocat/Hello-World"


def test_a_redelivery_is_stored_once(github, hub):
    headers = github_headers(PUSH, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    first = deliver(github, PUSH, headers)
    again = deliver(github, PUSH, headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(hub.bus.history()) == 1


# Slack ------------------------------------------------------------------------


@pytest.fixture
def slack(serve):
    return serve({"slack": {"kind": "slack", "secret": SLACK["signing_secret"]}})


def slack_headers(body, ts, secret=SLACK["signing_secret"]):
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sig.slack_signature(secret, ts, body),
    }


def test_slack_documented_vector_becomes_a_command(slack, hub, clock):
    clock.now = float(SLACK["timestamp"])
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": SLACK["timestamp"],
        "X-Slack-Signature": SLACK["expected_signature"],
    }
    response = deliver(slack, SLACK["body"].encode(), headers, name="slack")
    assert response.status_code == 200 and response.content == b""
    (event,) = hub.bus.history()
    assert event.type == "slack.command"
    assert event.data["command"] == "/webhook-collect"
    assert event.source == "slack/T1DC2JH3J"


@pytest.mark.parametrize(
    "offset, status", [(-301, 401), (-300, 200), (0, 200), (300, 200), (301, 401)]
)
def test_slack_window_boundaries(slack, hub, clock, offset, status):
    ts = int(SLACK["timestamp"])
    clock.now = float(ts + offset)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": SLACK["timestamp"],
        "X-Slack-Signature": SLACK["expected_signature"],
    }
    response = deliver(slack, SLACK["body"].encode(), headers, name="slack")
    assert response.status_code == status
    assert len(hub.bus.history()) == (status == 200)


def test_slack_replays_inside_the_window_store_one_event(slack, hub, clock):
    ts = int(clock.now)
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T1",
            "event_id": "Ev0PV52K21",
            "event": {"type": "app_mention", "text": "<@U1> hi"},
        }
    ).encode()
    for retry in range(3):
        headers = slack_headers(body, ts + retry)
        headers["Content-Type"] = "application/json"
        headers["X-Slack-Retry-Num"] = str(retry)
        clock.now = float(ts + retry)
        assert deliver(slack, body, headers, name="slack").status_code == 200
    (event,) = hub.bus.history()
    assert event.type == "slack.app_mention" and event.id == "Ev0PV52K21"


def test_slack_url_verification_is_answered_and_not_stored(slack, hub, clock):
    body = json.dumps(
        {
            "token": "t",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd",
            "type": "url_verification",
        }
    ).encode()
    headers = slack_headers(body, int(clock.now))
    headers["Content-Type"] = "application/json"
    response = deliver(slack, body, headers, name="slack")
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd"}
    assert hub.bus.history() == []


# Standard Webhooks, Stripe style, HMAC, documents --------------------------------


def standard_headers(secret, body, ts, msg_id="msg_1"):
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sig.standard_signature(secret, msg_id, ts, body),
    }


def test_standard_webhooks_with_rotated_secrets(serve, hub, clock):
    old, new = "whsec_" + "A" * 32, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    server = serve({"billing": {"kind": "standard", "secrets": [old, new]}})
    body, ts = b'{"type": "invoice.paid", "data": {"id": 7}}', int(clock.now)
    for n, secret in enumerate([old, new]):
        headers = standard_headers(secret, body, ts, msg_id=f"msg_{n}")
        assert deliver(server, body, headers, name="billing").status_code == 200
    other = standard_headers("whsec_" + "B" * 32, body, ts, msg_id="msg_x")
    assert deliver(server, body, other, name="billing").status_code == 401
    assert [e.type for e in hub.bus.history()] == ["billing.invoice.paid"] * 2


def test_stripe_style_receiver(serve, hub, clock):
    server = serve(
        {"stripe": {"kind": "standard", "scheme": "stripe", "secret": "whsec_x"}}
    )
    body = b'{"id": "evt_1NG8Du2eZvKYlo2C", "type": "charge.succeeded"}'
    header = sig.stripe_signature("whsec_x", int(clock.now), body)
    for _ in range(2):
        response = deliver(server, body, {"Stripe-Signature": header}, name="stripe")
        assert response.status_code == 200
    (event,) = hub.bus.history()
    assert (event.type, event.id) == ("stripe.charge.succeeded", "evt_1NG8Du2eZvKYlo2C")


def test_hmac_receiver_with_its_own_header(serve, hub):
    settings = {
        "kind": "hmac",
        "secret": "s3cret",
        "header": "X-Acme-Signature",
        "prefix": "sha512=",
        "algorithm": "sha512",
        "event_type": "acme.order.paid",
        "id_header": "X-Acme-Delivery",
    }
    server = serve({"acme": settings})
    body = b'{"order": 42}'
    good = sig.hmac_signature("s3cret", body, algorithm="sha512", prefix="sha512=")
    headers = {"X-Acme-Signature": good, "X-Acme-Delivery": "d-1"}
    assert deliver(server, body, headers, name="acme").status_code == 200
    assert (
        deliver(server, body, {"X-Acme-Signature": good[:-1]}, name="acme").status_code
        == 401
    )
    (event,) = hub.bus.history()
    assert (event.type, event.id, event.data) == (
        "acme.order.paid",
        "d-1",
        {"order": 42},
    )


def test_documents_receiver_feeds_event_driven_sync(serve, hub, clock):
    secret = "whsec_" + "C" * 32
    server = serve({"docs-hook": {"kind": "documents", "secret": secret}})
    body = b'{"source": "docs", "ids": ["guide.md", "faq.md"]}'
    headers = standard_headers(secret, body, int(clock.now))
    assert deliver(server, body, headers, name="docs-hook").status_code == 200
    events = hub.bus.history("document.updated")
    assert [e.subject for e in events] == ["docs/guide.md", "docs/faq.md"]
    assert events[0].data == {"source": "docs", "id": "guide.md"}
    bad = b'{"ids": ["x"]}'
    headers = standard_headers(secret, bad, int(clock.now), msg_id="msg_2")
    assert deliver(server, bad, headers, name="docs-hook").status_code == 400


def test_unknown_receiver_is_404(github):
    assert deliver(github, b"{}", {}, name="nope").status_code == 404


# Limits and acknowledgement ----------------------------------------------------


def raw_request(server, head: bytes, body_parts=()):
    host, port = server.addresses[0]
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(head)
        for part in body_parts:
            conn.sendall(part)
        return conn.recv(65536).split(b"\r\n", 1)[0]


def test_an_oversized_body_is_413_before_it_is_read(github, hub):
    head = (
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
        b"Content-Length: %d\r\n\r\n" % (26 * 1024 * 1024)
    )
    # Only the first kilobyte is ever sent: the answer cannot wait for the rest.
    assert (
        raw_request(github, head, [b"x" * 1024])
        == b"HTTP/1.1 413 Request Entity Too Large"
    )
    assert hub.bus.history() == []


def test_an_oversized_chunked_body_is_413(serve, hub):
    server = serve({"small": {"kind": "github", "secret": "s", "max_body_bytes": 1000}})
    head = (
        b"POST /webhooks/small HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"200\r\n" + b"x" * 0x200 + b"\r\n"
    # Two chunks pass the limit; the terminating chunk is never sent.
    assert (
        raw_request(server, head, [chunk, chunk])
        == b"HTTP/1.1 413 Request Entity Too Large"
    )
    assert hub.bus.history() == []


def test_chunked_from_requests_is_413_too(serve, hub):
    server = serve({"small": {"kind": "github", "secret": "s", "max_body_bytes": 1000}})
    body = iter([b"x" * 600, b"y" * 600])
    response = deliver(server, body, {"X-GitHub-Event": "push"}, name="small")
    assert response.status_code == 413 and hub.bus.history() == []


def test_the_answer_does_not_wait_for_a_slow_handler(github, hub):
    entered, release = threading.Event(), threading.Event()

    def slow(event):
        entered.set()
        release.wait(60)

    hub.bus.subscribe("github.*", slow, name="slow-workflow")
    hub.start()
    try:
        assert deliver(github, PUSH, github_headers(PUSH)).status_code == 200
        assert entered.wait(30)
        second = deliver(github, PUSH, github_headers(PUSH))
        assert second.status_code == 200 and not release.is_set()
        assert len(hub.bus.history("github.*")) == 2
    finally:
        release.set()


def test_a_payload_over_the_event_limit_is_413_naming_the_setting(tmp_path, clock):
    from eventhub.testing import make_hub

    with make_hub(tmp_path, "small.db", clock=clock, max_data_bytes=1000) as small:
        receivers = make_receivers({"github": {"kind": "github", "secret": "s"}})
        server = HTTPServer(small, ServerSettings(port=0), receivers)
        server.start()
        try:
            response = deliver(server, PUSH, github_headers(PUSH, secret="s"))
        finally:
            server.stop()
        assert response.status_code == 413
        assert "max_data_bytes" in response.json()["error"]
        assert small.bus.history() == []


def test_a_documents_hint_syncs_the_document_end_to_end(serve, hub, clock, tmp_path):
    from eventhub.integrations.filesystem import FilesystemSource
    from eventhub.workflows.document_sync import sync_workflows

    from eventhub.documents.embeddings import HashEmbedder
    from eventhub.documents.service import DocumentService

    folder = tmp_path / "docs"
    folder.mkdir()
    hub.register_integration("docs", FilesystemSource(path=folder))
    hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
    for flow in sync_workflows(hub, {"docs": {"schedule": False}}):
        hub.orchestrator.register_workflow(flow)
    hub.start(run_scheduler=False)
    secret = "whsec_" + "D" * 32
    server = serve({"docs-hook": {"kind": "documents", "secret": secret}})
    (folder / "refunds.md").write_text("# Refunds\n\nRefunds are paid in 14 days.\n")
    body = b'{"source": "docs", "id": "refunds.md"}'
    headers = standard_headers(secret, body, int(clock.now))
    assert deliver(server, body, headers, name="docs-hook").status_code == 200
    hub.bus.drain()
    assert hub.orchestrator.wait_idle(30)
    (hit, *_) = hub.documents.search("refunds paid", 1)
    assert hit.document_id == "refunds.md"
    assert [e.subject for e in hub.bus.history("document.indexed")] == [
        "docs/refunds.md"
    ]
