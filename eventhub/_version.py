"""eventhub's version, read once from the installed package's metadata, and the
``User-Agent`` its HTTP client sends.

A leaf module (layer 0): the server, the daemon and the HTTP client import the
version from here, never from the package root (which pulls in the hub).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eventhub")
except PackageNotFoundError:  # pragma: no cover - a source tree not installed
    __version__ = "0+unknown"

#: The ``User-Agent`` header of :class:`eventhub.http.HttpClient` (by default).
USER_AGENT = f"eventhub/{__version__}"

__all__ = ["USER_AGENT", "__version__"]
