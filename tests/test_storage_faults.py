"""Faults of the state database's storage: a full disk, an I/O error, a damaged
file. Each reaches a caller as eventhub's error naming the file and what to do: the
Hub raises it, the CLI prints it on one line, the HTTP API answers JSON (503 with
Retry-After when trying again can help)."""

import json
import resource
import signal
import subprocess
import sys

import pytest
import requests
from structlog.testing import capture_logs

from eventhub import Event, Hub, TransientError
from eventhub.auth.apitokens import APITokenStore
from eventhub.errors import StorageCorrupt, StorageFull
from eventhub.server import HTTPServer, ServerSettings
from eventhub.statedb import DEFAULT_JOURNAL_SIZE_LIMIT, StateDB
from eventhub.testing import make_hub
from eventhub.webhooks import make_receivers

from .storage_damage import damage, flip, garble_a_name, seeded_database

# SQLite's answer when a page may not be added: the same SQLITE_FULL a full disk
# gives (a small file system is not at hand in tests; PRAGMA max_page_count is).
UNLIMITED_PAGES = 1_073_741_823


def cap_growth(conn):
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


@pytest.fixture
def full_disk(monkeypatch):
    """Every state-database connection made from now on may not grow the file."""
    connect = StateDB.connect

    def connect_to_a_full_disk(self):
        conn = connect(self)
        cap_growth(conn)
        return conn

    monkeypatch.setattr(StateDB, "connect", connect_to_a_full_disk)


def big_event():
    return {"type": "a.big", "data": {"pad": "x" * 200_000}}


# The Hub ---------------------------------------------------------------------


def test_a_full_disk_is_storage_full_and_what_was_stored_is_kept(hub):
    hub.bus.publish("a.b", {"n": 1})
    cap_growth(hub.db.connection())
    with pytest.raises(StorageFull, match="database or disk is full") as caught:
        hub.bus.publish("a.big", {"pad": "x" * 200_000})
    assert str(hub.db.path) in str(caught.value) and "free space" in str(caught.value)
    assert isinstance(caught.value, TransientError)  # delivery retries it
    hub.db.connection().execute(f"PRAGMA max_page_count = {UNLIMITED_PAGES}")
    hub.bus.publish("a.c")
    assert [e.type for e in hub.bus.history()] == ["a.b", "a.c"]


@pytest.mark.parametrize("kind", ["header", "schema"])
def test_a_database_damaged_at_its_start_is_refused_at_open(tmp_path, kind):
    path = damage(seeded_database(tmp_path), kind)
    with pytest.raises(StorageCorrupt) as caught:
        Hub(path, load_entrypoints=False)
    message = str(caught.value)
    assert str(path) in message and "is damaged" in message
    assert f'sqlite3 {path} ".recover" | sqlite3 {path}.recovered' in message


def test_a_schema_name_that_is_not_text_is_storage_corrupt(tmp_path):
    path = garble_a_name(seeded_database(tmp_path))
    with pytest.raises(StorageCorrupt, match="malformed database schema") as caught:
        Hub(path, load_entrypoints=False)
    assert "(not UTF-8)" in str(caught.value)
    proc = eventhub("history", db=path)
    assert_one_line_error(proc, f"state database {path} is damaged", ".recover")


def test_a_damaged_events_page_is_storage_corrupt_when_read(tmp_path):
    damage(seeded_database(tmp_path), "events")
    with make_hub(tmp_path) as hub, pytest.raises(StorageCorrupt, match="malformed"):
        hub.bus.history()


def test_quick_check_finds_damage_no_read_ran_into(tmp_path):
    path = seeded_database(tmp_path)
    flip(path, "dead_letters_subscription", 0)
    with make_hub(tmp_path) as hub:
        assert len(hub.bus.history()) == 30  # reads and writes go on unaware
        (problem,) = hub.db.integrity_problems()
        assert problem.startswith("Page ")
        assert hub.db.integrity_problems(full=True)
        with pytest.raises(StorageCorrupt, match="quick_check: Page"):
            hub.db.check_integrity()


def test_a_healthy_database_passes_both_checks(hub):
    hub.bus.publish("a.b")
    assert hub.db.integrity_problems() == []
    assert hub.db.integrity_problems(full=True) == []


def test_the_write_ahead_log_is_cut_back_after_a_burst(tmp_path):
    limit = 256 * 1024
    with make_hub(tmp_path, journal_size_limit=limit) as hub:
        burst = [
            Event.create(type="a.b", source="t", data={"pad": "x" * 200_000})
            for _ in range(40)
        ]
        hub.bus.publish_many(burst)  # 8 MB in one transaction, then checkpointed
        wal = tmp_path / "hub.db-wal"
        assert wal.stat().st_size > limit
        hub.bus.publish("a.c")  # the log restarts from its beginning
        assert wal.stat().st_size <= limit


def test_the_journal_size_limit_is_64_mib_unless_configured(tmp_path, hub):
    conn = hub.db.connection()
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 << 20
    assert DEFAULT_JOURNAL_SIZE_LIMIT == 64 << 20
    config = tmp_path / "eventhub.toml"
    config.write_text('db = "other.db"\n[bus]\njournal_size_limit = 1048576\n')
    with Hub.from_config(config) as configured:
        conn = configured.db.connection()
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 1 << 20


# HTTP --------------------------------------------------------------------------


