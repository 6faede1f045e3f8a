import base64
import hashlib
import json
import os
import stat
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs
from werkzeug import Response

import eventhub.auth
from eventhub.auth import BasicAuth, BearerAuth, auth_from_config
from eventhub.auth.jwt import JWTManager
from eventhub.auth.oauth import GOOGLE, OAuth2Client, OAuth2Provider, OAuthTokenStore
from eventhub.errors import (
    ConfigError,
    InvalidToken,
    MissingDependency,
    ReauthorizationRequired,
    UserError,
)
from eventhub.http import HttpClient, HttpError

SECRET = "k" * 32
CLIENT_SECRET = "client-secret-9f8e7d"
# The shape of Google's documented token responses (developers.google.com/identity).
GRANT = {
    "access_token": "ya29.first-access",
    "expires_in": 3599,
    "refresh_token": "1//first-refresh",
    "scope": "openid https://www.googleapis.com/auth/userinfo.email",
    "token_type": "Bearer",
}
REFRESHED = {
    "access_token": "ya29.second-access",
    "expires_in": 3599,
    "token_type": "Bearer",
}


@pytest.fixture
def http():
    with HttpClient(allow_private=True, attempts=1, sleep=lambda s: None) as client:
        yield client


@pytest.fixture
def store(tmp_path):
    return OAuthTokenStore(tmp_path / "tokens" / "google.json")


@pytest.fixture
def provider(httpserver):
    return OAuth2Provider(
        name="test",
        authorize_url=httpserver.url_for("/authorize"),
        token_url=httpserver.url_for("/token"),
        authorize_params={"access_type": "offline"},
    )


def make_client(provider, store, http, clock):
    return OAuth2Client(
        provider,
        "client-123",
        CLIENT_SECRET,
        "https://app.example/cb",
        store,
        http=http,
        clock=clock,
    )


@pytest.fixture
def oauth(provider, store, http, clock):
    return make_client(provider, store, http, clock)


@pytest.fixture
def granted(oauth, httpserver):
    httpserver.expect_oneshot_request("/token", method="POST").respond_with_json(GRANT)
    oauth.exchange_code("code-1", state="s", expected_state="s")
    httpserver.clear_log()
    return oauth


def token_requests(httpserver):
    return [req for req, _ in httpserver.log if req.path == "/token"]


# Bearer and basic ---------------------------------------------------------------


def test_bearer_token_is_sent_on_the_wire(httpserver):
    httpserver.expect_request("/me").respond_with_json({"ok": True})
    with HttpClient(auth=BearerAuth("t0ken-abc"), allow_private=True) as client:
        client.get(httpserver.url_for("/me"))
    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == "Bearer t0ken-abc"


def test_basic_auth_is_sent_on_the_wire(httpserver):
    httpserver.expect_request("/me").respond_with_json({})
    auth = auth_from_config({"email": "me@example.com", "api_token": "atl-123"})
    with HttpClient(auth=auth, allow_private=True) as client:
        client.get(httpserver.url_for("/me"))
    expected = base64.b64encode(b"me@example.com:atl-123").decode()
    assert httpserver.log[0][0].headers["Authorization"] == f"Basic {expected}"


def test_auth_from_config_picks_the_scheme():
    assert isinstance(auth_from_config({"token": "abc"}), BearerAuth)
    basic = auth_from_config({"username": "bob", "password": "pw"})
    assert isinstance(basic, BasicAuth) and basic.username == "bob"
    assert auth_from_config({"base_url": "https://x"}) is None


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"username": "bob"}, "password is missing"),
        ({"api_token": "t"}, "email is missing"),
        ({"token": "a", "username": "b", "password": "c"}, "choose one"),
        ({"oauth": {"client_id": "x"}}, "oauth.client_secret is missing"),
        ({"oauth": {"provider": "nope"}}, "oauth.provider 'nope' is unknown"),
    ],
)
def test_incomplete_auth_config_is_refused(config, problem):
    with pytest.raises(ConfigError, match=problem):
        auth_from_config(config)


