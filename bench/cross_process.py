"""Benchmark 6: publish in another process -> event-triggered workflow start, latency.

eventhub: the real daemon, ``python -m eventhub run --config FILE``, in a child process
(state database in a temporary folder, ``synchronous=FULL``, ``poll_interval`` 10 ms,
the defaults), with a ``workflows_dir`` holding one module that declares
``@workflow("bench", on="bench.*")``. The benchmark waits for the daemon's systemd
``READY=1`` notification (``NOTIFY_SOCKET``), then publishes events one at a time from
an embedded ``Hub`` on the same file, ``hub.bus.publish("bench.ping", {"t":
time.time(), ...})``, with a random pause of 20-40 ms before each, so that each one is
measured from idle (the realistic case). The handler takes ``time.time()`` first thing
and sends it, with the event's ``t``, over a Unix datagram socket to the benchmark,
which waits for it before the next pause. Latency = handler entry - ``t`` (one wall
clock, one machine): the publisher's commit (fsync), the daemon noticing the append
(woken by the publisher's datagram after its commit, see ``eventhub._wakeup``;
``poll_interval`` is the fallback), reading the
event and starting the run (run-history row, ``workflow.run.started``: two more
commits) up to the handler's entry. At the end the daemon gets SIGTERM.

References, in the same process as their publisher (which wakes the consumer at
once, no polling), same pause, same ``t``, a ``queue.Queue`` instead of the socket:

* a Hub on its own file (``FULL``) with a durable subscription,
  ``hub.bus.subscribe("bench.*", handler, name="x")``, ``hub.start()``: the cheapest
  durable path (no workflow run around the handler);
* a Hub with the same workflow registered in-process
  (``hub.orchestrator.register_workflow``): the same work as the daemon, so this pair
  isolates the cost of crossing processes.

The daemon and the two hubs start once and serve every round; rounds alternate
daemon, subscription, in-process workflow. No target: informative.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from eventhub import Hub, workflow

from .common import (
    LatencySide,
    Row,
    Settings,
    interleave,
    latency_rows,
    make_hub,
    scratch_dir,
)

NAME = "cross_process"
TYPE = "bench.ping"
PAUSE = (0.020, 0.040)
WAIT_LIMIT = 60.0

#: The daemon's workflow module; ``{target!r}`` is the benchmark's socket.
WORKFLOW = """
import socket
import time

from eventhub import workflow

_SOCKET = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
_TARGET = {target!r}


@workflow("bench", on="bench.*")
def bench(ctx):
    entered = time.time()
    data = ctx.event.data
    _SOCKET.sendto(f"{{entered!r}} {{data['t']!r}} {{data['n']}}".encode(), _TARGET)
"""

CONFIG = """
db = "daemon.db"
workflows_dir = "flows"

[log]
level = "WARNING"

[daemon]
shutdown_timeout = 10
"""

#: (handler entry, publish time, sequence number) of one handled event.
Handled = tuple[float, float, int]


class Daemon:
    """``python -m eventhub run`` in a child process, and its two sockets: systemd
    notifications, and the handler's reports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "daemon.db"
        self.stderr_path = folder / "daemon.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        # AF_UNIX paths are short (108 bytes): a folder of their own under /tmp.
        self.sock_dir = tempfile.mkdtemp(prefix="eh-bench-")
        flows = folder / "flows"
        flows.mkdir()
        target = os.path.join(self.sock_dir, "reports")
        (flows / "bench.py").write_text(
            WORKFLOW.format(target=target), encoding="utf-8"
        )
        self.config = folder / "eventhub.toml"
        self.config.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
        self.notify = self._bind("notify")
        self.reports = self._bind("reports")

    def _bind(self, name: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.path.join(self.sock_dir, name))
        sock.settimeout(WAIT_LIMIT)
        return sock

    def start(self) -> None:
        """Start the daemon and wait until it says it is ready."""
        env = dict(
            os.environ,
            NOTIFY_SOCKET=os.path.join(self.sock_dir, "notify"),
            EVENTHUB_NO_ENTRYPOINTS="1",
        )
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eventhub", "run", "--config", str(self.config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        message = self._notification()
        if message != "READY=1":
            raise RuntimeError(f"the daemon said {message!r}{self._tail()}")

    def _notification(self) -> str:
        try:
            return self.notify.recv(256).decode()
        except TimeoutError:
            raise RuntimeError(f"the daemon did not get ready{self._tail()}") from None

    def handled(self) -> Handled:
        """The next report of the handler."""
        try:
            entered, published, n = self.reports.recv(256).split()
        except TimeoutError:
            raise RuntimeError(f"the daemon ran no workflow{self._tail()}") from None
        return float(entered), float(published), int(n)

    def _tail(self) -> str:
        """The end of the daemon's stderr, and its exit status, for an error."""
        status = self.proc.poll() if self.proc is not None else None
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        exited = f" (exited with {status})" if status is not None else ""
        return f"{exited}: {text[-2000:]}" if text else exited

    def stop(self) -> None:
        """SIGTERM, and wait for a clean exit (kill it if it does not come)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                status = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError("the daemon did not stop on SIGTERM") from None
            if status != 0:
                raise RuntimeError(f"the daemon exited with {status}{self._tail()}")

    def close(self) -> None:
        """Kill the daemon if it still runs, and remove the sockets."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for sock in (self.notify, self.reports):
            sock.close()
        for name in ("notify", "reports"):
            try:
                os.unlink(os.path.join(self.sock_dir, name))
            except OSError:
                pass
        os.rmdir(self.sock_dir)


