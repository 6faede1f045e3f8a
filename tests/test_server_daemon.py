"""The daemon's HTTP server as users run it: `eventhub run` with [server] and
[webhooks.github], then `eventhub history --json` and `eventhub tokens`."""

import json
import os
import signal
import socket
import textwrap
import uuid

import pytest
import requests

from eventhub.webhooks.signatures import github_signature

from .test_daemon import Daemon, copy_example, run_cli

pytestmark = pytest.mark.slow
SECRET = "It's a Secret to Everybody"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    port = free_port()
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [log]
        level = "WARNING"
        [server]
        host = "127.0.0.1"
        port = {port}

        [webhooks.github]
        kind = "github"
        secret = {{ env = "GITHUB_WEBHOOK_SECRET" }}
    """)
    )
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    running = Daemon(tmp_path, config).start()
    yield running, f"http://127.0.0.1:{port}"
    running.close()


def test_signed_delivery_lands_in_history_and_forgery_does_not(daemon):
    running, url = daemon
    body = b'{"action": "opened", "issue": {"number": 1}, "repository": {}}'
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4())}
    good = {**headers, "X-Hub-Signature-256": github_signature(SECRET, body)}
    bad = {**headers, "X-Hub-Signature-256": github_signature("wrong", body)}
    assert requests.post(f"{url}/webhooks/github", data=body, headers=good).ok
    assert (
        requests.post(f"{url}/webhooks/github", data=body, headers=bad).status_code
        == 401
    )
    assert (
        requests.post(f"{url}/webhooks/github", data=body, headers=headers).status_code
        == 401
    )
    result = run_cli("--config", str(running.config), "history", "--json")
    assert result.returncode == 0, result.stderr
    assert [e["type"] for e in json.loads(result.stdout)] == ["github.issues.opened"]
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(60) == 0


def test_tokens_from_the_cli_open_the_api(daemon):
    running, url = daemon
    config = ["--config", str(running.config)]
    created = run_cli(*config, "tokens", "create", "deploy")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert "cannot be shown again" in created.stderr
    auth = {"Authorization": f"Bearer {token}"}
    response = requests.post(
        f"{url}/events", json={"type": "deploy.done"}, headers=auth
    )
    assert response.status_code == 201
    assert run_cli(*config, "tokens", "create", "dash", "--read-only").returncode == 0
    listed = json.loads(run_cli(*config, "tokens", "list", "--json").stdout)
    assert [(t["name"], t["scope"]) for t in listed] == [
        ("dash", "read"),
        ("deploy", "write"),
    ]
    assert token not in str(listed)
    assert run_cli(*config, "tokens", "revoke", "deploy").returncode == 0
    assert requests.get(f"{url}/events", headers=auth).status_code == 401
    again = run_cli(*config, "tokens", "revoke", "deploy")
    assert again.returncode == 2 and again.stderr.count("\n") == 1


def test_config_mistakes_are_one_line(tmp_path):
    config = tmp_path / "eventhub.toml"
    config.write_text('[server]\nport = 8765\n[webhooks.gh]\nkind = "github"\n')
    result = run_cli("run", "--config", str(config), "--check")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        'webhooks.gh: no secret configured; set secret = { env = "NAME" } '
        "(or insecure = true to accept unsigned requests)"
    )
    config.write_text('[webhooks.gh]\nkind = "github"\ninsecure = true\n')
    result = run_cli("run", "--config", str(config), "--check")
    assert result.returncode == 2 and "add a [server] section" in result.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "eventhub.toml"
        config.write_text(f'db = "hub.db"\n[server]\nport = {port}\n')
        result = run_cli("run", "--config", str(config), env={"NOTIFY_SOCKET": ""})
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr and os.path.exists(tmp_path / "hub.db")


@pytest.fixture
def example(tmp_path):
    """The example config, a [webhooks.github] added whose variable is not set."""
    config = copy_example(tmp_path, free_port(), model="hash")
    config.write_text(
        config.read_text()
        + '\n[webhooks.github]\nkind = "github"\n'
        + 'secret = { env = "EH_TEST_UNSET_GITHUB_SECRET" }\n'
    )
    return config


def test_reading_commands_need_no_secret(example):
    config = ["--config", str(example)]
    assert run_cli(*config, "publish", "user.created", "--data", '{"id": 1}').ok
    for command in [
        ["history"],
        ["runs"],
        ["status"],
        ["dlq", "list"],
        ["tokens", "list"],
        ["index", "stats"],
        ["search", "crash"],
        ["workflows", "list"],
    ]:
        proc = run_cli(*config, *command, unset=["EH_TEST_UNSET_GITHUB_SECRET"])
        assert proc.returncode == 0, (command, proc.stderr)


def test_check_names_every_missing_secret_at_once(example):
    text = example.read_text().replace(
        "[server]", '[server]\njwt = { secret = { file = "/nonexistent/jwt" } }'
    )
    example.write_text(text)
    proc = run_cli("run", "--config", str(example), "--check")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"Error: {example}: server.jwt.secret: cannot read secret file"
        " /nonexistent/jwt: No such file or directory",
        f"Error: {example}: webhooks.github.secret: environment variable"
        " EH_TEST_UNSET_GITHUB_SECRET is not set",
    ]


def test_check_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = copy_example(tmp_path, port, model="hash")
        proc = run_cli("run", "--config", str(config), "--check")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"server: cannot listen on 127.0.0.1:{port}" in proc.stderr
        config.write_text(
            config.read_text().replace(
                f"port = {port}", f"port = {free_port()}\nmetrics_port = {port}"
            )
        )
        proc = run_cli("run", "--config", str(config), "--check")
        assert proc.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in (
            proc.stderr
        )
    proc = run_cli("run", "--config", str(config), "--check")  # free again
    assert proc.returncode == 0 and proc.stdout.startswith("config OK"), proc.stderr