def test_reprs_never_show_secrets(oauth, store):
    objects = [BearerAuth("xoxb-1-bearer"), BasicAuth("bob", "pw-basic"), oauth]
    objects += [store, oauth.auth(), JWTManager(SECRET)]
    shown = " ".join(repr(x) for x in objects)
    for secret in ("xoxb-1-bearer", "pw-basic", CLIENT_SECRET, SECRET):
        assert secret not in shown
    assert "bob" in shown and "client-123" in shown


def test_auth_re_exports_the_oauth_and_jwt_names():
    assert eventhub.auth.OAuth2Client is OAuth2Client
    assert eventhub.auth.OAuthTokenStore is OAuthTokenStore
    assert eventhub.auth.JWTManager is JWTManager
    assert all(hasattr(eventhub.auth, name) for name in eventhub.auth.__all__)


# OAuth 2.0 --------------------------------------------------------------------------


def test_google_authorization_url(store):
    client = OAuth2Client(GOOGLE, "cid", "cs", "https://app.example/cb", store)
    request = client.authorization_url(state="st&=x")
    parts = urlsplit(request.url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == GOOGLE.authorize_url
    assert query["state"] == ["st&=x"] and query["scope"] == ["openid email profile"]
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["response_type"] == ["code"] and query["client_id"] == ["cid"]


def test_pkce_challenge_is_s256_of_the_verifier(oauth):
    request = oauth.authorization_url()
    query = parse_qs(urlsplit(request.url).query)
    digest = hashlib.sha256(request.code_verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["code_challenge"] == [expected]
    assert query["code_challenge_method"] == ["S256"]
    assert len(request.state) >= 32 and request.state == query["state"][0]


def test_exchange_code_posts_the_form_and_stores_the_grant(oauth, httpserver, store):
    httpserver.expect_request("/token", method="POST").respond_with_json(GRANT)
    request = oauth.authorization_url()
    oauth.exchange_code(
        "4/code",
        state=request.state,
        expected_state=request.state,
        code_verifier=request.code_verifier,
    )
    form = token_requests(httpserver)[0].form
    assert form["grant_type"] == "authorization_code" and form["code"] == "4/code"
    assert form["redirect_uri"] == "https://app.example/cb"
    assert form["client_id"] == "client-123" and form["client_secret"] == CLIENT_SECRET
    assert form["code_verifier"] == request.code_verifier
    assert store.load()["refresh_token"] == GRANT["refresh_token"]


def test_state_mismatch_is_refused_before_any_request(oauth, httpserver):
    with pytest.raises(UserError, match="state mismatch"):
        oauth.exchange_code("c", state="forged", expected_state="expected")
    with pytest.raises(UserError, match="state mismatch"):
        oauth.exchange_code("c", state=None, expected_state="expected")
    assert httpserver.log == []


def test_token_is_refreshed_only_within_the_margin(granted, httpserver, clock):
    httpserver.expect_request("/token").respond_with_json(REFRESHED)
    clock.advance(3599 - 61)
    assert granted.access_token() == "ya29.first-access"
    assert token_requests(httpserver) == []
    clock.advance(2)
    assert granted.access_token() == "ya29.second-access"
    form = token_requests(httpserver)[0].form
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "1//first-refresh"


def test_refresh_keeps_the_refresh_token_when_none_is_returned(
    granted, httpserver, store
):
    httpserver.expect_request("/token").respond_with_json(REFRESHED)
    granted.refresh()
    assert store.load()["refresh_token"] == "1//first-refresh"
    assert store.load()["access_token"] == "ya29.second-access"


def test_refresh_stores_a_rotated_refresh_token(granted, httpserver, store):
    rotated = {**REFRESHED, "refresh_token": "1//rotated"}
    httpserver.expect_request("/token").respond_with_json(rotated)
    granted.refresh()
    granted.refresh()
    forms = [r.form["refresh_token"] for r in token_requests(httpserver)]
    assert forms == ["1//first-refresh", "1//rotated"]
    assert store.load()["refresh_token"] == "1//rotated"


def test_a_new_client_reads_the_grant_from_the_store(
    granted, provider, store, http, clock
):
    again = make_client(provider, store, http, clock)
    assert again.access_token() == "ya29.first-access"


def api_answering(tokens):
    def handler(request):
        ok = request.headers.get("Authorization") in tokens
        return Response(json.dumps({"ok": ok}), status=200 if ok else 401)

    return handler


def test_a_401_refreshes_once_and_retries_once(granted, httpserver):
    httpserver.expect_request("/token").respond_with_json(REFRESHED)
    httpserver.expect_request("/api").respond_with_handler(
        api_answering({"Bearer ya29.second-access"})
    )
    with HttpClient(auth=granted.auth(), allow_private=True) as client:
        assert client.get_json(httpserver.url_for("/api")) == {"ok": True}
    assert len(token_requests(httpserver)) == 1
    assert [r.path for r, _ in httpserver.log].count("/api") == 2


def test_a_second_401_is_not_retried_again(granted, httpserver):
    httpserver.expect_request("/token").respond_with_json(REFRESHED)
    httpserver.expect_request("/api").respond_with_handler(api_answering(set()))
    with HttpClient(auth=granted.auth(), allow_private=True) as client:
        with pytest.raises(HttpError) as caught:
            client.get(httpserver.url_for("/api"))
    assert caught.value.status == 401
    assert [r.path for r, _ in httpserver.log] == ["/api", "/token", "/api"]


def test_a_401_with_a_revoked_grant_asks_to_reauthorise(granted, httpserver):
    httpserver.expect_request("/token").respond_with_json(
        {"error": "invalid_grant"}, status=400
    )
    httpserver.expect_request("/api").respond_with_handler(api_answering(set()))
    with HttpClient(auth=granted.auth(), allow_private=True) as client:
        with pytest.raises(ReauthorizationRequired):
            client.get(httpserver.url_for("/api"))


def test_invalid_grant_asks_to_reauthorise(granted, httpserver):
    httpserver.expect_request("/token").respond_with_json(
        {
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked.",
        },
        status=400,
    )
    with pytest.raises(ReauthorizationRequired, match="re-authorise") as caught:
        granted.refresh()
    assert isinstance(caught.value, UserError)
    assert "1//first-refresh" not in str(caught.value)


def test_no_stored_grant_asks_to_authorise(oauth):
    with pytest.raises(ReauthorizationRequired, match="no token in"):
        oauth.access_token()


def test_oauth_never_logs_tokens_or_secrets(oauth, httpserver):
    httpserver.expect_request("/token").respond_with_json(GRANT)
    with capture_logs() as logs:
        oauth.exchange_code("4/code", state="s", expected_state="s")
        oauth.refresh()
    text = repr(logs)
    assert logs and "oauth token refreshed" in text
    for secret in (CLIENT_SECRET, "ya29", "1//first-refresh", "4/code"):
        assert secret not in text


# Token files --------------------------------------------------------------------


def test_token_file_is_written_with_mode_0600(store):
    store.save({"access_token": "a"})
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.load() == {"access_token": "a"}
    assert [p.name for p in store.path.parent.iterdir()] == ["google.json"]


def test_a_token_file_others_can_read_is_refused(store):
    store.save({"access_token": "a"})
    store.path.chmod(0o644)
    with pytest.raises(UserError, match=f"chmod 600 {store.path}"):
        store.load()


def test_a_token_folder_others_can_write_is_refused(store):
    store.save({"access_token": "a"})
    store.path.parent.chmod(0o777)
    with pytest.raises(UserError, match="chmod go-w"):
        store.load()


def test_a_missing_token_file_is_no_token(store):
    assert store.load() is None


# JSON Web Tokens ------------------------------------------------------------------


@pytest.fixture
def jwts(clock):
    return JWTManager(SECRET, issuer="eventhub", audience="api", clock=clock)


def test_jwt_round_trip(jwts, clock):
    token = jwts.generate_token({"id": 7, "email": "a@example.com"})
    claims = jwts.verify_token(token)
    assert claims["sub"] == "7" and claims["email"] == "a@example.com"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert claims["iss"] == "eventhub" and claims["aud"] == "api"


def test_an_expired_jwt_is_refused(jwts, clock):
    token = jwts.generate_token({"sub": "u1"})
    clock.advance(24 * 3600)
    with pytest.raises(InvalidToken, match="expired") as caught:
        jwts.verify_token(token)
    assert caught.value.reason == "expired" and isinstance(caught.value, UserError)


def test_a_tampered_jwt_is_refused(jwts):
    header, payload, signature = jwts.generate_token({"sub": "u1"}).split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"sub": "admin"}).encode())
    with pytest.raises(InvalidToken, match="bad signature"):
        jwts.verify_token(f"{header}.{forged.decode().rstrip('=')}.{signature}")
    with pytest.raises(InvalidToken, match="bad signature"):
        jwts.verify_token(f"{header}.{payload}.{signature[:-4]}AAAA")


