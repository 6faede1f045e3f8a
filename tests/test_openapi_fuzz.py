"""The API's OpenAPI document, fuzzed with schemathesis over real HTTP: whatever
the input, no 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from eventhub import workflow
from eventhub.auth.apitokens import APITokenStore
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.server import HTTPServer, ServerSettings
from eventhub.webhooks import make_receivers

pytestmark = pytest.mark.slow
SEEN: set[tuple[str, str, int]] = set()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from eventhub.testing import make_hub

    with make_hub(tmp_path_factory.mktemp("fuzz")) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(32))
        hub.orchestrator.register_workflow(workflow("echo")(lambda ctx: ctx.data))
        token = APITokenStore(hub.db).create("fuzz")
        receivers = make_receivers({"github": {"kind": "github", "secret": "s3cret"}})
        server = HTTPServer(hub, ServerSettings(port=0), receivers)
        server.start()
        yield server, token
        server.stop()
        hub.orchestrator.wait_idle(30)


def fuzz(server, token, operation):
    @given(case=operation.as_strategy())
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case):
        response = case.call(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code < 500, (case.method, case.path, response.text)
        SEEN.add((case.method, case.path, response.status_code))

    call()


def test_no_input_gives_a_server_error(served):
    server, token = served
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        fuzz(server, token, operation)
    # The explicit examples reach the real intake and a real publish.
    assert ("POST", "/webhooks/{name}", 401) in SEEN
    assert ("POST", "/events", 201) in SEEN
