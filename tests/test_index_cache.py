"""The FAISS cache proves it belongs to its table before it is used.

Each hub here stands for a process of its own: the in-memory index is per hub, and
they share only the state database and the cache file, as processes do.
"""

import shutil
import sqlite3

import numpy as np
import orjson
import pytest
from eventhub.integrations.filesystem import FilesystemSource

from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.testing import make_hub

from .test_sync import PARAGRAPHS, write_doc

OTHER_PARAGRAPHS = {
    "coffee.txt": ["Descaling the coffee machine: fill the tank with citric acid."],
    "bikes.txt": ["Bicycle chains want oil every few hundred kilometres."],
    "tea.md": ["# Tea", "Green tea steeps for two minutes at eighty degrees."],
}


def folder_of(tmp_path, name, paragraphs):
    folder = tmp_path / name
    for file, lines in paragraphs.items():
        write_doc(folder, file, lines)
    return folder


def open_hub(path, docs=None):
    hub = make_hub(path)
    if docs is not None:
        hub.register_integration("docs", FilesystemSource(path=docs))
    hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
    return hub


def top(hub, query):
    return [hit.document_id for hit in hub.documents.search(query, 3)]


def synced_copy(tmp_path, name, paragraphs):
    """A folder with a hub database synced from ``paragraphs`` (closed: cache saved)."""
    home = tmp_path / name
    home.mkdir()
    with open_hub(home, folder_of(home, "docs", paragraphs)) as hub:
        hub.documents.sync("docs")
    return home


def swap_in_memory(hub, first, second):
    """Make a hub's in-memory cache wrong: the vectors of two documents' chunks
    trade places (what a cache of other chunks looks like from inside)."""
    index = hub.documents.index
    with index._cache.lock:
        faiss_index = index._index()
        ids = dict(
            hub.db.connection().execute(
                "SELECT document_id, id FROM chunks WHERE document_id IN (?, ?)",
                (first, second),
            )
        )
        a, b = ids[first], ids[second]
        va, vb = faiss_index.reconstruct(a), faiss_index.reconstruct(b)
        faiss_index.remove_ids(np.asarray([a, b], dtype=np.int64))
        faiss_index.add_with_ids(np.stack([vb, va]), np.asarray([a, b]))
        index._cache.dirty = True


def test_a_cache_of_another_database_is_rebuilt(tmp_path):
    foreign = synced_copy(tmp_path, "foreign", PARAGRAPHS)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(foreign / "hub.db.faiss", home / "hub.db.faiss")
    with open_hub(home, folder_of(home, "docs", OTHER_PARAGRAPHS)) as hub:
        hub.documents.sync("docs")
        assert top(hub, "descaling the coffee machine")[0] == "coffee.txt"
        report = hub.documents.index.verify()
        assert report.ok and not report.repaired


def test_a_cache_without_a_proof_is_rebuilt(tmp_path):
    home = synced_copy(tmp_path, "home", PARAGRAPHS)
    cache = home / "hub.db.faiss"
    header, _, body = cache.read_bytes().partition(b"\n")
    old = orjson.loads(header)
    cache.write_bytes(
        orjson.dumps({"model": old["model"], "dimension": old["dimension"]})
        + b"\n"
        + body
    )
    with open_hub(home) as hub:
        assert top(hub, "tomatoes basil watering")[0] == "beta.txt"
    assert orjson.loads(cache.read_bytes().partition(b"\n")[0])["format"] == 3


@pytest.mark.parametrize("syncs", [1, 2], ids=["same-generation", "later-generation"])
def test_a_diverged_copy_of_the_database_is_not_trusted_by_ids(tmp_path, syncs):
    original = synced_copy(tmp_path, "original", PARAGRAPHS)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)  # same identity, same chunk ids so far
    write_doc(original / "docs", "x.txt", ["Lighthouses guide ships along coasts."])
    with open_hub(original, original / "docs") as hub:
        hub.documents.sync("docs")  # its cache: the new chunk ids hold lighthouses
    for n in range(syncs):
        write_doc(copy / "docs", f"y{n}.txt", [f"Volcanoes erupt lava number {n}."])
        with open_hub(copy, copy / "docs") as hub:
            hub.documents.sync("docs")  # ... here the same ids hold volcanoes
    shutil.copy(original / "hub.db.faiss", copy / "hub.db.faiss")
    with open_hub(copy, copy / "docs") as hub:
        assert top(hub, "volcanoes erupt lava")[0].startswith("y")
        assert hub.documents.index.verify().ok


