"""The ``server`` extra: the daemon's HTTP API and webhook intake (FastAPI on
uvicorn).

* :mod:`~eventhub.server.app`: :func:`create_app` assembles the application;
* :mod:`~eventhub.server._routes`: its routers, one per area;
* :mod:`~eventhub.server._security`: API tokens, JWTs, the local socket, read-only;
* :mod:`~eventhub.server.settings`: ``[server]``, checked;
* :mod:`~eventhub.server._runner`: :class:`HTTPServer` runs it on uvicorn;
* :mod:`~eventhub.server.middleware`, :mod:`~eventhub.server.metrics`: counting,
  timing and the body limit.
"""

from __future__ import annotations

from ._runner import HTTPServer
from .app import create_app
from .settings import ServerSettings

__all__ = [
    "HTTPServer",
    "ServerSettings",
    "create_app",
]
