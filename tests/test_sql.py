"""The ``sql`` integration and source against real databases: SQLite files and a
real PostgreSQL server (tests/servers.py)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, datetime

import pytest
from eventhub.integrations.sql import (
    ReadOnlyIntegration,
    SQLError,
    SQLIntegration,
    SQLSource,
    SQLTimeout,
    SQLUnavailable,
)

from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.errors import ConfigError, EventHubError
from eventhub.testing import make_hub

from .servers import PG_PASSWORD

sa = pytest.importorskip("sqlalchemy")

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def kb(tmp_path):
    """A SQLite knowledge base: articles with ids, titles, two text columns, a
    category and ISO-text change times."""
    path = tmp_path / "kb.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, summary TEXT,"
            " body TEXT, category TEXT, updated_at TEXT)"
        )
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    1,
                    "Descaling",
                    "Monthly.",
                    "Run vinegar through it.",
                    "kitchen",
                    "2026-06-01 08:00:00",
                ),
                (
                    2,
                    "Printer",
                    None,
                    "Turn it off and on.",
                    "office",
                    "2026-06-01 09:00:00",
                ),
            ],
        )
    return path


@pytest.fixture
def pg(postgresql):
    """A new database on the session's PostgreSQL with a table of orders."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgresql.create_database(name)
    with postgresql.connect(name, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL,"
            " total numeric(10, 2) DEFAULT 0, note text)"
        )
        conn.execute(
            "INSERT INTO orders (customer, total, note) VALUES"
            " (42, 10.50, 'first'), (42, 99.99, 'second'), (7, 1.00, 'other')"
        )
    return postgresql, name, url


def integration(url, **options):
    made = SQLIntegration(url=url, **options)
    made.name = "warehouse"
    return made


# The integration on SQLite ------------------------------------------------------


def test_query_binds_parameters_and_returns_dicts(kb):
    warehouse = integration(f"sqlite:///{kb}")
    rows = warehouse.execute_query(
        "SELECT id, title FROM articles WHERE category = :c", {"c": "kitchen"}
    )
    assert rows == [{"id": 1, "title": "Descaling"}]


def test_an_injection_through_a_parameter_is_a_value(kb):
    warehouse = integration(f"sqlite:///{kb}", read_only=False)
    evil = "kitchen' OR '1'='1"
    assert (
        warehouse.execute_query(
            "SELECT id FROM articles WHERE category = :c", {"c": evil}
        )
        == []
    )
    warehouse.execute_update(
        "UPDATE articles SET summary = :n WHERE id = 1",
        {"n": "x'); DROP TABLE articles; --"},
    )
    assert warehouse.list_tables() == ["articles"]
    assert warehouse.execute_query("SELECT summary FROM articles WHERE id = 1") == [
        {"summary": "x'); DROP TABLE articles; --"}
    ]


def test_a_table_name_is_checked_against_the_tables(kb):
    warehouse = integration(f"sqlite:///{kb}")
    with pytest.raises(SQLError, match="no table 'articles; DROP TABLE articles'"):
        warehouse.get_table_schema("articles; DROP TABLE articles")
    assert warehouse.list_tables() == ["articles"]


def test_table_schema(kb):
    schema = integration(f"sqlite:///{kb}").get_table_schema("articles")
    assert [c["name"] for c in schema] == [
        "id",
        "title",
        "summary",
        "body",
        "category",
        "updated_at",
    ]
    assert schema[0] == {
        "name": "id",
        "type": "INTEGER",
        "nullable": True,
        "primary_key": True,
        "default": None,
    }
    assert not schema[1]["primary_key"]


def test_read_only_is_the_default_and_refuses_updates(kb):
    warehouse = integration(f"sqlite:///{kb}")
    with pytest.raises(ReadOnlyIntegration, match="read_only = false"):
        warehouse.execute_update("DELETE FROM articles")
    assert len(warehouse.execute_query("SELECT id FROM articles")) == 2


def test_a_write_through_a_read_only_query_fails_at_the_database(kb):
    warehouse = integration(f"sqlite:///{kb}")
    for statement in (
        "DELETE FROM articles",
        "PRAGMA query_only = 0",
        "PRAGMA journal_mode = DELETE",
        "ATTACH DATABASE ':memory:' AS other",
    ):
        try:
            warehouse.execute_query(statement)
        except SQLError:
            pass
        with pytest.raises(SQLError, match="readonly"):
            warehouse.execute_query("DELETE FROM articles")
    with sqlite3.connect(kb) as db:
        assert db.execute("SELECT count(*) FROM articles").fetchone() == (2,)


