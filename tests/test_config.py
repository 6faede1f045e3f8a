import textwrap

import pytest

from eventhub import ConfigError, Hub, hookimpl
from eventhub.config import load_config, resolve_secrets
from eventhub.testing import StubIntegration


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
    resolved = resolve_secrets(config.integrations["crm"], "integrations.crm")
    assert resolved["api_token"] == "t0ps3cr3t"
    assert resolved["password"] == "from-a-file"
    assert config.integrations["crm"]["api_token"] == {"env": "CRM_TOKEN"}


class STUB:
    @staticmethod
    @hookimpl
    def register_integrations(register):
        register(StubIntegration)


SECRETFUL = """
    [integrations.crm]
    kind = "stub"
    api_token = { env = "EH_TEST_CRM_TOKEN" }
    [webhooks.github]
    kind = "github"
    secret = { env = "EH_TEST_GITHUB_SECRET" }
    [server.jwt]
    secret = { file = "/nonexistent/jwt-secret" }
"""


def test_loading_a_config_reads_no_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("EH_TEST_CRM_TOKEN", raising=False)
    config = load_config(write_config(tmp_path, SECRETFUL))
    assert config.sections["webhooks"]["github"]["secret"] == {
        "env": "EH_TEST_GITHUB_SECRET"
    }


def test_missing_secrets_lists_every_one_by_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("EH_TEST_CRM_TOKEN", "v4lue-never-shown")
    monkeypatch.delenv("EH_TEST_GITHUB_SECRET", raising=False)
    config = load_config(write_config(tmp_path, SECRETFUL))
    problems = config.missing_secrets()
    assert problems == [
        "server.jwt.secret: cannot read secret file /nonexistent/jwt-secret:"
        " No such file or directory",
        "webhooks.github.secret: environment variable EH_TEST_GITHUB_SECRET is not set",
    ]
    with pytest.raises(ConfigError, match="EH_TEST_GITHUB_SECRET is not set"):
        resolve_secrets(config.sections["webhooks"], "webhooks")


def test_an_integration_reads_its_secret_when_it_is_built(tmp_path, monkeypatch):
    monkeypatch.delenv("EH_TEST_CRM_TOKEN", raising=False)
    path = write_config(tmp_path, SECRETFUL.split("[webhooks")[0])
    with Hub.from_config(path, load_entrypoints=False, plugins=[STUB]) as hub:
        assert hub.workflows() == {}  # a hub that does not need the secret opens
        with pytest.raises(ConfigError, match="crm.api_token: environment variable"):
            hub.start()
        monkeypatch.setenv("EH_TEST_CRM_TOKEN", "t0ps3cr3t")
        hub.start()
        crm = hub.get_integration("crm")
        assert crm.config["api_token"] == "t0ps3cr3t" and crm.started == 1


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
            "[integrations.crm]\nkind = 'crm'\ntoken = { env = 3 }",
            'token: { env = "..." } needs a non-empty string',
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
        match=r"unknown kind 'nope' \(known: confluence, filesystem, gdrive, imap,"
        r" jira, logsink, notion, rabbitmq, redis_queue, rest, s3, sharepoint,"
        r" slack, sql\)",
    ):
        Hub.from_config(path, load_entrypoints=False)


def test_asking_for_sources_builds_no_other_integration(tmp_path, monkeypatch):
    from eventhub.documents import Source

    monkeypatch.delenv("EH_TEST_CRM_TOKEN", raising=False)
    (tmp_path / "docs").mkdir()
    text = SECRETFUL.split("[webhooks")[0] + '[sources.docs]\nkind = "filesystem"\n'
    path = write_config(tmp_path, text + 'path = "docs"\n')
    with Hub.from_config(path, load_entrypoints=False, plugins=[STUB]) as hub:
        assert list(hub.get_integrations(Source)) == ["docs"]
        with pytest.raises(ConfigError, match="EH_TEST_CRM_TOKEN is not set"):
            hub.get_integrations()
