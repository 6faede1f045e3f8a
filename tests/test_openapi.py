"""The OpenAPI document: valid, public, and declaring the answers the API gives."""

import pytest
import requests
from openapi_spec_validator import validate

from eventhub.auth.apitokens import APITokenStore


@pytest.fixture
def server(serve):
    return serve({"github": {"kind": "github", "secret": "s3cret"}})


@pytest.fixture
def document(server):
    return requests.get(server.url + "/openapi.json", timeout=30).json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_document_is_valid_openapi(document):
    validate(document)


def test_the_document_and_the_docs_page_need_no_token(server):
    assert requests.get(server.url + "/openapi.json", timeout=30).status_code == 200
    docs = requests.get(server.url + "/docs", timeout=30)
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert requests.get(server.url + "/events", timeout=30).status_code == 401


def test_routes_behind_a_token_declare_401_and_writes_403(document):
    guarded = [(p, m, op) for p, m, op in operations(document) if op.get("security")]
    assert {p for p, _, _ in guarded} == {
        "/events",
        "/workflows/{name}/runs",
        "/runs",
        "/runs/{run_id}",
        "/search",
    }
    for path, method, operation in guarded:
        assert "401" in operation["responses"], (method, path)
        assert ("403" in operation["responses"]) == (method == "post"), (method, path)


def test_manual_runs_declare_202_with_location_and_404(document):
    responses = document["paths"]["/workflows/{name}/runs"]["post"]["responses"]
    assert "Location" in responses["202"]["headers"]
    assert {"200", "202", "404", "503"} <= set(responses)
    assert "404" in document["paths"]["/runs/{run_id}"]["get"]["responses"]
    assert "404" in document["paths"]["/webhooks/{name}"]["post"]["responses"]


def test_every_error_answer_is_documented_as_an_error_object(document):
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("4") and "content" in response:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (
                    method,
                    path,
                    status,
                )


def test_post_events_documents_every_content_mode(document):
    operation = document["paths"]["/events"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "application/octet-stream",
    }
    assert {p["name"] for p in operation["parameters"]} >= {"ce-id", "ce-type"}
    assert {"201", "401", "403", "413", "415", "422"} <= set(operation["responses"])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/nowhere", 404),
        ("delete", "/events", 405),
        ("get", "/events?limit=0", 422),
        ("get", "/runs?limit=x", 422),
        ("get", "/runs/nope", 404),
    ],
)
def test_every_error_is_an_error_object(server, hub, method, path, status):
    token = APITokenStore(hub.db).create("ci")
    response = requests.request(
        method,
        server.url + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == status
    assert set(response.json()) == {"error"}
