"""Credentials for outgoing HTTP: bearer and basic auth, and the auth a configuration
section asks for.

Everything here plugs into ``requests`` (and so into
:class:`eventhub.http.HttpClient`) as an :class:`requests.auth.AuthBase`. OAuth 2.0
lives in :mod:`eventhub.auth.oauth` and JSON Web Tokens in :mod:`eventhub.auth.jwt`;
their public names are re-exported by :mod:`eventhub.auth`, so ``from eventhub.auth
import JWTManager, OAuth2Client`` keeps working.

No token, secret or password ever appears in a ``repr``, a log line or an error message:
each is registered with :func:`eventhub.redact.register_secret` when it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ..errors import ConfigError
from ..redact import register_secret
from .jwt import InvalidToken, JWTManager
from .oauth import (
    GOOGLE,
    PROVIDERS,
    AuthorizationRequest,
    ClientCredentialsGrant,
    OAuth2Client,
    OAuth2Provider,
    OAuthTokenStore,
    ReauthorizationRequired,
    pkce_challenge,
)

if TYPE_CHECKING:
    from ..http.client import HttpClient

__all__ = [
    "GOOGLE",
    "PROVIDERS",
    "AuthorizationRequest",
    "BasicAuth",
    "BearerAuth",
    "ClientCredentialsGrant",
    "InvalidToken",
    "JWTManager",
    "OAuth2Client",
    "OAuth2Provider",
    "OAuthTokenStore",
    "ReauthorizationRequired",
    "auth_from_config",
    "pkce_challenge",
]


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token:
            raise ConfigError("a bearer token must be a non-empty string")
        register_secret(token)
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "<BearerAuth [REDACTED]>"


class BasicAuth(HTTPBasicAuth):
    """HTTP basic auth whose ``repr`` shows the user name only."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        register_secret(password, username=username)

    def __repr__(self) -> str:
        return f"<BasicAuth {self.username!r} [REDACTED]>"


_SCHEMES = {
    "token": ("token",),
    "username": ("username", "password"),
    "email": ("email", "api_token"),
    "oauth": ("oauth",),
}


def auth_from_config(
    config: Mapping[str, Any], *, http: HttpClient | None = None
) -> AuthBase | None:
    """The auth a configuration section asks for, or None when it names none.

    Understands ``token`` (bearer), ``username`` + ``password`` (basic),
    ``email`` + ``api_token`` (Atlassian Cloud basic) and an ``oauth`` table
    (``provider`` or ``authorize_url``/``token_url``, ``client_id``,
    ``client_secret``, ``redirect_uri``, ``token_file``, optional ``scopes``).

    Args:
        config: The section, secrets already resolved.
        http: The client for OAuth token requests (default: a new one).

    Raises:
        ConfigError: for two schemes at once or an incomplete one, naming the keys.
    """
    keys_given = {k for keys in _SCHEMES.values() for k in keys}
    given = {k for k in keys_given if config.get(k) not in (None, "")}
    chosen = [s for s, keys in _SCHEMES.items() if given & set(keys)]
    if not chosen:
        return None
    if len(chosen) > 1:
        raise ConfigError(
            f"choose one way to authenticate, not {' and '.join(chosen)} "
            "(token | username + password | email + api_token | oauth)"
        )
    keys = _SCHEMES[chosen[0]]
    for key in keys:
        if key not in given:
            raise ConfigError(f"{' + '.join(keys)}: {key} is missing")
        if key != "oauth" and not isinstance(config[key], str):
            raise ConfigError(f"{key} must be a string")
    if chosen[0] == "token":
        return BearerAuth(config["token"])
    if chosen[0] == "oauth":
        return _oauth_from_config(config["oauth"], http).auth()
    return BasicAuth(config[keys[0]], config[keys[1]])


def _oauth_from_config(table: Any, http: HttpClient | None) -> OAuth2Client:
    if not isinstance(table, Mapping):
        raise ConfigError("oauth must be a table")
    if "token_url" in table:
        provider = OAuth2Provider(
            name=str(table.get("name", "oauth")),
            authorize_url=str(table.get("authorize_url", "")),
            token_url=str(table["token_url"]),
            userinfo_url=table.get("userinfo_url"),
        )
    else:
        name = table.get("provider", "google")
        if name not in PROVIDERS:
            known = ", ".join(sorted(PROVIDERS))
            raise ConfigError(f"oauth.provider {name!r} is unknown (known: {known})")
        provider = PROVIDERS[name]
    for key in ("client_id", "client_secret", "redirect_uri", "token_file"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"oauth.{key} is missing")
    scopes = table.get("scopes")
    if scopes is not None and (
        isinstance(scopes, str) or not all(isinstance(s, str) for s in scopes)
    ):
        raise ConfigError("oauth.scopes must be a list of strings")
    return OAuth2Client(
        provider,
        table["client_id"],
        table["client_secret"],
        table["redirect_uri"],
        OAuthTokenStore(table["token_file"]),
        http=http,
        scopes=scopes,
    )
