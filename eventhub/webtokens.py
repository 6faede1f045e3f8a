"""eventhub.webtokens, kept where the docs name it: see
:mod:`eventhub.auth.jwt`."""

from __future__ import annotations

from .auth.jwt import (  # noqa: F401
    JWTManager,
)

__all__ = [
    "JWTManager",
]
