"""The ``[server]`` settings of the daemon's HTTP server, checked.

Also what bounds a bind's connections when ``max_connections`` is not set: the
process's open-file limit (``ulimit -n``), less descriptors kept for the rest of
the daemon.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
#: Descriptors kept for everything but client connections: the state database
#: (a connection and its WAL per thread), wake-up sockets, the metrics bind and
#: the local socket, files being synced.
RESERVED_DESCRIPTORS = 256
#: The most connections a bind accepts by default, however high the limit.
MAX_DEFAULT_CONNECTIONS = 4096
#: Connections of the metrics bind and of the local socket (each).
SIDE_CONNECTIONS = 32

_MAX_SECONDS = 3600
_SERVER_KEYS = {
    "host",
    "port",
    "metrics_host",
    "metrics_port",
    "max_body_bytes",
    "jwt",
    "access_log",
    "max_manual_runs",
    "header_timeout",
    "body_timeout",
    "keep_alive_timeout",
    "write_timeout",
    "max_header_bytes",
    "max_connections",
}


def descriptor_limit() -> int | None:
    """The process's soft limit on open files, or None when there is none."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_budget() -> int:
    """How many client connections fit under the open-file limit, with
    :data:`RESERVED_DESCRIPTORS` to spare (at least 16)."""
    limit = descriptor_limit()
    if limit is None:
        return MAX_DEFAULT_CONNECTIONS * 16
    return max(16, limit - RESERVED_DESCRIPTORS)


@dataclass
class ServerSettings:
    """The ``[server]`` table, checked (see docs/server.md)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    metrics_host: str | None = None
    metrics_port: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    jwt: dict[str, Any] | None = None
    access_log: bool = False
    max_manual_runs: int = 8
    #: Seconds for a request line and headers to arrive (else 408, closed).
    header_timeout: float = 10.0
    #: Seconds for a whole request body to arrive after its headers (else 408).
    body_timeout: float = 60.0
    #: Seconds an idle kept-alive connection stays open.
    keep_alive_timeout: float = 5.0
    #: Seconds an HTTP write may wait for the state database (else 503).
    write_timeout: float = 5.0
    #: Bytes of request line and headers (else 431, closed).
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    #: Open connections on the API bind (more are answered 503 and closed);
    #: None: from the open-file limit (see :meth:`connection_limit`).
    max_connections: int | None = None

    def connection_limit(self) -> int:
        """``max_connections``, or by default the open-file limit less
        :data:`RESERVED_DESCRIPTORS`, at most :data:`MAX_DEFAULT_CONNECTIONS`."""
        if self.max_connections is not None:
            return self.max_connections
        return min(MAX_DEFAULT_CONNECTIONS, connection_budget())

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> ServerSettings:
        """Raises ConfigError naming the key that is wrong."""
        if not isinstance(section, Mapping):
            raise ConfigError("server must be a table: [server]")
        unknown = set(section) - _SERVER_KEYS
        if unknown:
            raise ConfigError(f"unknown setting server.{sorted(unknown)[0]}")
        settings = cls(**{k: v for k, v in section.items()})
        for key in ("host", "metrics_host"):
            value = getattr(settings, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"server.{key} must be a host name or address")
        for key in ("port", "metrics_port"):
            value = getattr(settings, key)
            if value is not None and (not _is_int(value) or not 0 <= value <= 65535):
                raise ConfigError(f"server.{key} must be a port number (0-65535)")
        if not isinstance(settings.max_body_bytes, int) or settings.max_body_bytes < 1:
            raise ConfigError("server.max_body_bytes must be a positive integer")
        if not _is_int(settings.max_manual_runs) or settings.max_manual_runs < 1:
            raise ConfigError("server.max_manual_runs must be a positive integer")
        if settings.jwt is not None and not isinstance(settings.jwt, dict):
            raise ConfigError("server.jwt must be a table: [server.jwt]")
        for key in ("header_timeout", "body_timeout", "keep_alive_timeout"):
            _check_seconds(key, getattr(settings, key))
        _check_seconds("write_timeout", settings.write_timeout)
        header_bytes = settings.max_header_bytes
        if not _is_int(header_bytes) or not 1024 <= header_bytes <= 16 * 1024 * 1024:
            raise ConfigError(
                "server.max_header_bytes must be an integer from 1024 to 16777216"
            )
        _check_connections(settings.max_connections)
        return settings


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_seconds(key: str, value: Any) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 < value <= _MAX_SECONDS
    ):
        raise ConfigError(
            f"server.{key} must be a number of seconds (more than 0, at most "
            f"{_MAX_SECONDS})"
        )


def _check_connections(value: Any) -> None:
    if value is None:
        return
    if not _is_int(value) or value < 1:
        raise ConfigError("server.max_connections must be a positive integer")
    budget = connection_budget()
    if value > budget:
        raise ConfigError(
            f"server.max_connections = {value} does not fit under this process's "
            f"limit of {descriptor_limit()} open files (ulimit -n) with "
            f"{RESERVED_DESCRIPTORS} kept for the rest of the daemon: at most "
            f"{budget}, or raise the limit"
        )
