"""The SQLAlchemy engine behind the ``sql`` integration and the ``sql`` source.

One place decides how eventhub talks to a database:

- **Read-only is enforced by the database**, never by reading SQL text. SQLite: a
  file is opened with a ``mode=ro`` URI (the library refuses every write, a
  ``PRAGMA`` included). PostgreSQL: the session starts with
  ``default_transaction_read_only = on``, and every transaction eventhub begins
  is made ``READ ONLY`` before its one statement runs, so a statement that turns
  the session default off changes nothing for the next one. MySQL / MariaDB: ``SET
  SESSION TRANSACTION READ ONLY`` on connect.
- **A statement timeout**: PostgreSQL's ``statement_timeout``, MySQL's
  ``max_execution_time`` (SELECT only: MySQL has no other), and for SQLite a
  progress handler that interrupts a statement past its deadline, the rows it is
  fetching included.
- **One statement per call, parameters bound**: the statement goes to the driver
  with its parameters, never formatted into the text. On a read-only PostgreSQL
  connection psycopg (3) prepares every statement, so the server refuses a text of
  several (``COMMIT; INSERT ...``). psycopg2 sends several statements as one text:
  with it, or on any database, the strongest guarantee is a role granted SELECT
  only; eventhub's read-only mode is the second line.
- **Errors name the integration and the statement's first line**, with what the
  database said; never the URL's password (it is registered as a secret when the
  URL is parsed, and SQLAlchemy's own message, which prints the parameters, is not
  used).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import quote

from eventhub.errors import (
    ConfigError,
    EventHubError,
    MissingDependency,
    TransientError,
    UserError,
)
from eventhub.redact import redact_text, register_secret

__all__ = [
    "ReadOnlyIntegration",
    "SQLError",
    "SQLTimeout",
    "SQLUnavailable",
    "open_engine",
]

#: The driver package each database needs, for the install hint.
DRIVERS = {
    "postgresql": "psycopg[binary]",
    "mysql": "pymysql",
    "mariadb": "pymysql",
    "mssql": "pyodbc",
    "oracle": "oracledb",
}
_DEADLINE = "eventhub.deadline"


class SQLError(EventHubError):
    """A statement failed at the database.

    Attributes:
        name: The integration's (or source's) configured name.
        statement: The first line of the statement (at most 200 characters).
        problem: What the database said (its first line).
    """

    def __init__(self, name: str, statement: str, problem: str) -> None:
        self.name = name
        self.statement = first_line(statement)
        self.problem = redact_text(problem)
        where = f" running {self.statement!r}" if self.statement else ""
        super().__init__(f"sql {name!r}{where}: {self.problem}")


class SQLTimeout(SQLError, TransientError):
    """A statement ran past ``statement_timeout`` and was cancelled."""


class SQLUnavailable(SQLError, TransientError):
    """The database could not be reached (worth retrying)."""


class ReadOnlyIntegration(SQLError, UserError):
    """``execute_update`` on an integration configured ``read_only = true``."""


def first_line(statement: str) -> str:
    """The first non-blank line of a statement, trimmed to 200 characters."""
    for line in statement.strip().splitlines():
        if line.strip():
            line = " ".join(line.split())
            return line if len(line) <= 200 else line[:199] + "…"
    return ""


def sqlalchemy() -> Any:
    """The sqlalchemy module, or the install hint."""
    try:
        import sqlalchemy as sa
    except ImportError:
        raise MissingDependency("sqlalchemy", "sql") from None
    return sa


def open_engine(
    where: str,
    url: str,
    *,
    read_only: bool = True,
    statement_timeout: float = 30.0,
    pool_size: int = 5,
) -> Any:
    """An SQLAlchemy engine for ``url`` with the read-only mode and the timeout
    enforced at the database (see the module's docstring).

    Args:
        where: The config table, for errors (``integrations.warehouse``).
        url: Any SQLAlchemy URL. ``postgresql://`` takes psycopg (3) when psycopg2
            is not installed.

    Raises:
        ConfigError: a malformed URL or setting (the URL is never repeated).
        MissingDependency: SQLAlchemy or the database's driver is not installed.
    """
    sa = sqlalchemy()
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: url is missing (an SQLAlchemy URL)")
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(
            f"{where}: url is not an SQLAlchemy URL"
            " (dialect+driver://user:password@host:port/database)"
        ) from None
    register_secret(parsed.password)
    if not isinstance(read_only, bool):
        raise ConfigError(f"{where}: read_only must be true or false")
    if (
        isinstance(statement_timeout, bool)
        or not isinstance(statement_timeout, int | float)
        or not 0 < statement_timeout < 86400
    ):
        raise ConfigError(f"{where}: statement_timeout must be seconds, above 0")
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigError(f"{where}: pool_size must be a whole number, at least 1")
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        options.update(_sqlite_options(where, parsed, read_only))
    else:
        parsed = _with_installed_driver(parsed)
        options.update(pool_size=pool_size, max_overflow=0, pool_timeout=30)
        if read_only and parsed.drivername == "postgresql+psycopg":
            # Every statement prepared, so sent by the extended protocol, which
            # takes one command: "COMMIT; INSERT ..." is refused by the server.
            options["connect_args"] = {"prepare_threshold": 0}
    try:
        engine = sa.create_engine(parsed, **options)
    except ImportError as exc:
        package = DRIVERS.get(backend, getattr(exc, "name", None) or "its driver")
        raise ConfigError(
            f"{where}: the {backend} driver is not installed: pip install"
            f" 'eventhub[sql]' '{package}'"
        ) from None
    except sa.exc.NoSuchModuleError:
        raise ConfigError(
            f"{where}: SQLAlchemy has no dialect {parsed.drivername!r}"
        ) from None
    except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {redact_text(str(exc))}") from None
    _listen(sa, engine, backend, read_only, float(statement_timeout))
    return engine


def _with_installed_driver(parsed: Any) -> Any:
    if parsed.drivername == "postgresql" and find_spec("psycopg2") is None:
        if find_spec("psycopg") is not None:
            return parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_options(where: str, parsed: Any, read_only: bool) -> dict[str, Any]:
    database = parsed.database or ""
    memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    if not read_only:
        return {}
    if memory:
        raise ConfigError(
            f"{where}: an in-memory SQLite database starts empty at every connection:"
            " name a file, or set read_only = false"
        )
    path = Path(database).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}: no SQLite database at {str(path)!r}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)

    return {"creator": connect}


def _listen(
    sa: Any, engine: Any, backend: str, read_only: bool, timeout: float
) -> None:
    """Session settings on every new connection, the per-transaction read-only
    mode, and SQLite's deadline."""
    milliseconds = max(1, round(timeout * 1000))

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi: Any, record: Any) -> None:
        settings: list[str] = []
        if backend == "postgresql":
            settings = [
                f"SET statement_timeout = {milliseconds}",
                "SET TimeZone = 'UTC'",
            ]
            if read_only:
                settings.append("SET default_transaction_read_only = on")
        elif backend in ("mysql", "mariadb"):
            settings = [f"SET SESSION max_execution_time = {milliseconds}"]
            if read_only:
                settings.append("SET SESSION TRANSACTION READ ONLY")
        elif backend == "sqlite":
            deadline = [math.inf]
            record.info[_DEADLINE] = deadline
            # Every 1,000 virtual machine steps: a few microseconds.
            dbapi.set_progress_handler(lambda: time.monotonic() > deadline[0], 1000)
        if settings:
            cursor = dbapi.cursor()
            try:
                for statement in settings:
                    cursor.execute(statement)
            finally:
                cursor.close()
            dbapi.commit()

    if backend == "sqlite":

        @sa.event.listens_for(engine, "before_cursor_execute")
        def arm(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            deadline = conn.info.get(_DEADLINE)
            if deadline is not None:
                deadline[0] = time.monotonic() + timeout

        @sa.event.listens_for(engine, "checkin")
        def disarm(dbapi: Any, record: Any) -> None:
            deadline = record.info.get(_DEADLINE)
            if deadline is not None:
                deadline[0] = math.inf

    if read_only and backend == "postgresql":

        @sa.event.listens_for(engine, "begin")
        def read_only_transaction(conn: Any) -> None:
            # Whatever the session default says by now. A transaction of
            # eventhub's runs one statement: a statement that makes it read-write
            # ends it too.
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")


@contextmanager
def database_errors(name: str, statement: str) -> Iterator[None]:
    """Turn what SQLAlchemy and the driver raise into :class:`SQLError` (or its
    timeout / unavailable kinds), naming ``name`` and the statement's first line."""
    sa = sqlalchemy()
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise _error(sa, name, statement, exc) from None
    except sa.exc.TimeoutError:
        raise SQLUnavailable(
            name, statement, "every pooled connection is busy (pool_size)"
        ) from None
    except sa.exc.ArgumentError as exc:
        raise SQLError(name, statement, _problem(str(exc))) from None
    except sa.exc.StatementError as exc:  # a missing bind parameter, say
        raise SQLError(name, statement, _problem(str(exc.orig or exc))) from None


def _error(sa: Any, name: str, statement: str, exc: Any) -> SQLError:
    orig = exc.orig
    problem = _problem(str(orig) if orig is not None else str(exc))
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    code = orig.args[0] if orig is not None and orig.args else None
    if (
        state == "57014"  # PostgreSQL: query_canceled
        or (isinstance(orig, sqlite3.OperationalError) and problem == "interrupted")
        or code == 3024  # MySQL: maximum statement execution time exceeded
    ):
        return SQLTimeout(
            name, statement, f"cancelled by statement_timeout ({problem})"
        )
    if exc.connection_invalidated or (
        isinstance(exc, sa.exc.OperationalError)
        and state in (None, "08001", "08006")
        and not isinstance(orig, sqlite3.OperationalError)
    ):
        return SQLUnavailable(name, statement, problem)
    return SQLError(name, statement, problem)


def _problem(text: str) -> str:
    for line in text.strip().splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= 300 else line[:299] + "…"
    return "failed"


def check_params(name: str, params: Any) -> Mapping[str, Any]:
    """The parameters of a statement: a mapping of names (``:name`` in the text)
    to values, or nothing."""
    if params is None:
        return {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise SQLError(
            name,
            "",
            "params must be a mapping of names to values (written :name in the"
            f" statement), not {type(params).__name__}",
        )
    return params
