"""The ``sql`` document source: the rows of a table, or of a read-only query.

::

    [sources.kb]
    kind = "sql"
    url = { env = "KB_URL" }
    table = "articles"                     # or query = "SELECT ..." (read-only)
    id_column = "id"
    updated_column = "updated_at"
    title_column = "title"
    text_columns = ["summary", "body"]
    metadata_columns = ["category"]

**Incremental sync by keyset**, never OFFSET: the first page is ``WHERE updated >=
:since ORDER BY updated, id LIMIT n``, each next one ``WHERE (updated, id) >
(:last_updated, :last_id)``, so a page costs the same at any depth and a row moved
while the sync runs is neither skipped nor read twice. ``since`` is the last change
seen minus the sync's ``overlap`` (300 s by default): a transaction that commits
late with an earlier ``updated_at`` is still read; rows read again are
deduplicated by content hash and cost nothing. Each page is its own short
read-only transaction.

**Deletions** by the set of ids at prune time (``SELECT id``, by keyset pages of
10,000), every hour by default (``prune`` in ``[sources.NAME]``).

**Times**: the updated column may be a timestamp (with or without a time zone), a
date, Unix seconds (or milliseconds, past the year 5000 in seconds) or ISO text;
naive values are in ``timezone`` (default UTC). A row whose updated column is
NULL has no change time: first and full syncs read it, incremental ones cannot.

**Values**: the title is the ``title_column`` (else the table's name and the id);
the text joins the non-empty ``text_columns`` with blank lines; numbers, dates,
JSON and UUIDs are written as text, binary values left out; metadata keeps JSON
values (dates as ISO text, decimals as text: no precision lost).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from eventhub.documents import Document, Source
from eventhub.errors import ConfigError

from ._engine import SQLError, database_errors, open_engine, sqlalchemy
from .integration import check_table

#: Rows a page asks for.
PAGE_SIZE = 500
#: Ids a page of the complete listing (prune) asks for.
ID_PAGE = 10_000
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: Unix times above this are milliseconds (in seconds it is the year 5138).
_MILLISECONDS = 10**11


class SQLSource(Source):
    """Rows of one table (or query) of a database, as documents.

    Args:
        url: Any SQLAlchemy URL; the source only reads, through a read-only
            connection (see :mod:`._engine`).
        table: The table (or view) to read; its name and the columns are quoted
            as identifiers, and when the first statement fails they are checked
            against the database's lists (a missing one is named).
        query: Instead of ``table``: a SELECT whose rows are read (wrapped as a
            subquery: it must give the configured columns).
        id_column: The primary key (one column): the document id.
        updated_column: When a row last changed; None reads every row at every
            sync (deduplicated by hash).
        title_column: The title.
        text_columns: The searchable text, in order.
        metadata_columns: Kept as the document's metadata.
        url_template: The document's link, ``{column}`` replaced by the row's
            value (URL-quoted): ``"https://kb.example.com/articles/{id}"``.
        schema: The table's schema (default: the connection's).
        timezone: The zone of naive times (default UTC).
        page_size: Rows per page.
        statement_timeout: Seconds a page may take.
        pool_size: Connections kept open.

    Raises:
        ConfigError: a malformed setting.
    """

    kind = "sql"
    ordered = True
    default_prune = 3600.0

    def __init__(
        self,
        *,
        url: str = "",
        table: str | None = None,
        query: str | None = None,
        id_column: str = "id",
        updated_column: str | None = None,
        title_column: str | None = None,
        text_columns: Sequence[str] = (),
        metadata_columns: Sequence[str] = (),
        url_template: str | None = None,
        schema: str | None = None,
        timezone: str = "UTC",
        page_size: int = PAGE_SIZE,
        statement_timeout: float = 30.0,
        pool_size: int = 2,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        where = "sql source"
        if (table is None) == (query is None):
            raise ConfigError(f"{where}: give either table or query")
        for key, value in (("table", table), ("query", query)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}: {key} must be a non-empty string")
        columns = {"id_column": id_column, "updated_column": updated_column}
        columns["title_column"] = title_column
        for key, value in columns.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}: {key} must be a column name")
        if not isinstance(id_column, str) or not id_column:
            raise ConfigError(f"{where}: id_column must be a column name")
        for key, names in (
            ("text_columns", text_columns),
            ("metadata_columns", metadata_columns),
        ):
            if isinstance(names, str) or not all(
                isinstance(n, str) and n for n in names
            ):
                raise ConfigError(f"{where}: {key} must be a list of column names")
        if not text_columns and title_column is None:
            raise ConfigError(f"{where}: text_columns is empty (and no title_column)")
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= 100_000
        ):
            raise ConfigError(f"{where}: page_size must be between 1 and 100000")
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"{where}: unknown timezone {timezone!r}") from None
        self.table = table
        self.query = query
        self.schema = schema
        self.id_column = id_column
        self.updated_column = updated_column
        self.title_column = title_column
        self.text_columns = list(text_columns)
        self.metadata_columns = list(metadata_columns)
        self.url_template = url_template
        if url_template is not None and not isinstance(url_template, str):
            raise ConfigError(f"{where}: url_template must be a string")
        self.page_size = page_size
        self.columns = list(
            dict.fromkeys(
                [
                    id_column,
                    *([updated_column] if updated_column else []),
                    *([title_column] if title_column else []),
                    *self.text_columns,
                    *self.metadata_columns,
                    *(_PLACEHOLDER.findall(url_template or "")),
                ]
            )
        )
        self.engine = open_engine(
            where,
            url,
            read_only=True,
            statement_timeout=statement_timeout,
            pool_size=pool_size,
        )
        self._from: Any = None
        self._id_type: type | None = None
        self._diagnosed = False  # a failure was checked against the database's lists

    def stop(self) -> None:
        self.engine.dispose()

    # The feed ---------------------------------------------------------------------

    def changes(self, since: datetime | None) -> Iterator[Document]:
        sa = sqlalchemy()
        rows = self._rows()
        ident = rows.c[self.id_column]
        if self.updated_column is None:
            yield from self._pages(sa.select(*rows.c), (ident,))
            return
        updated = rows.c[self.updated_column]
        if since is None:
            # Rows without a change time, by id, then every other one.
            yield from self._pages(
                sa.select(*rows.c).where(updated.is_(None)), (ident,)
            )
            yield from self._pages(
                sa.select(*rows.c).where(updated.is_not(None)), (updated, ident)
            )
            return
        sample = self._sample(updated)
        if sample is None:
            return  # no row has a change time
        start = self._bound(since, sample)
        yield from self._pages(
            sa.select(*rows.c).where(updated >= start), (updated, ident)
        )

    def fetch(self, id: str) -> Document | None:
        sa = sqlalchemy()
        rows = self._rows()
        ident = rows.c[self.id_column]
        value = self._id_value(id, ident)
        if value is None:
            return None
        found = self._run(sa.select(*rows.c).where(ident == value))
        return self._document(found[0]) if found else None

    def ids(self) -> Iterable[str]:
        sa = sqlalchemy()
        ident = self._rows().c[self.id_column]
        statement = sa.select(ident).order_by(ident).limit(ID_PAGE)
        page = statement
        while True:  # by keyset, each page its own short transaction
            keys = [row[self.id_column] for row in self._run(page)]
            yield from map(str, keys)
            if len(keys) < ID_PAGE:
                return
            page = statement.where(ident > keys[-1])

    # The queries ----------------------------------------------------------------

    def _rows(self) -> Any:
        """The selectable the pages read: the table (its name and columns quoted
        as identifiers, never text), or the query as a subquery."""
        if self._from is None:
            sa = sqlalchemy()
            columns = [sa.column(c) for c in self.columns]
            if self.query is not None:
                text = sa.text(self.query).columns(*columns)
                self._from = text.subquery("eventhub_rows")
            else:
                assert self.table is not None
                self._from = sa.table(self.table, *columns, schema=self.schema)
        return self._from

    def _diagnose(self) -> None:
        """After the first statement failed: the table, or a column, that is not
        there (checked against the database's own lists), as a config error."""
        if self.table is None:
            return  # a query: the database's message says what is wrong
        sa = sqlalchemy()
        with database_errors(self.name, f"describe {self.table}"):
            inspector = sa.inspect(self.engine)
            known = inspector.get_table_names(schema=self.schema)
            known += inspector.get_view_names(schema=self.schema)
        check_table(self.name, self.table, sorted(known))
        with database_errors(self.name, f"describe {self.table}"):
            present = [
                c["name"] for c in inspector.get_columns(self.table, schema=self.schema)
            ]
        missing = [c for c in self.columns if c not in present]
        if missing:
            raise ConfigError(
                f"sources.{self.name}: table {self.table!r} has no column"
                f" {', '.join(map(repr, missing))} (columns: {', '.join(present)})"
            )

    def _pages(self, statement: Any, order: tuple[Any, ...]) -> Iterator[Document]:
        """Every row of ``statement`` in ``order``, a keyset page at a time."""
        sa = sqlalchemy()
        statement = statement.order_by(*order).limit(self.page_size)
        page = statement
        while True:
            rows = self._run(page)
            for row in rows:
                yield self._document(row)
            if len(rows) < self.page_size:
                return
            last = rows[-1]
            keys = [last[column.name] for column in order]
            if len(order) == 1:
                page = statement.where(order[0] > keys[0])
            else:
                page = statement.where(sa.tuple_(*order) > sa.tuple_(*keys))

    def _run(self, statement: Any) -> list[Mapping[str, Any]]:
        try:
            with (
                database_errors(self.name, str(statement)),
                self.engine.connect() as conn,
            ):
                rows = [row._mapping for row in conn.execute(statement)]
                conn.rollback()
        except SQLError:
            if not self._diagnosed:
                self._diagnosed = True
                self._diagnose()
            raise
        return rows

    def _sample(self, updated: Any) -> Any:
        """One change time as the database gives it: what ``since`` is bound as."""
        sa = sqlalchemy()
        statement = sa.select(updated).where(updated.is_not(None)).limit(1)
        rows = self._run(statement)
        return rows[0][updated.name] if rows else None

    def _bound(self, since: datetime, sample: Any) -> Any:
        """``since`` in the kind of the database's change times."""
        local = since.astimezone(self.zone)
        if isinstance(sample, datetime):
            if sample.tzinfo is not None:
                return since.astimezone(UTC)
            return local.replace(tzinfo=None)
        if isinstance(sample, date):
            return local.date()
        if isinstance(sample, int | float | Decimal) and not isinstance(sample, bool):
            seconds = since.timestamp()
            return seconds * 1000 if sample > _MILLISECONDS else seconds
        if isinstance(sample, str):
            separator = "T" if "T" in sample[:11] else " "
            return local.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
        raise SQLError(
            self.name,
            "",
            f"updated_column {self.updated_column!r} holds"
            f" {type(sample).__name__} values, not times",
        )

    def _id_value(self, id: str, ident: Any) -> Any:
        """An id as the database compares it: of the type its ids have (a number,
        a UUID), else text; None when it cannot be one of them."""
        if self._id_type is None:
            rows = self._run(
                sqlalchemy().select(ident).where(ident.is_not(None)).limit(1)
            )
            sample = rows[0][self.id_column] if rows else ""
            self._id_type = type(sample)
        try:
            if self._id_type is int:
                return int(id)
            if self._id_type is uuid.UUID:
                return uuid.UUID(id)
        except ValueError:
            return None  # not an id of this table
        return id

    # Rows as documents ----------------------------------------------------------

    def _document(self, row: Mapping[str, Any]) -> Document:
        ident = str(row[self.id_column])
        title = _text(row[self.title_column]) if self.title_column else None
        parts = [_text(row[c]) for c in self.text_columns]
        text = "\n\n".join(p for p in parts if p)
        updated = (
            self._moment(row[self.updated_column]) if self.updated_column else None
        )
        return Document(
            id=ident,
            source=self.name,
            title=title or f"{self.table or self.name} {ident}",
            text=text,
            url=self._url(row),
            updated_at=updated,
            metadata={c: _json_value(row[c]) for c in self.metadata_columns},
        )

    def _url(self, row: Mapping[str, Any]) -> str | None:
        if self.url_template is None:
            return None
        return _PLACEHOLDER.sub(
            lambda m: quote(_text(row[m.group(1)]) or "", safe=""), self.url_template
        )

    def _moment(self, value: Any) -> datetime | None:
        """A change time as an aware UTC datetime (None when there is none or it
        cannot be read)."""
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=self.zone)
            return value.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(), self.zone).astimezone(UTC)
        if isinstance(value, int | float | Decimal):
            seconds = float(value)
            if seconds > _MILLISECONDS:
                seconds /= 1000
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        return None


def _text(value: Any) -> str:
    """A column's value as searchable text ("" for NULL and binary values)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)  # numbers, decimals, UUIDs, intervals ...


def _json_value(value: Any) -> Any:
    """A column's value as metadata: JSON, nothing lost."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID | timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict | list):
        return orjson.loads(orjson.dumps(value, default=str))
    return str(value)
