"""The ``server`` extra: the daemon's HTTP API and webhook intake (FastAPI on
uvicorn)."""

from __future__ import annotations

from .app import (  # noqa: F401
    HTTPServer,
    ServerSettings,
    create_app,
)

__all__ = [
    "HTTPServer",
    "ServerSettings",
    "create_app",
]
