"""Rate limits: a token bucket on our side, and reading the server's signals.

:class:`RateLimiter` keeps a budget within one process; :class:`SharedRateLimiter`
keeps its bucket in the state database, so every process of a hub draws from one
budget. Both wait in a loop (never by recursion) and can be paused, so that a 429
with ``Retry-After`` seen by one caller holds back every caller of the limiter.
:func:`parse_retry_after` and :func:`is_rate_limited` read what the server said,
including the vendors that disguise a rate limit as a 403 or a 200::

    limiter = RateLimiter(rate=5, burst=10)  # 5 requests a second, bursts of 10
    limiter.acquire()  # returns at once while the burst lasts, then waits
    limiter.pause(30)  # every caller waits 30 s (a 429 said Retry-After: 30)
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import requests
from sqlite_utils.migrations import Migrations

from ..errors import ConfigError
from ..statedb import StateDB

__all__ = [
    "RateLimiter",
    "SharedRateLimiter",
    "is_rate_limited",
    "parse_retry_after",
]

migrations = Migrations("eventhub.http")


@migrations()
def m001_rate_limits(db: Any) -> None:
    db.execute(
        """
        CREATE TABLE http_rate_limits (
            key TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated REAL NOT NULL,
            paused_until REAL NOT NULL DEFAULT 0
        )
        """
    )


# Tokens are compared with this slack, so that float rounding after a sleep of
# exactly the computed wait never asks for a wait the clock cannot represent.
_EPSILON = 1e-9


def _check_rate(rate: float, burst: int | None) -> tuple[float, float]:
    if not rate > 0 or not math.isfinite(rate):
        raise ConfigError(
            f"rate must be a positive number of tokens a second: {rate!r}"
        )
    if burst is None:
        burst = max(1, math.floor(rate))
    if burst < 1:
        raise ConfigError(f"burst must be at least 1: {burst!r}")
    return float(rate), float(burst)


def _take(
    tokens: float,
    paused_until: float,
    now: float,
    want: float,
    burst: float,
    rate: float,
) -> tuple[float, float]:
    """One step of the bucket: (tokens left, seconds to wait; 0 = granted).

    ``tokens`` must already be refilled up to ``now``. A request larger than the
    burst is granted once the bucket is full and leaves it in debt, which later
    callers wait out: otherwise it could never be granted at all.
    """
    if paused_until > now:
        return tokens, paused_until - now
    need = min(want, burst)
    if tokens + _EPSILON >= need:
        return tokens - want, 0.0
    return tokens, (need - tokens) / rate


class RateLimiter:
    """A thread-safe token bucket for the callers of one process.

    Args:
        rate: Tokens added a second (the sustained request rate).
        burst: Most tokens the bucket holds (requests allowed back to back);
            default: the rate rounded down, at least 1.
        clock: Monotonic time in seconds (a fake one in tests).
        sleep: How to wait (tests record the waits instead).

    Raises:
        ConfigError: for a rate that is not positive or a burst below 1.
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.burst = _check_rate(rate, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()
        self._paused_until = 0.0

    def acquire(self, tokens: float = 1) -> float:
        """Take ``tokens`` from the bucket, waiting until there are enough.

        Returns:
            The seconds spent waiting, by the limiter's clock.
        """
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                elapsed = max(0.0, now - self._updated)
                self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
                self._updated = now
                self._tokens, wait = _take(
                    self._tokens, self._paused_until, now, tokens, self.burst, self.rate
                )
            if wait <= 0:
                return max(0.0, now - started)
            self._sleep(wait)

    def pause_until(self, t: float) -> None:
        """Grant nothing before time ``t`` (on this limiter's clock)."""
        with self._lock:
            self._paused_until = max(self._paused_until, t)

    def pause(self, seconds: float) -> None:
        """Grant nothing for the next ``seconds``."""
        self.pause_until(self._clock() + seconds)


class SharedRateLimiter:
    """A token bucket kept in the state database, shared by every process of a hub.

    Each :meth:`acquire` step is one ``BEGIN IMMEDIATE`` transaction on the bucket's
    row, so concurrent processes never spend the same token twice. The processes
    must agree on ``rate`` and ``burst`` (the caller's values are used at each step)
    and on the clock, which is why it defaults to the wall clock.

    Args:
        db: The hub's state database.
        key: The bucket's name, e.g. ``"slack:T024BE7LD"``.
        rate: Tokens added a second.
        burst: Most tokens the bucket holds; default: the rate rounded down, at
            least 1.
        clock: Wall-clock time in seconds, the same in every process.
        sleep: How to wait.

    Raises:
        ConfigError: for a rate that is not positive or a burst below 1.
    """

    def __init__(
        self,
        db: StateDB,
        key: str,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.key = key
        self.rate, self.burst = _check_rate(rate, burst)
        self._clock = clock
        self._sleep = sleep
        db.migrate(migrations)

    def acquire(self, tokens: float = 1) -> float:
        """Take ``tokens`` from the shared bucket, waiting until there are enough.

        Returns:
            The seconds spent waiting, by the limiter's clock.

        Raises:
            StorageBusy: when the state database stays locked past its deadline.
        """
        started = self._clock()
        while True:
            with self.db.write() as conn:
                now = self._clock()
                row = conn.execute(
                    "SELECT tokens, updated, paused_until FROM http_rate_limits"
                    " WHERE key = ?",
                    (self.key,),
                ).fetchone()
                have, updated, paused_until = row or (self.burst, now, 0.0)
                have = min(self.burst, have + max(0.0, now - updated) * self.rate)
                have, wait = _take(
                    have, paused_until, now, tokens, self.burst, self.rate
                )
                conn.execute(
                    "INSERT INTO http_rate_limits (key, tokens, updated, paused_until)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                    " tokens = excluded.tokens, updated = excluded.updated",
                    (self.key, have, now, paused_until),
                )
            if wait <= 0:
                return max(0.0, now - started)
            self._sleep(wait)

    def pause_until(self, t: float) -> None:
        """Grant nothing before wall-clock time ``t``, in every process."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO http_rate_limits (key, tokens, updated, paused_until)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " paused_until = max(paused_until, excluded.paused_until)",
                (self.key, self.burst, self._clock(), t),
            )

    def pause(self, seconds: float) -> None:
        """Grant nothing for the next ``seconds``, in every process."""
        self.pause_until(self._clock() + seconds)


_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


def parse_retry_after(value: str | None, now: datetime | float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header.

    Args:
        value: The header: delta-seconds (``"120"``) or an HTTP-date
            (``"Fri, 31 Dec 1999 23:59:59 GMT"``).
        now: The current time, as an aware datetime or a Unix timestamp; a date
            is counted from it.

    Returns:
        The seconds (0 for a date already past), or None for a missing, negative
        or unreadable value. Huge values are returned as they are: the caller
        caps them.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP-dates are GMT by definition
    if not isinstance(now, datetime):
        now = datetime.fromtimestamp(now, UTC)
    return max(0.0, (when - now).total_seconds())


_GOOGLE_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_RATE_LIMIT_TEXT = re.compile(rb"(?i)rate[ _-]?limit|too many requests")
_SNIFF = 4000  # bytes of a body looked at


def is_rate_limited(response: requests.Response) -> bool:
    """Whether a response is a rate limit, also when a vendor disguises it.

    True for a 429; for Slack's HTTP 200 ``{"ok": false, "error": "ratelimited"}``;
    for Google's 403 whose error reason is ``rateLimitExceeded`` or
    ``userRateLimitExceeded`` (or whose status is ``RESOURCE_EXHAUSTED``); and for
    a 403 or 503 that says so in ``X-RateLimit-Remaining: 0``, a ``Retry-After``
    (403 only: a 503 may carry one for maintenance) or a body mentioning a rate
    limit (Confluence and Jira Server, GitHub's secondary limits).

    Args:
        response: A received response; only the start of its body is read.
    """
    status = response.status_code
    if status == 429:
        return True
    if status not in (200, 403, 503):
        return False
    head = response.content[:_SNIFF]
    if status == 200:
        if b"ratelimited" not in head:
            return False
        body = _json_object(response.content)
        return body.get("ok") is False and body.get("error") == "ratelimited"
    if response.headers.get("X-RateLimit-Remaining", "").strip() == "0":
        return True
    if status == 403 and "Retry-After" in response.headers:
        return True
    error = _json_object(response.content).get("error")
    if isinstance(error, dict) and ("errors" in error or "status" in error):
        # Google's shape: trust the reason, so that a daily quota or a plain
        # "forbidden" is not retried.
        reasons = {
            e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)
        }
        return bool(reasons & _GOOGLE_RATE_REASONS) or (
            error.get("status") == "RESOURCE_EXHAUSTED"
        )
    return bool(_RATE_LIMIT_TEXT.search(head))


def _json_object(content: bytes) -> dict[str, Any]:
    if not content.lstrip().startswith(b"{"):
        return {}
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}
