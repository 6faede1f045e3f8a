"""Several processes on one state database: publish, consume, crash, resume."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from eventhub import Hub
from eventhub.testing import make_hub

from .conftest import HELPERS

pytestmark = pytest.mark.slow


def start_consumer(db, output, name="crash", pattern="load.*"):
    ready = f"{output}.ready"
    if os.path.exists(ready):
        os.remove(ready)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HELPERS / "consumer.py"),
            str(db),
            str(output),
            name,
            pattern,
        ]
    )
    wait_for(lambda: os.path.exists(ready) or proc.poll() is not None, 60)
    assert proc.poll() is None, "consumer died at start-up"
    return proc


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def handled(output):
    if not os.path.exists(output):
        return []
    with open(output) as f:
        return [int(line) for line in f.read().split()]


def test_events_published_in_one_process_reach_a_subscriber_in_another(tmp_path):
    db, output = tmp_path / "hub.db", tmp_path / "handled.txt"
    Hub(db, load_entrypoints=False).close()
    consumer = start_consumer(db, output)
    try:
        with Hub(db, load_entrypoints=False) as app:  # the app only publishes
            for n in range(20):
                app.bus.publish("load.item", {"n": n})
        wait_for(lambda: len(handled(output)) >= 20, 30)
        assert sorted(handled(output)) == list(range(20))
    finally:
        consumer.terminate()
        assert consumer.wait(20) == 0


def test_sigkill_while_handling_loses_nothing(tmp_path):
    """SIGKILL the consumer at several points while it works through 3000 events:
    a backlog of 2000 plus 1000 published while it runs."""
    db, output = tmp_path / "hub.db", tmp_path / "handled.txt"
    total, backlog, kills = 3000, 2000, [400, 1100, 1900]

    def publish(numbers):
        with Hub(db, load_entrypoints=False) as app:
            for start in range(numbers.start, numbers.stop, 25):
                app.bus.publish_many(
                    [
                        {"type": "load.item", "data": {"n": n}}
                        for n in range(start, start + 25)
                    ]
                )

    publish(range(0, backlog))
    publisher = threading.Thread(target=publish, args=(range(backlog, total),))
    consumer = start_consumer(db, output)
    publisher.start()
    try:
        for point in kills:
            wait_for(lambda p=point: len(handled(output)) >= p, 120)
            consumer.send_signal(signal.SIGKILL)
            consumer.wait()
            consumer = start_consumer(db, output)
        publisher.join()
        wait_for(lambda: len(set(handled(output))) >= total, 120)
    finally:
        consumer.terminate()
        consumer.wait(20)
    counts = Counter(handled(output))
    lost = set(range(total)) - set(counts)
    duplicates = sum(c - 1 for c in counts.values())
    print(
        f"handled={sum(counts.values())} unique={len(counts)} duplicates={duplicates}"
    )
    assert lost == set()
    # Only the step in flight at each kill is redelivered: batch_size=50 per kill.
    assert duplicates <= len(kills) * 50, duplicates


def test_four_processes_publish_into_one_file_at_once(tmp_path):
    db = tmp_path / "hub.db"
    Hub(db, load_entrypoints=False).close()
    procs = [
        subprocess.Popen(
            [sys.executable, str(HELPERS / "publisher.py"), str(db), str(p), "400"],
            stderr=subprocess.PIPE,
        )
        for p in range(4)
    ]
    errors = [proc.communicate(timeout=300)[1].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], errors
    assert not any("locked" in e for e in errors)
    with Hub(db, load_entrypoints=False) as hub:
        events = hub.bus.history(limit=None)
    assert len(events) == 1600
    for p in range(4):
        mine = [e.data["n"] for e in events if e.data["publisher"] == str(p)]
        assert mine == list(range(400))  # each publisher's events in its own order


def test_a_second_process_stands_by_while_the_first_holds_the_subscription(tmp_path):
    db, output = tmp_path / "hub.db", tmp_path / "handled.txt"
    Hub(db, load_entrypoints=False).close()
    consumer = start_consumer(db, output, name="shared")
    seen = []
    with make_hub(tmp_path) as standby:
        standby.bus.subscribe("load.*", seen.append, name="shared", start="beginning")
        standby.bus.publish("load.item", {"n": 1})
        assert standby.bus.drain(timeout=0.5) is False  # not ours to deliver
        wait_for(lambda: handled(output) == [1], 30)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        standby.bus.publish("load.item", {"n": 2})
        assert standby.bus.drain(timeout=30)
    assert [e.data["n"] for e in seen] == [2]