def b64(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_an_alg_none_jwt_is_refused(jwts, clock):
    claims = {"sub": "admin", "iat": int(clock()), "exp": int(clock()) + 60}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(InvalidToken, match="algorithm 'none' is not allowed"):
        jwts.verify_token(unsigned)


def test_a_jwt_with_another_hmac_algorithm_is_refused(clock):
    hs512 = JWTManager("k" * 64, algorithm="HS512", clock=clock)
    token = jwt.encode({"iat": int(clock()), "exp": int(clock()) + 60}, "k" * 64)
    with pytest.raises(InvalidToken, match="'HS256' is not allowed"):
        hs512.verify_token(token)


def test_an_hs256_jwt_is_refused_by_an_rs256_manager(clock):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rs256 = JWTManager(key, algorithm="RS256", verify_key=public, clock=clock)
    claims = {"iat": int(clock()), "exp": int(clock()) + 60}
    forged = jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), b"x" * 32)
    with pytest.raises(InvalidToken, match="'HS256' is not allowed"):
        rs256.verify_token(forged)


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"algorithm": "none"}, "'none' is never accepted"),
        ({"algorithms": ["HS256", "None"]}, "'none' is never accepted"),
        ({"algorithms": ["HS256", "RS256"]}, "do not mix"),
        ({"algorithm": "HS257"}, "unknown JWT algorithm"),
    ],
)
def test_unsafe_jwt_algorithms_are_refused(options, problem):
    with pytest.raises(ConfigError, match=problem):
        JWTManager(SECRET, **options)


