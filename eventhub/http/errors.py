"""The errors of outgoing HTTP: :class:`HttpError` and what it is made of.

::

    EventHubError
     └── HttpError                 a request failed: a bad status, or no response
          ├── HttpTransientError   retryable, out of attempts (also TransientError)
          └── HostNotAllowed       a destination refused before connecting

They are re-exported by :mod:`eventhub.http` (and, for code written before they
moved here, by :mod:`eventhub.errors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from ..errors import EventHubError, TransientError
from ..redact import redact_text, redact_url

if TYPE_CHECKING:
    import requests

__all__ = ["HostNotAllowed", "HttpError", "HttpTransientError"]


class HttpError(EventHubError):
    """An HTTP request that failed: a non-success status, or no response at all.

    The attributes hold only what is safe to show: ``method``, ``url`` (user info
    and secret-looking query values redacted), ``status`` (None when no response
    came), ``body`` (its first 500 characters, secrets redacted), ``reason`` and
    ``retry_after`` (the seconds the server asked for, if it did). Header values
    and credentials are never kept.
    """

    body_excerpt = 500

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None = None,
        body: str | None = None,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.method = method.upper()
        self.url = redact_url(url)
        self.status = status
        # Redacted before it is cut, so that no secret is cut below recognition.
        excerpt = body[: self.body_excerpt * 4] if body else ""
        self.body = redact_text(excerpt)[: self.body_excerpt] or None
        self.reason = reason
        self.retry_after = retry_after
        what = " ".join(filter(None, [f"HTTP {status}" if status else "", reason]))
        message = f"{self.method} {self.url}: {what or 'failed'}"
        super().__init__(f"{message}: {self.body}" if self.body else message)

    @classmethod
    def from_response(
        cls,
        method: str,
        response: requests.Response,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> Self:
        """The error for a response: its status, final URL and the start of its body.

        Args:
            method: The request's method.
            response: The response.
            reason: Why it is an error, when the status does not say it all.
            retry_after: Seconds the server asked to wait.
        """
        body = response.content[: cls.body_excerpt * 4]
        return cls(
            method,
            response.url,
            response.status_code,
            body.decode("utf-8", "replace"),
            reason=reason,
            retry_after=retry_after,
        )


class HttpTransientError(HttpError, TransientError):
    """A retryable HTTP failure (rate limit, 5xx, timeout, connection error) that
    outlasted the client's attempts, or hit a POST that may not be repeated: the
    bus retries the event later."""


class HostNotAllowed(HttpError):
    """A destination refused before connecting, never retried: a scheme other than
    http/https, a host outside ``allow_hosts``, or an address that is not global.
    ``host`` names the host, ``problem`` says why."""

    def __init__(self, method: str, url: str, host: str, problem: str) -> None:
        self.host = host
        self.problem = problem
        where = f"host {host}" if host else "URL"
        super().__init__(method, url, reason=f"{where} not allowed: {problem}")
