"""The state database: one SQLite file per hub, shared by threads and processes.

Every thread gets its own connection. Writers take the write lock up front with
``BEGIN IMMEDIATE`` (a deferred read-then-write transaction fails at once under
contention whatever ``busy_timeout`` says) and retry past ``busy_timeout`` until a
deadline, so "database is locked" never reaches a caller as such. Schema changes are
named, append-only migrations applied under that same write lock.

Faults of the storage never reach a caller as ``sqlite3`` errors either: every
statement run on a connection made here raises them as eventhub's errors, chosen by
SQLite's result code (:func:`storage_fault`): a full disk is
:class:`~eventhub.errors.StorageFull`, a damaged file
:class:`~eventhub.errors.StorageCorrupt`, an I/O error
:class:`~eventhub.errors.StorageIOError`, a file that cannot be written
:class:`~eventhub.errors.StorageReadOnly`; an error whose text is not UTF-8,
which only a damaged file can give, is ``StorageCorrupt`` too. "Busy" and "locked"
stay ``sqlite3`` errors for the retry loops (this module's, and callers' probes); a
write that stays locked past its deadline is :class:`~eventhub.errors.StorageBusy`.

Opening checks what is cheap: that the file starts with SQLite's header and that
SQLite can read its first page and schema. :meth:`StateDB.integrity_problems` runs
SQLite's page-by-page check (``eventhub status``, the daemon's start).

A database opened ``readonly`` is never written, not even to switch it to WAL or
to migrate it: its readers need no write access to the file or its folder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, NoReturn, Self

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import (
    ConfigError,
    StorageBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
    StorageIOError,
    StorageNeedsUpgrade,
    StorageReadOnly,
)

Synchronous = Literal["FULL", "NORMAL", "OFF"]
MEMORY = ":memory:"
#: Bytes a write-ahead log is cut back to when it restarts after a checkpoint
#: (without a limit, the file keeps the size of the largest burst it took).
DEFAULT_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
_SQLITE_HEADER = b"SQLite format 3\x00"

# SQLite's primary result codes for faults of the storage, and eventhub's errors.
_FAULTS: dict[int, type[StorageError]] = {
    sqlite3.SQLITE_FULL: StorageFull,
    sqlite3.SQLITE_CORRUPT: StorageCorrupt,
    sqlite3.SQLITE_NOTADB: StorageCorrupt,
    sqlite3.SQLITE_IOERR: StorageIOError,
    sqlite3.SQLITE_CANTOPEN: StorageIOError,
    sqlite3.SQLITE_READONLY: StorageReadOnly,
}
_CONTENTION = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

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


def storage_fault(
    exc: BaseException, path: str | os.PathLike[str]
) -> StorageError | None:
    """The eventhub error for a ``sqlite3`` error that is a fault of the storage
    of ``path`` (disk full, damaged file, I/O error, read-only), chosen by SQLite's
    result code; None for any other error (a constraint, a bad statement, a busy
    database).

    Args:
        exc: The exception raised by :mod:`sqlite3`.
        path: The database file it was raised for.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or not isinstance(code, int):
        return None
    kind = _FAULTS.get(code & 0xFF)
    if kind is None:
        return None
    return kind(str(path), str(exc))


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _CONTENTION


def _raise_fault(exc: Exception, conn: sqlite3.Connection) -> NoReturn:
    path = getattr(conn, "eventhub_path", "?")
    if isinstance(exc, UnicodeDecodeError):
        # SQLite's error text could not be read: its own messages are ASCII, so
        # the text came from the file (a name in a damaged schema, say).
        said = exc.object.decode("utf-8", "replace")
        raise StorageCorrupt(path, f"{said} (not UTF-8)") from exc
    fault = storage_fault(exc, path)
    if fault is None:
        raise exc
    raise fault from exc


class _Cursor(sqlite3.Cursor):
    """A cursor raising storage faults as eventhub's errors (see the module)."""

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        try:
            return super().execute(sql, parameters)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Self:
        try:
            return super().executemany(sql, seq_of_parameters)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            _raise_fault(exc, self.connection)