def test_an_update_commits_and_counts_rows(kb):
    warehouse = integration(f"sqlite:///{kb}", read_only=False)
    changed = warehouse.execute_update(
        "UPDATE articles SET category = :c WHERE id > :n", {"c": "misc", "n": 0}
    )
    assert changed == 2
    with sqlite3.connect(kb) as db:
        assert db.execute("SELECT DISTINCT category FROM articles").fetchall() == [
            ("misc",)
        ]


def test_a_failed_update_commits_nothing(kb):
    warehouse = integration(f"sqlite:///{kb}", read_only=False)
    with pytest.raises(SQLError, match="no such column"):
        warehouse.execute_update("UPDATE articles SET nope = 1")
    assert len(warehouse.execute_query("SELECT id FROM articles")) == 2


def test_a_runaway_sqlite_statement_is_cancelled(kb):
    warehouse = integration(f"sqlite:///{kb}", statement_timeout=0.3)
    forever = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
        " SELECT count(*) FROM n"
    )
    started = time.monotonic()
    with pytest.raises(SQLTimeout, match="statement_timeout") as caught:
        warehouse.execute_query(forever)
    assert time.monotonic() - started < 10
    assert "WITH RECURSIVE" in str(caught.value) and "'warehouse'" in str(caught.value)
    # The connection goes back to the pool usable.
    assert warehouse.execute_query("SELECT 1 AS one") == [{"one": 1}]


def test_errors_name_the_integration_and_the_first_line(kb):
    warehouse = integration(f"sqlite:///{kb}")
    with pytest.raises(SQLError) as caught:
        warehouse.execute_query("SELECT nope\nFROM articles\nWHERE id = :id", {"id": 1})
    message = str(caught.value)
    assert message.startswith("sql 'warehouse' running 'SELECT nope'")
    assert "no such column" in message and "\n" not in message


def test_params_must_be_a_mapping(kb):
    warehouse = integration(f"sqlite:///{kb}")
    with pytest.raises(SQLError, match="params must be a mapping"):
        warehouse.execute_query("SELECT 1", ["x"])
    with pytest.raises(SQLError, match="id"):
        warehouse.execute_query("SELECT * FROM articles WHERE id = :id")


def test_a_result_over_max_rows_is_an_error_not_cut_short(kb):
    warehouse = integration(f"sqlite:///{kb}", max_rows=1)
    with pytest.raises(SQLError, match="more than max_rows"):
        warehouse.execute_query("SELECT * FROM articles")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": ""}, "url is missing"),
        ({"url": "not a url"}, "not an SQLAlchemy URL"),
        ({"url": "nosuchdb://x"}, "no dialect"),
        ({"url": "sqlite://"}, "in-memory SQLite"),
        ({"url": "sqlite:////nonexistent/kb.db"}, "no SQLite database"),
        ({"url": "sqlite:///x.db", "statement_timeout": 0}, "statement_timeout"),
        ({"url": "sqlite:///x.db", "pool_size": 0}, "pool_size"),
        ({"url": "sqlite:///x.db", "read_only": "yes"}, "read_only"),
    ],
)
def test_bad_settings_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        SQLIntegration(**options)


def test_a_configured_integration_from_a_hub_config(tmp_path, kb, monkeypatch):
    monkeypatch.setenv("KB_URL", f"sqlite:///{kb}")
    (tmp_path / "eventhub.toml").write_text(
        '[integrations.kb]\nkind = "sql"\nurl = { env = "KB_URL" }\n'
    )
    from eventhub import Hub

    with Hub.from_config(tmp_path / "eventhub.toml") as hub:
        kbase = hub.get_integration("kb")
        assert kbase.list_tables() == ["articles"]
        with pytest.raises(ReadOnlyIntegration, match=r"\[integrations.kb\]"):
            kbase.execute_update("DELETE FROM articles")


# The integration on PostgreSQL --------------------------------------------------


