"""A token echoed by an upstream server is redacted everywhere eventhub writes.

One scenario, run once for the module: a loopback upstream answers every request
with the credential it received (``401 invalid api key <token>``, a 503 saying the
same, a 200 body holding it). The REST integration reaches it from workflows
(manual, and on events with retries) and from a durable subscription, with one token
from the config (``{ env = ... }``) and one given in code. Failing runs, retries,
dead letters and failure events follow. The API is read with a read-only token, and
the CLI runs a workflow and lists the dead letters. Then each test looks for the
tokens, in every form they take when written, in one place.
"""

import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from urllib.parse import quote, quote_plus

import pytest
import requests
import structlog
from eventhub.integrations.rest import RESTIntegration
from werkzeug import Response

from eventhub import Hub, RetryPolicy
from eventhub import log as eventhub_log
from eventhub.auth.apitokens import APITokenStore
from eventhub.auth.jwt import JWTManager
from eventhub.server import HTTPServer, ServerSettings
from eventhub.testing import FakeClock
from eventhub.webhooks import make_receivers
from eventhub.webhooks import signatures as sig

CANARY = "cnry/8Qk+Zt3vX9wLm2P"  # the config's token, { env = "EH_TEST_CANARY" }
GIVEN = "given/4Jd8+sK2mQ9xZ7"  # the token given to RESTIntegration in code
WEBHOOK_SECRET = "whsec-Q2w9E8r7T6y5U4i3"
JWT_SECRET = "jwt-Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4"

WORKFLOWS = """
    from eventhub import RetryPolicy, workflow

    @workflow("fetch-fail")
    def fetch_fail(ctx):
        return ctx.integration("crm").get("fail")

    @workflow("fetch-echo")
    def fetch_echo(ctx):
        body = ctx.integration("crm").get("echo")
        ctx.publish("crm.echoed", body, subject=body["you_sent"])
        return body

    @workflow("on-order", on="order.*", retry=RetryPolicy(2, wait=lambda s: 0))
    def on_order(ctx):
        ctx.integration("crm").get("busy")
"""


def forms(secret):
    """A secret as written as is, JSON-escaped (with \\/) and URL-encoded."""
    return {
        secret,
        secret.replace("/", "\\/"),
        quote(secret, safe=""),
        quote_plus(secret),
    }


def hits(text, secrets=(CANARY, GIVEN)):
    """Each form of each secret that occurs in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return sorted(form for s in secrets for form in forms(s) if form in text)


def echo(status):
    def answer(request):
        key = request.headers.get("Authorization", "").partition(" ")[2]
        if status == 200:
            return Response(
                json.dumps({"you_sent": key}), 200, mimetype="application/json"
            )
        return Response(f"invalid api key {key}", status, mimetype="text/plain")

    return answer


def write_config(folder, upstream):
    (folder / "flows").mkdir()
    (folder / "flows" / "crm_flows.py").write_text(textwrap.dedent(WORKFLOWS))
    config = folder / "eventhub.toml"
    config.write_text(
        'db = "hub.db"\nworkflows_dir = "flows"\n[log]\nlevel = "DEBUG"\n'
        f'[integrations.crm]\nkind = "rest"\nbase_url = "{upstream}"\n'
        'allow_private = true\nattempts = 1\ntoken = { env = "EH_TEST_CANARY" }\n'
    )
    return config


def run_hub(config, upstream, answers):
    """Runs, retries, dead letters and failure events, then the API's answers."""
    hub = Hub.from_config(config, clock=FakeClock(), load_entrypoints=False)
    vendor = RESTIntegration(upstream, token=GIVEN, allow_private=True, attempts=1)
    hub.register_integration("vendor", vendor)
    hub.bus.subscribe(
        "order.*",
        lambda e: vendor.get("busy"),
        name="vendor-sync",
        retry=RetryPolicy(2, wait=lambda s: 0),
    )
    hub.start(run_scheduler=False)
    try:
        hub.bus.publish("order.placed", {"id": 1})
        hub.bus.drain()
        hub.orchestrator.trigger_workflow("fetch-fail")
        hub.orchestrator.trigger_workflow("fetch-echo")
        answers.update(serve_and_read(hub))
    finally:
        hub.close()


def serve_and_read(hub):
    receivers = make_receivers({"gh": {"kind": "github", "secret": WEBHOOK_SECRET}})
    settings = ServerSettings.from_section({"port": 0, "jwt": {"secret": JWT_SECRET}})
    server = HTTPServer(hub, settings, receivers)
    server.start()
    try:
        reader = {
            "Authorization": f"Bearer {APITokenStore(hub.db).create('r', scope='read')}"
        }
        get = lambda path: requests.get(server.url + path, headers=reader, timeout=30)  # noqa: E731
        answers = {path: get(path).text for path in ("/runs", "/events?limit=1000")}
        for run in json.loads(answers["/runs"]):
            answers[f"/runs/{run['id']}"] = get(f"/runs/{run['id']}").text
        body = b'{"zen": "Keep it logically awesome."}'
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sig.github_signature(WEBHOOK_SECRET, body),
        }
        answers["webhook"] = requests.post(
            server.url + "/webhooks/gh", data=body, headers=headers, timeout=30
        ).text
        jwt = JWTManager(JWT_SECRET).generate_token({"sub": "ci"})
        answers["jwt"] = requests.get(
            server.url + "/runs", headers={"Authorization": f"Bearer {jwt}"}, timeout=30
        ).text
        return answers
    finally:
        server.stop()


