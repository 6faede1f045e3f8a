"""The ``server`` extra: the daemon's HTTP API and webhook intake (FastAPI on
uvicorn).

* :mod:`~eventhub.server.app`: :func:`create_app` assembles the application;
* :mod:`~eventhub.server.routes`: its routers, one per area;
* :mod:`~eventhub.server.security`: API tokens, JWTs, the local socket, read-only;
* :mod:`~eventhub.server.settings`: ``[server]``, checked;
* :mod:`~eventhub.server.runner`: :class:`HTTPServer` runs it on uvicorn;
* :mod:`~eventhub.server.middleware`, :mod:`~eventhub.server.metrics`: counting,
  timing and the body limit.
"""

from __future__ import annotations

from .app import create_app
from .runner import HTTPServer
from .settings import ServerSettings

__all__ = [
    "HTTPServer",
    "ServerSettings",
    "create_app",
]