def test_postgresql_query_schema_and_tables(pg):
    server, name, url = pg
    warehouse = integration(url)
    rows = warehouse.execute_query(
        "SELECT id, total FROM orders WHERE customer = :c ORDER BY id", {"c": 42}
    )
    assert [str(r["total"]) for r in rows] == ["10.50", "99.99"]
    assert warehouse.list_tables() == ["orders"]
    schema = {c["name"]: c for c in warehouse.get_table_schema("orders")}
    assert schema["id"]["primary_key"] and not schema["customer"]["nullable"]
    assert schema["total"]["type"] == "NUMERIC(10, 2)"
    assert schema["total"]["default"] == "0"
    assert "nextval" in schema["id"]["default"]


def test_postgresql_read_only_holds_against_every_escape(pg):
    server, name, url = pg
    warehouse = integration(url)
    escapes = [
        "INSERT INTO orders (customer) VALUES (1)",
        "SET default_transaction_read_only = off",  # then a write, next call
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "COMMIT; INSERT INTO orders (customer) VALUES (1)",
        "BEGIN READ WRITE; INSERT INTO orders (customer) VALUES (1)",
    ]
    for statement in escapes:
        try:
            warehouse.execute_query(statement)
        except SQLError:
            pass
        with pytest.raises(SQLError, match="read-only transaction"):
            warehouse.execute_query("UPDATE orders SET note = 'changed' RETURNING id")
    with server.connect(name) as conn:
        notes = conn.execute("SELECT note FROM orders ORDER BY id").fetchall()
    assert notes == [("first",), ("second",), ("other",)]


def test_postgresql_writes_when_not_read_only(pg):
    server, name, url = pg
    warehouse = integration(url, read_only=False)
    assert (
        warehouse.execute_update(
            "UPDATE orders SET note = :n WHERE customer = :c", {"n": "vip", "c": 42}
        )
        == 2
    )
    with server.connect(name) as conn:
        assert conn.execute(
            "SELECT count(*) FROM orders WHERE note = 'vip'"
        ).fetchone() == (2,)


def test_postgresql_statement_timeout_cancels_at_the_server(pg):
    server, name, url = pg
    warehouse = integration(url, statement_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(SQLTimeout, match="statement_timeout"):
        warehouse.execute_query("SELECT pg_sleep(20)")
    assert time.monotonic() - started < 10
    assert warehouse.execute_query("SELECT 1 AS one") == [{"one": 1}]


def test_postgresql_errors_never_show_the_password(pg):
    server, name, url = pg
    wrong = server.url_of(name, password="wrong-Secret-Value-123")
    for target, problem in ((url, "syntax error"), (wrong, "password")):
        warehouse = integration(target)
        with pytest.raises(EventHubError) as caught:
            warehouse.execute_query("SELEC 1" if target == url else "SELECT 1")
        message = str(caught.value)
        assert problem in message
        assert PG_PASSWORD not in message and "wrong-Secret-Value-123" not in message
        assert "postgresql" not in message.lower() or "://" not in message
    assert isinstance(caught.value, SQLUnavailable | SQLError)


def test_postgresql_unreachable_is_transient(postgresql):
    from .servers import free_port

    warehouse = integration(
        f"postgresql+psycopg://u:{PG_PASSWORD}@127.0.0.1:{free_port()}/x"
    )
    with pytest.raises(SQLUnavailable) as caught:
        warehouse.execute_query("SELECT 1")
    assert PG_PASSWORD not in str(caught.value)


# The source ---------------------------------------------------------------------


@pytest.fixture
def docs_hub(tmp_path):
    with make_hub(tmp_path, name="docs.db") as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def kb_source(url, **options):
    settings = {
        "table": "articles",
        "updated_column": "updated_at",
        "title_column": "title",
        "text_columns": ["summary", "body"],
        "metadata_columns": ["category"],
        **options,
    }
    made = SQLSource(url=url, **settings)
    made.name = "kb"
    return made


def statements_of(source, with_params=False):
    seen = []
    sa.event.listen(
        source.engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, params, *rest: seen.append(
            (statement, params) if with_params else statement
        ),
    )
    return seen


def test_rows_become_documents(kb, docs_hub):
    source = kb_source(f"sqlite:///{kb}", url_template="https://kb.example/a/{id}")
    report = docs_hub.documents.engine.sync(source)
    assert report.added == 2
    doc = source.fetch("1")
    assert (doc.id, doc.title, doc.url) == ("1", "Descaling", "https://kb.example/a/1")
    assert doc.text == "Monthly.\n\nRun vinegar through it."
    assert doc.metadata == {"category": "kitchen"}
    assert doc.updated_at == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    assert source.fetch("2").text == "Turn it off and on."  # NULL summary left out
    assert source.fetch("99") is None


def test_incremental_sync_reads_by_keyset_never_offset(tmp_path, docs_hub):
    path = tmp_path / "many.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, summary TEXT,"
            " body TEXT, category TEXT, updated_at TEXT)"
        )
        # Many rows share a change time: the id breaks the ties between pages.
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, '', ?, 'c', ?)",
            [
                (i, f"Row {i}", f"row number {i}", f"2026-06-01 08:0{i % 3}:00")
                for i in range(1, 24)
            ],
        )
    source = kb_source(f"sqlite:///{path}", page_size=5)
    seen = statements_of(source, with_params=True)
    report = docs_hub.documents.engine.sync(source)
    assert report.added == 23
    # SQLAlchemy writes SQLite's LIMIT as "LIMIT ? OFFSET ?", the offset always 0.
    offsets = [p[-1] for s, p in seen if "OFFSET" in s.upper()]
    assert set(offsets) <= {0}
    assert sum("LIMIT" in s for s, _ in seen) >= 5
    assert any("(articles.updated_at, articles.id) >" in s for s, _ in seen)
    assert sorted(map(int, docs_hub.documents.index.document_ids("kb"))) == list(
        range(1, 24)
    )