def test_http_publish_on_a_full_disk_is_503_with_retry_after(serve, hub, full_disk):
    token = APITokenStore(hub.db).create("ci")
    server = serve()
    response = requests.post(
        f"{server.url}/events",
        json=big_event(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json() == {"error": "the state database is full; try again later"}
    assert str(hub.db.path) not in response.text
    assert hub.bus.history() == []


@pytest.fixture
def damaged_server(tmp_path):
    """An HTTP server (API token "ci" and an insecure GitHub receiver "open") on a
    database whose events table is damaged."""
    path = seeded_database(tmp_path)
    with make_hub(tmp_path) as hub:
        token = APITokenStore(hub.db).create("ci")
    damage(path, "events")
    hub = make_hub(tmp_path)
    receivers = make_receivers({"open": {"kind": "github", "insecure": True}})
    server = HTTPServer(hub, ServerSettings(port=0), receivers)
    server.start()
    yield server, {"Authorization": f"Bearer {token}"}
    server.stop()
    hub.close()


def test_http_reading_a_damaged_database_is_500_json(damaged_server):
    server, auth = damaged_server
    response = requests.get(f"{server.url}/events", headers=auth, timeout=30)
    assert response.status_code == 500
    assert response.json() == {
        "error": "the state database is damaged; the server log says what to do"
    }


def test_a_webhook_into_a_damaged_database_is_500_json(damaged_server):
    server, _auth = damaged_server
    response = requests.post(
        f"{server.url}/webhooks/open",
        data=b'{"zen": "hi"}',
        headers={"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-1"},
        timeout=30,
    )
    assert response.status_code == 500
    assert "damaged" in response.json()["error"]


# The CLI -------------------------------------------------------------------------


def eventhub(*args, db, limit_file_size=None, **options):
    def preexec():
        if limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a signal
            resource.setrlimit(
                resource.RLIMIT_FSIZE, (limit_file_size, resource.RLIM_INFINITY)
            )

    return subprocess.run(
        [sys.executable, "-m", "eventhub", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
        **options,
    )


def assert_one_line_error(proc, *fragments, code=1):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ")
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


READING_EVENTS = [["history"], ["status"], ["publish", "x.y"]]
NOT_READING_EVENTS = [["dlq", "list"], ["runs"]]


@pytest.mark.parametrize(
    ("kind", "command"),
    [(kind, c) for kind in ("header", "schema") for c in READING_EVENTS]
    + [(kind, c) for kind in ("header", "schema") for c in NOT_READING_EVENTS]
    + [("events", c) for c in READING_EVENTS],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_cli_on_a_damaged_database_prints_one_line(tmp_path, kind, command):
    path = damage(seeded_database(tmp_path), kind)
    proc = eventhub(*command, db=path)
    assert_one_line_error(proc, f"state database {path} is damaged", ".recover")


@pytest.mark.parametrize("command", NOT_READING_EVENTS, ids=" ".join)
def test_cli_commands_that_skip_the_damaged_pages_still_work(tmp_path, command):
    path = damage(seeded_database(tmp_path), "events")
    assert eventhub(*command, db=path).returncode == 0


def test_status_reports_what_quick_check_finds(tmp_path):
    path = seeded_database(tmp_path)
    assert "integrity: ok (quick_check)" in eventhub("status", db=path).stdout
    flip(path, "dead_letters_subscription", 0)
    assert eventhub("publish", "x.y", db=path).returncode == 0  # unaware
    assert_one_line_error(eventhub("status", db=path), "quick_check: Page", ".recover")
    proc = eventhub("status", "--check-integrity", "--json", db=path)
    assert_one_line_error(proc, "integrity_check: ")


def test_status_json_says_which_check_passed(tmp_path):
    path = seeded_database(tmp_path)
    report = json.loads(
        eventhub("status", "--json", "--check-integrity", db=path).stdout
    )
    assert report["integrity"] == {"check": "integrity_check", "ok": True}


def test_the_daemon_refuses_to_start_on_a_damaged_database(tmp_path):
    path = seeded_database(tmp_path)
    flip(path, "dead_letters_subscription", 0)
    config = tmp_path / "eventhub.toml"
    config.write_text('db = "hub.db"\n')
    run = [sys.executable, "-m", "eventhub", "run", "--config", str(config)]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc, f"state database {path} is damaged (quick_check:")
    check = subprocess.run(
        [*run, "--check"], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 2 and "is damaged (quick_check:" in check.stderr


def test_the_start_check_skips_a_database_too_large_to_read_now(tmp_path, monkeypatch):
    from eventhub import daemon

    path = seeded_database(tmp_path)
    flip(path, "dead_letters_subscription", 0)
    with make_hub(tmp_path) as hub:
        with pytest.raises(StorageCorrupt):
            daemon.check_state_database(hub)
        monkeypatch.setattr(daemon, "START_CHECK_MAX_BYTES", path.stat().st_size - 1)
        with capture_logs() as logs:
            daemon.check_state_database(hub)  # not read: a warning says so
    assert [entry["event"] for entry in logs] == [
        "state database too large to check at start; eventhub status checks it"
    ]


def test_cli_publish_when_the_disk_refuses_to_grow_the_file(tmp_path):
    path = seeded_database(tmp_path, events=3)
    data = json.dumps({"pad": "x" * 600_000})
    proc = eventhub(
        "publish",
        "a.big",
        "--data",
        "-",
        db=path,
        input=data,
        limit_file_size=256 << 10,
    )
    assert_one_line_error(proc, f"state database {path}: disk I/O error", "check")
    history = json.loads(eventhub("history", "--json", db=path).stdout)
    assert [e["data"]["i"] for e in history] == [0, 1, 2]