def test_a_holder_sees_another_processs_rebuild_before_its_next_search(tmp_path):
    home = synced_copy(tmp_path, "home", PARAGRAPHS)
    with open_hub(home) as holder, open_hub(home) as other:
        swap_in_memory(holder, "beta.txt", "gamma.md")
        assert top(holder, "tomatoes basil watering")[0] == "gamma.md"  # wrong
        other.documents.index.rebuild()
        assert top(holder, "tomatoes basil watering")[0] == "beta.txt"


def test_verify_repairs_a_wrong_cache_and_holders_reload_it(tmp_path):
    home = synced_copy(tmp_path, "home", PARAGRAPHS)
    with open_hub(home) as writer:
        swap_in_memory(writer, "beta.txt", "gamma.md")
        writer.documents.index.save(force=True)  # wrong, with a right header
    with open_hub(home) as holder, open_hub(home) as checker:
        assert top(holder, "tomatoes basil watering")[0] == "gamma.md"
        report = checker.documents.index.verify()
        assert not report.ok and report.repaired and len(report.mismatched) == 2
        assert top(holder, "tomatoes basil watering")[0] == "beta.txt"
        assert checker.documents.index.verify().ok


def test_a_wrong_checksum_in_the_table_is_found_and_corrected(tmp_path):
    home = synced_copy(tmp_path, "home", PARAGRAPHS)
    with sqlite3.connect(home / "hub.db") as conn:
        conn.execute("UPDATE index_state SET checksum = 12345")
    with open_hub(home) as hub:
        assert top(hub, "tomatoes basil watering")[0] == "beta.txt"
        assert hub.documents.index.verify().ok


def test_writes_keep_the_checksum_equal_to_a_full_count(tmp_path):
    from eventhub.documents.store import vector_digest

    home = synced_copy(tmp_path, "home", PARAGRAPHS)
    (home / "docs" / "beta.txt").unlink()
    write_doc(home / "docs", "alpha.md", ["# Alpha", "Rewritten from scratch."])
    with open_hub(home, home / "docs") as hub:
        hub.documents.sync("docs")
    with sqlite3.connect(home / "hub.db") as conn:
        (stored,) = conn.execute("SELECT checksum FROM index_state").fetchone()
        rows = conn.execute("SELECT id, vector FROM chunks").fetchall()
    assert stored % 2**64 == sum(vector_digest(i, v) for i, v in rows) % 2**64


def test_the_database_identity_is_made_once_and_kept(tmp_path):
    with make_hub(tmp_path) as hub:
        first = hub.db.identity
    with make_hub(tmp_path) as hub:
        assert hub.db.identity == first and len(first) == 32
    (tmp_path / "other").mkdir()
    with make_hub(tmp_path / "other") as hub:
        assert hub.db.identity != first


@pytest.mark.parametrize("damage", ["zeroed", "altered"])
def test_a_cache_whose_vectors_were_damaged_but_still_parses_is_rebuilt(
    tmp_path, damage
):
    home = synced_copy(tmp_path, "home", PARAGRAPHS)
    cache = home / "hub.db.faiss"
    raw = bytearray(cache.read_bytes())
    body = raw.index(b"\n") + 1
    start = body + 200  # inside the vectors, past FAISS's own header
    raw[start : start + 256] = bytes(256) if damage == "zeroed" else b"\x3f" * 256
    cache.write_bytes(bytes(raw))
    with open_hub(home) as hub:
        assert top(hub, "tomatoes basil watering")[0] == "beta.txt"
        report = hub.documents.index.verify()
        assert report.ok and not report.repaired
