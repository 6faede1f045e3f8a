"""Every shell command in README.md and docs/*.md runs as written, against a copy of
the example folder.

The commands are the lines of the ```sh, ```bash and ```console code blocks (in a
console block, the lines after a ``$`` prompt); a command goes on over the next
lines while it ends in a backslash or a quote is open. Each doc file gets a fresh
copy of ``examples/`` (no state database yet) under a temporary root, which is the
working directory; ``.venv`` there links to this interpreter's environment, and its
``bin`` comes first on ``PATH``, so ``.venv/bin/eventhub`` and a bare ``eventhub``
are the eventhub under test. Each command runs in ``bash`` as a user would type it
and must exit 0; every failure is reported with its file and line.

While a file's commands run, the example daemon (``eventhub --config
examples/eventhub.toml run``) runs too, its start-up document sync finished, so that
``curl`` lines, ``search`` and the example app have it to talk to. ``run --check``
and ``run`` need the daemon's port: the daemon is stopped for them and started again
after. A documented ``run`` is started as the daemon it is, waited for
(``READY=1``) and stopped with SIGTERM; it must exit 0. When a file's commands are
done, the daemon must have handled every event they caused without a dead letter.

What the test changes, and why:

- The example's port 8765 becomes a free one, in the config copy and in the commands:
  another daemon (someone's ``make run``) may hold 8765.
- The CRM's contacts file goes inside the copy (the example writes it under /tmp).
- ``[index] model = "hash"``: the commands run the same code, without loading the
  embedding model in every ``search`` and ``sync`` process (tests/test_daemon.py
  syncs the example with the real model).
- A command naming a bare ``eventhub.toml`` (your own config) runs in ``examples/``,
  where the example config is that file.
- ``$TOKEN`` is a write API token made for the test; ``curl`` fails on an HTTP error
  (``--fail-with-body`` from a ``.curlrc``), as a user would notice one.

Not run, on purpose:

- ``make ...``: ``make run`` builds a virtual environment and runs the daemon until
  Ctrl-C, ``make test`` rebuilds the environment and runs this whole suite (this test
  included), ``make bench`` takes minutes; the Makefile's steps are what these
  commands would exercise, and the daemon is run here directly.
- ``pip install ...``: it installs from a package index; tests never reach the
  network.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_daemon import copy_example, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "console", "shell"}
NOT_RUN = {
    "make": "builds a virtual environment, runs the daemon until Ctrl-C, or runs "
    "this suite",
    "pip": "installs from a package index (no network in tests)",
}
CONFIG = "examples/eventhub.toml"


@dataclass
class Command:
    file: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def extract(path: Path, text: str | None = None) -> list[Command]:
    """The shell commands of a Markdown file's sh/bash/console code blocks."""
    found: list[Command] = []
    language: str | None = None  # of the open block, None outside blocks
    pending: tuple[int, str] | None = None
    lines = (path.read_text() if text is None else text).splitlines()
    for number, line in enumerate(lines, 1):
        fence = re.match(r"\s*```\s*(\S*)", line)
        if fence and pending is None:
            language = None if language is not None else fence.group(1).lower()
            continue
        if language not in SHELLS:
            continue
        if pending is None:
            stripped = line.strip()
            if language == "console":
                if not stripped.startswith("$ "):
                    continue  # output
                stripped = stripped[2:]
            if not stripped or stripped.startswith("#"):
                continue
            pending = (number, stripped)
        else:
            pending = (pending[0], f"{pending[1]}\n{line}")
        if not _incomplete(pending[1]):
            found.append(Command(path, *pending))
            pending = None
    assert pending is None, f"{path}:{pending[0]}: a command that never ends"
    return found


def _incomplete(text: str) -> bool:
    if text.endswith("\\"):
        return True
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quote still open
        return True
    return False


def test_extract_reads_commands_as_a_shell_would():
    sample = """
text
```sh
# a comment
eventhub history   # the log
curl -s -d '{"a": 1,
     "b": 2}' \\
     http://x/
```
```console
$ eventhub status
eventhub 0.1.0
```
```python
print("not a command")
```
"""
    commands = extract(ROOT / "README.md", sample)
    assert [(c.line, c.words[0]) for c in commands] == [
        (5, "eventhub"),
        (6, "curl"),
        (11, "eventhub"),
    ]
    assert commands[1].words[-1] == "http://x/"


