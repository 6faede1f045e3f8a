"""`eventhub sync`, `search` and `index` as users run them (real processes)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest


def write_config(tmp_path, model="hash:64", extra=""):
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "tides.md").write_text("# Tides\n\nThe moon pulls the oceans into tides.")
    (docs / "bread.txt").write_text("Bread\n\nKnead the dough, let it rise, then bake.")
    (docs / "sub").mkdir(exist_ok=True)
    (docs / "sub" / "stars.md").write_text(
        "# Stars\n\nStars fuse hydrogen into helium."
    )
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "{model}"
        [sources.docs]
        kind = "filesystem"
        path = "docs"
        {extra}
    """)
    )
    return config, docs


def cli(config, *args):
    return subprocess.run(
        [sys.executable, "-m", "eventhub", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


def ok(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_sync_json_has_the_fixed_keys(tmp_path):
    config, _ = write_config(tmp_path)
    report = json.loads(ok(cli(config, "sync", "docs", "--json")))
    for key in ("added", "updated", "unchanged", "deleted", "failed", "embedded"):
        assert isinstance(report[key], int), key
    assert (report["added"], report["failed"]) == (3, 0) and report["embedded"] >= 3
    again = json.loads(ok(cli(config, "sync", "docs", "--json")))
    assert (again["unchanged"], again["embedded"]) == (3, 0)


def test_search_json_hits_best_first_with_relative_paths(tmp_path):
    config, _ = write_config(tmp_path)
    ok(cli(config, "sync", "docs"))
    hits = json.loads(
        ok(cli(config, "search", "stars fuse hydrogen helium", "-k", "2", "--json"))
    )
    assert len(hits) == 2 and hits[0]["document_id"] == "sub/stars.md"
    assert hits[0]["score"] >= hits[1]["score"]
    for key in ("document_id", "score", "title", "source"):
        assert key in hits[0]
    assert hits[0]["title"] == "Stars" and hits[0]["source"] == "docs"


def test_dry_run_and_full(tmp_path):
    config, docs = write_config(tmp_path)
    dry = json.loads(ok(cli(config, "sync", "docs", "--dry-run", "--json")))
    assert dry["added"] == 3 and dry["dry_run"] is True
    assert json.loads(ok(cli(config, "search", "tides", "--json"))) == []
    full = json.loads(ok(cli(config, "sync", "docs", "--full", "--json")))
    assert full["added"] == 3


def test_mass_delete_needs_force(tmp_path):
    config, docs = write_config(tmp_path)
    ok(cli(config, "sync", "docs"))
    for path in list(docs.rglob("*.*")):
        path.unlink()
    proc = cli(config, "sync", "docs")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "would delete 3 of 3" in proc.stderr
    report = json.loads(ok(cli(config, "sync", "docs", "--force", "--json")))
    assert report["deleted"] == 3


def test_index_stats_verify_rebuild(tmp_path):
    config, _ = write_config(tmp_path)
    ok(cli(config, "sync", "docs"))
    stats = json.loads(ok(cli(config, "index", "stats", "--json")))
    assert stats["documents"] == 3 and stats["sources"]["docs"]["documents"] == 3
    assert stats["chunks"] == stats["cached_vectors"] == stats["vectors"]
    assert (stats["kind"], stats["configured_kind"]) == ("flat", "auto")
    on_disk = (tmp_path / "hub.db.faiss").stat().st_size
    assert stats["bytes_on_disk"] == on_disk and stats["bytes_in_memory"] > 0
    text = ok(cli(config, "index", "stats"))
    assert f"{stats['vectors']} vectors searched (flat, configured auto)" in text
    assert json.loads(ok(cli(config, "index", "verify", "--json")))["ok"] is True
    (tmp_path / "hub.db.faiss").unlink()
    assert "rebuilt the cache: 3 vectors" in ok(cli(config, "index", "rebuild"))
    assert "index clean" in ok(cli(config, "index", "verify"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "nope"], "no source named 'nope' (known: docs)"),
        (["search", "  "], "the query is empty"),
        (["search", "x", "--source", "nope"], "no source named 'nope'"),
        (["search", "x", "-k", "0"], "-k"),
    ],
)
def test_document_command_mistakes(tmp_path, args, message):
    config, _ = write_config(tmp_path)
    ok(cli(config, "sync", "docs"))
    proc = cli(config, *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_config_source_of_an_unknown_kind(tmp_path):
    config = tmp_path / "eventhub.toml"
    config.write_text('[sources.docs]\nkind = "crm"\n')
    proc = cli(config, "sync", "docs")
    assert proc.returncode == 2 and "is not a document source" in proc.stderr


@pytest.mark.slow
def test_the_real_minilm_model_end_to_end(tmp_path):
    """The packaged all-MiniLM-L6-v2, offline: meaning, not shared words, ranks."""
    config, docs = write_config(tmp_path, model="all-MiniLM-L6-v2")
    (docs / "sleep.txt").write_text("Sleep\n\nAdults need seven to nine hours a night.")
    report = json.loads(ok(cli(config, "sync", "docs", "--json")))
    assert report["added"] == 4 and report["embedded"] >= 4
    hits = json.loads(
        ok(
            cli(
                config,
                "search",
                "what causes high and low water at the beach?",
                "-k",
                "4",
                "--json",
            )
        )
    )
    assert hits[0]["document_id"] == "tides.md"
    hits = json.loads(
        ok(
            cli(
                config, "search", "how long should a grown-up rest", "-k", "1", "--json"
            )
        )
    )
    assert hits[0]["document_id"] == "sleep.txt"
    stats = json.loads(ok(cli(config, "index", "stats", "--json")))
    assert stats["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert stats["dimension"] == 384


# Runs the CLI in this process and reports, at exit, which heavy modules it imported.
HEAVY_PROBE = """
import atexit, sys
atexit.register(lambda: print("heavy:", sorted(
    m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules
), file=sys.stderr))
from eventhub.cli import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_commands_with_nothing_to_embed_never_import_the_model(tmp_path):
    config, _ = write_config(tmp_path, model="all-MiniLM-L6-v2")
    ok(cli(config, "sync", "docs"))  # embeds: loads the model
    for args in (
        ["sync", "docs"],
        ["index", "stats"],
        ["index", "verify"],
        ["index", "rebuild"],
        ["history", "--limit", "1"],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", HEAVY_PROBE, "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "heavy: []" in proc.stderr, (args, proc.stderr)


WIKI_PLUGIN = """
from eventhub import hookimpl
from eventhub.documents import Source


class WikiSource(Source):
    kind = "wiki"

    def __init__(self, api_token, **config):
        super().__init__(**config)
        self.api_token = api_token

    def changes(self, since):
        return []

    def fetch(self, id):
        return None

    def ids(self):
        return []


@hookimpl
def register_integrations(register):
    register(WikiSource)
"""


def test_a_source_whose_secret_is_missing_never_stops_another(tmp_path):
    (tmp_path / "wiki.py").write_text(WIKI_PLUGIN)
    extra = '[sources.wiki]\nkind = "wiki"\napi_token = { env = "EH_TEST_WIKI" }\n'
    config, _ = write_config(tmp_path, extra="")
    config.write_text('plugins = ["wiki.py"]\n' + config.read_text() + extra)
    assert "EH_TEST_WIKI" not in os.environ
    report = json.loads(ok(cli(config, "sync", "docs", "--json")))
    assert report["added"] == 3
    hits = json.loads(ok(cli(config, "search", "moon tides", "--json")))
    assert hits[0]["document_id"] == "tides.md"
    proc = cli(config, "sync", "wiki")
    assert proc.returncode == 2 and "EH_TEST_WIKI" in proc.stderr
