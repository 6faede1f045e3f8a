"""eventhub.ratelimit, kept where the docs name it: see
:mod:`eventhub.http.ratelimit`."""

from __future__ import annotations

from .http.ratelimit import (  # noqa: F401
    RateLimiter,
    SharedRateLimiter,
    is_rate_limited,
    parse_retry_after,
)

__all__ = [
    "RateLimiter",
    "SharedRateLimiter",
    "is_rate_limited",
    "parse_retry_after",
]
