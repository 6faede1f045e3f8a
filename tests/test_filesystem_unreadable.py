"""A share with a folder this process may not read: its documents are never
deleted from the index (an incomplete listing deletes nothing)."""

import json
import subprocess
import sys
import textwrap

from .test_readonly import AS_ROOT, _drop_dac_capabilities


def sync(config):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "eventhub",
            "--config",
            str(config),
            "sync",
            "docs",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_drop_dac_capabilities if AS_ROOT else None,
    )


def test_an_unreadable_folder_deletes_nothing_and_the_rest_syncs(tmp_path):
    for folder, name, text in [
        ("open", "tides.md", "The moon pulls the oceans."),
        ("closed", "bread.md", "Knead the dough, then bake."),
        ("closed", "stars.md", "Stars fuse hydrogen."),
    ]:
        (tmp_path / "docs" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / folder / name).write_text(text)
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent("""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.docs]
        kind = "filesystem"
        path = "docs"
    """)
    )
    assert json.loads(sync(config).stdout)["added"] == 3
    (tmp_path / "docs" / "open" / "tides.md").write_text("The moon pulls tides.")
    (tmp_path / "docs" / "closed").chmod(0)
    try:
        proc = sync(config)
    finally:
        (tmp_path / "docs" / "closed").chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["updated"], report["deleted"]) == (1, 0)
    assert "closed" in report["deletions_skipped"]