def test_edits_additions_late_commits_and_deletions(kb, docs_hub):
    engine = docs_hub.documents.engine
    url = f"sqlite:///{kb}"
    engine.sync(kb_source(url))
    with sqlite3.connect(kb) as db:
        db.execute(
            "UPDATE articles SET body = 'Use citric acid.',"
            " updated_at = '2026-06-01 10:00:00' WHERE id = 1"
        )
        db.execute(
            "INSERT INTO articles VALUES (3, 'Badges', '', 'Ask reception.', 'office',"
            " '2026-06-01 11:00:00')"
        )
    report = engine.sync(kb_source(url), prune=None)
    assert (report.added, report.updated, report.deleted) == (1, 1, 0)
    # A transaction that committed late, its change time before the checkpoint
    # but within the overlap window (300 s by default).
    with sqlite3.connect(kb) as db:
        db.execute(
            "INSERT INTO articles VALUES (4, 'Late', '', 'Committed late.', 'x',"
            " '2026-06-01 10:57:00')"
        )
        db.execute("DELETE FROM articles WHERE id = 2")
    report = engine.sync(kb_source(url), prune=0)
    assert (report.added, report.deleted) == (1, 1)
    assert sorted(docs_hub.documents.index.document_ids("kb")) == ["1", "3", "4"]
    hits = docs_hub.documents.index.search("citric acid", 1, source="kb")
    assert hits[0].document_id == "1"


def test_an_unchanged_sync_reads_one_page(kb, docs_hub):
    engine = docs_hub.documents.engine
    engine.sync(kb_source(f"sqlite:///{kb}"))
    source = kb_source(f"sqlite:///{kb}")
    seen = statements_of(source)
    report = engine.sync(source, prune=None)
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    assert len(seen) <= 3


def test_rows_without_a_change_time_are_read_by_full_syncs(kb, docs_hub):
    with sqlite3.connect(kb) as db:
        db.execute(
            "INSERT INTO articles VALUES (5, 'Undated', '', 'No time.', 'x', NULL)"
        )
    engine = docs_hub.documents.engine
    assert engine.sync(kb_source(f"sqlite:///{kb}")).added == 3
    assert "5" in docs_hub.documents.index.document_ids("kb")


def test_a_query_source(kb, docs_hub):
    source = kb_source(
        f"sqlite:///{kb}",
        table=None,
        query="SELECT id, title, summary, body, category, updated_at FROM articles"
        " WHERE category = 'kitchen'",
    )
    assert docs_hub.documents.engine.sync(source).added == 1
    assert set(docs_hub.documents.index.document_ids("kb")) == {"1"}


