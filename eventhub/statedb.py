"""The state database: one SQLite file per hub, shared by threads and processes.

Every thread gets its own connection. Writers take the write lock up front with
``BEGIN IMMEDIATE`` (a deferred read-then-write transaction fails at once under
contention whatever ``busy_timeout`` says) and retry past ``busy_timeout`` until a
deadline, so "database is locked" never reaches a caller as such. Schema changes are
named, append-only migrations applied under that same write lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import ConfigError, StorageBusy

Synchronous = Literal["FULL", "NORMAL", "OFF"]
MEMORY = ":memory:"

_state_migrations = Migrations("eventhub.state")


@_state_migrations()
def m001_identity(db: sqlite_utils.Database) -> None:
    # A random id made once per database: what a side file (the FAISS cache, a
    # daemon's local socket) proves it belongs to. A copied file keeps it.
    db.execute(
        "CREATE TABLE database_identity (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " uuid TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO database_identity (id, uuid) VALUES (1, ?)", [uuid.uuid4().hex]
    )


class StateDB:
    """Connections to one state database file, configured the same way.

    Args:
        path: The database file, or ``":memory:"`` for a throw-away database (kept in
            a private temporary folder and removed on :meth:`close`, so that several
            threads can share it with the same semantics as a file).
        synchronous: ``"FULL"`` (default: a committed write survives power loss) or
            ``"NORMAL"`` (faster; the last commits may roll back on power loss, the
            file is never corrupted).
        busy_timeout: Seconds SQLite waits for a lock before our own retry loop.
        write_deadline: Seconds a write may wait for the lock in all before
            :class:`StorageBusy` is raised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        write_deadline: float = 60.0,
    ) -> None:
        synchronous = synchronous.upper()  # type: ignore[assignment]
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ConfigError(
                f"synchronous must be FULL or NORMAL, not {synchronous!r}"
            )
        if busy_timeout < 0 or write_deadline < 0:
            raise ConfigError("busy_timeout and write_deadline must not be negative")
        self._tempdir: str | None = None
        if str(path) == MEMORY:
            self._tempdir = tempfile.mkdtemp(prefix="eventhub-")
            path = os.path.join(self._tempdir, "state.db")
            synchronous = "OFF"
        self.path = Path(path).absolute()
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"folder of the state database does not exist: {self.path.parent}"
            )
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.write_deadline = write_deadline
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        self._closed = False
        self._identity: str | None = None
        # The first connection switches the file to WAL (persistent in the file).
        self.connection()
        NamedLock.use_file(self.lock_file())

    @property
    def is_temporary(self) -> bool:
        """Whether this is a ``":memory:"`` database that disappears on close."""
        return self._tempdir is not None

    def connect(self) -> sqlite3.Connection:
        """A new connection with eventhub's pragmas (callers own and close it)."""
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"cannot open state database {self.path}: {exc}") from exc
        try:
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(
                f"{self.path} is not a usable SQLite database: {exc}"
            ) from exc
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the database."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the state database is closed")
            conn = self.connect()
            self._local.conn = conn
            with self._connections_lock:
                # Close the connections of threads that have ended, so that an app
                # publishing from short-lived threads does not pile them up.
                for thread, old in list(self._connections.items()):
                    if not thread.is_alive():
                        del self._connections[thread]
                        _close_quietly(old)
                self._connections[threading.current_thread()] = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (``BEGIN IMMEDIATE``).

        Commits on success, rolls back on any exception.

        Raises:
            StorageBusy: when the write lock could not be had before the deadline.
        """
        conn = self.connection()
        # Writers of this process queue on a lock that wakes the next one at once;
        # SQLite's busy handler (which sleeps and polls) is left for other processes.
        with self._write_lock:
            self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
                self._retry_busy(lambda: conn.execute("COMMIT"))
            except BaseException:
                # Also when COMMIT itself failed: never leave the connection
                # mid-transaction.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _retry_busy(self, action: object) -> None:
        deadline = time.monotonic() + self.write_deadline
        delay = 0.001
        while True:
            try:
                action()  # type: ignore[operator]
                return
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() >= deadline:
                    raise StorageBusy(str(self.path), self.write_deadline) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def migrate(self, migrations: Migrations) -> None:
        """Apply pending migrations under the write lock (safe across processes).
        With none pending, nothing is written (readers never queue for the lock)."""
        conn = self.connection()
        db = sqlite_utils.Database(conn)
        if not migrations.pending(db):
            return
        with self.write():
            migrations.apply(db)

    @property
    def identity(self) -> str:
        """This database's random id, made once (at first use) and kept in the
        file: side files record it to prove which database they belong to."""
        if self._identity is None:
            query = "SELECT uuid FROM database_identity WHERE id = 1"
            try:
                row = self.connection().execute(query).fetchone()
            except sqlite3.OperationalError:  # made before identities existed
                row = None
            if row is None:
                self.migrate(_state_migrations)
                row = self.connection().execute(query).fetchone()
            self._identity = str(row[0])
        return self._identity

    def lock_file(self) -> Path:
        """The side file holding eventhub's cross-process locks for this database."""
        return self.path.with_name(self.path.name + "-locks")

    def close(self) -> None:
        """Close every connection; a ``":memory:"`` database is deleted."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, {}
        current = threading.current_thread()
        for thread, conn in connections.items():
            # Closing a connection another live thread may be using can hang; such a
            # connection is closed when its thread ends (and the thread gets a
            # "closed" error if it tries to open a new one).
            if thread is current or not thread.is_alive():
                _close_quietly(conn)
        self._local = threading.local()
        NamedLock.forget_file(self.lock_file())
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)


class NamedLock:
    """An exclusive, cross-process lock on a name, released when its holder dies.

    It is a POSIX record lock on one byte of a side file, at an offset derived from the
    name. The operating system drops it when the process exits however it exits, so a
    crashed consumer never blocks its successor. Within one process, a thread lock
    keeps two holders apart (POSIX record locks are per process).
    """

    _files: dict[Path, int] = {}
    _users: dict[Path, int] = {}
    _held: dict[tuple[Path, str], threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, lock_file: Path, name: str) -> None:
        self.lock_file = lock_file
        self.name = name
        # Offsets spread over 2**40 bytes: collisions between names are negligible.
        self._offset = 1 + (zlib.crc32(name.encode()) << 8 | len(name) % 256)
        self._owned = False
        with NamedLock._guard:
            self._thread_lock = NamedLock._held.setdefault(
                (lock_file, name), threading.Lock()
            )

    def acquire(self) -> bool:
        """Try to take the lock without waiting; True when it is now ours."""
        if self._owned:
            return True
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            fcntl.lockf(self._fd(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset)
        except OSError:
            self._thread_lock.release()
            return False
        self._owned = True
        return True

    def release(self) -> None:
        """Give the lock up (a no-op when not held)."""
        if not self._owned:
            return
        try:
            fcntl.lockf(self._fd(), fcntl.LOCK_UN, 1, self._offset)
        finally:
            self._owned = False
            self._thread_lock.release()

    @property
    def owned(self) -> bool:
        return self._owned

    @classmethod
    def use_file(cls, lock_file: Path) -> None:
        """Count one more user (a state database) of a lock file in this process."""
        with cls._guard:
            cls._users[lock_file] = cls._users.get(lock_file, 0) + 1

    @classmethod
    def forget_file(cls, lock_file: Path) -> None:
        """Count one user less; the last one closes the process's descriptor (which
        drops any lock still held on the file)."""
        with cls._guard:
            users = cls._users.get(lock_file, 0) - 1
            if users > 0:
                cls._users[lock_file] = users
                return
            cls._users.pop(lock_file, None)
            fd = cls._files.pop(lock_file, None)
            for key in [k for k in cls._held if k[0] == lock_file]:
                del cls._held[key]
        if fd is not None:
            os.close(fd)

    def _fd(self) -> int:
        # One descriptor per file for the life of the process: closing any descriptor
        # of a file drops every POSIX lock the process holds on it.
        with NamedLock._guard:
            fd = NamedLock._files.get(self.lock_file)
            if fd is None:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
                NamedLock._files[self.lock_file] = fd
            return fd


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass


def _forget_locks_in_child() -> None:
    # A forked child holds none of its parent's record locks; start it afresh.
    NamedLock._files = {}
    NamedLock._users = {}
    NamedLock._held = {}
    NamedLock._guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_locks_in_child)
