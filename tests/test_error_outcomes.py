"""Errors declare their outcomes as class attributes: the CLI's exit status, the
API's status, what a client is told and when to try again."""

import pytest
import requests
from structlog.testing import capture_logs

from eventhub import Event
from eventhub.auth.apitokens import APITokenStore
from eventhub.cloudevents import UnsupportedContentType
from eventhub.errors import (
    EventHubError,
    EventTooLarge,
    InvalidEvent,
    MissingDependency,
    StorageBusy,
    StorageCorrupt,
    StorageFull,
    SubscriptionNotFound,
    TransientError,
    UndecodableEvent,
    UserError,
    WorkflowNotFound,
)
from eventhub.http.errors import HttpError
from eventhub.server import HTTPServer, ServerSettings


@pytest.mark.parametrize(
    "error, exit_code, status, retry_after",
    [
        (UserError("x"), 2, 422, None),
        (WorkflowNotFound("nightly"), 2, 404, None),
        (SubscriptionNotFound("s"), 2, 422, None),
        (UnsupportedContentType("text/xml", "not read"), 2, 415, None),
        (EventTooLarge(2000, 1000), 2, 422, None),
        (TransientError("later"), 1, 503, 1),
        (StorageBusy("hub.db", 5.0), 1, 503, 1),
        (StorageFull("hub.db", "disk full"), 1, 503, 30),
        (StorageCorrupt("hub.db", "malformed"), 1, 500, None),
        (MissingDependency("faiss", "rag"), 1, 503, None),
        (UndecodableEvent(3, "bad JSON"), 1, 500, None),
        (HttpError("GET", "https://example.org/", 500), 1, 500, None),
    ],
)
def test_each_error_class_declares_its_outcome(error, exit_code, status, retry_after):
    assert (error.exit_code, error.http_status) == (exit_code, status)
    assert error.http_retry_after == retry_after


def test_data_over_the_limit_is_event_too_large_with_its_sizes():
    with pytest.raises(EventTooLarge) as caught:
        Event.create("blob.stored", b"x" * 1000, source="/s", max_data_bytes=999)
    assert isinstance(caught.value, InvalidEvent) and caught.value.field == "data"
    assert (caught.value.size, caught.value.limit) == (1000, 999)
    assert str(caught.value) == (
        "invalid event: data: is 1000 bytes, over the limit of 999 bytes"
    )


class OrderConflict(UserError):
    http_status = 409


class SlowDown(TransientError):
    http_retry_after = 7


class BrokenPlugin(EventHubError):
    """Not the client's business: its message stays in the server log."""


@pytest.fixture
def server(hub):
    server = HTTPServer(hub, ServerSettings(port=0))
    errors = {
        "conflict": OrderConflict("order 7 is already paid"),
        "slow": SlowDown("the upstream asks for a pause"),
        "broken": BrokenPlugin("key sk_live_123 rejected by the vendor"),
    }

    @server.app.get("/raise/{name}")
    def raising(name: str) -> None:
        raise errors[name]

    server.start()
    yield server
    server.stop()


def test_the_api_answers_an_error_as_its_class_declares(server):
    response = requests.get(f"{server.url}/raise/conflict", timeout=30)
    assert response.status_code == 409
    assert response.json() == {"error": "order 7 is already paid"}
    response = requests.get(f"{server.url}/raise/slow", timeout=30)
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert response.json() == {"error": "the upstream asks for a pause"}


def test_an_error_that_is_not_the_clients_business_is_logged_not_told(server):
    with capture_logs() as logs:
        response = requests.get(f"{server.url}/raise/broken", timeout=30)
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
    assert any(entry["event"] == "request failed" for entry in logs)


def test_an_event_over_the_limit_stays_422_on_the_api(serve, hub):
    server = serve(None)
    token = APITokenStore(hub.db).create("ci")
    response = requests.post(
        f"{server.url}/events",
        json={"type": "blob.stored", "data": "x" * (hub.bus.max_data_bytes + 1)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 422 and "over the limit" in response.json()["error"]
    assert hub.bus.history() == []
