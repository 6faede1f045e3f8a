"""Cross-process wake-ups for one state database.

A process whose consumers wait for events binds a Unix datagram socket in a folder
next to the database (``<db>-wake/``, or a private folder under the temporary
directory when that path would be too long for a socket). After each commit, a
process that appended sends one byte to every socket in the folder; each receiver
wakes its waiting consumers at once instead of at their next poll.

Wake-ups only shorten waits: a lost one (a full buffer, a process that just
started listening, a platform without Unix sockets) costs one ``poll_interval``,
since consumers keep polling as before. A socket left by a killed process is
removed by the next sender that finds nobody listening on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_PEERS_TTL = 0.5  # seconds a listing of the folder is reused by a sender


def wake_folder(db_path: Path) -> Path:
    """The folder of wake-up sockets for a database file."""
    beside = db_path.with_name(db_path.name + "-wake")
    if len(str(beside)) + 24 <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(str(db_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"eventhub-wake-{os.getuid()}-{digest}"


class WakeChannel:
    """Send and receive wake-ups among the processes of one database.

    Args:
        folder: The folder of sockets (see :func:`wake_folder`).
        on_wake: Called on the listener thread for each wake-up received.
    """

    def __init__(self, folder: Path, on_wake: Callable[[], None]) -> None:
        self.folder = folder
        self.on_wake = on_wake
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._own: str | None = None
        self._thread: threading.Thread | None = None
        self._sender: socket.socket | None = None
        self._peers: list[str] = []
        self._listed = 0.0
        self._closed = False
        self._disabled = not hasattr(socket, "AF_UNIX")
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's listener (its socket, thread and
        name are the parent's), so that the child listens and rings on its own."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._listener = self._own = self._thread = self._sender = None
        self._lock = threading.Lock()
        self._listed = 0.0

    def listen(self) -> None:
        """Start receiving wake-ups (idempotent; quietly does nothing if the folder
        cannot be used)."""
        self._after_fork()
        if self._thread is not None or self._disabled:
            return
        with self._lock:
            if self._thread is not None or self._closed:
                return
            try:
                self.folder.mkdir(mode=0o700, exist_ok=True)
                name = f"{os.getpid()}-{os.urandom(4).hex()}"
                path = str(self.folder / name)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(path)
            except OSError as exc:
                log.debug("no cross-process wake-ups", reason=str(exc))
                self._disabled = True
                return
            self._listener, self._own = sock, name
            self._listed = 0.0
            self._thread = threading.Thread(
                target=self._receive, name="eventhub:wakeup", daemon=True
            )
            self._thread.start()

    def _receive(self) -> None:
        sock = self._listener
        assert sock is not None
        while True:
            try:
                sock.recv(16)
            except OSError:
                return
            if self._closed:
                return
            self.on_wake()

    def ring(self) -> None:
        """Wake the listening processes (but this one)."""
        if self._disabled:
            return
        self._after_fork()
        now = time.monotonic()
        if now - self._listed > _PEERS_TTL:
            try:
                names = os.listdir(self.folder)
            except OSError:
                names = []
            self._peers = [n for n in names if n != self._own]
            self._listed = now
        if not self._peers:
            return
        sender = self._sender
        if sender is None:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.setblocking(False)
            self._sender = sender
        for name in self._peers:
            path = str(self.folder / name)
            try:
                sender.sendto(b"!", path)
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody listens there any more (a killed process): tidy up.
                with contextlib.suppress(OSError):
                    os.unlink(path)
                self._listed = 0.0
            except OSError:
                pass  # a full buffer: that process has wake-ups pending anyway

    def close(self) -> None:
        """Stop listening and remove this process's socket."""
        self._after_fork()
        with self._lock:
            self._closed = True
            listener, own, thread = self._listener, self._own, self._thread
            self._listener = self._thread = None
        if listener is not None and own is not None:
            path = str(self.folder / own)
            with contextlib.suppress(OSError):
                os.unlink(path)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if thread is not None:
            thread.join(1.0)
        if self._sender is not None:
            self._sender.close()
            self._sender = None
