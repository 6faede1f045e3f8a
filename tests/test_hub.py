import types

import pytest

from eventhub import ConfigError, Hub, Integration, IntegrationNotFound, hookimpl
from eventhub.testing import StubIntegration, make_hub


class CRMIntegration(Integration):
    """The seeds' CRM integration, in eventhub's terms."""

    handle_events = ["user.created", "user.updated"]

    def __init__(self):
        super().__init__()
        self.contacts = {}

    def handle_event(self, event):
        action = "created" if event.type == "user.created" else "updated"
        self.contacts[event.data["id"]] = event.data
        return {"action": action, "contact_id": event.data["id"]}


def test_memory_hub_is_a_throwaway_file(tmp_path):
    with Hub(":memory:", load_entrypoints=False) as hub:
        path = hub.path
        hub.bus.publish("a.b")
        assert len(hub.bus.history()) == 1
    import os

    assert not os.path.exists(path)


def test_crm_integration_handles_user_events_durably(hub):
    crm = hub.register_integration("crm", CRMIntegration())
    hub.bus.publish("user.created", {"id": 1, "name": "Ada"})
    hub.bus.publish("user.updated", {"id": 1, "name": "Ada L."})
    hub.bus.publish("order.paid", {"id": 9})
    hub.bus.drain()
    assert crm.contacts == {1: {"id": 1, "name": "Ada L."}}
    assert [s.name for s in hub.bus.durable_status()] == ["integration.crm"]


def test_integrations_start_and_stop_with_the_hub(tmp_path):
    stub = StubIntegration(["a.*"])
    with make_hub(tmp_path) as hub:
        hub.register_integration("stub", stub)
        hub.start()
        assert stub.started == 1 and stub.hub is hub
        hub.stop()
        assert stub.stopped == 1


def test_integration_lookup(hub):
    stub = hub.register_integration("stub", StubIntegration())
    assert hub.get_integration("stub") is stub
    assert hub.get_integrations() == {"stub": stub}
    with pytest.raises(IntegrationNotFound, match="known: stub") as info:
        hub.get_integration("crm")
    assert isinstance(info.value, LookupError)


def test_an_integration_name_is_taken_once(hub):
    hub.register_integration("stub", StubIntegration())
    with pytest.raises(ConfigError, match="already registered"):
        hub.register_integration("stub", StubIntegration())


def test_plugins_register_integration_kinds(tmp_path):
    class Kind(Integration):
        kind = "kind"

    plugin = types.SimpleNamespace(
        register_integrations=hookimpl(lambda register: register(Kind))
    )
    with make_hub(tmp_path, plugins=[plugin]) as hub:
        kinds = hub.integration_kinds()
    assert kinds["kind"] is Kind
    assert "logsink" in kinds  # the built-ins are plugins too


def test_plugins_register_workflows(tmp_path):
    from eventhub import workflow

    flow = workflow("nightly", schedule="@daily")(lambda ctx: None)
    plugin = types.SimpleNamespace(
        register_workflows=hookimpl(lambda register: register(flow))
    )
    with make_hub(tmp_path, plugins=[plugin]) as hub:
        assert hub.workflows() == {"nightly": flow}


def test_register_workflows_can_ask_for_the_hub(tmp_path):
    from eventhub import workflow

    class Plugin:
        @hookimpl
        def register_workflows(self, register, hub):
            for name in hub.config["reports"]:
                register(workflow(f"report.{name}")(lambda ctx: None))

    config = {"reports": ["daily", "weekly"]}
    with make_hub(tmp_path, plugins=[Plugin()], config=config) as hub:
        assert sorted(hub.workflows()) == ["report.daily", "report.weekly"]


def test_document_sync_is_a_default_plugin_reading_the_sources(tmp_path):
    from eventhub.plugins import DEFAULT_PLUGINS

    assert "eventhub.workflows.document_sync" in DEFAULT_PLUGINS
    with make_hub(tmp_path) as hub:
        assert hub.workflows() == {}  # no [sources]: no sync workflows
    config = {"sources": {"docs": {"kind": "filesystem", "schedule": False}}}
    with make_hub(tmp_path, "other.db", config=config) as hub:
        flows = hub.workflows()
    assert sorted(flows) == ["document-sync", "sync.docs"]
    assert flows["sync.docs"].schedule is None and flows["sync.docs"].run_at_start


def test_a_plugin_workflow_must_be_a_workflow(tmp_path):
    plugin = types.SimpleNamespace(
        register_workflows=hookimpl(lambda register: register(lambda ctx: None))
    )
    with make_hub(tmp_path, plugins=[plugin]) as hub:
        with pytest.raises(ConfigError, match="not a workflow"):
            hub.workflows()


def test_startup_and_shutdown_hooks_receive_the_hub(tmp_path):
    calls = []

    class Plugin:
        @hookimpl
        def startup(self, hub):
            calls.append(("startup", hub))

        @hookimpl
        def shutdown(self, hub):
            calls.append(("shutdown", hub))

    with make_hub(tmp_path, plugins=[Plugin()]) as hub:
        hub.start()
        hub.stop()
    assert calls == [("startup", hub), ("shutdown", hub)]


