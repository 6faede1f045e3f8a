"""The daemon's local socket: its read-only API for users of the same machine.

A running daemon serves the GET routes of its HTTP API (``/search``, ``/events``,
``/runs``, ``/health``) on a Unix socket beside its state database
(``<db>-api.sock``, or a private path under the temporary directory when that one
would be too long for a socket). No token is asked for: the socket file is made
readable and writable for exactly those users who can read the database file, and
those can read every event and document in it anyway. Writes (POST) are refused.

The CLI uses it to answer ``eventhub search`` in milliseconds from the daemon's
loaded model and index, instead of loading the model itself (seconds). It trusts an
answer only from a socket owned by the database file's owner, serving a database
with the same identity (:attr:`eventhub.statedb.StateDB.identity`); anything else,
or no daemon at all, and the CLI does the work itself.

This module needs nothing but the standard library: it is imported on the CLI's
fast path.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

#: The response header naming the identity of the database a daemon serves.
IDENTITY_HEADER = "x-eventhub-database"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def socket_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the daemon of a state database listens."""
    path = Path(db_path).absolute()
    beside = path.with_name(path.name + "-api.sock")
    if len(str(beside)) <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"eventhub-api-{os.getuid()}-{digest}.sock"


def socket_mode(db_path: str | os.PathLike[str]) -> int:
    """The socket file's mode: read and write (needed to connect) for the owner,
    and for the group and others where they may read the database."""
    mode = os.stat(db_path).st_mode
    return (
        0o600
        | (0o060 if mode & stat.S_IRGRP else 0)
        | (0o006 if mode & stat.S_IROTH else 0)
    )


class DaemonAnswer:
    """A daemon's answer: HTTP status and decoded JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body

    @property
    def error(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), str):
            return str(self.body["error"])
        return f"the daemon answered {self.status}"


def ask_daemon(
    db_path: str | os.PathLike[str],
    path: str,
    params: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
) -> DaemonAnswer | None:
    """GET ``path`` from the daemon of ``db_path`` over its local socket.

    Returns None when no daemon of this very database answers there (no socket, a
    stale one, another owner, another database): the caller then does the work
    itself.
    """
    db_file = Path(db_path)
    address = socket_path(db_file)
    try:
        owner = os.stat(db_file).st_uid
        info = os.stat(address)
    except OSError:
        return None
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != owner:
        return None
    identity = database_identity(db_file)
    if identity is None:
        return None
    query = {k: v for k, v in (params or {}).items() if v is not None}
    target = path + ("?" + urlencode(query) if query else "")
    conn = _UnixHTTPConnection(str(address), timeout)
    try:
        conn.request("GET", target, headers={"Accept": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        if response.getheader(IDENTITY_HEADER) != identity:
            return None
        return DaemonAnswer(response.status, orjson.loads(raw) if raw else None)
    except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
        return None
    finally:
        conn.close()


def database_identity(db_path: Path) -> str | None:
    """The identity recorded in a state database, read without writing (None when
    it has none yet, or cannot be read)."""
    try:
        conn = sqlite3.connect(f"{db_path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT uuid FROM database_identity WHERE id = 1").fetchone()
        return str(row[0]) if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def bind_socket(db_path: str | os.PathLike[str]) -> socket.socket | None:
    """A listening Unix socket at :func:`socket_path`, or None when a live daemon
    of this database already listens there. A socket left by a dead process is
    replaced.

    Raises:
        OSError: when the path cannot be bound for another reason.
    """
    address = socket_path(db_path)
    if address.exists() or address.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(address))
            return None  # somebody serves it
        except OSError:
            address.unlink(missing_ok=True)  # stale: its process is gone
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(address))
        os.chmod(address, socket_mode(db_path))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def remove_socket(sock: socket.socket, address: Path, inode: int) -> None:
    """Close a socket from :func:`bind_socket` (if its server has not) and remove
    its file, unless another process has bound the path since (``inode`` is the
    file's, taken when it was bound)."""
    sock.close()
    try:
        if os.stat(address).st_ino == inode:
            address.unlink()
    except OSError:
        pass


def local_only(app: Any, identity: str) -> Any:
    """Wrap an ASGI app for the local socket: GET and HEAD only, marked local in
    the scope (so the API asks no token), with the database's identity on every
    answer."""
    header = (IDENTITY_HEADER.encode(), identity.encode())

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _refuse(send, header)
            return

        async def send_with_identity(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), header],
                }
            await send(message)

        await app({**scope, "eventhub.local": True}, receive, send_with_identity)

    return serve


async def _refuse(send: Any, header: tuple[bytes, bytes]) -> None:
    body = orjson.dumps(
        {"error": "the local socket is read-only: write through the HTTP API"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                header,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
