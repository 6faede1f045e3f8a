"""A stored event that can no longer be decoded (its row damaged: SQLite keeps no
checksums of values) is dead-lettered with the reason while the rest of its
subscription flows on, and is reported as the server's fault, never the client's."""

import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
import requests
import tenacity

from eventhub import RetryPolicy, UndecodableEvent
from eventhub.auth.apitokens import APITokenStore
from eventhub.bus import DEAD_LETTERED
from eventhub.testing import make_hub

# (what is damaged, the SQL that damages event ?): each leaves SQLite's own
# integrity check passing.
DAMAGE = {
    "data-json": "UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '{', 'z')"
    " AS BLOB) WHERE sequence = ?",
    "extensions-json": "UPDATE events SET extensions = '{\"tenant\":'"
    " WHERE sequence = ?",
    "time": "UPDATE events SET time = '2026-13-45T99:00:00Z' WHERE sequence = ?",
    "subject-not-utf8": "UPDATE events SET subject = CAST(X'6f72ff64' AS TEXT)"
    " WHERE sequence = ?",
    "type-not-utf8": "UPDATE events SET type = CAST(X'6f72ff2e78' AS TEXT)"
    " WHERE sequence = ?",
}


def damage(db_path, sequence, how="data-json"):
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(DAMAGE[how], (sequence,))
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def publish_orders(hub, count=20):
    for i in range(1, count + 1):
        hub.bus.publish(
            "order.created", {"n": i}, subject=f"o/{i}", extensions={"tenant": "a"}
        )


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_event_is_dead_lettered_and_the_others_are_delivered(hub, how):
    seen = []
    hub.bus.subscribe("order.*", seen.append, name="billing", start="beginning")
    publish_orders(hub)
    damage(hub.db.path, 7, how)
    assert hub.bus.drain()
    assert [e.data["n"] for e in seen] == [n for n in range(1, 21) if n != 7]
    (letter,) = hub.bus.dead_letters()
    assert letter.event.sequence == 7 and letter.attempts == 0
    assert letter.error.startswith("UndecodableEvent: stored event 7 cannot be")


def test_the_dead_letter_is_announced_and_keeps_the_stored_bytes(hub):
    hub.bus.subscribe("order.*", lambda e: None, name="billing", start="beginning")
    publish_orders(hub, 3)
    damage(hub.db.path, 2)
    hub.bus.drain()
    (notice,) = hub.bus.history(DEAD_LETTERED)
    assert notice.data["sequence"] == 2 and notice.data["attempts"] == 0
    assert "not valid JSON" in notice.data["error"]
    (letter,) = hub.bus.dead_letters()
    assert letter.event.data == b'z"n":2}' and letter.event.type == "order.created"


def test_the_worker_dead_letters_it_once_and_delivers_what_follows(hub):
    seen = []
    hub.bus.subscribe("order.*", seen.append, name="billing", start="beginning")
    publish_orders(hub, 5)
    damage(hub.db.path, 3)
    hub.start()
    hub.bus.publish("order.created", {"n": 6})
    _wait_for(lambda: len(seen) == 5)
    hub.bus.stop()
    assert [e.data["n"] for e in seen] == [1, 2, 4, 5, 6]
    assert len(hub.bus.dead_letters()) == 1
    assert len(hub.bus.history(DEAD_LETTERED)) == 1


def test_a_redrive_delivers_the_event_once_its_row_is_repaired(hub):
    seen = []
    hub.bus.subscribe("order.*", seen.append, name="billing", start="beginning")
    publish_orders(hub, 3)
    damage(hub.db.path, 2)
    hub.bus.drain()
    assert hub.bus.redrive(all=True) == 1
    hub.bus.drain()  # still damaged: dead-lettered again, the handler never runs
    assert len(seen) == 2 and len(hub.bus.dead_letters()) == 1
    with sqlite3.connect(hub.db.path) as conn:
        conn.execute("UPDATE events SET data = '{\"n\":2}' WHERE sequence = 2")
    hub.bus.redrive(all=True)
    hub.bus.drain()
    assert [e.data["n"] for e in seen] == [1, 3, 2]
    assert hub.bus.dead_letters() == []