def test_a_misspelled_hook_fails_loudly(tmp_path):
    class Plugin:
        @hookimpl
        def start_up(self, hub):
            pass

    with make_hub(tmp_path, plugins=[Plugin()]) as hub:
        with pytest.raises(ConfigError, match="start_up"):
            hub.start()


def test_two_plugins_with_one_integration_kind_is_an_error(tmp_path):
    def plugin_for(cls):
        return types.SimpleNamespace(
            register_integrations=hookimpl(lambda register: register(cls))
        )

    class One(Integration):
        kind = "same"

    class Two(Integration):
        kind = "same"

    with make_hub(tmp_path, plugins=[plugin_for(One), plugin_for(Two)]) as hub:
        with pytest.raises(ConfigError, match="registered twice"):
            hub.integration_kinds()


def test_a_source_kind_and_an_integration_kind_may_share_a_name(tmp_path):
    from eventhub.documents import Source

    class Poster(Integration):
        kind = "vendor"

    class Reader(Source):
        kind = "vendor"

        def fetch(self, id):
            return None

        def ids(self):
            return []

    plugin = types.SimpleNamespace(
        register_integrations=hookimpl(
            lambda register: (register(Poster), register(Reader))
        )
    )
    with make_hub(tmp_path, plugins=[plugin]) as hub:
        assert hub.integration_kinds()["vendor"] is Poster
        assert hub.source_kinds()["vendor"] is Reader
        assert (
            "filesystem" in hub.source_kinds() and "logsink" not in hub.source_kinds()
        )


def test_entry_points_are_not_loaded_under_the_test_suite(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(
        "pluggy.PluginManager.load_setuptools_entrypoints",
        lambda self, group, name=None: loaded.append(group),
    )
    with make_hub(tmp_path, load_entrypoints=None) as hub:
        hub.start()
    assert loaded == []


def test_logsink_writes_events_to_the_log(hub):
    from eventhub.integrations.logsink import LogSink
    from structlog.testing import capture_logs

    hub.register_integration("watch", LogSink(handle_events=["order.*"]))
    with capture_logs() as logs:
        event = hub.bus.publish("order.paid", subject="o/1")
    assert logs == [
        {
            "event": "event",
            "event_type": "order.paid",
            "event_id": event.id,
            "sequence": 1,
            "subject": "o/1",
            "source": "eventhub",
            "log_level": "info",
        }
    ]


def test_a_state_database_in_a_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Hub(tmp_path / "missing" / "hub.db")


def test_a_file_that_is_not_sqlite_is_a_config_error_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        Hub(path)
    assert path.read_bytes() == b"these are my notes, not a database" * 100


def test_normal_synchronous_profile(tmp_path):
    with make_hub(tmp_path, synchronous="NORMAL") as hub:
        sync = hub.db.connection().execute("PRAGMA synchronous").fetchone()[0]
        mode = hub.db.connection().execute("PRAGMA journal_mode").fetchone()[0]
    assert (sync, mode) == (1, "wal")
    with make_hub(tmp_path) as hub:
        assert hub.db.connection().execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(ConfigError):
        make_hub(tmp_path, synchronous="EXTRA")


def test_a_writer_waits_for_another_process_lock_instead_of_failing(tmp_path):
    import sqlite3
    import threading

    with make_hub(tmp_path) as hub:
        blocker = sqlite3.connect(
            hub.path, isolation_level=None, check_same_thread=False
        )
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        threading.Timer(0.3, blocker.execute, args=("COMMIT",)).start()
        event = hub.bus.publish("a.b")
        assert event.sequence == 1
        blocker.close()


def test_storage_busy_past_the_deadline_is_a_clear_error(tmp_path):
    import sqlite3

    from eventhub import StorageBusy

    with make_hub(tmp_path, busy_timeout=0.05) as hub:
        hub.db.write_deadline = 0.2
        blocker = sqlite3.connect(hub.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusy, match="stayed locked"):
            hub.bus.publish("a.b")
        blocker.execute("COMMIT")
        blocker.close()
        assert hub.bus.publish("a.b").sequence == 1  # the connection is usable again


def test_connections_of_finished_threads_are_closed(hub):
    import threading

    def publish():
        hub.bus.publish("a.b")

    for _ in range(20):
        thread = threading.Thread(target=publish)
        thread.start()
        thread.join()
    hub.db.connection()  # opening a connection sweeps those of ended threads
    assert len(hub.db._connections) <= 2
    assert len(hub.bus.history(limit=None)) == 20


def test_memory_hubs_leave_no_open_files_behind():
    import os

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        with Hub(":memory:", load_entrypoints=False) as hub:
            hub.bus.subscribe("a.b", print, name="s")
            hub.bus.drain()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_closing_one_hub_keeps_the_claims_of_another_on_the_same_file(tmp_path):
    import subprocess
    import sys

    holder = make_hub(tmp_path)
    holder.bus.subscribe("a.b", print, name="s")
    holder.bus.drain()  # claims "s"
    make_hub(tmp_path).close()  # a second hub on the same file comes and goes
    probe = (
        "import sys; from eventhub.eventlog.sqlite import SQLiteLog;"
        "from eventhub.statedb import StateDB;"
        "log = SQLiteLog(StateDB(sys.argv[1])); print(log.claim('s'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, holder.path], capture_output=True, text=True
    )
    holder.close()
    assert out.stdout.strip() == "False", out.stderr