class _Connection(sqlite3.Connection):
    """A connection whose statements raise storage faults as eventhub's errors;
    ``eventhub_path`` names the database file in them."""

    eventhub_path: str

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> Any:
        return self.cursor().executescript(sql_script)


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
        readonly: Open the file (which must exist) read-only: it is never written
            (no switch to WAL, no migration: a database that needs one raises
            :class:`~eventhub.errors.StorageNeedsUpgrade`). SQLite makes its
            ``-wal`` and ``-shm`` files beside it if the folder lets it; in a folder
            this process cannot write, a database with no write-ahead log beside it
            is read as immutable.
        journal_size_limit: Bytes the write-ahead log is cut back to when it
            restarts after a checkpoint (-1: never cut back).

    Raises:
        ConfigError: for a path that is empty, is not a regular file, or is a file
            that is not a SQLite database.
        StorageError: when the database cannot be read (damaged, I/O error).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        write_deadline: float = 60.0,
        readonly: bool = False,
        journal_size_limit: int = DEFAULT_JOURNAL_SIZE_LIMIT,
    ) -> None:
        synchronous = synchronous.upper()  # type: ignore[assignment]
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ConfigError(
                f"synchronous must be FULL or NORMAL, not {synchronous!r}"
            )
        if busy_timeout < 0 or write_deadline < 0:
            raise ConfigError("busy_timeout and write_deadline must not be negative")
        if journal_size_limit < -1:
            raise ConfigError("journal_size_limit must be a number of bytes (or -1)")
        if not str(path):
            raise ConfigError("the path of the state database is empty")
        self._tempdir: str | None = None
        if str(path) == MEMORY:
            if readonly:
                raise ConfigError("a :memory: state database cannot be read-only")
            self._tempdir = tempfile.mkdtemp(prefix="eventhub-")
            path = os.path.join(self._tempdir, "state.db")
            synchronous = "OFF"
        self.path = Path(path).absolute()
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"folder of the state database does not exist: {self.path.parent}"
            )
        _check_file(self.path, must_exist=readonly)
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.write_deadline = write_deadline
        self.readonly = readonly
        self.journal_size_limit = journal_size_limit
        self._uri = _read_only_uri(self.path) if readonly else self.path.as_uri()
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
        """A new connection with eventhub's pragmas (callers own and close it).

        Its statements raise storage faults as eventhub's errors (see the module).

        Raises:
            ConfigError: if the file cannot be opened at all.
            StorageError: if it cannot be read (damaged, I/O error, read-only).
        """
        try:
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                factory=_Connection,
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open state database {self.path}: {exc}") from exc
        conn.eventhub_path = str(self.path)
        try:
            if not self.readonly:
                self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA journal_size_limit={int(self.journal_size_limit)}")
            # Reads the first page and the schema: a file SQLite cannot read as a
            # database fails here, at open, rather than in the middle of some work.
            self._retry_busy(lambda: conn.execute("SELECT count(*) FROM sqlite_master"))
        except BaseException:
            conn.close()
            raise
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
            StorageError: for a fault of the storage (disk full, I/O error,
                damaged or read-only file); nothing of the transaction is kept.
        """
        if self.readonly:
            raise StorageReadOnly(str(self.path), "it was opened read-only")
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
                    try:
                        conn.execute("ROLLBACK")
                    except (sqlite3.Error, StorageError):
                        pass  # the error that made us roll back says more
                raise

    def _retry_busy(self, action: Callable[[], object]) -> None:
        deadline = time.monotonic() + self.write_deadline
        delay = 0.001
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StorageBusy(str(self.path), self.write_deadline) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def migrate(self, migrations: Migrations) -> None:
        """Apply pending migrations under the write lock (safe across processes).
        With none pending, nothing is written (readers never queue for the lock).

        Raises:
            StorageNeedsUpgrade: when some are pending and the database is open
                read-only.
        """
        conn = self.connection()
        db = sqlite_utils.Database(conn)
        pending = migrations.pending(db)
        if not pending:
            return
        if self.readonly:
            raise StorageNeedsUpgrade(
                str(self.path), [f"{migrations.name} {m.name}" for m in pending]
            )
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

    def integrity_problems(self, *, full: bool = False, limit: int = 100) -> list[str]:
        """What SQLite's check of every page of the file finds wrong (empty when
        nothing is). It reads the whole file: about a second per gigabyte.

        Args:
            full: Run ``PRAGMA integrity_check`` (also compares every index with
                its table: several times slower) instead of ``quick_check``.
            limit: Report at most this many problems.
        """
        pragma = "integrity_check" if full else "quick_check"
        try:
            rows = self.connection().execute(f"PRAGMA {pragma}({int(limit)})")
            lines = [line for row in rows for line in str(row[0]).splitlines()]
        except StorageCorrupt as exc:
            return [exc.problem]
        # A report starts with a line naming the schema ("*** in database main
        # ***"); only the main one is checked here.
        return [line for line in lines if line != "ok" and not line.startswith("***")]

    def check_integrity(self, *, full: bool = False) -> None:
        """Raise :class:`~eventhub.errors.StorageCorrupt` if
        :meth:`integrity_problems` finds any (the first ones in the message)."""
        problems = self.integrity_problems(full=full)
        if problems:
            pragma = "integrity_check" if full else "quick_check"
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise StorageCorrupt(
                str(self.path), f"{pragma}: {'; '.join(problems[:3])}{more}"
            )

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


def _check_file(path: Path, *, must_exist: bool) -> None:
    """Refuse what cannot be a state database before SQLite opens it: a path that
    is not a regular file (a device such as /dev/null, a folder), a file that does
    not start with SQLite's header, or (``must_exist``) no file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if must_exist:
            raise ConfigError(f"no state database at {path}") from None
        return
    except OSError as exc:
        raise ConfigError(
            f"cannot open state database {path}: {exc.strerror}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ConfigError(f"state database {path} is {kind}: it must be a file")
    if info.st_size == 0:
        return  # a new database
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(
            f"cannot read state database {path}: {exc.strerror}"
        ) from None
    if header != _SQLITE_HEADER:
        raise ConfigError(
            f"{path} is not a usable SQLite database: it does not start with"
            " SQLite's header (if it is the state database, it is damaged: restore"
            " it from a backup, see docs/operations.md)"
        )


def _read_only_uri(path: Path) -> str:
    """The URI that reads ``path`` without writing anything.

    ``mode=ro`` reads a database in WAL mode if its ``-shm`` file exists or can be
    made. In a folder this process cannot write, with neither, SQLite cannot
    share the log's index; with no log beside the database (or an empty one)
    nothing is missing from the file itself, which is then read as immutable.

    Raises:
        StorageReadOnly: when a log with commits lies beside the database and its
            index cannot be made.
    """
    uri = f"{path.as_uri()}?mode=ro"
    try:
        probe = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open state database {path}: {exc}") from exc
    try:
        probe.execute("PRAGMA schema_version")
        return uri
    except sqlite3.Error as exc:
        code = exc.sqlite_errorcode if isinstance(exc, sqlite3.DatabaseError) else 0
        if code & 0xFF not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            return uri  # not about the read-only open: the first statement says
    finally:
        probe.close()
    wal = path.with_name(path.name + "-wal")
    try:
        wal_bytes = wal.stat().st_size
    except FileNotFoundError:
        wal_bytes = 0
    if wal_bytes:
        raise StorageReadOnly(
            str(path),
            f"its write-ahead log {wal.name} holds commits, and reading them needs"
            f" {path.name}-shm beside it, in a folder this user cannot write; or"
            " copy the database with its -wal file to a folder it can write",
        )
    return f"{uri}&immutable=1"