def test_a_damaged_copy_of_a_retry_is_delivered_from_the_log(hub, clock):
    outcomes = iter([ValueError("once"), None])
    seen = []

    def handler(event):
        error = next(outcomes)
        if error:
            raise error
        seen.append(event)

    retry = RetryPolicy(max_attempts=2, wait=tenacity.wait_fixed(10))
    hub.bus.subscribe("order.*", handler, name="billing", retry=retry)
    publish_orders(hub, 1)
    hub.bus.drain()
    with sqlite3.connect(hub.db.path) as conn:
        conn.execute("UPDATE pending SET event = CAST('{\"oops' AS BLOB)")
    clock.advance(11)
    assert hub.bus.drain()
    assert [e.data for e in seen] == [{"n": 1}] and hub.bus.dead_letters() == []


def test_dlq_list_survives_a_damaged_dead_letter(hub):
    hub.bus.subscribe("order.*", lambda e: 1 / 0, name="w", retry=RetryPolicy.never())
    publish_orders(hub, 2)
    hub.bus.drain()
    with sqlite3.connect(hub.db.path) as conn:
        conn.execute("UPDATE dead_letters SET event = X'7b22ff' WHERE id = 1")
    first, second = hub.bus.dead_letters()
    assert first.event.sequence == 1 and first.error.startswith("ZeroDivisionError")
    assert second.event.data == {"n": 2}


def test_history_names_the_damaged_event_or_leaves_it_out(hub):
    publish_orders(hub, 5)
    damage(hub.db.path, 4)
    with pytest.raises(UndecodableEvent) as caught:
        hub.bus.history("order.*")
    assert caught.value.sequence == 4 and "not valid JSON" in caught.value.problem
    skipped = []
    found = hub.bus.history("order.*", limit=3, on_undecodable=skipped.append)
    assert [e.sequence for e in found] == [2, 3, 5]
    assert [s.sequence for s in skipped] == [4]


def test_history_leaves_out_text_that_is_no_longer_utf8(hub):
    publish_orders(hub, 3)
    damage(hub.db.path, 2, "subject-not-utf8")
    skipped = []
    found = hub.bus.history(on_undecodable=skipped.append)
    assert [e.sequence for e in found] == [1, 3]
    assert "subject is not valid UTF-8" in skipped[0].problem


def test_get_events_answers_500_naming_the_damaged_event(serve, hub):
    publish_orders(hub, 3)
    damage(hub.db.path, 2)
    server = serve()
    token = APITokenStore(hub.db).create("reader", scope="read")
    response = requests.get(
        server.url + "/events",
        params={"type": "order.*"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 500
    assert "stored event 2 cannot be decoded" in response.json()["error"]


@pytest.fixture
def cli(tmp_path):
    env = dict(os.environ, EVENTHUB_DB=str(tmp_path / "hub.db"))

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "eventhub", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    return run


@pytest.fixture
def damaged_hub(tmp_path):
    """hub.db: five orders, the third damaged and dead-lettered by 'billing'."""
    with make_hub(tmp_path) as hub:
        hub.bus.subscribe("order.*", lambda e: None, name="billing")
        publish_orders(hub, 5)
        damage(hub.db.path, 3)
        hub.bus.drain()
    return tmp_path / "hub.db"


def test_cli_history_shows_the_rest_and_warns_about_the_damaged_one(cli, damaged_hub):
    proc = cli("history", "--type", "order.*", "--json")
    assert proc.returncode == 1
    assert [e["sequence"] for e in json.loads(proc.stdout)] == [1, 2, 4, 5]
    assert "stored event 3 cannot be decoded" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_status_reports_the_undecodable_event(cli, damaged_hub):
    report = json.loads(cli("status", "--json").stdout)
    (sub,) = report["subscriptions"]
    assert sub["dead_letters"] == 1 and sub["undecodable"] == 1
    (item,) = report["undecodable_events"]
    assert item["sequence"] == 3 and item["subscriptions"] == ["billing"]
    assert "not valid JSON" in item["problem"]
    text = cli("status").stdout
    assert "1 dead letters (1 undecodable)" in text and "event 3: its data" in text


def test_cli_dlq_list_shows_the_undecodable_event(cli, damaged_hub):
    proc = cli("dlq", "list")
    assert proc.returncode == 0
    assert "seq=3" in proc.stdout and "UndecodableEvent" in proc.stdout


def _wait_for(condition, deadline=10.0):
    done = threading.Event()
    for _ in range(int(deadline / 0.005)):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("condition not reached")
