import textwrap

import pytest

from eventhub import ConfigError, Hub
from eventhub.config import load_config


def write_config(tmp_path, text, name="eventhub.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "flows").mkdir()
    path = write_config(
        tmp_path,
        """
        db = "state/hub.db"
        workflows_dir = "flows"
    """,
    )
    config = load_config(path)
    assert config.db == tmp_path / "state" / "hub.db"
    assert config.workflows_dir == tmp_path / "flows"


def test_secrets_come_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", "t0ps3cr3t")
    (tmp_path / "secret.txt").write_text("from-a-file\n")
    path = write_config(
        tmp_path,
        f"""
        [integrations.crm]
        kind = "crm"
        api_token = {{ env = "CRM_TOKEN" }}
        password = {{ file = "{tmp_path / "secret.txt"}" }}
    """,
    )
    config = load_config(path)
    assert config.integrations["crm"]["api_token"] == "t0ps3cr3t"
    assert config.integrations["crm"]["password"] == "from-a-file"
    assert config.written["integrations"]["crm"]["api_token"] == {"env": "CRM_TOKEN"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('dbb = "x.db"', "unknown setting 'dbb'"),
        ("db = 3", "db must be a non-empty string"),
        ("[log]\nlevel = 'LOUD'", "log.level 'LOUD' is not a log level"),
        ("[bus]\nsynchronous = 'OFF'", "bus.synchronous must be"),
        ("[bus]\nbatch_size = 0", "bus.batch_size must be positive"),
        ("[bus]\nbatch_size = 'ten'", "bus.batch_size must be int"),
        ("[daemon]\nlinger = 1", "unknown setting daemon.linger"),
        ("[integrations.crm]\nurl = 'x'", "integrations.crm needs kind"),
        (
            "[integrations.crm]\nkind = 'crm'\napi_token = 'abc123'",
            "secret written in the file",
        ),
        (
            "[integrations.crm]\nkind = 'crm'\ntoken = { env = 'NOPE_NOT_SET' }",
            "environment variable NOPE_NOT_SET is not set",
        ),
        ("plugins = 'x.py'", "plugins must be a list"),
        ("db = [", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_hub_from_config_registers_plugins_integrations_and_workflows(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "w.py").write_text(
        textwrap.dedent("""
        from eventhub import workflow

        @workflow("w", on="a.*")
        def w(ctx):
            return ctx.integration("sink").handled
    """)
    )
    (tmp_path / "sink.py").write_text(
        textwrap.dedent("""
        from eventhub import hookimpl
        from eventhub.testing import StubIntegration

        @hookimpl
        def register_integrations(register):
            register(StubIntegration)
    """)
    )
    path = write_config(
        tmp_path,
        """
        workflows_dir = "flows"
        plugins = ["sink.py"]
        [integrations.sink]
        kind = "stub"
        handle_events = ["b.*"]
    """,
    )
    with Hub.from_config(path, load_entrypoints=False) as hub:
        assert list(hub.workflows()) == ["w"]
        sink = hub.get_integration("sink")
        hub.bus.publish("b.x")
        hub.bus.drain()
        assert len(sink.handled) == 1


def test_an_unknown_integration_kind_lists_the_known_ones(tmp_path):
    path = write_config(tmp_path, "[integrations.x]\nkind = 'nope'")
    with pytest.raises(
        ConfigError,
        match=r"unknown kind 'nope' \(known: filesystem, jira, logsink, rest, slack\)",
    ):
        Hub.from_config(path, load_entrypoints=False)
