"""Where an HTTP request may go: the SSRF guard under the HTTP client.

:func:`check_destination` refuses a URL before anything is sent: a scheme other
than http/https, a host outside the allow-list, a name or numeric form
(``2130706433``, ``0x7f000001``, ``127.1``, ``[::ffff:127.0.0.1]``, ``localhost``)
that resolves to an address that is not global. :class:`PinnedAdapter` makes
requests connect only to addresses checked at connection time, from the one
resolution the socket then uses, so DNS rebinding between check and connect has
no window.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
)

__all__ = ["PinnedAdapter", "Refused", "Unresolved", "address_problem"]


class Refused(Exception):
    """A destination refused. Deliberately not an ``OSError``, so that urllib3 lets
    it through instead of treating it as a connection failure to retry."""

    def __init__(self, host: str, problem: str) -> None:
        super().__init__(host, problem)
        self.host = host
        self.problem = problem


class Unresolved(Exception):
    """The host name of a destination did not resolve."""

    def __init__(self, host: str, cause: OSError) -> None:
        super().__init__(host, cause)
        self.host = host
        self.cause = cause


_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_problem(address: str) -> str | None:
    """Why an IP address is no place for a request to go, or None if it is global.

    IPv4 addresses embedded in IPv6 ones (``::ffff:127.0.0.1``, 6to4, NAT64) are
    judged by the IPv4 address.

    Args:
        address: An IPv4 or IPv6 address (an IPv6 zone suffix is ignored).
    """
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            problem = address_problem(str(embedded))
            return f"{problem} (IPv4 {embedded})" if problem else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def check_destination(
    url: str, *, allow_hosts: Sequence[str] | None, allow_private: bool
) -> None:
    """Refuse a URL the client may not reach, before connecting.

    Args:
        url: The absolute URL.
        allow_hosts: Lower-case host names or ``*.example.com`` patterns; None
            allows any host.
        allow_private: Skip the address check.

    Raises:
        Refused: with the host and the reason.
        Unresolved: when the host name does not resolve (the address check
            cannot be made).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https"):
        raise Refused(host, f"scheme {scheme or '(none)'} is not http/https")
    if not host:
        raise Refused(host, "the URL has no host")
    if allow_hosts is not None and not _host_allowed(host, allow_hosts):
        raise Refused(host, "not in allow_hosts")
    if allow_private:
        return
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise Refused(host, "the port is not a number") from None
    try:
        infos = _resolve(host, port)
    except OSError as exc:
        raise Unresolved(host, exc) from None
    _refuse_private(host, infos)


def _host_allowed(host: str, patterns: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def _refuse_private(host: str, infos: list[tuple[Any, ...]]) -> None:
    for info in infos:
        address = info[4][0]
        problem = address_problem(address)
        if problem:
            raise Refused(
                host, f"resolves to {address}, {problem}; set allow_private to reach it"
            )


def _open_pinned(conn: HTTPConnection, allow_private: bool) -> socket.socket:
    """Resolve once, check every address, connect to a checked one."""
    host = conn._dns_host  # the host without IPv6 brackets
    try:
        infos = _resolve(host, conn.port)
        if not allow_private:
            _refuse_private(host, infos)
        error = OSError(f"no address for {host}")
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in conn.socket_options or ():
                    sock.setsockopt(*option)
                if conn.timeout is None or isinstance(conn.timeout, int | float):
                    sock.settimeout(conn.timeout)
                if conn.source_address:
                    sock.bind(conn.source_address)
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error
    # The same exceptions urllib3's own connection raises, so requests maps them.
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(
            conn, f"connection to {conn.host} timed out ({conn.timeout})"
        ) from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"failed to connect: {exc}") from exc


class _PinnedConnection:
    def __init__(self, *args: Any, allow_private: bool = False, **kwargs: Any) -> None:
        self.allow_private = allow_private
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        return _open_pinned(cast(HTTPConnection, self), self.allow_private)


class _PinnedHTTPConnection(_PinnedConnection, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnection, HTTPSConnection):
    pass  # TLS still checks the certificate and SNI against the host name


class _PinnedPoolManager(PoolManager):
    def __init__(self, *args: Any, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allow_private = allow_private

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = (
            _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        )
        pool.conn_kw["allow_private"] = self.allow_private
        return pool


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to checked addresses.

    Each new connection resolves its host once, refuses it (raising
    :class:`Refused`) if any address is not global, unless ``allow_private``, and
    connects to those same addresses. Not for use with a proxy, whose connection
    would be checked instead of the destination.

    Args:
        allow_private: Allow every address (the connection is still made from a
            single resolution).
    """

    def __init__(self, allow_private: bool = False) -> None:
        self.allow_private = allow_private
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self.poolmanager = _PinnedPoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            allow_private=self.allow_private,
            **pool_kwargs,
        )