def test_a_short_jwt_secret_is_refused():
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        JWTManager("short-secret")
    with pytest.raises(ConfigError, match="at least 64 bytes"):
        JWTManager(SECRET, algorithm="HS512")


def test_a_public_key_jwt_without_cryptography_names_the_extra(monkeypatch):
    monkeypatch.setattr(jwt.algorithms, "has_crypto", False)
    with pytest.raises(MissingDependency, match=r"eventhub\[server\]") as caught:
        JWTManager("-----BEGIN PUBLIC KEY-----", algorithm="RS256")
    assert caught.value.package == "cryptography"


def test_a_jwt_without_exp_is_refused(jwts, clock):
    token = jwt.encode({"iat": int(clock()), "iss": "eventhub", "aud": "api"}, SECRET)
    with pytest.raises(InvalidToken, match="missing claim exp"):
        jwts.verify_token(token)


def test_a_jwt_for_another_audience_is_refused(jwts, clock):
    other = JWTManager(SECRET, issuer="eventhub", audience="admin", clock=clock)
    with pytest.raises(InvalidToken, match="wrong audience"):
        jwts.verify_token(other.generate_token({"sub": "u1"}))


def test_refresh_token_extends_a_valid_jwt(jwts, clock):
    token = jwts.generate_token({"sub": "u1", "role": "ops"}, expiry=timedelta(hours=1))
    clock.advance(1800)
    claims = jwts.verify_token(jwts.refresh_token(token))
    assert claims["sub"] == "u1" and claims["role"] == "ops"
    assert claims["exp"] == int(clock()) + 24 * 3600
