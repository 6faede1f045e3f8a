"""Outgoing HTTP for connectors: :class:`HttpClient` and its errors, rate
limits, pagination and the SSRF guard."""

from __future__ import annotations

from .client import (  # noqa: F401
    HostNotAllowed,
    HttpClient,
    HttpError,
    HttpTransientError,
    RateLimiter,
    SharedRateLimiter,
    is_rate_limited,
    json_body,
    parse_retry_after,
    redact_url,
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