@contextmanager
def running_daemon(folder: Path) -> Iterator[Daemon]:
    """A started daemon, stopped with SIGTERM at the end."""
    daemon = Daemon(folder)
    try:
        daemon.start()
        yield daemon
        daemon.stop()
    finally:
        daemon.close()


def _queue_hub(path: str, as_workflow: bool) -> tuple[Hub, queue.Queue[Handled]]:
    """A started in-process hub whose handler reports to a queue."""
    reports: queue.Queue[Handled] = queue.Queue()
    hub = make_hub(path, "FULL")
    if as_workflow:

        def bench(ctx: Any) -> None:
            entered = time.time()
            data = ctx.event.data
            reports.put((entered, data["t"], data["n"]))

        hub.orchestrator.register_workflow(workflow("bench", on="bench.*")(bench))
    else:

        def handler(event: Any) -> None:
            entered = time.time()
            data = event.data
            reports.put((entered, data["t"], data["n"]))

        hub.bus.subscribe("bench.*", handler, name="x")
    hub.start()
    return hub, reports


def _measure(
    side: str,
    publisher: Hub,
    wait: Callable[[], Handled],
    count: int,
    rng: random.Random,
    numbers: Iterator[int],
) -> list[float]:
    """Publish ``count`` events, one at a time after a pause, and wait for each to
    reach its handler. Returns the latencies."""
    publish = publisher.bus.publish
    latencies: list[float] = []
    for _ in range(count):
        n = next(numbers)
        time.sleep(rng.uniform(*PAUSE))
        published = time.time()
        publish(TYPE, {"t": published, "n": n})
        entered, t, seen = wait()
        if seen != n or t != published:
            raise RuntimeError(f"{side}: expected event {n}, the handler saw {seen}")
        latencies.append(entered - published)
    return latencies


def _queue_wait(reports: queue.Queue[Handled], side: str) -> Callable[[], Handled]:
    def wait() -> Handled:
        try:
            return reports.get(timeout=WAIT_LIMIT)
        except queue.Empty:
            raise RuntimeError(f"{side}: the handler did not run") from None

    return wait


def run(settings: Settings) -> list[Row]:
    """Run the cross-process latency benchmark; returns its rows."""
    count = settings.size(20, 5)
    reps = settings.reps(5)
    rng = random.Random(6)
    numbers = iter(range(1, 1_000_000))

    with scratch_dir(NAME) as tmp, ExitStack() as stack:
        daemon = stack.enter_context(running_daemon(Path(tmp)))
        publisher = stack.enter_context(make_hub(str(daemon.db), "FULL"))
        sub_hub, sub_reports = _queue_hub(os.path.join(tmp, "subscription.db"), False)
        stack.enter_context(sub_hub)
        flow_hub, flow_reports = _queue_hub(os.path.join(tmp, "workflow.db"), True)
        stack.enter_context(flow_hub)
        sub_wait = _queue_wait(sub_reports, "subscription")
        flow_wait = _queue_wait(flow_reports, "workflow")

        def daemon_side() -> list[float]:
            return _measure("daemon", publisher, daemon.handled, count, rng, numbers)

        def subscription_side() -> list[float]:
            return _measure("subscription", sub_hub, sub_wait, count, rng, numbers)

        def workflow_side() -> list[float]:
            return _measure("workflow", flow_hub, flow_wait, count, rng, numbers)

        sides: list[tuple[str, LatencySide]] = [
            ("daemon", daemon_side),
            ("subscription", subscription_side),
            ("workflow", workflow_side),
        ]
        samples = interleave(sides, reps, settings.warmup)

    size = f"{count} events per round x {reps} rounds, 20-40 ms apart, FULL"
    return [
        *latency_rows(
            "6. publish (other process) -> daemon workflow start, "
            "vs in-process subscription",
            samples["daemon"],
            samples["subscription"],
            "in-process subscription",
            f"{size}; daemon: woken by a datagram after the commit, workflow run path",
        ),
        *latency_rows(
            "6b. same, vs in-process workflow",
            samples["daemon"],
            samples["workflow"],
            "in-process workflow",
            f"{size}; the same workflow in the publisher's process: "
            "the cost of crossing processes",
        ),
    ]
