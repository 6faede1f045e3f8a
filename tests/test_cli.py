"""The eventhub command run as users run it: a real process, real exit codes."""

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture
def run(tmp_path):
    env = dict(os.environ, EVENTHUB_DB=str(tmp_path / "cli.db"))

    def run(*args, ok=True):
        proc = subprocess.run(
            [sys.executable, "-m", "eventhub", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_version(run):
    assert run("--version").stdout.startswith("eventhub, version ")


def test_publish_prints_the_stored_event(run):
    out = run(
        "publish", "user.created", "--data", '{"id": 7}', "--subject", "user/7"
    ).stdout
    event = json.loads(out)
    assert event["type"] == "user.created" and event["data"] == {"id": 7}
    assert event["sequence"] == 1 and event["subject"] == "user/7"
    assert event["source"] == "eventhub/cli" and event["specversion"] == "1.0"


def test_history_json_is_an_array_of_cloudevents_oldest_first(run):
    run("publish", "user.created", "--source", "/crm")
    run("publish", "order.paid")
    run("publish", "user.deleted")
    events = json.loads(run("history", "--type", "user.*", "--json").stdout)
    assert [e["type"] for e in events] == ["user.created", "user.deleted"]
    assert [e["sequence"] for e in events] == [1, 3]
    assert (
        json.loads(run("history", "--limit", "1", "--json").stdout)[0]["sequence"] == 3
    )


def test_publish_reads_data_from_a_file_or_stdin(run, tmp_path):
    (tmp_path / "payload.json").write_text('{"from": "file"}')
    out = run("publish", "a.b", "--data", f"@{tmp_path / 'payload.json'}").stdout
    assert json.loads(out)["data"] == {"from": "file"}


def test_history_text_lists_one_event_per_line(run):
    run("publish", "user.created", "--subject", "u1")
    (line,) = run("history").stdout.splitlines()
    assert "user.created" in line and "subject=u1" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["publish", ""], "invalid event: type"),
        (["publish", "a.b", "--data", "{nope"], "--data is not valid JSON"),
        (["publish", "a.b", "--data", "@big.json"], "over the limit"),
        (["publish", "a.b", "--data", "@missing.json"], "cannot read missing.json"),
        (["history", "--limit", "0"], "--limit"),
        (["dlq", "redrive"], "give dead-letter IDs or --all"),
        (["dlq", "redrive", "41"], "no dead letter with id 41"),
        (["no-such-command"], "No such command"),
        (["history", "--type", "user.*x"], "invalid subscription pattern"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(
    run, args, message, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.json").write_text('"' + "x" * 1_100_000 + '"')
    run("publish", "seed.event")
    proc = run(*args, ok=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_reading_a_missing_database_is_a_user_mistake(run):
    proc = run("history", ok=False)
    assert proc.returncode == 2 and "no state database" in proc.stderr


def test_dlq_list_and_redrive(run, tmp_path):
    from eventhub import RetryPolicy
    from eventhub.testing import make_hub

    with make_hub(tmp_path, "cli.db") as hub:
        hub.bus.subscribe("job.*", lambda e: 1 / 0, name="w", retry=RetryPolicy.never())
        hub.bus.publish("job.run")
        hub.bus.publish("job.run")
        hub.bus.drain()
    letters = json.loads(run("dlq", "list", "--json").stdout)
    assert [d["subscription"] for d in letters] == ["w", "w"]
    assert (
        letters[0]["event"]["type"] == "job.run"
        and "ZeroDivisionError" in letters[0]["error"]
    )
    assert (
        run("dlq", "redrive", str(letters[0]["id"])).stdout.strip()
        == "redrove 1 dead letter"
    )
    assert run("dlq", "redrive", "--all").stdout.strip() == "redrove 1 dead letter"
    assert json.loads(run("dlq", "list", "--json").stdout) == []


def test_db_option_overrides_the_environment(run, tmp_path):
    other = tmp_path / "other.db"
    run("--db", str(other), "publish", "a.b")
    assert other.exists() and not (tmp_path / "cli.db").exists()


def test_plugins_can_add_commands(tmp_path):
    from click.testing import CliRunner

    from eventhub import cli as cli_module
    from eventhub.plugins import make_plugin_manager

    class Plugin:
        from eventhub import hookimpl

        @hookimpl
        def register_commands(self, cli):
            @cli.command(name="hello")
            def hello():
                """Say hello."""
                print("hello from a plugin")

    pm = make_plugin_manager([Plugin()])
    pm.hook.register_commands(cli=cli_module.cli)
    try:
        result = CliRunner().invoke(cli_module.cli, ["hello"])
        assert result.output == "hello from a plugin\n"
    finally:
        cli_module.cli.commands.pop("hello")
