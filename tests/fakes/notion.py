"""A stateful fake of the Notion API (version 2022-06-28) on 127.0.0.1.

Built from the real responses in ``../shared/realdata/notion`` (the official Python
SDK's recorded cassettes: a page, a block, the list envelopes, the error objects),
it holds databases and pages that tests add, edit and trash, and serves:

* ``POST /v1/databases/{id}/query``: no filter, or exactly
  ``{"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": ...}}``;
  no sorts, or exactly ascending ``last_edited_time``; anything else is Notion's
  ``validation_error`` (400);
* ``POST /v1/search``: ``filter`` on ``object`` (``page`` or ``database``), ``sort``
  on ``last_edited_time``;
* ``GET /v1/pages/{id}`` and ``GET /v1/blocks/{id}/children``;

all paged by ``start_cursor`` / ``has_more`` / ``next_cursor`` (the cursor is the id
of the next result, as Notion's are), ``page_size`` at most 100. Every request needs
``Authorization: Bearer <token>`` (else 401 ``unauthorized``) and ``Notion-Version:
2022-06-28`` (missing: 400 ``missing_version``). Times are rounded down to the
minute, as Notion does. Trashed pages are left out of listings (set
``list_trashed`` to have them reported, as Notion sometimes does). Requests are
counted; 429s with ``Retry-After``, failures from now on and broken page bodies can
be injected.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSION = "2022-06-28"
MAX_PAGE_SIZE = 100
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "notion"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _interactions(name: str) -> list[dict[str, Any]]:
    path = REALDATA / "responses" / f"{name}.interactions.json"
    return json.loads(path.read_text())


def _response(name: str, method: str, fragment: str) -> dict[str, Any]:
    for item in _interactions(name):
        if item["method"] == method and fragment in item["uri"]:
            return item["response_body"]
    raise LookupError(f"{name}: no {method} {fragment}")


class _Templates:
    """Real response bodies, loaded once, copied for every use."""

    def __init__(self) -> None:
        page = _response("test_pages_retrieve", "GET", "/v1/pages/")
        for key in ("request_id", "is_archived", "is_locked"):  # 2025-09-03 only
            page.pop(key, None)
        self.page = page
        blocks = _response("test_iterate_paginated_api", "GET", "page_size=2")
        self.block = blocks["results"][0]
        self.block_list = {k: v for k, v in blocks.items() if k != "results"}
        query = _response("test_databases_query.api-2022-06-28", "POST", "/query")
        self.query_list = query
        self.rich_text = self.block["paragraph"]["rich_text"][0]
        self.errors = {
            item["status"]: item["response_body"]
            for item in _interactions("test_api_response_error")
        }

    def text(self, content: str) -> list[dict[str, Any]]:
        if not content:
            return []
        part = copy.deepcopy(self.rich_text)
        part["text"]["content"] = content
        part["plain_text"] = content
        return [part]


_templates: _Templates | None = None


def templates() -> _Templates:
    global _templates
    if _templates is None:
        _templates = _Templates()
    return _templates


def minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def stamp(moment: datetime) -> str:
    return minute(moment).strftime("%Y-%m-%dT%H:%M:00.000Z")


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# What tests put in pages: blocks and property values in Notion's shapes ----------


def block(kind: str, text: str = "", *children: dict[str, Any], **data: Any) -> dict:
    """A block of ``kind`` with rich ``text`` (for the kinds that have one),
    further fields of its ``kind`` object, and child blocks."""
    body = {"rich_text": templates().text(text), "color": "default", **data}
    if kind in ("divider", "breadcrumb", "column_list", "column", "table"):
        body.pop("rich_text")
    return {"type": kind, kind: body, "children": list(children)}


def paragraph(text: str, *children: dict[str, Any]) -> dict:
    return block("paragraph", text, *children)


def table(*rows: Iterable[str]) -> dict:
    cells = [
        block("table_row", cells=[templates().text(c) for c in row]) for row in rows
    ]
    for row in cells:
        row["table_row"].pop("rich_text")
        row["table_row"].pop("color")
    width = max((len(r["table_row"]["cells"]) for r in cells), default=1)
    return block(
        "table",
        "",
        *cells,
        table_width=width,
        has_column_header=False,
        has_row_header=False,
    )


def rich_text_value(text: str) -> dict:
    return {"type": "rich_text", "rich_text": templates().text(text)}


def select_value(name: str) -> dict:
    return {"type": "select", "select": {"id": "s1", "name": name, "color": "red"}}


def multi_select_value(*names: str) -> dict:
    options = [{"id": f"m{i}", "name": n, "color": "blue"} for i, n in enumerate(names)]
    return {"type": "multi_select", "multi_select": options}


def date_value(start: str, end: str | None = None) -> dict:
    return {"type": "date", "date": {"start": start, "end": end, "time_zone": None}}


def people_value(*names: str) -> dict:
    people = [
        {"object": "user", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, n)), "name": n}
        for n in names
    ]
    return {"type": "people", "people": people}


def number_value(value: float | None) -> dict:
    return {"type": "number", "number": value}


def checkbox_value(value: bool) -> dict:
    return {"type": "checkbox", "checkbox": value}


# The fake's state ---------------------------------------------------------------


@dataclass
class FakePage:
    id: str
    title: str
    database: str | None
    parent_page: str | None
    created: datetime
    edited: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    in_trash: bool = False
    seq: int = 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


class _Failure(Exception):
    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


_MESSAGES = {
    500: ("internal_server_error", "Unexpected error occurred."),
    502: ("internal_server_error", "Unexpected error occurred."),
    503: ("service_unavailable", "Notion is unavailable, please try again later."),
    504: (
        "gateway_timeout",
        "Notion timed out while attempting to complete this request.",
    ),
    403: ("restricted_resource", "API token does not have access to this resource."),
    401: ("unauthorized", "API token is invalid."),
}


class FakeNotion:
    """The fake Notion API (see the module docstring). ``start()`` it, read
    ``url``; ``stop()`` it at the end (a context manager does both)."""

    def __init__(self, token: str = "ntn_fake_0123456789abcdef") -> None:
        self.token = token
        self.pages: dict[str, FakePage] = {}
        self.databases: dict[str, str] = {}  # id -> title
        self.blocks: dict[str, dict[str, Any]] = {}
        self.children: dict[str, list[str]] = {}
        self.requests: list[Request] = []
        self.clock = START
        self.list_trashed = False
        self.broken: dict[str, str] = {}  # page id -> "404" | "garbage"
        self._throttles: list[list[Any]] = []
        self._failing: int | None = None
        self._seq = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Serving ---------------------------------------------------------------------

    def start(self) -> FakeNotion:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PATCH(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeNotion:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    # What tests do at "Notion" ------------------------------------------------------

    def tick(self, edited: datetime | None = None) -> datetime:
        """The time of an edit: ``edited``, or the fake's clock, one minute on."""
        with self._lock:
            if edited is None:
                self.clock += timedelta(minutes=1)
                return minute(self.clock)
            self.clock = max(self.clock, edited)
            return minute(edited)

    def add_database(self, title: str = "Tasks") -> str:
        database_id = str(uuid.uuid4())
        with self._lock:
            self.databases[database_id] = title
        return database_id

    def add_page(
        self,
        title: str,
        blocks: Iterable[dict[str, Any]] | str = (),
        *,
        database: str | None = None,
        parent_page: str | None = None,
        properties: dict[str, Any] | None = None,
        edited: datetime | None = None,
        page_id: str | None = None,
    ) -> str:
        page_id = page_id or str(uuid.uuid4())
        when = self.tick(edited)
        with self._lock:
            self._seq += 1
            self.pages[page_id] = FakePage(
                page_id,
                title,
                database,
                parent_page,
                when,
                when,
                dict(properties or {}),
                seq=self._seq,
            )
            self._set_blocks(page_id, blocks, when)
        return page_id

    def edit(
        self,
        page_id: str,
        *,
        title: str | None = None,
        blocks: Iterable[dict[str, Any]] | str | None = None,
        properties: dict[str, Any] | None = None,
        edited: datetime | None = None,
    ) -> None:
        when = self.tick(edited)
        with self._lock:
            page = self.pages[page_id]
            if title is not None:
                page.title = title
            if properties is not None:
                page.properties.update(properties)
            if blocks is not None:
                self._set_blocks(page_id, blocks, when)
            page.edited = when

    def trash(self, page_id: str, edited: datetime | None = None) -> None:
        when = self.tick(edited)
        with self._lock:
            page = self.pages[page_id]
            page.in_trash = True
            page.edited = when

    def rate_limit(
        self,
        *,
        after: int = 0,
        times: int = 1,
        retry_after: str = "0",
        path: str = "",
    ) -> None:
        """Answer ``times`` requests whose path holds ``path`` with 429 and
        ``Retry-After``, once ``after`` such requests have been served."""
        with self._lock:
            self._throttles.append([after, times, retry_after, path, 429])

    def fail_next(self, status: int = 503, *, times: int = 1, path: str = "") -> None:
        """Answer the next ``times`` requests whose path holds ``path`` with
        ``status`` and Notion's error object for it."""
        with self._lock:
            self._throttles.append([0, times, None, path, status])

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = status

    def heal(self) -> None:
        self._failing = None

    def count(self, fragment: str = "") -> int:
        """Requests served whose path holds ``fragment``."""
        return sum(fragment in r.path for r in self.requests)

    # Building answers ------------------------------------------------------------

    def _set_blocks(
        self, parent: str, blocks: Iterable[dict[str, Any]] | str, when: datetime
    ) -> None:
        for old in self.children.pop(parent, []):
            self._drop_block(old)
        if isinstance(blocks, str):
            blocks = [paragraph(line) for line in blocks.split("\n") if line.strip()]
        ids = []
        for spec in blocks:
            block_id = str(uuid.uuid4())
            kind = spec["type"]
            body = copy.deepcopy(templates().block)
            body.pop("paragraph")
            body.pop("request_id", None)
            body["id"] = block_id
            parent_kind = "page_id" if parent in self.pages else "block_id"
            body["parent"] = {"type": parent_kind, parent_kind: parent}
            body["created_time"] = body["last_edited_time"] = stamp(when)
            body["type"] = kind
            body[kind] = copy.deepcopy(spec[kind])
            body["has_children"] = bool(spec.get("children"))
            self.blocks[block_id] = body
            ids.append(block_id)
            if spec.get("children"):
                self._set_blocks(block_id, spec["children"], when)
        self.children[parent] = ids

    def _drop_block(self, block_id: str) -> None:
        self.blocks.pop(block_id, None)
        for child in self.children.pop(block_id, []):
            self._drop_block(child)

    def page_object(self, page: FakePage) -> dict[str, Any]:
        body = copy.deepcopy(templates().page)
        body["id"] = page.id
        body["created_time"] = stamp(page.created)
        body["last_edited_time"] = stamp(page.edited)
        if page.database is not None:
            body["parent"] = {"type": "database_id", "database_id": page.database}
            title_name = "Name"
        elif page.parent_page is not None:
            body["parent"] = {"type": "page_id", "page_id": page.parent_page}
            title_name = "title"
        else:
            body["parent"] = {"type": "workspace", "workspace": True}
            title_name = "title"
        title = body["properties"].pop("title")
        title["title"] = templates().text(page.title)
        body["properties"] = {**copy.deepcopy(page.properties), title_name: title}
        body["archived"] = body["in_trash"] = page.in_trash
        slug = "-".join(page.title.split()) or "Untitled"
        body["url"] = f"https://www.notion.so/{slug}-{page.id.replace('-', '')}"
        return body

    # The API --------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ...
        request = Request(
            handler.command, parts.path, parse_qs(parts.query), body, headers
        )
        with self._lock:
            self.requests.append(request)
            try:
                status, answer, extra = 200, self._answer(request), {}
            except Exception as exc:
                failure = (
                    exc
                    if isinstance(exc, _Failure)
                    else _Failure(500, "internal_server_error", f"fake: {exc!r}")
                )
                status = failure.status
                extra = failure.headers
                answer = {
                    "object": "error",
                    "status": failure.status,
                    "code": failure.code,
                    "message": failure.message,
                }
        if isinstance(answer, dict):
            answer["request_id"] = str(uuid.uuid4())
            data = json.dumps(answer).encode()
        else:
            data = answer  # bytes: a broken body
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            error = templates().errors[401]
            raise _Failure(401, error["code"], error["message"])
        version = request.headers.get("notion-version")
        if version is None:
            raise _Failure(
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header "
                "should be defined, instead was `undefined`.",
            )
        if version != VERSION:
            raise _Failure(
                400,
                "validation_error",
                f"this fake speaks Notion-Version {VERSION} only, not {version}",
            )
        self._throttle(request)
        if self._failing is not None:
            code, message = _MESSAGES.get(self._failing, _MESSAGES[500])
            raise _Failure(self._failing, code, message)
        if request.body is ...:
            raise _Failure(400, "invalid_json", "Error parsing JSON body.")
        segments = request.path.strip("/").split("/")
        route: Callable[..., Any] | None = None
        if (
            request.method == "POST"
            and segments[:2] == ["v1", "search"]
            and len(segments) == 2
        ):
            route = self._search
        elif (
            request.method == "POST"
            and len(segments) == 4
            and segments[1] == "databases"
            and segments[3] == "query"
        ):
            route = self._query
        elif request.method == "GET" and len(segments) == 3 and segments[1] == "pages":
            route = self._page
        elif (
            request.method == "GET"
            and len(segments) == 4
            and segments[1] == "blocks"
            and segments[3] == "children"
        ):
            route = self._block_children
        if route is None or segments[0] != "v1":
            error = templates().errors[400]
            raise _Failure(400, error["code"], error["message"])
        return route(request, *segments[2:3])

    def _throttle(self, request: Request) -> None:
        for throttle in self._throttles:
            after, times, retry_after, path, status = throttle
            if path not in request.path or times <= 0:
                continue
            if after > 0:
                throttle[0] -= 1
                continue
            throttle[1] -= 1
            if status != 429:
                code, message = _MESSAGES.get(status, _MESSAGES[500])
                raise _Failure(status, code, message)
            raise _Failure(
                429,
                "rate_limited",
                "You have been rate limited. Please try again in a few minutes.",
                Retry_After=retry_after,
            )

    def _search(self, request: Request, *_: str) -> dict[str, Any]:
        body = _body(request, {"query", "filter", "sort", "start_cursor", "page_size"})
        wanted = None
        if "filter" in body:
            filt = body["filter"]
            if (
                not isinstance(filt, dict)
                or filt.get("property") != "object"
                or filt.get("value") not in ("page", "database")
                or set(filt) != {"property", "value"}
            ):
                raise _invalid(
                    "body.filter should be an object filter on page or database"
                )
            wanted = filt["value"]
        descending = True
        if "sort" in body:
            sort = body["sort"]
            if (
                not isinstance(sort, dict)
                or sort.get("timestamp") != "last_edited_time"
                or sort.get("direction", "descending")
                not in ("ascending", "descending")
                or set(sort) - {"timestamp", "direction"}
            ):
                raise _invalid("body.sort should be a last_edited_time sort")
            descending = sort.get("direction", "descending") == "descending"
        pages = [p for p in self.pages.values() if self.list_trashed or not p.in_trash]
        pages.sort(key=lambda p: (p.edited, p.seq), reverse=descending)
        if wanted == "database":
            pages = []
        envelope = copy.deepcopy(templates().query_list)
        return _paged(envelope, pages, body, render=self.page_object)

    def _query(self, request: Request, database_id: str) -> dict[str, Any]:
        database = _normal(database_id)
        if database not in self.databases:
            raise _Failure(
                404,
                "object_not_found",
                f"Could not find database with ID: {database}. Make sure the relevant"
                " pages and databases are shared with your integration.",
            )
        body = _body(request, {"filter", "sorts", "start_cursor", "page_size"})
        since = None
        if "filter" in body:
            filt = body["filter"]
            condition = filt.get("last_edited_time") if isinstance(filt, dict) else None
            if (
                not isinstance(filt, dict)
                or set(filt) != {"timestamp", "last_edited_time"}
                or filt["timestamp"] != "last_edited_time"
                or not isinstance(condition, dict)
                or set(condition) != {"on_or_after"}
            ):
                raise _invalid(
                    "body.filter: this fake takes a last_edited_time on_or_after"
                    " timestamp filter only"
                )
            try:
                since = _parse(condition["on_or_after"])
            except (TypeError, ValueError):
                raise _invalid(
                    "body.filter.last_edited_time.on_or_after should be a valid"
                    " ISO 8601 date string"
                ) from None
        if "sorts" in body and body["sorts"] != [
            {"timestamp": "last_edited_time", "direction": "ascending"}
        ]:
            raise _invalid(
                "body.sorts: this fake sorts by last_edited_time ascending only"
            )
        pages = [
            p
            for p in self.pages.values()
            if p.database == database
            and (self.list_trashed or not p.in_trash)
            and (since is None or p.edited >= since)
        ]
        key = (lambda p: (p.edited, p.seq)) if "sorts" in body else (lambda p: p.seq)
        pages.sort(key=key)
        envelope = copy.deepcopy(templates().query_list)
        return _paged(envelope, pages, body, render=self.page_object)

    def _page(self, request: Request, page_id: str) -> dict[str, Any]:
        page = self.pages.get(_normal(page_id))
        if page is None:
            raise _Failure(
                404,
                "object_not_found",
                f"Could not find page with ID: {_normal(page_id)}. Make sure the"
                " relevant pages and databases are shared with your integration.",
            )
        return self.page_object(page)

    def _block_children(self, request: Request, block_id: str) -> Any:
        parent = _normal(block_id)
        broken = self.broken.get(parent)
        if parent not in self.children or broken == "404":
            raise _Failure(
                404,
                "object_not_found",
                f"Could not find block with ID: {parent}. Make sure the relevant"
                " pages and databases are shared with your integration.",
            )
        if broken == "garbage":
            return b'{"object": "list", "results": [{"object": "blo'
        query = {k: v[-1] for k, v in request.query.items()}
        params: dict[str, Any] = {}
        if "start_cursor" in query:
            params["start_cursor"] = query["start_cursor"]
        if "page_size" in query:
            try:
                params["page_size"] = int(query["page_size"])
            except ValueError:
                raise _invalid(
                    "query.page_size should be a number", where="query"
                ) from None
        results = [self.blocks[i] for i in self.children[parent]]
        envelope = copy.deepcopy(templates().block_list)
        return _paged(envelope, results, params, "query", copy.deepcopy)


