"""The index at size: a write costs what it changes, the approximate structures,
opening without rebuilding, and the crash guarantees that come with the journal.

Each hub here stands for a process of its own (they share only the state database
and the cache file, as processes do); where a crash matters, a real process is
killed.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.model import Document
from eventhub.documents.service import DocumentService
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

WORDS = (
    "river mountain coffee tea bicycle chain lighthouse volcano garden tomato basil"
    " harbour engine piano violin orbit comet glacier desert forest meadow bridge"
    " tunnel castle market bakery library museum station airport"
).split()


def text_of(number):
    """A few sentences made of words picked by ``number`` (distinct per number)."""
    picks = [WORDS[(number * 7 + i * 3) % len(WORDS)] for i in range(6)]
    return f"Note {number}: " + " ".join(picks) + f" number{number}."


def open_hub(path, **index):
    hub = make_hub(path, config={"index": index} if index else None)
    hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
    return hub


def put(hub, numbers, source="bulk", version=""):
    """Index documents ``numbers`` of ``source`` through prepare, embed, store."""
    index = hub.documents.index
    prepared = []
    for n in numbers:
        document = Document(
            id=f"d{n}", source=source, title=f"D{n}", text=text_of(n) + version
        )
        p = index.prepare(document)
        if p is not None:
            prepared.append(p)
    index.embed(prepared)
    index.store(prepared)


def delete(hub, numbers, source="bulk"):
    hub.documents.index.store([], [(source, f"d{n}") for n in numbers])


def found(hub, number, k=3, **filters):
    hits = hub.documents.index.search(text_of(number), k, **filters)
    return [hit.document_id for hit in hits]


def test_a_small_change_to_a_large_index_does_not_rewrite_the_cache_file(tmp_path):
    with open_hub(tmp_path) as hub:
        put(hub, range(2_000))
        assert hub.documents.index.save()
    cache = tmp_path / "hub.db.faiss"
    written = cache.stat().st_mtime_ns, cache.stat().st_ino
    with open_hub(tmp_path) as hub:
        put(hub, [5], version=" Edited.")
        put(hub, [2_000])
        delete(hub, [7])
        hub.documents.index.save()  # due only past save_after of the index
        stats = hub.documents.index.stats()
        assert stats["unsaved_changes"] == 4  # one added, one replaced, one gone
    assert (cache.stat().st_mtime_ns, cache.stat().st_ino) == written
    with open_hub(tmp_path) as hub:  # caught up from the journal, not rebuilt
        assert found(hub, 2_000)[0] == "d2000"
        assert "d7" not in found(hub, 7)
        cache_state = hub.documents.index._cache
        assert cache_state.unsaved == 4 and len(cache_state.tombstones) == 2
        report = hub.documents.index.verify()
        assert report.ok and not report.repaired and report.chunks == 2_000


def test_the_file_is_rewritten_once_the_changes_pass_save_after(tmp_path):
    with open_hub(tmp_path, save_after=0.01) as hub:
        put(hub, range(1_000))
        hub.documents.index.save()
        cache = tmp_path / "hub.db.faiss"
        first = cache.stat().st_ino
        put(hub, range(1_000, 1_005))
        assert not hub.documents.index.save()
        put(hub, range(1_005, 1_020))
        assert hub.documents.index.save()
        assert cache.stat().st_ino != first
        assert hub.documents.index.stats()["unsaved_changes"] == 0


def test_the_journal_is_pruned_and_an_older_holder_reloads(tmp_path):
    with open_hub(tmp_path, save_after=0.001) as holder:
        put(holder, range(500))
        holder.documents.index.save()
        assert found(holder, 3)[0] == "d3"  # holds the index at this generation
        with open_hub(tmp_path, save_after=0.001) as other:
            for round_ in range(3):  # each round saves, the last ones prune
                put(other, [10 + round_], version=f" round {round_}")
                delete(other, [100 + round_])
                assert other.documents.index.save()
        conn = holder.db.connection()
        journal_from, saved = conn.execute(
            "SELECT journal_from, saved_generation FROM index_state"
        ).fetchone()
        assert journal_from > 0 and saved > journal_from
        (kept,) = conn.execute("SELECT count(*) FROM index_removals").fetchone()
        assert kept < 6  # pruned up to the file before the last
        # the holder's generation is no longer in the journal: it reloads the file
        assert "d101" not in found(holder, 101)
        assert found(holder, 12)[0] == "d12"
        assert holder.documents.index.verify().ok


CRASH = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from test_index_scale import open_hub, put, delete
    hub = open_hub({home!r})
    put(hub, range(300, 310))
    delete(hub, [1, 2])
    put(hub, [3], version=" changed")
    os._exit(9)  # no save, no close: killed right after the commits
    """
)


