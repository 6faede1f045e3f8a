"""eventhub.redact: secret names, and the registry of this process's secret values."""

import base64
import json
from urllib.parse import quote, quote_plus

import orjson
import pytest
from werkzeug import Response

from eventhub.auth.apitokens import APITokenStore
from eventhub.auth.jwt import JWTManager
from eventhub.auth.oauth import GOOGLE, OAuth2Client, OAuthTokenStore
from eventhub.config import resolve_secrets
from eventhub.errors import ConfigError, HttpError
from eventhub.events import Event
from eventhub.http import HttpClient
from eventhub.redact import (
    MAX_EPHEMERAL,
    MIN_SECRET_LENGTH,
    REDACTED,
    forget_secret,
    is_secret_key,
    is_secret_param,
    redact_json_bytes,
    redact_secrets,
    register_secret,
)
from eventhub.webhooks import make_receivers


@pytest.fixture
def secrets():
    """Values registered by a test, forgotten after it."""
    values = []
    yield values
    for value in values:
        forget_secret(value)


@pytest.fixture
def secret(secrets):
    value = 'sk-"T0k/en+é\\9x'  # a quote, a slash, a plus, non-ASCII, a backslash
    register_secret(value)
    secrets.append(value)
    return value


def test_values_shorter_than_the_bound_are_not_registered(secrets):
    short, long = "a" * (MIN_SECRET_LENGTH - 1), "b" * MIN_SECRET_LENGTH
    secrets += [short, long]
    assert register_secret(short) is False
    assert register_secret(long) is True
    assert redact_secrets(f"{short} {long}") == f"{short} {REDACTED}"


def test_registering_twice_is_harmless(secret):
    assert register_secret(secret) is False
    assert redact_secrets(f"x {secret} y") == f"x {REDACTED} y"


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: json.dumps(v)[1:-1],  # \u00e9, \" and \\
        lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
        lambda v: orjson.dumps(v).decode()[1:-1],
        lambda v: json.dumps(v)[1:-1].replace("/", "\\/"),  # encoders escaping /
    ],
)
def test_json_escaped_forms_are_redacted(secret, encode):
    text = f'{{"error": "invalid key {encode(secret)}"}}'
    assert redact_secrets(text) == f'{{"error": "invalid key {REDACTED}"}}'


@pytest.mark.parametrize("encode", [lambda v: quote(v, safe=""), quote, quote_plus])
def test_url_encoded_forms_are_redacted(secret, encode):
    assert redact_secrets(f"GET /x?key={encode(secret)}") == f"GET /x?key={REDACTED}"


def test_a_basic_password_is_registered_with_its_header_form(secrets):
    credentials = base64.b64encode(b"bob:hunter2-hunter2").decode()
    secrets += ["hunter2-hunter2", credentials]
    register_secret("hunter2-hunter2", username="bob")
    assert redact_secrets(f"Authorization: Basic {credentials}") == (
        f"Authorization: Basic {REDACTED}"
    )
    assert redact_secrets("pw hunter2-hunter2") == f"pw {REDACTED}"


def test_the_longest_form_is_replaced_first(secrets):
    secrets += ["abcdefgh", "abcdefgh-ijkl"]
    register_secret("abcdefgh")
    register_secret("abcdefgh-ijkl")
    assert redact_secrets("abcdefgh-ijkl abcdefgh") == f"{REDACTED} {REDACTED}"


def test_a_forgotten_value_is_no_longer_redacted(secrets):
    register_secret("rotated-token-1")
    forget_secret("rotated-token-1")
    assert redact_secrets("rotated-token-1") == "rotated-token-1"


def test_ephemeral_values_keep_only_the_latest(secrets):
    values = [f"per-request-{i:04d}" for i in range(MAX_EPHEMERAL + 1)]
    secrets += values
    for value in values:
        register_secret(value, ephemeral=True)
    assert redact_secrets(values[0]) == values[0]
    assert redact_secrets(values[-1]) == REDACTED


def test_json_bytes_without_a_secret_are_returned_as_they_are(secret):
    payload = orjson.dumps({"id": 1, "note": "nothing to hide"})
    assert redact_json_bytes(payload) is payload


def test_json_bytes_are_redacted_inside_strings_and_keys(secret):
    payload = orjson.dumps({"echo": f"bad {secret}", secret: [secret, 12345678]})
    redacted = orjson.loads(redact_json_bytes(payload))
    assert redacted == {"echo": f"bad {REDACTED}", REDACTED: [REDACTED, 12345678]}


def test_json_bytes_with_escapes_of_another_encoder_are_redacted(secret):
    payload = json.dumps({"e": secret}).replace("/", "\\/").encode()
    assert orjson.loads(redact_json_bytes(payload)) == {"e": REDACTED}