def _normal(value: str) -> str:
    try:
        return str(uuid.UUID(value.replace("-", "").lower()))
    except ValueError:
        raise _invalid(
            f'path.id should be a valid uuid, instead was `"{value}"`.', where="path"
        ) from None


def _invalid(message: str, where: str = "body") -> _Failure:
    return _Failure(400, "validation_error", f"{where} failed validation: {message}")


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    body = request.body if request.body is not None else {}
    if not isinstance(body, dict):
        raise _invalid("body should be an object")
    unknown = set(body) - allowed
    if unknown:
        raise _invalid(f"body.{sorted(unknown)[0]} should be not present")
    return body


def _paged(
    envelope: dict[str, Any],
    items: list[Any],
    params: dict[str, Any],
    where: str = "body",
    render: Callable[[Any], dict[str, Any]] = lambda item: item,
) -> dict[str, Any]:
    """One page of ``items`` (objects with an ``id``: dicts or pages), each of the
    page rendered as the API answers it: only the page, so a listing costs what
    it returns (a benchmark reads 10,000 pages through this)."""
    size = params.get("page_size", MAX_PAGE_SIZE)
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not 1 <= size <= MAX_PAGE_SIZE
    ):
        raise _invalid(
            f"{where}.page_size should be ≤ `{MAX_PAGE_SIZE}`, instead was `{size}`.",
            where=where,
        )
    start = 0
    cursor = params.get("start_cursor")
    if cursor is not None:
        ids = [_id_of(item) for item in items]
        if cursor not in ids:
            raise _invalid(
                f"{where}.start_cursor should be a valid cursor,"
                f" instead was `{cursor}`.",
                where=where,
            )
        start = ids.index(cursor)
    chunk = items[start : start + size]
    rest = items[start + size : start + size + 1]
    envelope["results"] = [render(item) for item in chunk]
    envelope["has_more"] = bool(rest)
    envelope["next_cursor"] = _id_of(rest[0]) if rest else None
    return envelope


