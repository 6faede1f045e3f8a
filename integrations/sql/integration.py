"""The ``sql`` integration: queries and updates on any database SQLAlchemy speaks.

::

    [integrations.warehouse]
    kind = "sql"
    url = { env = "WAREHOUSE_URL" }        # any SQLAlchemy URL
    read_only = true                       # default
    statement_timeout = 30                 # seconds
    pool_size = 5

In a workflow (``ctx.integration("warehouse")``) or an app::

    warehouse = hub.get_integration("warehouse")
    rows = warehouse.execute_query(
        "SELECT id, total FROM orders WHERE customer = :customer", {"customer": 42}
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventhub.integration import Integration

from ._engine import (
    ReadOnlyIntegration,
    SQLError,
    check_params,
    database_errors,
    open_engine,
    sqlalchemy,
)

#: ``execute_query`` refuses a result larger than this (``max_rows`` to change).
MAX_ROWS = 100_000


class SQLIntegration(Integration):
    """Queries, updates and the schema of one database.

    Args:
        url: Any SQLAlchemy URL (``sqlite:///kb.db``,
            ``postgresql://user:password@host/db``, ``mysql+pymysql://...``).
        read_only: Refuse writes, at the database (default): see
            :mod:`._engine`.
        statement_timeout: Seconds a statement may run before the database
            cancels it.
        pool_size: Connections kept open.
        schema: The schema tables are listed and looked up in (default: the
            connection's).
        max_rows: Most rows ``execute_query`` returns; a larger result is an
            error, never cut short.

    Raises:
        ConfigError: a malformed URL or setting.
        MissingDependency: SQLAlchemy or the driver is not installed.
    """

    kind = "sql"

    def __init__(
        self,
        *,
        url: str = "",
        read_only: bool = True,
        statement_timeout: float = 30.0,
        pool_size: int = 5,
        schema: str | None = None,
        max_rows: int = MAX_ROWS,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        where = "sql integration"
        self.read_only = read_only
        self.schema = schema
        self.max_rows = max_rows
        self.engine = open_engine(
            where,
            url,
            read_only=read_only,
            statement_timeout=statement_timeout,
            pool_size=pool_size,
        )

    def stop(self) -> None:
        self.engine.dispose()

    def execute_query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The rows of one statement, as dicts of column name to value.

        Args:
            sql: One statement; values are ``:name`` placeholders (a literal colon
                followed by a word is written ``\\:``).
            params: The values of the placeholders, bound by the driver.

        Raises:
            SQLError: the database refused it (a write on a read-only
                integration, a syntax error ...), naming this integration and the
                statement's first line; :class:`SQLTimeout` past
                ``statement_timeout``; :class:`SQLUnavailable` when the database
                cannot be reached.
        """
        sa = sqlalchemy()
        bound = check_params(self.name, params)
        with database_errors(self.name, sql), self.engine.connect() as conn:
            result = conn.execute(sa.text(sql), bound)
            if not result.returns_rows:
                conn.commit()
                return []
            keys = list(result.keys())
            rows = result.fetchmany(self.max_rows + 1)
            if len(rows) > self.max_rows:
                raise SQLError(
                    self.name,
                    sql,
                    f"more than max_rows ({self.max_rows}) rows: add a LIMIT, or"
                    " raise max_rows",
                )
            conn.commit()
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def execute_update(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one INSERT, UPDATE or DELETE (or DDL) and commit it; the rows it
        changed (-1 when the database does not say).

        Raises:
            ReadOnlyIntegration: this integration is ``read_only``.
            SQLError: as :meth:`execute_query`; nothing is committed.
        """
        if self.read_only:
            raise ReadOnlyIntegration(
                self.name,
                sql,
                "the integration is read_only: set read_only = false in"
                f" [integrations.{self.name}] to write",
            )
        sa = sqlalchemy()
        bound = check_params(self.name, params)
        with database_errors(self.name, sql), self.engine.begin() as conn:
            result = conn.execute(sa.text(sql), bound)
            count = result.rowcount
        return int(count if count is not None else -1)

    def list_tables(self) -> list[str]:
        """The tables of the schema, sorted."""
        sa = sqlalchemy()
        with database_errors(self.name, "list tables"):
            return sorted(sa.inspect(self.engine).get_table_names(schema=self.schema))

    def get_table_schema(self, table: str) -> list[dict[str, Any]]:
        """The columns of ``table``, in order: ``name``, ``type`` (as the database
        spells it), ``nullable``, ``primary_key``, ``default`` (the server
        default's SQL, or None).

        Raises:
            SQLError: no table of that name (checked against :meth:`list_tables`
                before anything is sent).
        """
        sa = sqlalchemy()
        check_table(self.name, table, self.list_tables())
        with database_errors(self.name, f"describe {table}"):
            inspector = sa.inspect(self.engine)
            columns = inspector.get_columns(table, schema=self.schema)
            keys = inspector.get_pk_constraint(table, schema=self.schema)
        primary = set(keys.get("constrained_columns") or ())
        return [
            {
                "name": column["name"],
                "type": str(column["type"]),
                "nullable": bool(column.get("nullable", True)),
                "primary_key": column["name"] in primary,
                "default": (
                    None if column.get("default") is None else str(column["default"])
                ),
            }
            for column in columns
        ]


def check_table(name: str, table: Any, known: list[str]) -> str:
    """``table`` if it is one of ``known``; else an error saying so."""
    if not isinstance(table, str) or table not in known:
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        raise SQLError(
            name,
            "",
            f"no table {str(table)[:100]!r} (tables: {shown or 'none'})",
        )
    return table
