"""Hostile or mistaken input to the eventhub command: one line on standard error,
exit status 2, never a traceback, and nothing written where it should not be."""

import os
import resource
import stat
import subprocess
import sys

import pytest

HUGE = "1180591620717411303424"  # 2**70: more than an SQLite integer holds


def eventhub(*args, cwd, env=None, **options):
    """Run the command with bytes arguments (as a shell passes them)."""
    argv = [sys.executable, "-m", "eventhub", *args]
    return subprocess.run(
        [os.fsencode(a) if isinstance(a, str) else a for a in argv],
        capture_output=True,
        cwd=cwd,
        env=env or dict(os.environ, EVENTHUB_DB=str(cwd / "cli.db")),
        timeout=60,
        **options,
    )


def assert_user_mistake(proc, message):
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and message in stderr, stderr


@pytest.fixture
def folder(tmp_path):
    assert eventhub("publish", "seed.event", cwd=tmp_path).returncode == 0
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "--limit", HUGE], "Invalid value for '--limit'"),
        (["runs", "--limit", HUGE], "Invalid value for '--limit'"),
        (["dlq", "redrive", HUGE], "Invalid value for '[IDS]...'"),
        (["dlq", "redrive", "0"], "Invalid value for '[IDS]...'"),
        (["publish", "a.b", "--subject", b"\xff\xfe"], "invalid event: subject"),
        (["publish", "a.b", "--source", b"/crm\xed\xa0\x80"], "invalid event: source"),
        (["publish", "a.b", "--data", b'"\xed\xa0\x80"'], "--data is not valid JSON"),
        (["--db", "", "publish", "a.b"], "Invalid value for '--db': the path is empty"),
        (["--db", "/dev/null", "history"], "/dev/null is not a regular file"),
        (["--db", "/dev/null", "publish", "a.b"], "/dev/null is not a regular file"),
        (["--db", ".", "history"], "is a directory"),
    ],
    ids=lambda v: " ".join(os.fsdecode(a) for a in v) if isinstance(v, list) else "",
)
def test_bad_input_is_one_line_and_exit_2(folder, args, message):
    assert_user_mistake(eventhub(*args, cwd=folder), message)


def test_an_empty_db_option_writes_no_default_database(tmp_path):
    proc = eventhub("--db", "", "publish", "a.b", cwd=tmp_path, env=dict(os.environ))
    assert_user_mistake(proc, "--db")
    assert list(tmp_path.iterdir()) == []


def test_dev_null_is_left_a_device(folder):
    eventhub("--db", "/dev/null", "publish", "a.b", cwd=folder)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _at_most_a_gigabyte():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))


def test_data_from_an_endless_file_is_refused_past_the_limit(folder):
    # Read whole, /dev/zero would take every byte of memory the process may have.
    proc = eventhub(
        "publish",
        "a.b",
        "--data",
        "@/dev/zero",
        cwd=folder,
        preexec_fn=_at_most_a_gigabyte,
    )
    assert_user_mistake(proc, "--data: /dev/zero is over the limit of 1048576 bytes")


def test_data_from_stdin_is_refused_past_the_limit(folder):
    body = b"[" + b"1," * 600_000 + b"1]"
    proc = eventhub("publish", "a.b", "--data", "-", cwd=folder, input=body)
    assert_user_mistake(proc, "--data: standard input is over the limit")


def test_data_up_to_the_limit_is_read_from_a_file(folder):
    payload = folder / "payload.json"
    payload.write_bytes(b'"' + b"x" * (1024 * 1024 - 100) + b'"')
    proc = eventhub("publish", "a.b", "--data", f"@{payload}", cwd=folder)
    assert proc.returncode == 0, proc.stderr
