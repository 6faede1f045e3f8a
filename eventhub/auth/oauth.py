"""OAuth 2.0 for outgoing HTTP: the authorization-code grant with PKCE and refresh.

:class:`OAuth2Client` keeps one user's grant in an :class:`OAuthTokenStore` (a JSON
file only its owner can read) and hands out a ``requests`` auth that sends a fresh
access token, so it plugs into :class:`eventhub.http.client.HttpClient`::

    client = OAuth2Client(GOOGLE, client_id, client_secret, "https://app.example/cb",
                          OAuthTokenStore("google.json"))
    request = client.authorization_url()        # send the user to request.url
    client.exchange_code(code, state=returned_state, expected_state=request.state,
                         code_verifier=request.code_verifier)
    HttpClient(auth=client.auth()).get_json("https://www.googleapis.com/...")

No token or secret ever appears in a ``repr``, a log line or an error message: the
client secret and every token obtained or loaded are registered with
:func:`eventhub.redact.register_secret`; a token replaced by a new one stays redacted
among the recent values (:data:`eventhub.redact.MAX_EPHEMERAL`).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
import structlog
from requests.auth import AuthBase

from ..errors import ConfigError, UserError
from ..redact import forget_secret, redact_text, register_secret

if TYPE_CHECKING:
    from ..http.client import HttpClient

# The name these lines were logged under before OAuth had its own module.
log = structlog.get_logger(__name__)


class ReauthorizationRequired(UserError):
    """An OAuth grant that is missing, expired or revoked: the user must authorise
    again. ``provider`` names the authorization server."""

    def __init__(self, provider: str, reason: str) -> None:
        self.provider = provider
        self.reason = reason
        super().__init__(
            f"{provider}: {reason}; re-authorise (run the OAuth authorization flow"
            " again to store a new grant)"
        )


@dataclass(frozen=True)
class OAuth2Provider:
    """Where an OAuth 2.0 authorization server lives and what it wants."""

    name: str
    authorize_url: str
    token_url: str
    userinfo_url: str | None = None
    scopes: tuple[str, ...] = ()
    authorize_params: Mapping[str, str] = field(default_factory=dict)


GOOGLE = OAuth2Provider(
    name="google",
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
    scopes=("openid", "email", "profile"),
    # offline: a refresh token; consent: issued again on every authorisation.
    authorize_params={"access_type": "offline", "prompt": "consent"},
)
PROVIDERS: dict[str, OAuth2Provider] = {"google": GOOGLE}

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the user, and what to keep until they come back."""

    url: str
    state: str
    code_verifier: str | None = field(default=None, repr=False)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuth2Client:
    """Authorization-code grant with refresh tokens, for one user's grant.

    Args:
        provider: The authorization server (e.g. :data:`GOOGLE`).
        client_id: The registered client.
        client_secret: Its secret.
        redirect_uri: Where the provider sends the user back (https, or http on
            a loopback address for desktop apps).
        token_store: Where the grant is kept between runs.
        http: Client for the token endpoint (default: a new ``HttpClient``).
        clock: Wall clock in seconds (tests pass a fake one).
        refresh_margin: Refresh when the access token expires within this many
            seconds.
        scopes: Default scopes (else the provider's).
    """

    def __init__(
        self,
        provider: OAuth2Provider,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        token_store: OAuthTokenStore,
        *,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 60.0,
        scopes: Sequence[str] | None = None,
    ) -> None:
        parts = urlsplit(redirect_uri)
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ConfigError(
                f"redirect_uri {redirect_uri!r} must be https (http only on loopback)"
            )
        self.provider = provider
        self.client_id = client_id
        register_secret(client_secret)
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.token_store = token_store
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.scopes = tuple(scopes if scopes is not None else provider.scopes)
        self._http = http
        self._owns_http = http is None
        self._token: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def authorization_url(
        self,
        state: str | None = None,
        scopes: Sequence[str] | None = None,
        code_verifier: str | bool = True,
    ) -> AuthorizationRequest:
        """The URL to send the user to.

        Args:
            state: Anti-CSRF value echoed back by the provider (default: random).
            scopes: Scopes to ask for (default: the client's).
            code_verifier: ``True`` for a new PKCE verifier, a verifier to use, or
                ``False`` for no PKCE.

        Returns:
            The URL, the state and the verifier; keep the last two for
            :meth:`exchange_code`.
        """
        state = state or secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64) if code_verifier is True else code_verifier
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes if scopes is not None else self.scopes),
            "state": state,
            **self.provider.authorize_params,
        }
        if verifier:
            if not _VERIFIER.match(str(verifier)):
                raise UserError("a PKCE code_verifier is 43-128 unreserved characters")
            params["code_challenge"] = pkce_challenge(str(verifier))
            params["code_challenge_method"] = "S256"
        joiner = "&" if "?" in self.provider.authorize_url else "?"
        url = f"{self.provider.authorize_url}{joiner}{urlencode(params)}"
        return AuthorizationRequest(url, state, str(verifier) if verifier else None)

    def exchange_code(
        self,
        code: str,
        *,
        state: str | None,
        expected_state: str,
        code_verifier: str | None = None,
    ) -> dict[str, Any]:
        """Trade the code the provider sent back for tokens, and store them.

        Raises:
            UserError: when ``state`` is not the one this flow started with.
            ReauthorizationRequired: when the provider refuses the code.
        """
        if not state or not hmac.compare_digest(
            state.encode("utf-8"), expected_state.encode("utf-8")
        ):
            raise UserError(f"{self.provider.name}: OAuth state mismatch; start again")
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
        }
        register_secret(code, ephemeral=True)  # a token endpoint may echo it
        register_secret(code_verifier, ephemeral=True)
        if code_verifier:
            data["code_verifier"] = code_verifier
        token = self._token_from(self._token_request(data), previous=None)
        with self._lock:
            self.token_store.save(token)
            self._hold(token)
        log.info("oauth grant stored", provider=self.provider.name)
        return dict(token)

    def access_token(self) -> str:
        """A valid access token, refreshed first when it expires within the margin.

        Raises:
            ReauthorizationRequired: when there is no grant or it was revoked.
        """
        with self._lock:
            if self._token is None:
                self._hold(self.token_store.load())
            if self._token is None:
                raise ReauthorizationRequired(
                    self.provider.name, f"no token in {self.token_store.path}"
                )
            if self._expiring(self._token):
                self._refresh_locked(stale=self._token.get("access_token"))
            return str(self._token["access_token"])

    def refresh(self) -> None:
        """Get a new access token now (unless another process just did)."""
        with self._lock:
            held = self._token or self.token_store.load()
            self._refresh_locked(stale=(held or {}).get("access_token"))

    def auth(self) -> AuthBase:
        """A requests auth that sends a fresh token; on a 401 it refreshes once and
        retries the request once."""
        return _OAuth2Auth(self)

    def userinfo(self) -> dict[str, Any]:
        """The signed-in user's profile from the provider's userinfo endpoint."""
        if not self.provider.userinfo_url:
            raise ConfigError(f"{self.provider.name} has no userinfo endpoint")
        bearer = {"Authorization": f"Bearer {self.access_token()}"}
        response = self.http.request("GET", self.provider.userinfo_url, headers=bearer)
        return _json_object(response.content)

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            from ..http.client import HttpClient

            self._http = HttpClient(name=f"oauth.{self.provider.name}")
        return self._http

    def close(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

    def _renew(self, stale: str) -> str:
        """A token other than ``stale`` (after a 401), refreshing if need be."""
        with self._lock:
            self._refresh_locked(stale=stale)
            return str((self._token or {}).get("access_token", ""))

    def _expiring(self, token: Mapping[str, Any]) -> bool:
        expires_at = token.get("expires_at")
        if not isinstance(expires_at, int | float):
            return False  # unknown lifetime: rely on the 401 path
        return expires_at - self.refresh_margin <= self.clock()

    def _refresh_locked(self, stale: str | None) -> None:
        # The file lock serialises refreshes across processes: with refresh-token
        # rotation, two concurrent refreshes would spend the same refresh token.
        with self.token_store.lock():
            current = self.token_store.load() or self._token
            if current is None:
                raise ReauthorizationRequired(
                    self.provider.name, f"no token in {self.token_store.path}"
                )
            if current.get("access_token") != stale and not self._expiring(current):
                self._hold(current)  # refreshed meanwhile by another process
                return
            _register_token(current)
            refresh_token = current.get("refresh_token")
            if not refresh_token:
                raise ReauthorizationRequired(
                    self.provider.name, "the grant has no refresh token"
                )
            response = self._token_request(
                {"grant_type": "refresh_token", "refresh_token": refresh_token}
            )
            token = self._token_from(response, previous=current)
            self.token_store.save(token)
            self._hold(token, replaced=current)
        log.info("oauth token refreshed", provider=self.provider.name)

    def _hold(
        self, token: dict[str, Any] | None, replaced: Mapping[str, Any] | None = None
    ) -> None:
        """Keep ``token`` as the current grant, its tokens registered as secrets;
        those of the grant it replaces stay redacted among the recent values."""
        for old in (self._token, replaced):
            if old is not None and old is not token:
                _retire_token(old, token)
        if token is not None:
            _register_token(token)
        self._token = token

    def _token_request(self, data: dict[str, str]) -> dict[str, Any]:
        from ..http.errors import HttpError

        data = {
            **data,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = self.http.request(
                "POST",
                self.provider.token_url,
                data=data,
                headers={"Accept": "application/json"},
            )
        except HttpError as exc:
            body = _json_object(exc.body)
            error = str(body.get("error", ""))
            if exc.status in (400, 401) and error == "invalid_grant":
                raise ReauthorizationRequired(
                    self.provider.name, "the grant is expired or revoked"
                ) from None
            if exc.status in (400, 401) and error:
                detail = redact_text(str(body.get("error_description", "")))[:200]
                raise UserError(
                    f"{self.provider.name} token endpoint refused the request: "
                    f"{error}{': ' + detail if detail else ''}"
                ) from None
            raise
        body = _json_object(response.content)
        if not isinstance(body.get("access_token"), str):
            raise UserError(f"{self.provider.name}: token response has no access_token")
        return body

    def _token_from(
        self, body: dict[str, Any], previous: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        token = {k: v for k, v in body.items() if k != "expires_in"}
        try:
            token["expires_at"] = self.clock() + float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            pass  # unknown lifetime: refreshed on a 401
        if not token.get("refresh_token") and previous is not None:
            # No rotation: the old refresh token stays valid.
            token["refresh_token"] = previous.get("refresh_token")
        return token

    def __repr__(self) -> str:
        return f"<OAuth2Client {self.provider.name} client_id={self.client_id!r}>"


class ClientCredentialsGrant:
    """The client-credentials grant (RFC 6749 section 4.4): an application's own
    access token, for a daemon with no user (Microsoft Graph's app-only access,
    any server-to-server API). The token is kept in memory and requested again
    shortly before it expires; nothing is written to disk.

    Args:
        token_url: The token endpoint.
        client_id: The registered application.
        client_secret: Its secret (registered as a secret: never logged).
        scopes: Sent space-separated as ``scope`` (Microsoft: the resource's
            ``/.default``); none: no ``scope`` parameter.
        name: Names the server in errors and log lines.
        http: Client for the token endpoint (default: a new ``HttpClient``).
        clock: Wall clock in seconds (tests pass a fake one).
        refresh_margin: A token expiring within this many seconds is replaced.

    Raises:
        ConfigError: for a missing id or secret.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Sequence[str] = (),
        name: str = "oauth",
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300.0,
    ) -> None:
        for key, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name}: {key} is missing")
        register_secret(client_secret)
        self.provider = OAuth2Provider(name=name, authorize_url="", token_url=token_url)
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = tuple(scopes)
        self.clock = clock
        self.refresh_margin = refresh_margin
        self._http = http
        self._owns_http = http is None
        self._token: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            from ..http.client import HttpClient

            self._http = HttpClient(name=f"oauth.{self.provider.name}")
        return self._http

    def access_token(self) -> str:
        """A valid access token: the cached one, or a new one when there is none or
        it expires within the margin.

        Raises:
            UserError: when the token endpoint refuses the client (its error code
                and the start of its description, redacted).
        """
        with self._lock:
            token = self._token
            if token is None or self._expiring(token):
                token = self._request_token()
            return str(token["access_token"])

    def auth(self) -> AuthBase:
        """A requests auth that sends the token; on a 401 from the same host it
        gets a new token once and retries the request once."""
        return _OAuth2Auth(self)

    def close(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

    def _renew(self, stale: str) -> str:
        with self._lock:
            token = self._token
            if token is None or token.get("access_token") == stale:
                token = self._request_token()
            return str(token["access_token"])

    def _expiring(self, token: Mapping[str, Any]) -> bool:
        expires_at = token.get("expires_at")
        if not isinstance(expires_at, int | float):
            return False  # unknown lifetime: replaced after a 401
        return expires_at - self.refresh_margin <= self.clock()

    def _request_token(self) -> dict[str, Any]:
        from ..http.errors import HttpError

        data = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if self.scopes:
            data["scope"] = " ".join(self.scopes)
        name = self.provider.name
        try:
            response = self.http.request(
                "POST",
                self.provider.token_url,
                data=data,
                headers={"Accept": "application/json"},
            )
        except HttpError as exc:
            body = _json_object(exc.body) or _error_fields(exc.body or "")
            error = str(body.get("error", ""))
            if exc.status is not None and 400 <= exc.status < 500 and error:
                described = " ".join(str(body.get("error_description", "")).split())
                detail = redact_text(described)[:200]
                raise UserError(
                    f"{name} token endpoint refused the client: "
                    f"{error}{': ' + detail if detail else ''}"
                ) from None
            raise
        body = _json_object(response.content)
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise UserError(f"{name}: token response has no access_token")
        token = {k: v for k, v in body.items() if k != "expires_in"}
        try:
            token["expires_at"] = self.clock() + float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            pass
        if self._token is not None:
            _retire_token(self._token, token)
        _register_token(token)
        self._token = token
        log.debug("oauth client token obtained", provider=name)
        return token

    def __repr__(self) -> str:
        return (
            f"<ClientCredentialsGrant {self.provider.name} "
            f"client_id={self.client_id!r}>"
        )


class _OAuth2Auth(AuthBase):
    def __init__(self, client: OAuth2Client | ClientCredentialsGrant) -> None:
        self.client = client

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.client.access_token()
        r.headers["Authorization"] = f"Bearer {token}"
        host = urlsplit(r.url or "").netloc
        retried = False

        def on_response(
            response: requests.Response, **kwargs: Any
        ) -> requests.Response:
            nonlocal retried
            request = response.request
            if response.status_code != 401 or retried:
                return response
            if urlsplit(request.url or "").netloc != host:
                return response  # a redirect elsewhere: never send the token there
            if request.body is not None and not isinstance(request.body, str | bytes):
                return response  # a stream cannot be sent twice
            retried = True
            fresh = self.client._renew(stale=token)
            response.content  # noqa: B018 - read the body to free the connection
            response.close()
            again = request.copy()
            again.headers["Authorization"] = f"Bearer {fresh}"
            second: requests.Response = response.connection.send(again, **kwargs)
            second.history.append(response)
            second.request = again
            return second

        r.register_hook("response", on_response)
        return r

    def __repr__(self) -> str:
        return f"<OAuth2Auth {self.client.provider.name} [REDACTED]>"


_TOKEN_KEYS = ("access_token", "refresh_token", "id_token")


def _register_token(token: Mapping[str, Any]) -> None:
    for key in _TOKEN_KEYS:
        if isinstance(token.get(key), str):
            register_secret(token[key])


def _retire_token(old: Mapping[str, Any], new: Mapping[str, Any] | None) -> None:
    """Move the tokens of a replaced grant to the recent values (a request still in
    flight may see one echoed), unless the new grant keeps them."""
    kept = {new.get(key) for key in _TOKEN_KEYS} if new else set()
    for key in _TOKEN_KEYS:
        value = old.get(key)
        if isinstance(value, str) and value not in kept:
            forget_secret(value)
            register_secret(value, ephemeral=True)


_ERROR_FIELD = re.compile(r'"(error|error_description)"\s*:\s*"((?:[^"\\]|\\.)*)')


def _error_fields(excerpt: str) -> dict[str, str]:
    """``error`` and ``error_description`` of a token endpoint's JSON error cut
    short (an error keeps an excerpt of the body; Microsoft's run long)."""
    return {m.group(1): m.group(2) for m in _ERROR_FIELD.finditer(excerpt)}


def _json_object(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    try:
        value = json.loads(body) if isinstance(body, str | bytes) and body else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# Token files ----------------------------------------------------------------------


class OAuthTokenStore:
    """An OAuth grant in a JSON file only its owner can read.

    Writes are atomic (temporary file with mode 0600, fsync, rename, fsync of the
    folder). Reading refuses a file other users can read, or one in a folder others
    can write to.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()

    def load(self) -> dict[str, Any] | None:
        """The stored token, or None when there is none.

        Raises:
            UserError: for unsafe permissions (with the chmod that fixes them) or a
                file that is not a JSON object.
        """
        self._check_folder()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(
                f"cannot read token file {self.path}: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise UserError(f"token file {self.path} is not a file you own")
            if info.st_mode & 0o077:
                raise UserError(
                    f"token file {self.path} is accessible to other users "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); "
                    f"run: chmod 600 {self.path}"
                )
            raw = handle.read()
        token = _json_object(raw)
        if not token:
            raise UserError(f"token file {self.path} is not a JSON object")
        return token

    def save(self, token: Mapping[str, Any]) -> None:
        """Replace the stored token atomically."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._check_folder()
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(dict(token), sort_keys=True).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def delete(self) -> None:
        """Forget the stored token."""
        self.path.unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock shared by every process using this store."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _check_folder(self) -> None:
        try:
            info = os.stat(self.path.parent)
        except FileNotFoundError:
            return
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise UserError(
                f"token folder {self.path.parent} is writable by other users; "
                f"run: chmod go-w {self.path.parent}"
            )

    def __repr__(self) -> str:
        return f"<OAuthTokenStore {str(self.path)!r}>"