def test_a_process_killed_after_its_writes_loses_nothing(tmp_path):
    with open_hub(tmp_path) as hub:
        put(hub, range(300))
        hub.documents.index.save()
    script = CRASH.format(tests=os.path.dirname(__file__), home=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == 9
    with open_hub(tmp_path) as hub:
        assert found(hub, 305)[0] == "d305"
        assert "d1" not in found(hub, 1) and "d2" not in found(hub, 2)
        report = hub.documents.index.verify()
        assert report.ok and not report.repaired and report.chunks == 308


def test_a_temporary_file_left_by_a_crash_while_saving_changes_nothing(tmp_path):
    with open_hub(tmp_path) as hub:
        put(hub, range(100))
        hub.documents.index.save()
        put(hub, range(100, 110))
        cache = hub.documents.index._cache
        with cache.lock:
            left = cache.write_temporary()  # written, never renamed: a crash
    assert left.exists() and left != tmp_path / "hub.db.faiss"
    with open_hub(tmp_path) as hub:
        assert found(hub, 105)[0] == "d105"
        assert hub.documents.index.verify().ok


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_every_kind_finds_deletes_filters_and_survives_a_reopen(tmp_path, kind):
    with open_hub(tmp_path, kind=kind) as hub:
        put(hub, range(3_000))
        put(hub, range(3_000, 3_050), source="other")
        assert hub.documents.index.stats()["kind"] == kind
        assert found(hub, 42)[0] == "d42"
        delete(hub, [42])
        assert "d42" not in found(hub, 42, k=10)
        assert found(hub, 3_010, source="other")[0] == "d3010"
        assert all(
            hit.source == "other"
            for hit in hub.documents.index.search(text_of(5), 5, source="other")
        )
        hub.documents.index.save(force=True)
    with open_hub(tmp_path, kind=kind) as hub:
        stats = hub.documents.index.stats()
        assert (stats["kind"], stats["vectors"]) == (kind, 3_049)
        assert stats["bytes_on_disk"] > 3_049 * 64 * 4
        assert stats["bytes_in_memory"] > 3_049 * 64 * 4
        assert "d42" not in found(hub, 42, k=10)
        assert found(hub, 43)[0] == "d43"
        report = hub.documents.index.verify()
        assert report.ok and not report.repaired and report.cached == 3_049


def test_approximate_search_finds_what_exact_search_finds(tmp_path):
    with open_hub(tmp_path, kind="ivf", nprobe=8) as hub:
        put(hub, range(4_000))
        hits = sum(found(hub, n, k=1) == [f"d{n}"] for n in range(0, 4_000, 40))
    assert hits >= 95  # of 100 exact-text queries


def test_auto_moves_to_an_inverted_file_past_its_threshold(tmp_path):
    with open_hub(tmp_path, auto_threshold=2_000) as hub:
        put(hub, range(1_500))
        hub.documents.index.save(force=True)
        assert hub.documents.index.stats()["kind"] == "flat"
        put(hub, range(1_500, 2_500))
        hub.documents.index.save()  # the structure is due to change: rebuilt
        assert hub.documents.index.stats()["kind"] == "ivf"
        assert found(hub, 2_200)[0] == "d2200"
    with open_hub(tmp_path, auto_threshold=2_000) as hub:
        assert hub.documents.index.stats()["kind"] == "ivf"
        assert hub.documents.index.verify().ok


def test_a_changed_kind_is_built_at_the_next_save(tmp_path):
    with open_hub(tmp_path, kind="flat") as hub:
        put(hub, range(500))
    with open_hub(tmp_path, kind="hnsw") as hub:
        assert found(hub, 9)[0] == "d9"  # the flat file still serves meanwhile
        hub.documents.index.save()
        assert hub.documents.index.stats()["kind"] == "hnsw"
    with open_hub(tmp_path, kind="hnsw") as hub:
        assert hub.documents.index.stats()["kind"] == "hnsw"
        assert found(hub, 9)[0] == "d9"


def test_a_graph_rebuilds_once_tombstones_pass_a_tenth(tmp_path):
    with open_hub(tmp_path, kind="hnsw") as hub:
        put(hub, range(3_000))
        assert found(hub, 5)[0] == "d5"  # loaded: deletions become tombstones
        delete(hub, range(1_200))
        index = hub.documents.index
        assert len(index._cache.tombstones) == 1_200
        index.save()
        assert not index._cache.tombstones and index.stats()["vectors"] == 1_800
        assert index.verify().ok


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"kind": "annoy"}, "index.kind must be one of flat, ivf, hnsw, auto"),
        ({"nprobe": "many"}, "index.nprobe must be int"),
        ({"nlist": 0}, "index.nlist must be at least 1"),
        ({"save_after": 2}, "index.save_after must be above 0 and at most 1"),
        ({"kind": "flat", "lists": 4}, "unknown setting index.lists"),
    ],
)
def test_a_wrong_index_setting_is_named(tmp_path, setting, message):
    hub = make_hub(tmp_path, config={"index": setting})
    with pytest.raises(ConfigError, match=message):
        DocumentService(hub, embedder=HashEmbedder(64))
    hub.close()


def test_a_cache_of_the_previous_format_is_rebuilt_once(tmp_path):
    with open_hub(tmp_path) as hub:
        put(hub, range(50))
        hub.documents.index.save(force=True)
    cache = tmp_path / "hub.db.faiss"
    cache.write_bytes(b'{"format": 2, "model": "hash-64"}\n' + b"\0" * 64)
    with open_hub(tmp_path) as hub:
        assert found(hub, 7)[0] == "d7"
        assert hub.documents.index.verify().ok


def test_opening_a_current_cache_reads_no_chunk_by_chunk(tmp_path):
    with open_hub(tmp_path) as hub:
        put(hub, range(1_000))
        hub.documents.index.save(force=True)
    with open_hub(tmp_path) as hub:
        put(hub, [1_000])  # one change the file does not hold: caught up
    statements = []
    with open_hub(tmp_path) as hub:
        hub.db.connection().set_trace_callback(statements.append)
        assert found(hub, 1_000)[0] == "d1000"
        hub.db.connection().set_trace_callback(None)
    reads = [s for s in statements if "FROM chunks" in s]
    assert reads, statements
    for statement in reads:  # by id, past an id, or the hits' rows: never all
        assert "id IN" in statement or "id > " in statement, statement
