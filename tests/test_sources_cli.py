"""``eventhub sources`` and ``eventhub documents list``: what is configured and
indexed, without contacting any source or reading any secret."""

import json

from .test_documents_cli import cli, ok, write_config


def test_sources_lists_kind_documents_syncs_and_problems(tmp_path):
    config, docs = write_config(
        tmp_path,
        extra='prune = "every 6h"\n'
        "[sources.wiki]\n"
        'kind = "filesystem"\n'
        'path = "docs/sub"\n'
        'token_never_read = { env = "EVENTHUB_TEST_UNSET_SECRET" }\n',
    )
    before = json.loads(ok(cli(config, "sources", "--json")))
    assert [(s["name"], s["kind"], s["documents"]) for s in before] == [
        ("docs", "filesystem", 0),
        ("wiki", "filesystem", 0),
    ]
    assert before[0]["last_sync"] is None and before[0]["prune"] == "every 6h"
    (docs / "locked.pdf").write_bytes(b"%PDF-1.4 not really")
    ok(cli(config, "sync", "docs"))
    after = {s["name"]: s for s in json.loads(ok(cli(config, "sources", "--json")))}
    docs_state = after["docs"]
    assert docs_state["documents"] == 3 and docs_state["skipped"] == 1
    assert docs_state["last_sync"] and docs_state["last_prune"]
    assert docs_state["failures"] == 0 and after["wiki"]["last_sync"] is None
    text = ok(cli(config, "sources"))
    assert "docs (filesystem): 3 documents" in text and "1 skipped" in text


def test_documents_list_gives_ids_titles_urls_and_times(tmp_path):
    config, docs = write_config(tmp_path)
    ok(cli(config, "sync", "docs"))
    listed = json.loads(ok(cli(config, "documents", "list", "docs", "--json")))
    assert sorted(d["id"] for d in listed) == ["bread.txt", "sub/stars.md", "tides.md"]
    tides = next(d for d in listed if d["id"] == "tides.md")
    assert tides["title"] == "Tides"
    assert tides["url"] == (docs / "tides.md").resolve().as_uri()
    assert tides["updated_at"].endswith("Z")
    assert "tides.md  Tides" in ok(cli(config, "documents", "list", "docs"))


def test_documents_list_of_an_unknown_source_is_one_line(tmp_path):
    config, _ = write_config(tmp_path)
    proc = cli(config, "documents", "list", "nope")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "Error: no source named 'nope' (known: docs)"