def cli(config, *args):
    env = dict(os.environ, EH_TEST_CANARY=CANARY)
    return subprocess.run(
        [sys.executable, "-m", "eventhub", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def dump(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    text = "\n".join(conn.iterdump())
    conn.close()
    files = [path, path.with_name(path.name + "-wal")]
    return text, b"".join(f.read_bytes() for f in files if f.exists())


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, make_httpserver):
    upstream = make_httpserver
    for path, status in (("fail", 401), ("busy", 503), ("echo", 200)):
        upstream.expect_request(f"/v2/{path}").respond_with_handler(echo(status))
    folder = tmp_path_factory.mktemp("echo")
    config = write_config(folder, upstream.url_for("/v2/"))
    stream, answers = io.StringIO(), {}
    eventhub_log.configure(json=True, level="DEBUG", stream=stream)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EH_TEST_CANARY", CANARY)
        try:
            run_hub(config, upstream.url_for("/v2/"), answers)
        finally:
            _unconfigure_logging()
    run = cli(config, "workflows", "run", "fetch-fail")
    letters = cli(config, "dlq", "list", "--json")
    sent = [r.headers.get("Authorization", "") for r, _ in upstream.log]
    upstream.clear()
    text, raw = dump(folder / "hub.db")
    return {
        "logs": stream.getvalue(),
        "answers": answers,
        "cli": run,
        "dlq": letters,
        "dump": text,
        "raw": raw,
        "sent": sent,
    }


def _unconfigure_logging():
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_eventhub_handler", False):
            root.removeHandler(handler)
    structlog.reset_defaults()


def test_the_upstream_received_both_tokens_and_echoed_them(scenario):
    assert f"Bearer {CANARY}" in scenario["sent"]
    assert f"Bearer {GIVEN}" in scenario["sent"]
    runs = json.loads(scenario["answers"]["/runs"])
    assert {r["workflow"] for r in runs if r["status"] == "failed"} == {
        "fetch-fail",
        "on-order",
    }


def test_failures_were_retried_dead_lettered_and_published(scenario):
    letters = json.loads(scenario["dlq"].stdout)
    assert {d["subscription"] for d in letters} == {"vendor-sync", "workflow.on-order"}
    assert {d["attempts"] for d in letters} == {2}
    types = [e["type"] for e in json.loads(scenario["answers"]["/events?limit=1000"])]
    assert types.count("workflow.run.failed") == 3  # on-order twice, fetch-fail
    assert types.count("eventhub.delivery.dead_lettered") == 2
    assert "crm.echoed" in types


def test_no_log_line_holds_an_echoed_token(scenario):
    assert "invalid api key [REDACTED]" in scenario["logs"]
    assert hits(scenario["logs"]) == []


def test_the_state_database_holds_no_echoed_token(scenario):
    assert "invalid api key [REDACTED]" in scenario["dump"]
    assert hits(scenario["dump"]) == []
    assert hits(scenario["raw"]) == []


def test_run_records_from_the_api_hold_no_token(scenario):
    runs = {k: v for k, v in scenario["answers"].items() if k.startswith("/runs")}
    assert len(runs) == 5  # the list and four runs
    assert "invalid api key [REDACTED]" in runs["/runs"]
    assert [path for path, text in runs.items() if hits(text)] == []


def test_the_echoed_body_is_kept_redacted_in_the_result_and_event(scenario):
    events = json.loads(scenario["answers"]["/events?limit=1000"])
    (echoed,) = [e for e in events if e["type"] == "crm.echoed"]
    assert echoed["data"] == {"you_sent": "[REDACTED]"}
    assert echoed["subject"] == "[REDACTED]"
    runs = json.loads(scenario["answers"]["/runs"])
    (fetched,) = [r for r in runs if r["workflow"] == "fetch-echo"]
    assert fetched["result"] == {"you_sent": "[REDACTED]"}


def test_events_from_the_api_hold_no_token(scenario):
    assert hits(scenario["answers"]["/events?limit=1000"]) == []


def test_dead_letters_from_the_cli_hold_no_token(scenario):
    assert scenario["dlq"].returncode == 0, scenario["dlq"].stderr
    assert hits(scenario["dlq"].stdout + scenario["dlq"].stderr) == []


def test_a_failed_run_in_the_cli_shows_no_token(scenario):
    run = scenario["cli"]
    assert run.returncode == 1 and "workflow run failed" in run.stderr
    assert "invalid api key [REDACTED]" in run.stdout
    assert hits(run.stderr) == [] and hits(run.stdout) == []


def test_webhook_and_jwt_secrets_have_no_hits_anywhere(scenario):
    assert json.loads(scenario["answers"]["webhook"])["stored"]
    assert json.loads(scenario["answers"]["jwt"])  # the JWT opened the API
    places = [
        scenario["logs"],
        scenario["dump"],
        scenario["raw"],
        *scenario["answers"].values(),
    ]
    assert [p for p in places if hits(p, (WEBHOOK_SECRET, JWT_SECRET))] == []
