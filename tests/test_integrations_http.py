import base64
import json
import textwrap

import pytest
from eventhub.integrations.jira import JiraError, JiraIntegration, JiraIssueNotFound
from eventhub.integrations.rest import RESTIntegration
from eventhub.integrations.slack import SlackError, SlackIntegration
from structlog.testing import capture_logs
from werkzeug import Response

from eventhub import Hub
from eventhub.auth.oauth import OAuthTokenStore
from eventhub.errors import ConfigError, TransientError, UserError
from eventhub.http import HostNotAllowed

from .conftest import REALDATA

SLACK = REALDATA / "slack" / "web-api-examples"
JIRA = REALDATA / "jira" / "jira-ruby-mock_responses"
SLACK_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
JIRA_TOKEN = "ATATT3xFfGF0-jira-api-token"
# Jira's documented answer to POST /rest/api/3/issue (no recorded one in realdata).
CREATED = {"id": "10000", "key": "SAMPLEPROJECT-24", "self": "https://x/issue/10000"}


def body(path):
    return path.read_text()


@pytest.fixture
def hub_from(tmp_path, httpserver):
    """A hub from a config file whose [integrations.crm] reaches the test server."""
    hubs = []

    def make(settings, kind="rest"):
        path = tmp_path / "eventhub.toml"
        path.write_text(
            f'[integrations.crm]\nkind = "{kind}"\nallow_private = true\n'
            f'base_url = "{httpserver.url_for("/v2/")}"\n{textwrap.dedent(settings)}'
        )
        hubs.append(Hub.from_config(path, load_entrypoints=False))
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture
def waits():
    return []


@pytest.fixture
def slack(httpserver, waits):
    yield SlackIntegration(
        httpserver.url_for("/api/"),
        token=SLACK_TOKEN,
        allow_private=True,
        sleep=waits.append,
    )


@pytest.fixture
def jira(httpserver, waits):
    yield JiraIntegration(
        httpserver.url_for("/"),
        email="bot@example.com",
        api_token=JIRA_TOKEN,
        allow_private=True,
        sleep=waits.append,
    )


def sent(httpserver, index=0):
    return httpserver.log[index][0]


# REST -----------------------------------------------------------------------------


