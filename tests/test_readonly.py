"""A state database this user may read but not write (a backup, a copy on a
read-only mount, another user's file): the reading commands work and change
nothing; writing ones say why they cannot, on one line."""

import ctypes
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

from eventhub import Hub, RetryPolicy
from eventhub.auth.apitokens import APITokenStore
from eventhub.errors import ConfigError, StorageReadOnly
from eventhub.eventlog.sqlite import migrations as log_migrations
from eventhub.testing import make_hub

# Root may write any file whatever its mode. As root, the reader runs without the
# two capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that file
# modes bind it as they bind any other user.
AS_ROOT = os.geteuid() == 0
_PR_CAPBSET_DROP = 24
_DAC_CAPABILITIES = (1, 2)


def _drop_dac_capabilities():
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _DAC_CAPABILITIES:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def eventhub(*args, db, reader):
    """``eventhub [--db DB] ARGS``, as a reader (who may not write what the file
    modes forbid) or as the owner."""
    where = [] if db is None else ["--db", str(db)]
    return subprocess.run(
        [sys.executable, "-m", "eventhub", *where, *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_drop_dac_capabilities if reader and AS_ROOT else None,
    )


def as_reader(*args, db):
    return eventhub(*args, db=db, reader=True)


def as_owner(*args, db):
    return eventhub(*args, db=db, reader=False)


@contextmanager
def read_only(path: Path, *, folder_too: bool = True) -> Iterator[Path]:
    """``path`` (and its folder) read-only for the reader, until the end."""
    path.chmod(0o444)
    if folder_too:
        path.parent.chmod(0o555)
    try:
        yield path
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def fill(path: Path) -> None:
    """Two events and a dead letter (announced by a third event), an API token,
    the index's tables."""
    with make_hub(path.parent, path.name) as hub:
        hub.bus.subscribe("job.*", lambda e: 1 / 0, name="w", retry=RetryPolicy.never())
        hub.bus.publish("user.created", {"id": 7})
        hub.bus.publish("job.run")
        hub.bus.drain()
        APITokenStore(hub.db).create("ci")
    assert as_owner("index", "stats", db=path).returncode == 0


@pytest.fixture(scope="module")
def reader():
    """Skips when a reader cannot be had (root that may not drop capabilities)."""
    if AS_ROOT:
        try:
            subprocess.run(["true"], preexec_fn=_drop_dac_capabilities, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot run a reader without root's file access: {exc}")


@pytest.fixture(scope="module")
def copy(reader, tmp_path_factory):
    """A read-only copy of a filled database, in a folder the reader cannot write."""
    path = tmp_path_factory.mktemp("backup") / "backup.db"
    fill(path)
    with read_only(path):
        yield path


TYPES = ["user.created", "job.run", "eventhub.delivery.dead_lettered"]
READING = {
    "history": (["history"], "user.created"),
    "history --json": (["history", "--json"], '"type":"job.run"'),
    "runs": (["runs"], "no runs"),
    "status": (["status"], "log: 3 events"),
    "dlq list": (["dlq", "list"], "ZeroDivisionError"),
    "index stats": (["index", "stats"], "0 documents"),
    "tokens list": (["tokens", "list"], "ci "),
    "search": (["search", "anything"], "no results"),
}


@pytest.mark.parametrize("name", READING)
def test_reading_commands_work_on_a_read_only_copy_and_change_nothing(copy, name):
    args, expected = READING[name]
    before = listing(copy.parent)
    proc = as_reader(*args, db=copy)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout and proc.stderr == ""
    assert listing(copy.parent) == before


def test_a_read_only_file_in_a_folder_the_reader_may_write(reader, tmp_path):
    path = tmp_path / "hub.db"
    fill(path)
    with read_only(path, folder_too=False):
        proc = as_reader("history", "--json", db=path)
    assert proc.returncode == 0, proc.stderr
    assert [e["type"] for e in json.loads(proc.stdout)] == TYPES


@pytest.mark.parametrize(
    "args", [["publish", "a.b"], ["dlq", "redrive", "--all"]], ids=" ".join
)
def test_writing_to_a_read_only_database_is_one_line(copy, args):
    proc = as_reader(*args, db=copy)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert f"state database {copy} is read-only for this process" in proc.stderr


def test_a_write_ahead_log_it_cannot_read_is_one_line(reader, tmp_path):
    live = tmp_path / "live" / "live.db"
    live.parent.mkdir()
    with make_hub(live.parent, "live.db") as hub:
        hub.db.connection().execute("PRAGMA wal_autocheckpoint = 0")
        hub.bus.publish("a.b")
        # Copied while a process has it open: the event is in the -wal file only.
        shutil.copy(live, tmp_path / "copy.db")
        shutil.copy(live.parent / "live.db-wal", tmp_path / "copy.db-wal")
    with read_only(tmp_path / "copy.db"):
        proc = as_reader("history", db=tmp_path / "copy.db")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "its write-ahead log copy.db-wal holds commits" in proc.stderr


def test_an_older_database_read_only_says_to_upgrade_it_once(reader, tmp_path):
    path = tmp_path / "old.db"
    # What an eventhub before the dataschema/datakind columns made.
    log_migrations.apply(
        sqlite_utils.Database(path), stop_before="m002_dataschema_and_data_kind"
    )
    with read_only(path):
        proc = as_reader("history", db=path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "lacks schema changes" in proc.stderr
    assert "eventhub.log m002_dataschema_and_data_kind" in proc.stderr
    assert as_owner("history", db=path).returncode == 0  # upgrades it
    with read_only(path):
        assert as_reader("history", db=path).returncode == 0


# The Hub -------------------------------------------------------------------------


def test_a_read_only_hub_reads_and_refuses_to_write(tmp_path):
    path = tmp_path / "hub.db"
    fill(path)
    before = path.read_bytes()
    with Hub(path, readonly=True, load_entrypoints=False) as hub:
        assert [e.type for e in hub.bus.history()] == TYPES
        assert [d.subscription for d in hub.bus.dead_letters()] == ["w"]
        with pytest.raises(StorageReadOnly, match="opened read-only"):
            hub.bus.publish("a.b")
    assert path.read_bytes() == before


def test_a_read_only_hub_needs_an_existing_database(tmp_path):
    with pytest.raises(ConfigError, match="no state database at"):
        Hub(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


WORKFLOWS = """
from eventhub import workflow

@workflow("nightly", schedule="0 2 * * *")
def nightly(ctx):
    return 1

@workflow("on-user", on="user.*")
def on_user(ctx):
    return 2
"""


def test_a_read_only_copy_with_the_config_and_its_workflows(reader, tmp_path):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "flows.py").write_text(WORKFLOWS)
    config = tmp_path / "eventhub.toml"
    config.write_text('db = "hub.db"\nworkflows_dir = "workflows"\n')
    path = tmp_path / "hub.db"
    fill(path)
    with read_only(path):
        for args, expected in [
            (["status"], "workflow on-user [on user.*]"),
            (["workflows", "list"], "nightly  [schedule 0 2 * * *]"),
            (["runs", "--workflow", "nightly"], "no runs"),
        ]:
            proc = as_reader("--config", str(config), *args, db=None)
            assert proc.returncode == 0, proc.stderr
            assert expected in proc.stdout
