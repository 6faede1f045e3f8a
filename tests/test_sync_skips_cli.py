"""`eventhub sync` tells the user which documents it skipped, and why."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from . import document_files as files


@pytest.fixture
def config(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\n\nThe moon pulls the oceans into tides.")
    (docs / "cut.docx").write_bytes(files.docx_malformed())
    (docs / "deep.eml").write_bytes(files.email_nested(3000))
    path = tmp_path / "eventhub.toml"
    path.write_text(
        textwrap.dedent("""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.docs]
        kind = "filesystem"
        path = "docs"
        max_mime_depth = 4
    """)
    )
    return path


def sync(config, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "eventhub", "--config", str(config), "sync", "docs"]
        + list(args),
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_text_output_has_a_line_per_skipped_document(config):
    lines = sync(config).splitlines()
    assert "1 added" in lines[-3] and "2 skipped" in lines[-3]
    assert lines[-2].startswith("  skipped cut.docx: unreadable DOCX (XMLSyntaxError")
    assert lines[-1].startswith("  skipped deep.eml: nested too deeply")


def test_the_json_report_lists_skipped_documents_with_reasons(config):
    report = json.loads(sync(config, "--json").splitlines()[-1])
    reasons = {s["document_id"]: s["reason"] for s in report["skipped_documents"]}
    assert sorted(reasons) == ["cut.docx", "deep.eml"] and report["skipped"] == 2
    assert reasons["deep.eml"].endswith("(limit max_mime_depth = 4)")
