"""``rest``: a JSON API reached through eventhub's HTTP client.

::

    [integrations.crm]
    kind = "rest"
    base_url = "https://crm.example.com/api/v2/"
    token = { env = "CRM_TOKEN" }          # or username + password, email + api_token,
                                           # or an [integrations.crm.oauth] table
    headers = { Accept = "application/json" }
    timeout = [5, 30]                      # seconds: connect, read (or one number)
    attempts = 5                           # for GET/PUT/DELETE and rate limits
    rate = 5                               # requests a second (a token bucket) ...
    burst = 10                             # ... with bursts of up to 10
    shared_rate_limit = true               # one budget for every process of the hub
    allow_hosts = ["crm.example.com"]      # refuse any other destination
    allow_private = false                  # loopback/private addresses (tests, LAN)

From a workflow: ``ctx.integration("crm").post("contacts", json={...})``. A POST is
sent once unless an ``idempotency_key`` is given (the API must honour it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from eventhub.auth import auth_from_config
from eventhub.errors import ConfigError
from eventhub.hookspecs import hookimpl
from eventhub.http import HttpClient, json_body
from eventhub.http.ratelimit import RateLimiter, SharedRateLimiter
from eventhub.integration import Integration
from eventhub.redact import is_secret_param

if TYPE_CHECKING:
    from eventhub.hub import Hub


class RESTIntegration(Integration):
    """A configured HTTP client for one JSON API.

    Args:
        base_url: The API root; relative paths are taken from it.
        token: A bearer token.
        username: Basic auth user (with ``password``).
        password: Basic auth password.
        email: Atlassian account e-mail (with ``api_token``).
        api_token: Atlassian API token.
        oauth: An OAuth 2.0 table (see :func:`eventhub.auth.basic.auth_from_config`).
        headers: Headers sent with every request.
        timeout: Seconds, or ``[connect, read]``.
        attempts: Attempts in all for a retryable failure.
        rate: Requests a second allowed (no limit when unset).
        burst: Requests allowed back to back (default: ``rate``).
        shared_rate_limit: Keep the budget in the hub's state database, shared by
            all its processes (needs ``rate``).
        allow_hosts: The only host names (or ``*.example.com``) the client may reach.
        allow_private: Allow loopback and private addresses.
        sleep: How to wait between attempts (tests pass a recorder).

    Raises:
        ConfigError: naming the setting that is missing or wrong.
    """

    kind = "rest"
    default_base_url: str | None = None

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        api_token: str | None = None,
        oauth: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | Sequence[float] = (10.0, 60.0),
        attempts: int = 5,
        rate: float | None = None,
        burst: int | None = None,
        shared_rate_limit: bool = False,
        allow_hosts: Sequence[str] | None = None,
        allow_private: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        where = f"{self.kind} integration"
        base_url = _base_url(base_url or self.default_base_url, where)
        timeouts = _timeout(timeout, where)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ConfigError(f"{where}: attempts must be a whole number, at least 1")
        if rate is None and (burst is not None or shared_rate_limit):
            raise ConfigError(f"{where}: burst and shared_rate_limit need rate")
        if rate is not None and not (_number(rate) and rate > 0):
            raise ConfigError(f"{where}: rate must be a positive number")
        if burst is not None and not (_number(burst) and burst >= 1):
            raise ConfigError(f"{where}: burst must be at least 1")
        headers = dict(headers or {})
        if not all(isinstance(v, str) for v in (*headers, *headers.values())):
            raise ConfigError(f"{where}: headers must be a table of strings")
        if allow_hosts is not None and (
            isinstance(allow_hosts, str)
            or not all(isinstance(h, str) for h in allow_hosts)
        ):
            raise ConfigError(f"{where}: allow_hosts must be a list of host names")
        for flag, value in (
            ("allow_private", allow_private),
            ("shared_rate_limit", shared_rate_limit),
        ):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {flag} must be true or false")
        self.base_url = base_url
        self.rate = rate
        self.burst = burst
        self.shared_rate_limit = shared_rate_limit
        self._oauth_http: HttpClient | None = None
        if oauth is not None:
            self._oauth_http = HttpClient(
                name=f"{self.kind}.oauth", timeout=timeouts, allow_private=allow_private
            )
        credentials = {
            "token": token,
            "username": username,
            "password": password,
            "email": email,
            "api_token": api_token,
            "oauth": oauth,
        }
        try:
            auth = auth_from_config(credentials, http=self._oauth_http)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        self._settings: dict[str, Any] = {
            "auth": auth,
            "headers": headers,
            # Headers named like credentials (X-Api-Key, X-Auth-Token): redacted
            # by value, never sent to another origin.
            "credential_headers": [h for h in headers if is_secret_param(h)],
            "timeout": timeouts,
            "attempts": attempts,
            "allow_hosts": allow_hosts,
            "allow_private": allow_private,
            "sleep": sleep,
        }
        self._limiter: RateLimiter | SharedRateLimiter | None = None
        if rate is not None and not shared_rate_limit:
            self._limiter = RateLimiter(rate, burst)
        self._http: HttpClient | None = None
        self._lock = threading.Lock()
        self.config = {"base_url": base_url, "rate": rate, "burst": burst}

    @property
    def client(self) -> HttpClient:
        """The HTTP client (for pagination helpers and anything not wrapped here).

        Raises:
            ConfigError: with ``shared_rate_limit``, before a hub started this.
        """
        with self._lock:
            if self._http is None:
                if self.shared_rate_limit and self._limiter is None:
                    raise ConfigError(
                        f"integration {self.name!r}: shared_rate_limit needs a "
                        "started hub (its state database holds the budget)"
                    )
                self._http = HttpClient(
                    self.base_url,
                    limiter=self._limiter,
                    name=self.name,
                    **self._settings,
                )
            return self._http

    def start(self, hub: Hub) -> None:
        super().start(hub)
        if self.shared_rate_limit and self.rate is not None:
            self._limiter = SharedRateLimiter(hub.db, self.name, self.rate, self.burst)
            with self._lock:
                if self._http is not None:
                    self._http.limiter = self._limiter

    def stop(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
        if self._oauth_http is not None:
            self._oauth_http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request (see :meth:`eventhub.http.client.HttpClient.request`).

        Raises:
            HttpError: for a failure; ``HttpTransientError`` (a ``TransientError``)
                when it may pass.
        """
        return self.client.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET ``path``; the decoded JSON body (None when empty)."""
        return self._json("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """POST ``path``, once unless ``idempotency_key`` is given; the decoded JSON
        body (None when empty)."""
        return self._json("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        """PUT ``path``; the decoded JSON body (None when empty)."""
        return self._json("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        """PATCH ``path``, once unless ``idempotency_key`` is given; the decoded JSON
        body (None when empty)."""
        return self._json("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        """DELETE ``path``; the decoded JSON body (None when empty)."""
        return self._json("DELETE", path, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return json_body(method, self.request(method, path, **kwargs), empty=None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.base_url}>"


def _base_url(value: Any, where: str) -> str:
    if not value:
        raise ConfigError(f"{where}: base_url is missing")
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: base_url must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError(
            f"{where}: base_url must not hold credentials; use username + password"
        )
    return str(value) if str(value).endswith("/") else f"{value}/"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _timeout(value: Any, where: str) -> float | tuple[float, float]:
    numbers = list(value) if isinstance(value, list | tuple) else [value]
    if len(numbers) not in (1, 2) or not all(_number(n) and n > 0 for n in numbers):
        raise ConfigError(f"{where}: timeout must be seconds or [connect, read]")
    if len(numbers) == 1:
        return float(numbers[0])
    return (float(numbers[0]), float(numbers[1]))


@hookimpl
def register_integrations(register: Any) -> None:
    register(RESTIntegration)