def test_a_numeric_secret_leaves_json_numbers_valid(secrets):
    secrets.append("12345678")
    register_secret("12345678")
    payload = b'{"n": 9123456789, "s": "x12345678"}'
    assert orjson.loads(redact_json_bytes(payload)) == {
        "n": 9123456789,
        "s": "x" + REDACTED,
    }


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_pass",
        "api_key",
        "X-Api-Key",
        "APIKey",
        "accessToken",
        "client_secret",
        "secrets",
        "credentials",
        "Authorization",
        "Set-Cookie",
        "session_id",
        "x-hub-signature-256",
        "private_key",
        "password_hash",
    ],
)
def test_names_of_secrets(name):
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "token_file",
        "token_url",
        "public_key",
        "status_code",
        "insecure",
        "headers",
        "passengers",
        "signature_header",
        "private_key_file",
        "token_type",
        "author",
    ],
)
def test_names_that_are_no_secrets(name):
    assert not is_secret_key(name)


@pytest.mark.parametrize("name", ["key", "sig", "code", "X-Auth", "X-Amz-Signature"])
def test_query_parameters_and_headers_use_the_short_words_too(name):
    assert is_secret_param(name) and not is_secret_param("author")


def test_an_eventhub_error_hides_a_secret_registered_after_it_was_made(secrets):
    error = ConfigError("vendor said: bad key late-registered-9")
    secrets.append("late-registered-9")
    register_secret("late-registered-9")
    assert str(error) == f"vendor said: bad key {REDACTED}"
    assert "late-registered-9" not in repr(error)


def test_an_event_is_created_with_its_secrets_redacted(secret):
    event = Event.create(
        "crm.echoed",
        {"body": secret},
        source="/t",
        subject=secret,
        extensions={"note": secret},
    )
    assert event.data == {"body": REDACTED} and event.subject == REDACTED
    assert orjson.loads(event.payload) == {"body": REDACTED}
    assert event.extensions == {"note": REDACTED}


def test_text_and_binary_event_data_are_redacted(secrets):
    secrets.append("text-secret-1")
    register_secret("text-secret-1")
    text = Event.create(
        "a.b", "x text-secret-1", source="/t", datacontenttype="text/plain"
    )
    binary = Event.create("a.b", b"\x00text-secret-1", source="/t")
    assert text.data == f"x {REDACTED}" and text.payload == f"x {REDACTED}".encode()
    assert binary.data == b"\x00" + REDACTED.encode()


# Where values are registered -------------------------------------------------------


def test_config_secrets_are_registered_when_resolved(secrets, monkeypatch):
    monkeypatch.setenv("EH_TEST_REDACT", "from-the-env-1")
    secrets.append("from-the-env-1")
    assert resolve_secrets({"token": {"env": "EH_TEST_REDACT"}}, "x") == {
        "token": "from-the-env-1"
    }
    assert redact_secrets("from-the-env-1") == REDACTED


def test_jwt_webhook_and_api_token_secrets_are_registered(secrets, hub):
    jwt_key, hook = "j" * 16 + "w" * 16, "hook-secret-given-in-code"
    token = APITokenStore(hub.db).create("ci")
    secrets += [jwt_key, hook, token]
    JWTManager(jwt_key)
    make_receivers({"gh": {"kind": "github", "secret": hook}})
    assert redact_secrets(f"{jwt_key} {hook} {token}") == " ".join([REDACTED] * 3)


def test_oauth_secrets_and_tokens_are_registered(secrets, tmp_path):
    store = OAuthTokenStore(tmp_path / "t.json")
    store.save({"access_token": "ya29.loaded-token", "refresh_token": "1//refresh-tok"})
    secrets += ["oauth-client-secret", "ya29.loaded-token", "1//refresh-tok"]
    client = OAuth2Client(
        GOOGLE, "id", "oauth-client-secret", "https://a.test/cb", store
    )
    assert client.access_token() == "ya29.loaded-token"
    text = "oauth-client-secret ya29.loaded-token 1//refresh-tok"
    assert redact_secrets(text) == " ".join([REDACTED] * 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda url: HttpClient(auth=("bob", "basic-pass-1"), allow_private=True).get(
            url
        ),
        lambda url: HttpClient(
            headers={"X-Api-Key": "basic-pass-1"}, allow_private=True
        ).get(url),
        lambda url: HttpClient(allow_private=True).get(
            url, params={"api_key": "basic-pass-1"}
        ),
    ],
)
def test_credentials_given_to_the_http_client_are_redacted_when_echoed(
    secrets, httpserver, call
):
    secrets += ["basic-pass-1", base64.b64encode(b"bob:basic-pass-1").decode()]
    httpserver.expect_request("/me").respond_with_handler(
        lambda r: Response(f"invalid api key basic-pass-1 {r.headers}", 401)
    )
    with pytest.raises(HttpError) as caught:
        call(httpserver.url_for("/me"))
    assert "basic-pass-1" not in str(caught.value) and REDACTED in caught.value.body
