"""The HTTP client every connector uses: timeouts, retries, rate limits, SSRF guard.

:class:`HttpClient` wraps a :class:`requests.Session`. Every call has a timeout;
429s, 5xx, timeouts, connection errors and disguised rate limits are retried with
jittered exponential backoff or the server's ``Retry-After``; POST and PATCH only
with an ``Idempotency-Key``. Destinations are checked before any byte is sent
(http/https only, ``allow_hosts``, no loopback/private/link-local address unless
``allow_private``), the connection is pinned to the address that was checked, and
every redirect is checked the same way, without credentials when it leaves the
origin::

    with HttpClient("https://example.atlassian.net/rest/api/2/", auth=(user, token),
                    limiter=RateLimiter(rate=10)) as jira:
        issue = jira.get_json("issue/PROJ-1")
        for found in jira.paginate_offset("search", params={"jql": "project=PROJ"},
                                          items=lambda page: page["issues"],
                                          offset_param="startAt",
                                          limit_param="maxResults",
                                          total=lambda page: page["total"]):
            ...
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Self
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests
import structlog
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .._version import USER_AGENT
from ..errors import ConfigError
from ..redact import is_secret_key, is_secret_param, redact_url, register_secret
from ._netguard import PinnedAdapter, Refused, Unresolved, check_destination
from ._pagination import Paginator
from .errors import HostNotAllowed, HttpError, HttpTransientError
from .ratelimit import (
    RateLimiter,
    SharedRateLimiter,
    is_rate_limited,
    parse_retry_after,
)

__all__ = [
    "HostNotAllowed",
    "HttpClient",
    "HttpError",
    "HttpTransientError",
    "RateLimiter",
    "SharedRateLimiter",
    "is_rate_limited",
    "json_body",
    "parse_retry_after",
    "redact_url",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_REDIRECTS = 10
# 501 and 505 say the server will never do it; every other 5xx may pass.
_RETRY_STATUSES = frozenset({408, 425, 429}) | (frozenset(range(500, 600)) - {501, 505})
_ALWAYS_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, parts.hostname or "", port


@dataclass
class _Failure:
    """An attempt that failed: why, whether it may be retried at all, whether the
    request may have reached the server, and the response if one came."""

    reason: str
    retryable: bool
    reached: bool
    response: requests.Response | None = None

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    @cached_property
    def retry_after(self) -> float | None:
        if self.response is None:
            return None
        return parse_retry_after(self.response.headers.get("Retry-After"), time.time())

    def error(
        self, method: str, url: str, attempts: int, repeatable: bool
    ) -> HttpError:
        reason = self.reason
        if self.retryable:
            reason += f" ({attempts} attempt{'s' if attempts > 1 else ''})"
            if self.reached and not repeatable:
                reason += f"; a {method} without an idempotency key is not repeated"
        cls = HttpTransientError if self.retryable else HttpError
        if self.response is None:
            return cls(method, url, reason=reason)
        return cls.from_response(
            method, self.response, reason=reason or None, retry_after=self.retry_after
        )


def _failure(exc: Exception) -> _Failure:
    if isinstance(exc, Unresolved):
        reason = exc.cause.strerror or type(exc.cause).__name__
        return _Failure(f"cannot resolve host ({reason})", True, False)
    if isinstance(exc, requests.exceptions.SSLError):
        return _Failure("TLS error", False, False)
    if isinstance(exc, requests.ConnectTimeout):
        return _Failure("connect timeout", True, False)
    if isinstance(exc, requests.ReadTimeout):
        return _Failure("read timeout", True, True)
    if isinstance(exc, requests.ConnectionError):
        inner = exc.args[0] if exc.args else None
        inner = getattr(inner, "reason", inner)
        if isinstance(inner, NewConnectionError):
            return _Failure(f"cannot connect ({_os_reason(inner)})", True, False)
        return _Failure("connection broken", True, True)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return _Failure("response broken off", True, True)
    return _Failure(f"request failed ({type(exc).__name__})", False, True)


def _os_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


class HttpClient(Paginator):
    """An HTTP client with timeouts, retries, rate limits and an SSRF guard.

    The credentials it is given (``auth``, the values of credential headers, and of
    query parameters named like secrets, also per call) are registered with
    :func:`eventhub.redact.register_secret`: a server that echoes one back (``401
    invalid api key <key>``) cannot put it in an error, a log line, a run record
    or an event. Error bodies keep an excerpt, redacted.

    Args:
        base_url: Relative paths are appended to it (``"issue/1"`` after
            ``https://jira/rest/api/2/`` is ``https://jira/rest/api/2/issue/1``).
            Credentials only go to its origin; without it, to the origin of each
            call's URL.
        auth: A requests auth object or a ``(user, password)`` pair.
        headers: Headers sent with every request.
        credential_headers: Names of further headers that carry secrets (such as
            ``X-Api-Key``): like ``Authorization`` and ``Cookie``, they are never
            logged and never sent to another origin.
        timeout: Seconds, or ``(connect, read)``; applied to every call.
        attempts: Attempts in all for a retryable failure.
        backoff: Window of the first jittered exponential backoff, in seconds.
        max_backoff: Widest backoff window.
        max_retry_after: Longest ``Retry-After`` honoured; longer ones are capped.
        limiter: Acquired before every attempt, paused on a ``Retry-After``.
        allow_hosts: Host names (or ``*.example.com`` patterns) the client may
            reach; None for any.
        allow_private: Allow loopback, private, link-local and reserved addresses
            (tests, servers on the local network).
        proxies: Explicit proxies (``{"https": "http://proxy:3128"}``); the
            environment's are ignored. Through a proxy the address check runs on
            our own DNS resolution, but the proxy makes the connection.
        verify: Check TLS certificates (True), against a CA bundle (its path),
            or not at all (False). ``REQUESTS_CA_BUNDLE`` is not read: pass it.
        name: Bound into log lines as ``client``.
        user_agent: The ``User-Agent`` header.
        sleep: How to wait between attempts (tests record the waits instead).

    Raises:
        ConfigError: for an invalid setting.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        auth: requests.auth.AuthBase | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        credential_headers: Sequence[str] = (),
        timeout: float | tuple[float, float] = (10.0, 60.0),
        attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
        limiter: RateLimiter | SharedRateLimiter | None = None,
        allow_hosts: Sequence[str] | None = None,
        allow_private: bool = False,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str = True,
        name: str = "http",
        user_agent: str = USER_AGENT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"attempts must be at least 1: {attempts!r}")
        if timeout is None:
            raise ConfigError("timeout must be set: a request without one can hang")
        if base_url is not None and urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError(
                f"base_url must be an http(s) URL: {redact_url(base_url)}"
            )
        self.base_url = base_url
        self.auth = auth
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.attempts = attempts
        self.max_retry_after = max_retry_after
        self.limiter = limiter
        self.allow_hosts = (
            None
            if allow_hosts is None
            else [host.lower().rstrip(".") for host in allow_hosts]
        )
        self.allow_private = allow_private
        self.name = name
        self._credentials = frozenset(
            h.lower() for h in (*_ALWAYS_CREDENTIALS, *credential_headers)
        )
        _register_auth(auth)
        self._register_credentials(self.headers, None, None, ephemeral=False)
        self._wait = tenacity.wait_random_exponential(
            multiplier=backoff, max=max_backoff
        )
        self._sleep = sleep
        self._log = structlog.get_logger(__name__, client=name)
        session = requests.Session()
        session.trust_env = False  # env proxies and .netrc would bypass the guard
        session.cookies.set_policy(_NoCookies())
        session.headers["User-Agent"] = user_agent
        session.verify = verify
        if proxies:
            session.proxies.update(proxies)
            adapter = HTTPAdapter()
        else:
            adapter = PinnedAdapter(allow_private)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.session = session

    def request(
        self,
        method: str,
        url_or_path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        idempotency_key: str | bool | None = None,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """Send a request, retrying what may be retried; return a 2xx/3xx response.

        Args:
            method: The HTTP method.
            url_or_path: An absolute URL, or a path relative to ``base_url``.
            params: Query parameters.
            json: A body sent as JSON.
            data: A body sent as is (bytes, text or a form dict; not a stream, which
                cannot be sent twice).
            headers: Headers for this call, over the client's.
            timeout: Overrides the client's timeout for this call.
            idempotency_key: Makes a POST or PATCH retryable: sent as the
                ``Idempotency-Key`` header, the same on every attempt; True makes
                one up.
            allow_redirects: Follow redirects (each one checked like the first
                URL); False returns the 3xx response.

        Returns:
            The response (its body read).

        Raises:
            HostNotAllowed: for a destination the client may not reach.
            HttpTransientError: for a retryable failure that outlasted the attempts
                (or hit a POST that may not be repeated).
            HttpError: for any other failure, such as a 4xx.
        """
        return self._request(
            method,
            url_or_path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            timeout=timeout,
            idempotency_key=idempotency_key,
            allow_redirects=allow_redirects,
        )

    def get(self, url_or_path: str, **kw: Any) -> requests.Response:
        """:meth:`request` with GET."""
        return self.request("GET", url_or_path, **kw)

    def post(self, url_or_path: str, **kw: Any) -> requests.Response:
        """:meth:`request` with POST (retried only with an ``idempotency_key``)."""
        return self.request("POST", url_or_path, **kw)

    def put(self, url_or_path: str, **kw: Any) -> requests.Response:
        """:meth:`request` with PUT."""
        return self.request("PUT", url_or_path, **kw)

    def patch(self, url_or_path: str, **kw: Any) -> requests.Response:
        """:meth:`request` with PATCH (retried only with an ``idempotency_key``)."""
        return self.request("PATCH", url_or_path, **kw)

    def delete(self, url_or_path: str, **kw: Any) -> requests.Response:
        """:meth:`request` with DELETE."""
        return self.request("DELETE", url_or_path, **kw)

    def head(self, url_or_path: str, **kw: Any) -> requests.Response:
        """:meth:`request` with HEAD."""
        return self.request("HEAD", url_or_path, **kw)

    def get_json(self, url_or_path: str, **kw: Any) -> Any:
        """GET and decode the JSON body.

        Raises:
            HttpError: also when the body is not JSON.
        """
        return self._json("GET", url_or_path, **kw)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals

    def _url(self, url_or_path: str) -> str:
        if urlsplit(url_or_path).scheme:
            return url_or_path
        if self.base_url is None:
            raise ConfigError(
                f"{url_or_path!r} is not a URL and the client has no base_url"
            )
        return self.base_url.rstrip("/") + "/" + url_or_path.lstrip("/")

    def _trusted_origin(self, url: str) -> tuple[str, str, int | None]:
        return _origin(self.base_url or url)

    def _json(self, method: str, url_or_path: str, **kw: Any) -> Any:
        return json_body(method, self._request(method, url_or_path, **kw))

    def _request(
        self,
        method: str,
        url_or_path: str,
        *,
        origin: tuple[str, str, int | None] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | bool | None = None,
        **kw: Any,
    ) -> requests.Response:
        method = method.upper()
        try:
            url = self._url(url_or_path)
            origin = origin or self._trusted_origin(url)
        except ValueError as exc:
            raise HttpError(method, url_or_path, reason=f"bad URL ({exc})") from None
        self._register_credentials(headers, kw.get("params"), url, ephemeral=True)
        sent_headers = {**self.headers, **(headers or {})}
        key = str(uuid.uuid4()) if idempotency_key is True else idempotency_key or None
        if key:
            sent_headers["Idempotency-Key"] = key
        repeatable = method in IDEMPOTENT_METHODS or key is not None
        for attempt in range(1, self.attempts + 1):
            if self.limiter is not None:
                self.limiter.acquire()
            failed = self._attempt(method, url, sent_headers, origin, attempt, kw)
            if isinstance(failed, requests.Response):
                return failed
            wait = self._wait_before(attempt, failed.retry_after)
            if failed.retry_after is not None and self.limiter is not None:
                self.limiter.pause(wait)  # hold back every caller of the limiter
            if (
                not failed.retryable
                or (failed.reached and not repeatable)
                or attempt == self.attempts
            ):
                raise failed.error(method, url, attempt, repeatable)
            log = (
                self._log.info if failed.reason == "rate limited" else self._log.warning
            )
            log(
                "http retry",
                method=method,
                url=redact_url(url),
                attempt=attempt,
                reason=failed.reason,
                status=failed.status,
                wait=round(wait, 3),
                retry_after=failed.retry_after,
            )
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        origin: tuple[str, str, int | None],
        attempt: int,
        kw: dict[str, Any],
    ) -> requests.Response | _Failure:
        """Send once; the response if it is a success, else what went wrong."""
        started = time.perf_counter()
        try:
            response = self._send(method, url, headers, origin, **kw)
        except Refused as exc:
            raise HostNotAllowed(method, url, exc.host, exc.problem) from None
        except (requests.RequestException, Unresolved) as exc:
            # Never chained or quoted: requests' messages hold the URL, secrets too.
            failed = _failure(exc)
        else:
            status = response.status_code
            if is_rate_limited(response):
                # A rate-limit refusal is answered before the request is processed,
                # so repeating it is safe for any method (a Slack chat.postMessage).
                failed = _Failure("rate limited", True, False, response)
            elif status < 400:
                self._log_attempt(method, response.url, status, started, attempt)
                return response
            elif status in _RETRY_STATUSES:
                failed = _Failure("server error", True, True, response)
            else:
                failed = _Failure("", False, True, response)
        self._log_attempt(method, url, failed.status, started, attempt, failed.reason)
        return failed

    def _wait_before(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        state = tenacity.RetryCallState(_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return float(self._wait(state))

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        origin: tuple[str, str, int | None],
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """One attempt: the request and the redirects it leads to, each checked."""
        trusted = True
        for _hop in range(MAX_REDIRECTS + 1):
            check_destination(
                url, allow_hosts=self.allow_hosts, allow_private=self.allow_private
            )
            trusted = trusted and _origin(url) == origin
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers if trusted else self._without_credentials(headers),
                auth=self.auth if trusted else None,
                timeout=timeout if timeout is not None else self.timeout,
                allow_redirects=False,
            )
            if not (allow_redirects and response.is_redirect):
                return response
            url = urljoin(response.url, response.headers["Location"])
            response.close()
            params = None  # the location carries its own query
            status = response.status_code
            if (status in (302, 303) and method != "HEAD") or (
                status == 301 and method == "POST"
            ):
                method, json, data = "GET", None, None
                headers = {
                    k: v
                    for k, v in headers.items()
                    if k.lower() not in ("content-type", "content-length")
                }
        raise HttpError(method, url, reason=f"more than {MAX_REDIRECTS} redirects")

    def _register_credentials(
        self,
        headers: Mapping[str, str] | None,
        params: Any,
        url: str | None,
        *,
        ephemeral: bool,
    ) -> None:
        """Register as secrets (:func:`eventhub.redact.register_secret`) the values
        of credential headers and of query parameters that may carry secrets, so
        that a server echoing them back cannot put them in a log or an error."""
        for name, value in (headers or {}).items():
            if not isinstance(value, str):
                continue
            if name.lower() in self._credentials or is_secret_key(name):
                register_secret(value, ephemeral=ephemeral)
                _scheme, _, credential = value.partition(" ")
                register_secret(credential.strip(), ephemeral=ephemeral)
        pairs: list[tuple[Any, Any]] = []
        if isinstance(params, Mapping):
            pairs += list(params.items())
        elif isinstance(params, list | tuple):
            pairs += [p for p in params if isinstance(p, tuple) and len(p) == 2]
        if url is not None and "?" in url:
            pairs += parse_qsl(urlsplit(url).query)
        for name, value in pairs:
            if isinstance(name, str) and is_secret_param(name):
                for item in value if isinstance(value, list | tuple) else [value]:
                    register_secret(item, ephemeral=ephemeral)

    def _without_credentials(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.lower() not in self._credentials}

    def _log_attempt(
        self,
        method: str,
        url: str,
        status: int | None,
        started: float,
        attempt: int,
        error: str = "",
    ) -> None:
        self._log.debug(
            "http attempt",
            method=method,
            url=redact_url(url),
            status=status,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            attempt=attempt,
            error=error or None,
        )


def _register_auth(auth: Any) -> None:
    """Register the password of a ``(user, password)`` pair or of an auth object
    that keeps one (requests' basic and digest auth), with the base64 form of the
    Basic ``Authorization`` header. eventhub's own auth objects register theirs."""
    if isinstance(auth, tuple) and len(auth) == 2:
        user, password = auth
    else:
        user = getattr(auth, "username", None)
        password = getattr(auth, "password", None)
    if isinstance(password, str | bytes):
        register_secret(password, username=user if isinstance(user, str) else None)


class _NoCookies(DefaultCookiePolicy):
    """Keep no cookies: a stored cookie would ride along to any path or port."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


_RETRYING = tenacity.Retrying()


def json_body(method: str, response: requests.Response, *, empty: Any = ...) -> Any:
    """The decoded JSON body of a response.

    Args:
        method: The request's method (for the error).
        response: The response.
        empty: Returned for an empty body; by default an empty body is an error.

    Raises:
        HttpError: if the body is not JSON.
    """
    if empty is not ... and not response.content.strip():
        return empty
    try:
        return response.json()
    except ValueError:
        raise HttpError.from_response(
            method, response, reason="response is not JSON"
        ) from None
