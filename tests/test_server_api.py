"""The daemon's HTTP API over real HTTP on 127.0.0.1: auth, events, runs, search,
health and metrics."""

import threading

import jwt as pyjwt
import pytest
import requests
from eventhub.integrations.filesystem import FilesystemSource

from eventhub import workflow
from eventhub.auth.apitokens import APITokenStore
from eventhub.auth.jwt import JWTManager
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.errors import ConfigError
from eventhub.retry import RetryPolicy
from eventhub.server import HTTPServer, ServerSettings


@pytest.fixture
def api(serve):
    return lambda **settings: serve(None, **settings)


@pytest.fixture
def token(hub):
    return APITokenStore(hub.db).create("ci")


class Client:
    def __init__(self, server, token=None):
        self.base = server.url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path, **params):
        return requests.get(
            self.base + path, params=params, headers=self.headers, timeout=30
        )

    def post(self, path, json=None, **params):
        return requests.post(
            self.base + path, json=json, params=params, headers=self.headers, timeout=30
        )


@pytest.fixture
def client(api, token):
    return Client(api(), token)


def test_publish_then_history(client, hub):
    response = client.post("/events", {"type": "user.created", "data": {"id": 7}})
    assert response.status_code == 201
    stored = response.json()
    assert stored["type"] == "user.created" and stored["sequence"] == 1
    (event,) = hub.bus.history()
    assert event.id == stored["id"] and event.data == {"id": 7}
    listed = client.get("/events", type="user.*").json()
    assert [e["id"] for e in listed] == [event.id]


def test_a_bad_event_is_422_and_nothing_is_stored(client, hub):
    response = client.post("/events", {"type": ""})
    assert response.status_code == 422
    assert "type" in response.json()["error"]
    assert client.post("/events", {"type": "x.y", "extra": 1}).status_code == 422
    assert hub.bus.history() == []


