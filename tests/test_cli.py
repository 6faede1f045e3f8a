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


HELLO_PLUGIN = """
import click
from eventhub import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        \"\"\"Say hello.\"\"\"
        click.echo("hello from a plugin")
"""


@pytest.fixture
def plugin_config(tmp_path):
    """A config whose ``plugins = [...]`` names a file that adds ``hello``."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "hello.py").write_text(HELLO_PLUGIN)
    config = tmp_path / "eventhub.toml"
    config.write_text('db = "state.db"\nplugins = ["plugins/hello.py"]\n')
    return config


def test_a_plugin_named_in_the_config_adds_a_command(run, plugin_config):
    assert run("--config", str(plugin_config), "hello").stdout == (
        "hello from a plugin\n"
    )
    listed = run("--config", str(plugin_config), "--help").stdout
    assert "hello      Say hello." in listed and "history" in listed
    assert "hello" not in run("--help").stdout  # no config: no such plugin


def test_the_cli_builds_one_plugin_manager_per_run(plugin_config, monkeypatch):
    import pluggy
    from click.testing import CliRunner

    from eventhub.cli import cli

    made = []
    add_hookspecs = pluggy.PluginManager.add_hookspecs
    monkeypatch.setattr(
        pluggy.PluginManager,
        "add_hookspecs",
        lambda pm, specs: made.append(pm) or add_hookspecs(pm, specs),
    )
    config = ["--config", str(plugin_config)]
    expected = {"hello": 1, "workflows list": 1, "history": 0, "--help": 1}
    for args, managers in expected.items():
        made.clear()
        result = CliRunner().invoke(cli, [*config, *args.split()])
        assert result.exit_code in (0, 2), result.output  # history: no database yet
        assert len(made) == managers, args
    assert "hello" not in cli.commands  # plugin commands are not left behind


def test_version_and_help_import_no_integration_and_no_requests(tmp_path):
    code = (
        "import sys\n"
        "from eventhub.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m == 'requests'"
        " or m.startswith(('eventhub.integrations', 'eventhub.workflows'))]\n"
        "print(loaded, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EVENTHUB_NO_ENTRYPOINTS"}
    for args in (["--version"], ["--help"], ["history", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 0 and proc.stderr == "[]\n", (args, proc.stderr)
        assert proc.stdout.startswith(("eventhub, version", "Usage: "))


def test_the_built_in_plugins_add_no_commands():
    """So that listing the commands needs no built-in plugin (see eventhub.cli)."""
    import importlib

    from eventhub.plugins import DEFAULT_PLUGINS

    for name in DEFAULT_PLUGINS:
        assert not hasattr(importlib.import_module(name), "register_commands"), name
