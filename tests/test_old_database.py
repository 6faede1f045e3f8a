"""A state database written by an earlier eventhub opens and works.

``fixtures/state-3760619.sqlite`` was written by the code of commit 3760619 (see
``fixtures/README.md``): its migrations run on open, and history, cursors, redrive,
runs, search and API tokens work on what it holds.
"""

import shutil
from pathlib import Path

import pytest

from eventhub import RetryPolicy, workflow
from eventhub.auth.apitokens import APITokenStore
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.testing import make_hub

FIXTURE = Path(__file__).parent / "fixtures" / "state-3760619.sqlite"
TOKEN = "ehk_61n0R1S68sg6Jwt8WeyaUQygrqtWVpknTqFGd8DoqZc"


@pytest.fixture
def old_hub(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "state.db")
    with make_hub(tmp_path, "state.db") as hub:
        yield hub


def test_history_reads_the_old_events(old_hub):
    users = old_hub.bus.history("user.created")
    assert [e.data["id"] for e in users] == [1, 2, 3, 4]
    assert [e.sequence for e in users] == [4, 5, 6, 7]
    assert users[0].source == "/signup" and users[0].subject == "user/1"
    assert [e.data for e in old_hub.bus.history("order.*")] == [{"order": 9}]


def test_a_durable_cursor_resumes_and_a_dead_letter_redrives(old_hub):
    seen = []
    old_hub.bus.subscribe(
        "user.*",
        lambda e: seen.append(e.data["id"]),
        name="audit",
        retry=RetryPolicy(max_attempts=1),
    )
    old_hub.bus.publish("user.created", {"id": 5}, source="/signup")
    old_hub.bus.drain()
    assert seen == [5]  # the old cursor held: nothing delivered twice
    (letter,) = old_hub.bus.dead_letters("audit")
    assert letter.event.data == {"id": 3} and "refused user 3" in letter.error
    assert old_hub.bus.redrive(all=True) == 1
    old_hub.bus.drain()
    assert seen == [5, 3] and old_hub.bus.dead_letters("audit") == []


def test_old_runs_are_listed_and_new_ones_recorded(old_hub):
    runs = old_hub.orchestrator.runs.list("report")
    assert sorted(r.status for r in runs) == ["failed", "succeeded"]

    @workflow("report")
    def report(ctx):
        return {"rows": 3}

    old_hub.orchestrator.register_workflow(report)
    assert old_hub.orchestrator.trigger_workflow("report").status == "succeeded"
    assert len(old_hub.orchestrator.runs.list("report")) == 3


def test_the_old_index_is_searched_and_verified(old_hub):
    old_hub.documents = DocumentService(old_hub, embedder=HashEmbedder(64))
    hits = old_hub.documents.search("moon oceans tides", 2)
    assert [h.document_id for h in hits][0] == "tides.md"
    assert old_hub.documents.index.verify().ok


def test_an_old_api_token_still_opens_the_api(old_hub):
    found = APITokenStore(old_hub.db).check(TOKEN)
    assert found is not None and found.name == "fixture-reader"
    assert found.scope == "read"