@pytest.mark.parametrize(
    "header",
    [None, "Bearer ehk_" + "A" * 43, "Bearer nonsense", "Basic dXNlcjpwYXNz"],
)
def test_the_api_needs_a_live_token(api, hub, header):
    server = api()
    headers = {"Authorization": header} if header else {}
    response = requests.post(
        server.url + "/events", json={"type": "x.y"}, headers=headers, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert hub.bus.history() == []


def test_a_revoked_token_is_refused_at_once(api, hub, token):
    client = Client(api(), token)
    assert client.get("/events").status_code == 200
    APITokenStore(hub.db).revoke("ci")
    assert client.get("/events").status_code == 401


def test_tokens_are_stored_hashed(hub, token):
    store = APITokenStore(hub.db)
    dump = "\n".join(hub.db.connection().iterdump())
    assert token not in dump and token[10:] not in dump
    assert store.check(token).name == "ci"
    assert [t.hint for t in store.list()] == [token[:10]]


def test_health_and_metrics_need_no_token(api, hub):
    server = api()
    hub.bus.publish("user.created", {"id": 1})
    health = requests.get(server.url + "/health", timeout=30).json()
    assert health["status"] == "ok" and health["last_sequence"] == 1
    text = requests.get(server.url + "/metrics", timeout=30).text
    assert "eventhub_events_published_total 1.0" in text
    assert "eventhub_log_last_sequence 1.0" in text
    assert (
        'eventhub_http_requests_total{method="GET",route="/health",status="200"}'
        in text
    )


def test_metrics_on_a_bind_of_their_own(api):
    server = api(metrics_port=0)
    main, ops = (f"http://{h}:{p}" for h, p in server.addresses)
    assert requests.get(main + "/metrics", timeout=30).status_code == 404
    assert requests.get(ops + "/metrics", timeout=30).status_code == 200
    assert requests.get(ops + "/health", timeout=30).json()["status"] == "ok"
    assert requests.get(ops + "/events", timeout=30).status_code == 404


def test_metrics_count_deliveries_runs_and_dead_letters(api, hub, token):
    server = api()

    def boom(event):
        raise ValueError("no")

    hub.bus.subscribe("job.*", boom, name="fails", retry=RetryPolicy(max_attempts=1))
    hub.orchestrator.register_workflow(workflow("hello")(lambda ctx: "hi"))
    hub.bus.publish("job.created")
    hub.bus.drain()
    hub.orchestrator.trigger_workflow("hello")
    text = requests.get(server.url + "/metrics", timeout=30).text
    assert 'eventhub_deliveries_failed_total{subscription="fails"}' in text
    assert 'eventhub_dead_letters{subscription="fails"} 1.0' in text
    assert (
        'eventhub_workflow_runs_total{status="succeeded",workflow="hello"} 1.0' in text
    )


def test_manual_run_waits_or_answers_202(client, hub):
    release = threading.Event()
    hub.orchestrator.register_workflow(workflow("quick")(lambda ctx: ctx.data))
    hub.orchestrator.register_workflow(workflow("slow")(lambda ctx: release.wait(60)))
    done = client.post("/workflows/quick/runs", {"data": {"n": 1}}, wait=30)
    assert done.status_code == 200
    assert done.json()["status"] == "succeeded" and done.json()["result"] == {"n": 1}
    started = client.post("/workflows/slow/runs")
    assert started.status_code == 202
    run_id = started.json()["id"]
    assert started.headers["Location"] == f"/runs/{run_id}"
    release.set()
    hub.orchestrator.wait_idle(30)
    assert client.get(f"/runs/{run_id}").json()["status"] == "succeeded"
    assert {r["workflow"] for r in client.get("/runs").json()} == {"quick", "slow"}


def test_unknown_workflow_and_run_are_404(client):
    assert client.post("/workflows/nope/runs").status_code == 404
    assert client.get("/runs/nope").status_code == 404


def test_search(client, hub, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Refunds\n\nRefunds are paid within 14 days.\n")
    hub.register_integration("docs", FilesystemSource(path=docs))
    hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
    hub.documents.sync("docs")
    hits = client.get("/search", q="refunds paid", k=3).json()
    assert hits[0]["document_id"] == "a.md" and hits[0]["source"] == "docs"
    assert client.get("/search", q="x", source="nope").status_code == 404
    assert client.get("/search", q="   ").status_code == 422


JWT_SECRET = "k" * 32


@pytest.fixture
def jwt_api(api):
    return api(jwt={"secret": JWT_SECRET, "audience": "eventhub"})


def test_a_jwt_opens_the_api(jwt_api):
    token = JWTManager(JWT_SECRET, audience="eventhub").generate_token({"sub": "ci"})
    assert Client(jwt_api, token).get("/events").status_code == 200


@pytest.mark.parametrize("problem", ["expired", "other audience", "alg none", "HS512"])
def test_bad_jwts_are_401(jwt_api, problem):
    if problem == "expired":
        issuer = JWTManager(JWT_SECRET, audience="eventhub", clock=lambda: 1_000_000)
        token = issuer.generate_token({"sub": "ci"})
    elif problem == "other audience":
        token = JWTManager(JWT_SECRET, audience="x").generate_token({"sub": "ci"})
    elif problem == "alg none":
        token = pyjwt.encode(
            {"sub": "ci", "aud": "eventhub", "exp": 2**40, "iat": 1},
            None,
            algorithm="none",
        )
    else:
        token = JWTManager(
            "k" * 64, algorithm="HS512", audience="eventhub"
        ).generate_token({})
    response = Client(jwt_api, token).get("/events")
    assert response.status_code == 401 and problem not in response.text


def test_a_weak_jwt_secret_refuses_to_start(hub):
    with pytest.raises(ConfigError, match="server.jwt: .*at least 32 bytes"):
        HTTPServer(hub, ServerSettings(port=0, jwt={"secret": "short"}), {})


def test_manual_runs_are_bounded(api, hub, token):
    client = Client(api(max_manual_runs=1), token)
    release = threading.Event()
    hub.orchestrator.register_workflow(workflow("slow")(lambda ctx: release.wait(60)))
    assert client.post("/workflows/slow/runs").status_code == 202
    refused = client.post("/workflows/slow/runs")
    assert refused.status_code == 503 and "max_manual_runs" in refused.json()["error"]
    release.set()
    for thread in threading.enumerate():
        if thread.name == "eventhub-run-slow":
            thread.join(30)
    done = client.post("/workflows/slow/runs", wait=30)
    assert done.status_code == 200 and done.json()["status"] == "succeeded"


def test_a_read_only_token_reads_but_never_writes(api, hub):
    token = APITokenStore(hub.db).create("dashboard", scope="read")
    client = Client(api(), token)
    hub.orchestrator.register_workflow(workflow("quick")(lambda ctx: 1))
    assert client.get("/events").status_code == 200
    refused = client.post("/events", {"type": "x.y"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "token 'dashboard' is read-only"}
    assert client.post("/workflows/quick/runs").status_code == 403
    assert hub.bus.history() == [] and hub.orchestrator.runs.list() == []


def test_runs_of_an_unknown_workflow_are_404_naming_the_known_ones(client, hub):
    @workflow("report")
    def report(ctx):
        return "done"

    hub.orchestrator.register_workflow(report)
    assert client.get("/runs", workflow="report").json() == []
    answer = client.get("/runs", workflow="invoice")
    assert answer.status_code == 404
    assert "invoice" in answer.json()["error"] and "report" in answer.json()["error"]