def test_rest_integration_from_a_config_file(hub_from, httpserver, monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", "crm-secret-token")
    httpserver.expect_request("/v2/contacts", method="POST").respond_with_json(
        {"id": 9}
    )
    hub = hub_from('token = { env = "CRM_TOKEN" }\nheaders = { X-Tenant = "acme" }')
    assert hub.get_integration("crm").post("contacts", json={"n": 1}) == {"id": 9}
    request = sent(httpserver)
    assert request.headers["Authorization"] == "Bearer crm-secret-token"
    assert request.headers["X-Tenant"] == "acme" and request.json == {"n": 1}


def test_rest_empty_body_is_none(httpserver):
    httpserver.expect_request("/things/1", method="DELETE").respond_with_data(
        status=204
    )
    rest = RESTIntegration(httpserver.url_for("/"), allow_private=True)
    assert rest.delete("things/1") is None
    assert rest.request("DELETE", "things/1").status_code == 204


@pytest.mark.parametrize(
    "settings, problem",
    [
        ("", "base_url is missing"),
        ('base_url = "ftp://files.example.com/"', "must be an http"),
        ('base_url = "https://x.example/"\nusername = "bob"', "password is missing"),
        ('base_url = "https://x.example/"\nburst = 3', "need rate"),
        ('base_url = "https://x.example/"\ntimeout = [1, 2, 3]', "timeout must be"),
        ('base_url = "https://x.example/"\nbase = "typo"', "unexpected keyword"),
    ],
)
def test_rest_config_mistakes_are_config_errors(tmp_path, settings, problem):
    path = tmp_path / "eventhub.toml"
    path.write_text(f'[integrations.crm]\nkind = "rest"\n{settings}')
    with pytest.raises(ConfigError, match=problem):
        Hub.from_config(path, load_entrypoints=False)


def test_rest_refuses_loopback_without_allow_private(httpserver):
    rest = RESTIntegration(httpserver.url_for("/"))
    with pytest.raises(HostNotAllowed, match="loopback"):
        rest.get("anything")
    assert httpserver.log == []


def test_shared_rate_limit_keeps_its_bucket_in_the_hub_database(hub_from, httpserver):
    httpserver.expect_request("/v2/ping").respond_with_json({"ok": True})
    hub = hub_from("rate = 50\nburst = 5\nshared_rate_limit = true")
    hub.start(run_scheduler=False)
    assert hub.get_integration("crm").get("ping") == {"ok": True}
    rows = hub.db.connection().execute("SELECT key FROM http_rate_limits").fetchall()
    assert [tuple(row) for row in rows] == [("crm",)]


def test_shared_rate_limit_needs_a_started_hub(tmp_path):
    rest = RESTIntegration("https://x.example/", rate=1, shared_rate_limit=True)
    with pytest.raises(ConfigError, match="needs a started hub"):
        rest.get("anything")


def test_rest_oauth_table_sends_the_stored_token(
    hub_from, tmp_path, httpserver, monkeypatch
):
    monkeypatch.setenv("CLIENT_SECRET", "cs-123")
    OAuthTokenStore(tmp_path / "tok" / "g.json").save({"access_token": "ya29.stored"})
    httpserver.expect_request("/v2/me").respond_with_json({"email": "a@example.com"})
    hub = hub_from(f"""
        [integrations.crm.oauth]
        client_id = "cid"
        client_secret = {{ env = "CLIENT_SECRET" }}
        redirect_uri = "https://app.example/cb"
        token_file = "{tmp_path}/tok/g.json"
    """)
    assert hub.get_integration("crm").get("me") == {"email": "a@example.com"}
    assert sent(httpserver).headers["Authorization"] == "Bearer ya29.stored"


# Slack ------------------------------------------------------------------------------


def test_slack_send_message(slack, httpserver):
    httpserver.expect_request("/api/chat.postMessage", method="POST").respond_with_data(
        body(SLACK / "chat.postMessage.ok.json"), content_type="application/json"
    )
    answer = slack.send_message(
        "C1H9RESGL", "Here's a message for you", thread_ts="1.2"
    )
    assert answer["ts"] == "1503435956.000247"
    request = sent(httpserver)
    assert request.json == {
        "channel": "C1H9RESGL",
        "text": "Here's a message for you",
        "thread_ts": "1.2",
    }
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"


def test_slack_get_user_info(slack, httpserver):
    httpserver.expect_request(
        "/api/users.info", method="GET", query_string={"user": "W012A3CDE"}
    ).respond_with_data(
        body(SLACK / "users.info.ok.json"), content_type="application/json"
    )
    user = slack.get_user_info("W012A3CDE")
    assert user["id"] == "W012A3CDE" and user["name"] == "spengler"


@pytest.mark.parametrize(
    "call, example, error",
    [
        (lambda s: s.get_user_info("W0"), "users.info.error.json", "user_not_found"),
        (
            lambda s: s.send_message("C1", "hi"),
            "chat.postMessage.error.json",
            "too_many_attachments",
        ),
    ],
)
def test_slack_ok_false_raises_slack_error(slack, httpserver, call, example, error):
    httpserver.expect_request("/api/" + example.rsplit(".", 2)[0]).respond_with_data(
        body(SLACK / example), content_type="application/json"
    )
    with pytest.raises(SlackError) as caught:
        call(slack)
    assert caught.value.error == error and error in str(caught.value)
    assert len(httpserver.log) == 1


def ratelimited_then(ok_body):
    answers = [json.dumps({"ok": False, "error": "ratelimited"}), ok_body]

    def handler(request):
        return Response(answers.pop(0), content_type="application/json")

    return handler


def test_slack_ratelimited_then_ok_succeeds(slack, httpserver, waits):
    httpserver.expect_request("/api/users.info").respond_with_handler(
        ratelimited_then(body(SLACK / "users.info.ok.json"))
    )
    assert slack.get_user_info("W012A3CDE")["name"] == "spengler"
    assert len(httpserver.log) == 2 and len(waits) == 1


def test_slack_ratelimited_post_is_repeated(slack, httpserver, waits):
    # Slack refuses a rate-limited call before processing it: repeating is safe.
    httpserver.expect_request("/api/chat.postMessage").respond_with_handler(
        ratelimited_then(body(SLACK / "chat.postMessage.ok.json"))
    )
    assert slack.send_message("C1H9RESGL", "hello")["ok"] is True
    assert len(httpserver.log) == 2


def test_slack_needs_a_token():
    with pytest.raises(ConfigError, match="token is missing"):
        SlackIntegration()


def test_slack_token_never_in_logs_errors_or_reprs(slack, httpserver):
    httpserver.expect_request("/api/users.info").respond_with_data(
        body(SLACK / "users.info.error.json"), content_type="application/json"
    )
    with capture_logs() as logs, pytest.raises(SlackError) as caught:
        slack.get_user_info("W0")
    shown = f"{logs!r} {caught.value} {caught.value!r} {slack!r} {slack.client.auth!r}"
    assert SLACK_TOKEN not in shown and "pdFZKVeTuE8sk7oOcBrzbqgy" not in shown


# Jira -------------------------------------------------------------------------------


def test_jira_create_issue_sends_the_fields(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue", method="POST").respond_with_json(
        CREATED, status=201
    )
    created = jira.create_issue("SAMPLEPROJECT", "Disk full", "d", "Bug", labels=["x"])
    assert created["key"] == "SAMPLEPROJECT-24"
    fields = sent(httpserver).json["fields"]
    assert fields["project"] == {"key": "SAMPLEPROJECT"} and fields["labels"] == ["x"]
    assert fields["issuetype"] == {"name": "Bug"} and fields["summary"] == "Disk full"


def test_jira_cloud_description_is_adf(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue").respond_with_json(CREATED)
    jira.create_issue("SAMPLEPROJECT", "Disk full", "First line\nsecond\n\nNext")
    doc = sent(httpserver).json["fields"]["description"]
    assert doc["type"] == "doc" and doc["version"] == 1
    first, second = doc["content"]
    assert first["type"] == "paragraph"
    assert [node["type"] for node in first["content"]] == ["text", "hardBreak", "text"]
    assert second["content"] == [{"type": "text", "text": "Next"}]


def test_jira_uses_basic_auth_with_email_and_api_token(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue").respond_with_json(CREATED)
    jira.create_issue("SAMPLEPROJECT", "s", "d")
    expected = base64.b64encode(f"bot@example.com:{JIRA_TOKEN}".encode()).decode()
    assert sent(httpserver).headers["Authorization"] == f"Basic {expected}"


def test_jira_v2_sends_a_plain_description(httpserver):
    httpserver.expect_request("/jira/rest/api/2/issue").respond_with_json(CREATED)
    jira = JiraIntegration(
        httpserver.url_for("/jira"), token="pat", api_version=2, allow_private=True
    )
    jira.create_issue("SAMPLEPROJECT", "Disk full", "plain *wiki* text")
    assert sent(httpserver).json["fields"]["description"] == "plain *wiki* text"


def test_jira_get_issue_with_a_recorded_body(httpserver):
    httpserver.expect_request(
        "/rest/api/2/issue/SAMPLEPROJECT-1", query_string={"fields": "summary,status"}
    ).respond_with_data(
        body(JIRA / "issue" / "10002.json"), content_type="application/json"
    )
    jira = JiraIntegration(httpserver.url_for("/"), api_version=2, allow_private=True)
    issue = jira.get_issue("SAMPLEPROJECT-1", fields=["summary", "status"])
    assert issue["key"] == "SAMPLEPROJECT-1"
    assert issue["fields"]["summary"] == "Sample Issue"


@pytest.mark.parametrize(
    "key", ["proj-1", "PROJ-1/../../admin", "PROJ-1?expand=x", "PROJ", "", "P-1%2F"]
)
def test_jira_bad_issue_keys_are_refused_before_any_request(jira, httpserver, key):
    with pytest.raises(UserError, match="not an issue key"):
        jira.get_issue(key)
    assert httpserver.log == []


def test_jira_bad_project_key_is_refused_before_any_request(jira, httpserver):
    with pytest.raises(UserError, match="not a project key"):
        jira.create_issue("proj/../x", "s", "d")
    assert httpserver.log == []


def test_jira_400_error_body_is_surfaced(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue").respond_with_json(
        {
            "errorMessages": ["Field 'priority' is invalid."],
            "errors": {"summary": "You must specify a summary of the issue."},
        },
        status=400,
    )
    with pytest.raises(JiraError) as caught:
        jira.create_issue("SAMPLEPROJECT", "", "d")
    assert caught.value.status == 400 and len(httpserver.log) == 1
    assert "summary: You must specify a summary of the issue." in str(caught.value)
    assert "Field 'priority' is invalid." in caught.value.messages


def test_jira_error_messages_are_redacted(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue").respond_with_json(
        {"errorMessages": ["bad header Authorization: Bearer abcdef123456789"]},
        status=400,
    )
    with pytest.raises(JiraError) as caught:
        jira.create_issue("SAMPLEPROJECT", "s", "d")
    assert "abcdef123456789" not in str(caught.value) and JIRA_TOKEN not in str(
        caught.value
    )


def test_jira_missing_issue_is_a_lookup_error(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue/SAMPLEPROJECT-404").respond_with_json(
        {
            "errorMessages": [
                "Issue does not exist or you do not have permission to see it."
            ],
            "errors": {},
        },
        status=404,
    )
    with pytest.raises(JiraIssueNotFound, match="Issue does not exist") as caught:
        jira.get_issue("SAMPLEPROJECT-404")
    assert isinstance(caught.value, LookupError)


def test_jira_create_issue_is_not_repeated_after_a_server_error(jira, httpserver):
    httpserver.expect_request("/rest/api/3/issue").respond_with_data("busy", status=503)
    with pytest.raises(TransientError):
        jira.create_issue("SAMPLEPROJECT", "s", "d")
    assert len(httpserver.log) == 1
