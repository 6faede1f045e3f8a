"""Who is asking: the API's credentials and what they may do.

Every API route but ``/health``, ``/metrics``, ``/openapi.json`` and ``/docs``
needs ``Authorization: Bearer ...``: an API token (``eventhub tokens create``,
:mod:`eventhub.auth.apitokens`) or, with ``[server.jwt]``, a JWT
(:mod:`eventhub.auth.jwt`). A read-only token may only ``GET``. Requests that come
through the daemon's local socket (:mod:`eventhub._localapi`) need no token: only
users who may read the database can connect, and only ``GET`` gets through.

:class:`Authenticator` gives the two FastAPI dependencies, ``principal`` (any valid
credentials) and ``writer`` (credentials that may write); a refusal is
:class:`Unauthorized` (401) or :class:`Forbidden` (403).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth.apitokens import APITokenStore
from ..errors import ConfigError, UserError

log = structlog.get_logger(__name__)

# Module level: FastAPI resolves the (string) annotations in this module's globals.
BEARER = HTTPBearer(auto_error=False, description="An API token or a JWT.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


class Denied(Exception):
    """A request refused for its credentials; ``reason`` is what the client is
    told, ``http_status`` and ``headers`` how."""

    http_status: ClassVar[int] = 401
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(Denied):
    """No credentials, or not valid ones: 401."""

    http_status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(Denied):
    """Valid credentials without the right: 403."""

    http_status = 403


@dataclass(frozen=True)
class Principal:
    """Who made a request: a token or a JWT subject, and whether it may write."""

    name: str
    can_write: bool


LOCAL_SOCKET = Principal("the local socket", False)


class Authenticator:
    """Checks a request's credentials: API tokens first, then JWTs.

    Args:
        tokens: The hub's API tokens.
        verify_jwt: Verifies a JWT and returns its claims (raising a
            :class:`~eventhub.errors.UserError` if it is not valid); None: JWTs
            are not accepted.
    """

    def __init__(
        self,
        tokens: APITokenStore,
        verify_jwt: Callable[[str], Mapping[str, Any]] | None = None,
    ) -> None:
        self.tokens = tokens
        self.verify_jwt = verify_jwt
        self._touched: dict[str, int] = {}  # token name: the minute it was used

    async def principal(self, request: Request, credentials: Credentials) -> Principal:
        """The dependency of every API route: who is asking.

        Raises:
            Unauthorized: without valid credentials.
        """
        if request.scope.get("eventhub.local"):
            return LOCAL_SOCKET
        if credentials is None:
            raise Unauthorized("missing bearer token")
        token = credentials.credentials
        found = self.tokens.check(token)
        if found is not None:
            self._touch(found.name)
            return Principal(f"token {found.name!r}", found.scope == "write")
        if self.verify_jwt is not None and token.count(".") == 2:
            try:
                claims = self.verify_jwt(token)
            except UserError:
                raise Unauthorized("invalid token") from None
            return Principal(f"JWT subject {str(claims.get('sub', '?'))!r}", True)
        raise Unauthorized("invalid token")

    async def writer(self, request: Request, credentials: Credentials) -> Principal:
        """The dependency of the routes that write: who is asking, if they may.

        Raises:
            Unauthorized: without valid credentials.
            Forbidden: for read-only credentials.
        """
        who = await self.principal(request, credentials)
        if not who.can_write:
            raise Forbidden(f"{who.name} is read-only")
        return who

    def _touch(self, name: str) -> None:
        """Record a token's "last used", at most once a minute per token."""
        minute = int(time.time() // 60)
        if self._touched.get(name) == minute:
            return
        self._touched[name] = minute
        # Not awaited: a database locked by another process must not hold up the
        # request (nor a thread of the pool) for a "last used".
        threading.Thread(
            target=_touch_quietly,
            args=(self.tokens, name),
            name="eventhub-token-touch",
            daemon=True,
        ).start()


def _touch_quietly(tokens: APITokenStore, name: str) -> None:
    try:
        tokens.touch(name, datetime.now(UTC))
    except Exception as exc:  # best effort: it is only "last used"
        log.warning("token use not recorded", token=name, error=str(exc))


def jwt_verifier(settings: Mapping[str, Any]) -> Callable[[str], Mapping[str, Any]]:
    """``verify_token`` of a :class:`~eventhub.auth.jwt.JWTManager` for
    ``[server.jwt]``: ``secret`` (HMAC) or ``public_key`` (RS/PS/ES/EdDSA,
    verification only), and ``algorithm``, ``algorithms``, ``issuer``, ``audience``,
    ``leeway``.

    Raises:
        ConfigError: for a missing key or an unknown or wrong setting.
    """
    from ..auth.jwt import JWTManager

    options = dict(settings)
    secret = options.pop("secret", None)
    public_key = options.pop("public_key", None)
    key = secret if secret is not None else public_key
    if not isinstance(key, str) or not key or (secret and public_key):
        raise ConfigError(
            'server.jwt needs secret = { env = "NAME" } or public_key = '
            '{ file = "PATH" } (one of them)'
        )
    allowed = {"algorithm", "algorithms", "issuer", "audience", "leeway"}
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"unknown setting server.jwt.{sorted(unknown)[0]}")
    try:
        manager = JWTManager(key, verify_key=key, **options)
    except ConfigError as exc:
        raise ConfigError(f"server.jwt: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"server.jwt: {exc}") from None
    return manager.verify_token