class Stage:
    """A copy of the example folder, its daemon, and a way to run commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.config = copy_example(root, self.port, model="hash")
        (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        (root / ".curlrc").write_text("fail-with-body\n")
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("EVENTHUB_CONFIG", "EVENTHUB_DB", "NOTIFY_SOCKET")
        }
        self.env["PATH"] = f"{root / '.venv' / 'bin'}{os.pathsep}{self.env['PATH']}"
        self.env["CURL_HOME"] = str(root)
        self.daemon: subprocess.Popen | None = None
        self.log = root / "daemon.log"

    # The example daemon -----------------------------------------------------

    def start(self, command: str | None = None) -> subprocess.Popen:
        """Start ``command`` (default: the example daemon) in bash, and wait for
        its READY=1."""
        text = command or f"eventhub --config {CONFIG} run"
        folder = tempfile.mkdtemp(prefix="eh-docs-")  # short: AF_UNIX path limit
        address = os.path.join(folder, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            sock.settimeout(60)
            with self.log.open("ab") as log:
                proc = subprocess.Popen(
                    ["bash", "-c", f"exec {text}"],
                    cwd=self.cwd(text),
                    env={**self.env, "NOTIFY_SOCKET": address},
                    stdout=log,
                    stderr=log,
                )
            try:
                ready = sock.recv(64)
            except TimeoutError:
                ready = b""
        os.unlink(address)
        os.rmdir(folder)
        if ready != b"READY=1":
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"{text!r} did not become ready:\n{self.log.read_text()[-3000:]}"
            )
        return proc

    def start_daemon(self) -> None:
        self.daemon = self.start()
        wait_for(self.synced, f"the start-up sync of {CONFIG}")

    def stop(self, proc: subprocess.Popen) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)

    def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            code = self.stop(self.daemon)
            assert code == 0, f"the example daemon exited {code}"
        self.daemon = None

    def kill(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()

    def synced(self) -> bool:
        runs = self.eventhub_json("runs", "--workflow", "sync.docs")
        return any(run["status"] != "running" for run in runs)

    def eventhub_json(self, *args: str) -> object:
        proc = subprocess.run(
            [sys.executable, "-m", "eventhub", "--config", CONFIG, *args, "--json"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    # Commands ---------------------------------------------------------------

    def cwd(self, text: str) -> Path:
        """Your own ``eventhub.toml`` is the example's, in its folder."""
        bare = re.search(r"(?<![\w/.-])eventhub\.toml", text)
        return self.config.parent if bare else self.root

    def adapt(self, text: str) -> str:
        return re.sub(r"(127\.0\.0\.1|localhost):8765", f"127.0.0.1:{self.port}", text)

    def run(self, command: Command) -> str | None:
        """Run one documented command; None if it did what it should, else why."""
        text = self.adapt(command.text)
        subcommand = eventhub_subcommand(command.words)
        if subcommand == "run":
            self.stop_daemon()  # the port is the documented command's
            try:
                if "--check" in command.words:
                    return self.shell(text)
                proc = self.start(text)
                code = self.stop(proc)
                return None if code == 0 else f"exited {code} after SIGTERM"
            finally:
                self.start_daemon()
        return self.shell(text)

    def shell(self, text: str) -> str | None:
        proc = subprocess.run(
            ["bash", "-c", text],
            cwd=self.cwd(text),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode == 0:
            return None
        return f"exited {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}"


def eventhub_subcommand(words: list[str]) -> str | None:
    """``run`` for ``eventhub --config X run --check``; None if not eventhub."""
    if not words or Path(words[0]).name != "eventhub":
        return None
    rest = iter(words[1:])
    for word in rest:
        if word in ("--config", "--db"):
            next(rest, None)
        elif not word.startswith("-"):
            return word
    return None


def wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not done before the deadline"
        time.sleep(0.1)


def runnable(command: Command) -> bool:
    return command.words[0] not in NOT_RUN


# Files whose only commands are not run here (make, pip) have nothing to test.
DOCS_WITH_COMMANDS = [
    path for path in DOC_FILES if any(runnable(c) for c in extract(path))
]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "doc",
    DOCS_WITH_COMMANDS,
    ids=[str(p.relative_to(ROOT)) for p in DOCS_WITH_COMMANDS],
)
def test_every_documented_command_runs(doc, tmp_path):
    commands = [c for c in extract(doc) if runnable(c)]
    stage = Stage(tmp_path)
    try:
        stage.start_daemon()
        token = subprocess.run(
            ["eventhub", "--config", CONFIG, "tokens", "create", "doc-tests"],
            cwd=tmp_path,
            env=stage.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert token.returncode == 0, token.stderr
        stage.env["TOKEN"] = token.stdout.strip()
        failures = []
        for command in commands:
            problem = stage.run(command)
            if problem is not None:
                failures.append(f"{command.where}: {command.text!r} {problem}")
        assert not failures, "documented commands failed:\n" + "\n".join(failures)

        def caught_up() -> bool:
            status = stage.eventhub_json("status")
            return all(
                s["lag"] == 0 and s["pending"] == 0 for s in status["subscriptions"]
            )

        wait_for(caught_up, "the example daemon handling the events")
        letters = stage.eventhub_json("dlq", "list")
        assert letters == [], f"{doc.name}: the example daemon dead-lettered {letters}"
        stage.stop_daemon()
    finally:
        stage.kill()