def test_a_query_source_cannot_write(kb, docs_hub):
    source = kb_source(
        f"sqlite:///{kb}",
        table=None,
        query="DELETE FROM articles RETURNING id, title, summary, body, category,"
        " updated_at",
    )
    with pytest.raises(EventHubError):
        docs_hub.documents.engine.sync(source)
    with sqlite3.connect(kb) as db:
        assert db.execute("SELECT count(*) FROM articles").fetchone() == (2,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": "nope"}, "no table 'nope'"),
        ({"text_columns": ["body", "missing"]}, "no column 'missing'"),
    ],
)
def test_a_misconfigured_table_fails_naming_it(kb, docs_hub, options, message):
    with pytest.raises(EventHubError, match=message):
        docs_hub.documents.engine.sync(kb_source(f"sqlite:///{kb}", **options))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": None}, "either table or query"),
        ({"query": "SELECT 1"}, "either table or query"),
        ({"text_columns": "body"}, "list of column names"),
        ({"text_columns": [], "title_column": None}, "text_columns is empty"),
        ({"page_size": 0}, "page_size"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
    ],
)
def test_bad_source_settings(kb, options, message):
    with pytest.raises(ConfigError, match=message):
        kb_source(f"sqlite:///{kb}", **options)


def test_values_of_every_kind_render_as_text_and_metadata(pg, docs_hub):
    server, name, url = pg
    with server.connect(name, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE facts (id uuid PRIMARY KEY, title text, amount numeric,"
            " flag boolean, tags jsonb, day date, raw bytea, changed timestamp)"
        )
        conn.execute(
            "INSERT INTO facts VALUES ('8f1c2a64-5c63-4d5e-9f57-0a4b8c1d2e3f',"
            " NULL, 12.345678901234567890, true, '{\"a\": [1, 2]}', '2026-06-02',"
            " '\\xdeadbeef', '2026-06-01 08:00:00')"
        )
    source = SQLSource(
        url=url,
        table="facts",
        updated_column="changed",
        title_column="title",
        text_columns=["amount", "flag", "tags", "day", "raw"],
        metadata_columns=["amount", "tags", "day", "raw"],
    )
    source.name = "facts"
    docs_hub.documents.engine.sync(source)
    doc = source.fetch("8f1c2a64-5c63-4d5e-9f57-0a4b8c1d2e3f")
    assert doc.title == "facts 8f1c2a64-5c63-4d5e-9f57-0a4b8c1d2e3f"
    assert doc.text.split("\n\n") == [
        "12.345678901234567890",
        "true",
        '{"a":[1,2]}',
        "2026-06-02",
    ]
    assert doc.metadata == {
        "amount": "12.345678901234567890",
        "tags": {"a": [1, 2]},
        "day": "2026-06-02",
        "raw": "3q2+7w==",
    }
    assert doc.updated_at == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    assert source.fetch("not-a-uuid") is None


@pytest.mark.parametrize("column", ["timestamp", "timestamptz", "bigint", "date"])
def test_postgresql_change_times_of_every_kind(pg, docs_hub, column):
    server, name, url = pg
    values = {
        "timestamp": ("'2026-06-01 08:00:00'", "'2026-06-01 12:00:00'"),
        "timestamptz": ("'2026-06-01 08:00:00+00'", "'2026-06-01 12:00:00+00'"),
        "bigint": (str(int(T0.timestamp())), str(int(T0.timestamp()) + 4 * 3600)),
        "date": ("'2026-06-01'", "'2026-06-05'"),
    }[column]
    with server.connect(name, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE notes (id int PRIMARY KEY, body text, changed {column})"
        )
        conn.execute(f"INSERT INTO notes VALUES (1, 'one', {values[0]})")
    engine = docs_hub.documents.engine

    def source():
        made = SQLSource(
            url=url, table="notes", updated_column="changed", text_columns=["body"]
        )
        made.name = "notes"
        return made

    assert engine.sync(source()).added == 1
    with server.connect(name, autocommit=True) as conn:
        conn.execute(f"INSERT INTO notes VALUES (2, 'two', {values[1]})")
        conn.execute(
            f"UPDATE notes SET body = 'one, edited', changed = {values[1]} WHERE id = 1"
        )
    report = engine.sync(source(), prune=None)
    assert (report.added, report.updated) == (1, 1)
    assert engine.sync(source(), prune=None).updated == 0
    assert source().fetch("2").text == "two"
