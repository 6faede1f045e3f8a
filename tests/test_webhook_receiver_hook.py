"""register_webhook_receivers: a plugin adds a receiver kind for [webhooks.NAME];
the built-in kinds come through the same hook."""

import hmac
import re
import textwrap

import pytest
import requests

from eventhub import hookimpl
from eventhub.errors import ConfigError
from eventhub.server import HTTPServer, ServerSettings
from eventhub.testing import make_hub
from eventhub.webhooks import (
    RECEIVER_KINDS,
    GitHubReceiver,
    SignatureError,
    WebhookEvents,
    WebhookReceiver,
    make_receivers,
    parse_json,
    receiver_kinds,
)

from .conftest import ROOT
from .test_daemon import run_cli


def docs_snippet():
    """The plugin of docs/hooks.md's register_webhook_receivers section."""
    docs = (ROOT / "docs" / "hooks.md").read_text()
    section = docs.split("## register_webhook_receivers\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


class AcmeReceiver(WebhookReceiver):
    kind = "acme"

    def verify(self, request):
        token = request.headers.get("x-acme-token", "").encode()
        if not any(hmac.compare_digest(token, s.encode()) for s in self.secrets):
            raise SignatureError("X-Acme-Token does not match")

    def to_events(self, request):
        order = parse_json(request.body)
        return WebhookEvents(
            [{"type": "acme.order", "data": order, "source": self.source}]
        )


class AcmePlugin:
    @hookimpl
    def register_webhook_receivers(self, register):
        register(AcmeReceiver)


@pytest.fixture
def acme_hub(tmp_path, clock):
    webhooks = {"shop": {"kind": "acme", "secret": "s3cret"}}
    with make_hub(
        tmp_path, clock=clock, plugins=[AcmePlugin()], config={"webhooks": webhooks}
    ) as hub:
        yield hub


@pytest.fixture
def acme_server(acme_hub):
    server = HTTPServer(acme_hub, ServerSettings(port=0))
    server.start()
    yield server
    server.stop()


def test_a_plugin_kind_serves_its_configured_receiver(acme_server, acme_hub):
    response = requests.post(
        f"{acme_server.url}/webhooks/shop",
        json={"order": 7},
        headers={"X-Acme-Token": "s3cret"},
        timeout=30,
    )
    assert response.status_code == 200
    (event,) = acme_hub.bus.history("acme.order")
    assert response.json() == {"stored": [event.id]}
    assert event.data == {"order": 7} and event.source == "webhooks/shop"


def test_a_plugin_kind_is_verified_like_the_built_ins(acme_server, acme_hub):
    response = requests.post(
        f"{acme_server.url}/webhooks/shop",
        json={"order": 7},
        headers={"X-Acme-Token": "guess"},
        timeout=30,
    )
    assert response.status_code == 401 and acme_hub.bus.history() == []


class QuietAcmeReceiver(AcmeReceiver):
    kind = "acme-quiet"
    empty_reply = True


def test_a_kind_with_empty_reply_answers_an_empty_200(hub):
    receiver = QuietAcmeReceiver("shop", {"secret": "s3cret"})
    server = HTTPServer(hub, ServerSettings(port=0), {"shop": receiver})
    server.start()
    try:
        response = requests.post(
            f"{server.url}/webhooks/shop",
            json={"order": 7},
            headers={"X-Acme-Token": "s3cret"},
            timeout=30,
        )
    finally:
        server.stop()
    assert response.status_code == 200 and response.content == b""
    assert [e.type for e in hub.bus.history()] == ["acme.order"]


def test_the_built_in_kinds_register_through_the_hook(hub):
    kinds = receiver_kinds(hub.pm)
    assert kinds == RECEIVER_KINDS
    assert kinds["github"] is GitHubReceiver


def test_a_kind_registered_twice_is_a_config_error(tmp_path):
    class Impostor(GitHubReceiver):
        pass

    class Plugin:
        @hookimpl
        def register_webhook_receivers(self, register):
            register(Impostor)

    with make_hub(tmp_path, plugins=[Plugin()]) as hub:
        with pytest.raises(ConfigError, match="kind 'github' is registered twice"):
            receiver_kinds(hub.pm)


def test_an_unknown_kind_names_the_registered_ones(acme_hub):
    kinds = receiver_kinds(acme_hub.pm)
    with pytest.raises(ConfigError, match="kind must be one of acme, documents"):
        make_receivers({"shop": {"kind": "acne", "secret": "s"}}, kinds)


def test_run_check_knows_the_documented_kind_from_a_config_plugin(tmp_path):
    (tmp_path / "acme.py").write_text(docs_snippet())
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(
            """
            plugins = ["acme.py"]
            [server]
            port = 0
            [webhooks.shop]
            kind = "acme"
            secret = { env = "ACME_TOKEN" }
            """
        )
    )
    proc = run_cli("run", "--config", str(config), "--check", env={"ACME_TOKEN": "t"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("config OK")
