"""Cross-process wake-ups: a consumer waiting in one process is woken by a commit
in another, without waiting for its next poll."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from eventhub._wakeup import WakeChannel, wake_folder
from eventhub.retry import RetryPolicy
from eventhub.testing import make_hub

from .conftest import HELPERS

pytestmark = pytest.mark.slow


def test_an_append_in_another_process_wakes_a_waiting_consumer(tmp_path, monkeypatch):
    from eventhub.delivery import Worker

    # Neither the idle wait nor polling can end the wait: only a wake-up can.
    monkeypatch.setattr(Worker, "IDLE_WAIT", 300.0)
    handled = threading.Event()
    with make_hub(tmp_path, poll_interval=300.0) as hub:
        hub.bus.subscribe("load.*", lambda event: handled.set(), name="waiter")
        hub.start()
        hub.bus.drain()
        subprocess.run(
            [sys.executable, str(HELPERS / "publisher.py"), hub.path, "p", "1"],
            check=True,
            timeout=120,
        )
        assert handled.wait(60)


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


REDRIVE = "import sys; from eventhub import Hub; Hub(sys.argv[1]).bus.redrive(all=True)"


def test_a_redrive_in_another_process_wakes_the_consumer(tmp_path, monkeypatch):
    from eventhub.delivery import Worker

    monkeypatch.setattr(Worker, "IDLE_WAIT", 300.0)
    attempts = []

    def flaky(event):
        attempts.append(event.id)
        if len(attempts) == 1:
            raise ValueError("first time")

    with make_hub(tmp_path, poll_interval=300.0) as hub:
        hub.bus.subscribe("a.b", flaky, name="w", retry=RetryPolicy(max_attempts=1))
        hub.bus.publish("a.b")
        hub.start()
        wait_for(hub.bus.dead_letters)
        command = [sys.executable, "-c", REDRIVE, hub.path]
        subprocess.run(command, check=True, timeout=120)
        wait_for(lambda: len(attempts) == 2)


def test_a_socket_left_by_a_killed_process_is_removed(tmp_path):
    folder = tmp_path / "wake"
    folder.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(folder / "12345-dead"))
    stale.close()  # the file stays, nobody listens
    channel = WakeChannel(folder, lambda: None)
    channel.ring()
    assert os.listdir(folder) == []


def test_a_listener_is_woken_and_removes_its_socket_on_close(tmp_path):
    folder = tmp_path / "wake"
    woken = threading.Event()
    listener = WakeChannel(folder, woken.set)
    listener.listen()
    WakeChannel(folder, lambda: None).ring()
    assert woken.wait(30)
    listener.close()
    assert os.listdir(folder) == []


def test_a_long_database_path_gets_a_short_private_folder(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6) / "hub.db"
    folder = wake_folder(deep)
    assert len(str(folder)) < 80 and str(os.getuid()) in folder.name
    assert wake_folder(tmp_path / "hub.db") == tmp_path / "hub.db-wake"
