"""Retry policies for durable deliveries, built on tenacity's strategies.

A policy decides *whether* a failed delivery is tried again and *when*; the bus
persists the attempt count and the due time, so retries survive restarts and never
block the events behind them (a failed delivery waits in the pending table, not in
a sleeping thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity

from .errors import ConfigError, is_retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How a subscription retries failed deliveries.

    Args:
        max_attempts: Attempts in all, the first included; 1 means never retry.
        wait: A tenacity wait strategy giving the delay before the next attempt.
            The default is exponential backoff with jitter: about 1 s, 2 s, 4 s ...
            capped at 5 minutes.
        retry_if: Whether an exception is worth another attempt. By default every
            exception from user code is, and of eventhub's own errors only
            ``TransientError``.
    """

    max_attempts: int = 5
    wait: Any = field(
        default_factory=lambda: tenacity.wait_exponential_jitter(initial=1, max=300)
    )
    retry_if: Callable[[BaseException], bool] = is_retryable

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(
                f"max_attempts must be a positive integer, not {self.max_attempts!r}"
            )

    def next_delay(self, attempts: int, exc: BaseException) -> float | None:
        """Seconds until the next attempt after ``attempts`` failed ones, or None to
        give up (out of attempts, or ``exc`` is not retryable)."""
        if attempts >= self.max_attempts or not self.retry_if(exc):
            return None
        state = tenacity.RetryCallState(
            retry_object=_RETRYING, fn=None, args=(), kwargs={}
        )
        state.attempt_number = attempts
        return max(0.0, float(self.wait(state)))

    @classmethod
    def never(cls) -> RetryPolicy:
        """Dead-letter on the first failure."""
        return cls(max_attempts=1)


_RETRYING = tenacity.Retrying()
DEFAULT_RETRY = RetryPolicy()