def _id_of(item: Any) -> str:
    return str(item["id"] if isinstance(item, dict) else item.id)


# The Source contract suite's harness ---------------------------------------------


class NotionHarness:
    """A ``notion`` source reading one database of a :class:`FakeNotion`."""

    kind = "notion"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.fake = FakeNotion().start()
        if request is not None:
            request.addfinalizer(self.fake.stop)
        self.database = self.fake.add_database("Contract")
        self._ids: dict[str, str] = {}

    def source(self) -> Any:
        from eventhub.integrations.notion import NotionSource

        source = NotionSource(
            token=self.fake.token,
            base_url=self.fake.url,
            databases=[self.database],
            allow_private=True,
            rate=None,
            sleep=lambda seconds: None,
        )
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        if key in self._ids:
            self.fake.edit(self._ids[key], title=title, blocks=text, edited=updated_at)
        else:
            self._ids[key] = self.fake.add_page(
                title, text, database=self.database, edited=updated_at
            )

    def delete(self, key: str) -> None:
        self.fake.trash(self._ids[key])

    def id_of(self, key: str) -> str:
        return self._ids[key]

    def fail_from_now(self, status: int = 500) -> None:
        self.fake.fail_from_now(status)

    def heal(self) -> None:
        self.fake.heal()

    @property
    def requests(self) -> int:
        return len(self.fake.requests)

    def close(self) -> None:
        """Stop the fake server (also done by the test's finalizer)."""
        self.fake.stop()
