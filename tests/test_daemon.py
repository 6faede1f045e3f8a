"""The daemon as users run it: `eventhub run --config FILE` in its own process."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from eventhub import Hub

pytestmark = pytest.mark.slow

WORKFLOW = """
import os, time
from pathlib import Path
from eventhub import workflow

HANDLED = Path(__file__).resolve().parent.parent / "handled.txt"

@workflow("record", on="load.*")
def record(ctx):
    if ctx.event.data.get("slow"):
        time.sleep(ctx.event.data["slow"])
    fd = os.open(HANDLED, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{ctx.event.data['n']}\\n".encode())
    os.close(fd)
    return ctx.event.data["n"]
"""


class Daemon:
    """An `eventhub run` child process, with its systemd notification socket; its
    standard error goes to ``log`` if given (a file never fills up as a pipe does)."""

    def __init__(self, folder: Path, config: Path, log: Path | None = None) -> None:
        self.folder = folder
        self.config = config
        self.log = log
        self.sock_dir = tempfile.mkdtemp(prefix="eh-")  # short: AF_UNIX path limit
        self.sock_path = os.path.join(self.sock_dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(60)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        env = dict(os.environ, NOTIFY_SOCKET=self.sock_path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventhub", "run", "--config", str(self.config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log.open("ab") if self.log else subprocess.PIPE,
        )
        assert self.notification() == "READY=1"
        return self

    def notification(self) -> str:
        return self.sock.recv(256).decode()

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_example(root, port, *, model=None):
    """A fresh copy of examples/ as root/examples (no state database), its server on
    ``port``, its CRM contacts file inside the copy, optionally another embedding
    model. Returns the config file."""
    target = root / "examples"
    shutil.copytree(
        EXAMPLES,
        target,
        ignore=shutil.ignore_patterns("*.db", "*.db-*", "*.faiss*", "__pycache__"),
    )
    config = target / "eventhub.toml"
    text = config.read_text()
    for old, new in [
        ("port = 8765", f"port = {port}"),
        ("/tmp/eventhub-example-crm.json", str(target / "crm-contacts.json")),
    ]:
        assert old in text, f"examples/eventhub.toml no longer has {old!r}"
        text = text.replace(old, new)
    if model is not None:
        text += f'\n[index]\nmodel = "{model}"\n'
    config.write_text(text)
    return config


@pytest.fixture
def setup(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "record.py").write_text(WORKFLOW)
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent("""
        db = "hub.db"
        workflows_dir = "flows"
        [log]
        level = "WARNING"
        [daemon]
        shutdown_timeout = 5
    """)
    )
    daemons = []

    def daemon():
        d = Daemon(tmp_path, config)
        daemons.append(d)
        return d.start()

    yield tmp_path, daemon
    for d in daemons:
        d.close()


def handled(folder):
    path = folder / "handled.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def publish(db, numbers, **extra):
    with Hub(db, load_entrypoints=False) as app:
        app.bus.publish_many(
            [{"type": "load.item", "data": {"n": n, **extra}} for n in numbers]
        )


def test_events_from_another_process_run_the_workflow_once_each(setup):
    folder, daemon = setup
    d = daemon()
    publish(folder / "hub.db", range(20))
    wait_for(lambda: len(handled(folder)) >= 20)
    d.proc.send_signal(signal.SIGTERM)
    assert d.notification() == "STOPPING=1"
    assert d.proc.wait(timeout=30) == 0
    assert sorted(handled(folder)) == list(range(20))
    with Hub(folder / "hub.db", load_entrypoints=False) as hub:
        runs = hub.orchestrator.runs.list("record", limit=None)
    assert len(runs) == 20 and {r.status for r in runs} == {"succeeded"}


def test_sigterm_lets_the_handler_in_flight_finish(setup):
    folder, daemon = setup
    d = daemon()
    publish(folder / "hub.db", [1], slow=1.0)
    publish(folder / "hub.db", [2])
    wait_for(lambda: (folder / "hub.db").exists())
    time.sleep(0.3)  # let the slow handler begin (the test asserts no timing)
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    assert 1 in handled(folder)  # the in-flight run finished before exit
    d2 = daemon()  # whatever was not acknowledged is delivered after a restart
    wait_for(lambda: set(handled(folder)) == {1, 2})
    d2.proc.send_signal(signal.SIGTERM)
    assert d2.proc.wait(timeout=30) == 0


def test_a_second_signal_exits_at_once(setup):
    folder, daemon = setup
    d = daemon()
    publish(folder / "hub.db", [1], slow=60)
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGTERM)
    assert d.notification() == "STOPPING=1"
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 128 + signal.SIGTERM


def test_sigkill_during_a_burst_loses_nothing(setup):
    folder, daemon = setup
    total = 600
    d = daemon()
    publish(folder / "hub.db", range(total))
    wait_for(lambda: len(handled(folder)) >= 150)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d2 = daemon()
    wait_for(lambda: set(handled(folder)) >= set(range(total)))
    d2.proc.send_signal(signal.SIGTERM)
    assert d2.proc.wait(timeout=30) == 0
    counts = Counter(handled(folder))
    assert set(counts) == set(range(total))  # every event handled at least once
    assert sum(counts.values()) - total <= 100  # only the step in flight is redone


def run_cli(*args, cwd=None, env=None, unset=()):
    """``eventhub ARGS`` in a process of its own; ``unset`` names variables to drop."""
    env = dict(os.environ, **(env or {}))
    for name in unset:
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "eventhub", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )
    proc.ok = proc.returncode == 0
    return proc


def test_check_validates_and_exits(setup):
    folder, _ = setup
    proc = run_cli("run", "--config", str(folder / "eventhub.toml"), "--check")
    assert proc.returncode == 0 and proc.stdout.startswith("config OK: 1 workflow")


@pytest.mark.parametrize(
    ("break_it", "args", "message"),
    [
        (
            lambda f: (f / "eventhub.toml").write_text("db = ["),
            ["run", "--check"],
            "not valid TOML",
        ),
        (
            lambda f: (f / "flows" / "bad.py").write_text("import nonexistent_mod\n"),
            ["run", "--check"],
            "bad.py: import failed (line 1): ModuleNotFoundError",
        ),
        (
            lambda f: (f / "flows" / "dup.py").write_text(
                "from eventhub import workflow\n@workflow('record')\ndef r(ctx): pass\n"
            ),
            ["run"],
            "defined twice",
        ),
        (lambda f: None, ["workflows", "run", "nope"], "no workflow named 'nope'"),
        (lambda f: None, ["run", "--config", "missing.toml"], "does not exist"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(setup, break_it, args, message):
    folder, _ = setup
    break_it(folder)
    proc = run_cli("--config", str(folder / "eventhub.toml"), *args, cwd=folder)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_from_the_environment(setup):
    folder, _ = setup
    proc = run_cli(
        "workflows",
        "list",
        "--json",
        env={"EVENTHUB_CONFIG": str(folder / "eventhub.toml")},
    )
    (flow,) = json.loads(proc.stdout)
    assert flow["name"] == "record" and flow["on"] == ["load.*"]


def test_workflows_run_and_runs_json(setup):
    folder, _ = setup
    config = str(folder / "eventhub.toml")
    (folder / "flows" / "manual.py").write_text(
        textwrap.dedent("""
        from eventhub import workflow

        @workflow("double")
        def double(ctx):
            return ctx.data["x"] * 2
    """)
    )
    proc = run_cli(
        "--config", config, "workflows", "run", "double", "--data", '{"x": 21}'
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == 42
    (run,) = json.loads(run_cli("--config", config, "runs", "--json").stdout)
    assert run["workflow"] == "double" and run["status"] == "succeeded"
    assert run["started"].endswith("Z") and run["finished"].endswith("Z")
    status = json.loads(run_cli("--config", config, "status", "--json").stdout)
    assert status["recent_runs"]["succeeded"] == 1
    assert {w["name"] for w in status["workflows"]} == {"record", "double"}


def test_a_failed_manual_run_exits_1_with_its_record(setup):
    folder, _ = setup
    (folder / "flows" / "fails.py").write_text(
        textwrap.dedent("""
        from eventhub import workflow

        @workflow("fails")
        def fails(ctx):
            raise RuntimeError("nope")
    """)
    )
    proc = run_cli(
        "--config", str(folder / "eventhub.toml"), "workflows", "run", "fails"
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"] == "RuntimeError: nope"


def test_runs_of_an_unknown_workflow_is_a_mistake_naming_the_known_ones(setup):
    folder, _ = setup
    config = ["--config", str(folder / "eventhub.toml")]
    assert run_cli(*config, "publish", "app.started").returncode == 0
    proc = run_cli(*config, "runs", "--workflow", "invoice")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no workflow named 'invoice' (known: record)" in proc.stderr
    proc = run_cli(*config, "runs", "--workflow", "record")  # known, no runs yet
    assert proc.returncode == 0 and proc.stdout == "no runs\n", proc.stderr


def test_runs_of_a_workflow_no_longer_configured_are_still_listed(setup):
    folder, _ = setup
    config = ["--config", str(folder / "eventhub.toml")]
    (folder / "flows" / "once.py").write_text(
        "from eventhub import workflow\n@workflow('once')\ndef once(ctx): return 1\n"
    )
    assert run_cli(*config, "workflows", "run", "once").returncode == 0
    (folder / "flows" / "once.py").unlink()
    proc = run_cli(*config, "runs", "--workflow", "once", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["workflow"] for r in json.loads(proc.stdout)] == ["once"]


def test_sigterm_with_the_model_loaded_exits_once_stopped(tmp_path):
    """The example daemon, its documents synced with the real embedding model
    (torch and all in memory), stops and exits at once: no thread left behind, and
    interpreter shutdown does not linger over the model's objects."""
    config = copy_example(tmp_path, free_port())
    log = tmp_path / "daemon.log"
    daemon = Daemon(tmp_path, config, log=log).start()
    try:

        def synced():
            with Hub(config.parent / "eventhub.db", load_entrypoints=False) as hub:
                runs = hub.orchestrator.runs.list("sync.docs", limit=None)
            return [r for r in runs if r.status != "running"]

        wait_for(synced, timeout=120)
        (run,) = synced()
        assert run.status == "succeeded" and run.result["embedded"] > 0
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=60) == 0
    finally:
        daemon.close()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert events[-1] == "eventhub stopped"
    assert "threads still running after stop" not in events
