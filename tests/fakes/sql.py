"""The ``sql`` source's harnesses for the Source contract suite: a table of
articles in a real database, SQLite (a file) or PostgreSQL (one database per test on
the session's server, :class:`tests.servers.PostgreSQL`). Requests are the
statements the source's engine sends, counted at its cursor."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventhub.integrations.sql import SQLSource

SCHEMA = (
    "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, body TEXT,"
    " updated_at {time})"
)


class _SQLHarness:
    kind = "sql"
    server_note = ""
    requests_note = "requests = statements the source sent, counted at its cursor"

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._deleted: set[str] = set()
        self._statements = 0
        self._failing = False

    def _execute(self, statement: str, *params: Any) -> None:
        raise NotImplementedError

    def _url(self) -> str:
        raise NotImplementedError

    def source(self, **config: Any) -> SQLSource:
        import sqlalchemy as sa

        options = {
            "table": "articles",
            "updated_column": "updated_at",
            "title_column": "title",
            "text_columns": ["body"],
            **config,
        }
        source = SQLSource(url=self._url(), **options)
        source.name = "contract"
        sa.event.listen(source.engine, "before_cursor_execute", self._count)
        self._after_source()
        return source

    def _after_source(self) -> None:
        pass

    def _count(self, *args: Any) -> None:
        self._statements += 1

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        moment = updated_at.astimezone(UTC).replace(tzinfo=None)
        if key in self._ids and key not in self._deleted:
            self._execute(
                "UPDATE articles SET title = %s, body = %s, updated_at = %s"
                " WHERE id = %s",
                title,
                text,
                self._time(moment),
                self._ids[key],
            )
            return
        ident = self._ids.setdefault(key, len(self._ids) + 1)
        self._deleted.discard(key)
        self._execute(
            "INSERT INTO articles (id, title, body, updated_at)"
            " VALUES (%s, %s, %s, %s)",
            ident,
            title,
            text,
            self._time(moment),
        )

    def _time(self, moment: datetime) -> Any:
        return moment

    def delete(self, key: str) -> None:
        self._execute("DELETE FROM articles WHERE id = %s", self._ids[key])
        self._deleted.add(key)

    def id_of(self, key: str) -> str:
        return str(self._ids[key])

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = True

    def heal(self) -> None:
        self._failing = False

    @property
    def requests(self) -> int:
        return self._statements


class SQLiteHarness(_SQLHarness):
    """A table in a SQLite file; ``updated_at`` as ISO text, as SQLite keeps it."""

    server_note = "a SQLite file"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        super().__init__()
        self.path = tmp_path / "kb.db"
        self._away = tmp_path / "kb.db-away"
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute(SCHEMA.format(time="TEXT"))

    def _execute(self, statement: str, *params: Any) -> None:
        self._db.execute(statement.replace("%s", "?"), params)

    def _time(self, moment: datetime) -> Any:
        return moment.isoformat(sep=" ")

    def _url(self) -> str:
        if self._away.exists():
            self._away.rename(self.path)
        return f"sqlite:///{self.path}"

    def _after_source(self) -> None:
        if self._failing:  # the file goes away under a running source
            self.path.rename(self._away)

    def heal(self) -> None:
        super().heal()
        if self._away.exists():
            self._away.rename(self.path)

    def close(self) -> None:
        self._db.close()


class PostgreSQLHarness(_SQLHarness):
    """A table in a database of its own on the session's PostgreSQL; ``updated_at``
    a ``timestamp with time zone``."""

    def __init__(self, tmp_path: Path, request: Any) -> None:
        super().__init__()
        self.server = request.getfixturevalue("postgresql")
        self.server_note = f"a PostgreSQL server on 127.0.0.1:{self.server.port}"
        self.database = f"contract_{uuid.uuid4().hex[:12]}"
        self.server.create_database(self.database)
        self._db = self.server.connect(self.database, autocommit=True)
        self._db.execute(SCHEMA.format(time="timestamptz"))

    def _execute(self, statement: str, *params: Any) -> None:
        self._db.execute(statement, params)

    def _time(self, moment: datetime) -> Any:
        return moment.replace(tzinfo=UTC)

    def _url(self) -> str:
        return self.server.url_of(self.database)

    def _allow(self, allowed: bool) -> None:
        with self.server.connect(autocommit=True) as conn:
            conn.execute(
                f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS'
                f" {'true' if allowed else 'false'}"
            )
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.database,),
                )

    def fail_from_now(self, status: int = 500) -> None:
        super().fail_from_now(status)
        self._db.close()
        self._allow(False)

    def heal(self) -> None:
        super().heal()
        self._allow(True)
        self._db = self.server.connect(self.database, autocommit=True)

    def close(self) -> None:
        self._db.close()
