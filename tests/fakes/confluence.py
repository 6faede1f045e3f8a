"""A stateful fake of the Confluence REST API (v1) on 127.0.0.1, Cloud or Data Center.

Built from the real content object in ``../shared/realdata/confluence`` (a Cloud blog
post as ``GET /wiki/rest/api/content?expand=...`` answered it), it holds pages and
blog posts that tests add, edit, trash and archive, and serves:

* ``GET {context}/rest/api/content/search?cql=...``: CQL just as far as the
  confluence source uses it — clauses joined by ``and``: ``type in (...)`` /
  ``type = x``, ``space in (...)`` / ``space = "X"``, ``lastmodified >= "yyyy-MM-dd
  HH:mm"`` (read to the minute in the account's ``timezone``, as Confluence reads
  it), then ``order by lastmodified|created asc|desc``; anything else is
  Confluence's 400 ``Could not parse cql``. Paged by ``start``/``limit`` (Data
  Center) or a ``cursor`` (Cloud), with ``_links.next`` relative to the context path
  while more may follow; Cloud also sends one after a full last page, which leads
  to an empty page. ``limit`` defaults to 25 and is capped at 50 when the body is
  expanded, 200 with other expansions, 1000 without (Confluence's documented caps).
* ``GET {context}/rest/api/content/{id}?expand=...``: one content object; 404 with
  Confluence's error body when there is none (or it is in the trash).

Only what ``expand`` asks for is expanded (``body.storage``, ``version``, ``space``,
``history``); the rest is listed in ``_expandable`` as Confluence does. Cloud takes
Basic auth (e-mail and API token) under the ``/wiki`` context; Data Center a bearer
personal access token at the root; anything else is a 401 with Confluence's body.
Requests are counted; 429s with ``Retry-After``, failures from now on and broken
bodies can be injected.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlencode, urlsplit
from zoneinfo import ZoneInfo

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "confluence"
RECORD = REALDATA / "airbyte-confluence-cloud-blogpost.record.jsonl"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EMAIL = "bot@example.com"
API_TOKEN = "ATATT3xFfGF0-cloud-token"
PAT = "NjQ2-data-center-pat"
DEFAULT_LIMIT = 25
BODY_CAP, EXPANDED_CAP, PLAIN_CAP = 50, 200, 1000


def real_record() -> dict[str, Any]:
    """The real content object (a blog post of airbyteio.atlassian.net)."""
    return json.loads(RECORD.read_text())["data"]


def error_body(status: int, message: str) -> dict[str, Any]:
    """Confluence's error body (the v1 REST API's shape)."""
    reasons = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    return {
        "statusCode": status,
        "data": {
            "authorized": status not in (401, 403),
            "valid": True,
            "allowedInReadOnlyMode": True,
            "errors": [],
            "successful": False,
        },
        "message": message,
        "reason": reasons.get(status, "Error"),
    }


@dataclass
class Content:
    """A page or blog post at the fake."""

    id: str
    type: str
    space: str
    title: str
    storage: str
    when: datetime
    created: datetime
    number: int = 1
    status: str = "current"
    author: str = "integration test"
    broken: bool = False


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None = None
    #: What the fake answered: the status, and how many results a search had.
    status: int | None = None
    results: int | None = None


@dataclass
class _Injected:
    throttles: dict[int, float] = field(default_factory=dict)  # request no. -> wait
    failing: int | None = None


class CQLError(ValueError):
    pass


class FakeConfluence:
    """A Confluence site (see the module docstring).

    Args:
        cloud: Cloud (``/wiki``, Basic e-mail + API token, cursor paging) or Data
            Center (the root, bearer PAT, ``start`` paging).
        timezone: The account's profile time zone: how CQL times are read.
        list_gone: Report trashed and archived content in searches and by id (with
            its status) instead of leaving it out.
        always_next: Cloud only: every page carries a next link, the last ones
            leading to empty pages (each cursor different), as a search whose
            end the server does not know may answer.
        context: The context path (default: ``/wiki`` on Cloud, none on Data
            Center, which may be installed under one such as ``/confluence``).
        rooted_next: Next links start at the host's root (with the context path)
            instead of after the context path.
    """

    def __init__(
        self,
        *,
        cloud: bool = True,
        timezone: str = "UTC",
        list_gone: bool = False,
        always_next: bool = False,
        context: str | None = None,
        rooted_next: bool = False,
    ) -> None:
        self.cloud = cloud
        self.always_next = always_next
        self._cursors = 0
        self.revoked = False
        self.context = context if context is not None else "/wiki" if cloud else ""
        self.rooted_next = rooted_next
        self.zone = ZoneInfo(timezone)
        self.list_gone = list_gone
        self.contents: dict[str, Content] = {}
        self.log: list[Request] = []
        self._injected = _Injected()
        self._lock = threading.RLock()
        self._next_id = 1_000_000
        self._clock = START
        self._template = real_record()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle

    def start(self) -> FakeConfluence:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeConfluence:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What ``base_url`` is configured to: the Cloud ``/wiki/`` or the root."""
        return f"{self.host}{self.context}/"

    @property
    def site(self) -> str:
        """``_links.base``: where people open pages."""
        return f"{self.host}{self.context}"

    def credentials(self) -> dict[str, str]:
        """The source settings that authenticate at this site."""
        if self.cloud:
            return {"email": EMAIL, "api_token": API_TOKEN}
        return {"token": PAT}

    # -- content, as people change it

    def put(
        self,
        title: str,
        storage: str,
        *,
        id: str | None = None,
        space: str = "ENG",
        type: str = "page",
        when: datetime | None = None,
        author: str = "integration test",
    ) -> str:
        """Add content, or edit it when ``id`` is given (a new version). ``when``
        defaults to a clock one second later than the last change."""
        with self._lock:
            if when is None:
                self._clock += timedelta(seconds=1)
                when = self._clock
            when = when.astimezone(UTC)
            when = when.replace(microsecond=when.microsecond // 1000 * 1000)
            if id is not None and id in self.contents:
                c = self.contents[id]
                c.title, c.storage, c.when, c.author = title, storage, when, author
                c.number += 1
                c.status = "current"
                return id
            if id is None:
                self._next_id += 1
                id = str(self._next_id)
            self.contents[id] = Content(
                id, type, space, title, storage, when, when, author=author
            )
            return id

    def put_text(self, title: str, text: str, **kw: Any) -> str:
        """:meth:`put` with the text as one paragraph."""
        return self.put(title, f"<p>{html.escape(text)}</p>", **kw)

    def put_real_record(self) -> str:
        """The real blog post, as the realdata record has it."""
        data = self._template
        return self.put(
            data["title"],
            data["body"]["storage"]["value"],
            id=data["id"],
            space=data["_expandable"]["space"].rsplit("/", 1)[1],
            type=data["type"],
            when=datetime.fromisoformat(data["version"]["when"]),
            author=data["version"]["by"]["displayName"],
        )

    def trash(self, id: str) -> None:
        with self._lock:
            self.contents[id].status = "trashed"

    def archive(self, id: str) -> None:
        with self._lock:
            self.contents[id].status = "archived"

    def purge(self, id: str) -> None:
        with self._lock:
            del self.contents[id]

    def break_body(self, id: str, broken: bool = True) -> None:
        """Answer this content without a storage body (a malformed answer)."""
        with self._lock:
            self.contents[id].broken = broken

    # -- failures

    def throttle(self, after: int = 0, retry_after: float = 0, times: int = 1) -> None:
        """Answer 429 with ``Retry-After`` to the request ``after`` requests from
        now (0: the next one), ``times`` times in a row."""
        with self._lock:
            first = len(self.log) + after
            for n in range(first, first + times):
                self._injected.throttles[n] = retry_after

    def fail_from_now(self, status: int = 500) -> None:
        with self._lock:
            self._injected.failing = status

    def heal(self) -> None:
        with self._lock:
            self._injected.failing = None

    def revoke(self) -> None:
        """The API token (or PAT) is revoked: every request is a 401."""
        self.revoked = True

    @property
    def requests(self) -> int:
        return len(self.log)

    def searches(self) -> list[Request]:
        return [r for r in self.log if r.path.endswith("/content/search")]

    # -- serving

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            status, headers, body = self._answer(request)
            request.status = status
            return status, headers, body

    def _answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            number = len(self.log)
            self.log.append(request)
            if number in self._injected.throttles:
                wait = self._injected.throttles.pop(number)
                headers = {"Retry-After": str(int(wait))}
                return 429, headers, error_body(429, "Rate limit exceeded")
            if self._injected.failing is not None:
                status = self._injected.failing
                return status, {}, error_body(status, "Something went wrong")
            if not self._authorized(request.authorization):
                return (
                    401,
                    {},
                    error_body(
                        401, "Client must be authenticated to access this resource."
                    ),
                )
            path = request.path
            if not path.startswith(f"{self.context}/rest/api/"):
                return 404, {}, error_body(404, f"No resource at {path}")
            path = path[len(self.context) :]
            if path == "/rest/api/content/search":
                status, headers, body = self._search(request.query)
                request.results = len(body.get("results", []))
                return status, headers, body
            found = re.fullmatch(r"/rest/api/content/(\d+)", path)
            if found:
                return self._content(found.group(1), request.query)
            return 404, {}, error_body(404, f"No resource at {request.path}")

    def _authorized(self, header: str | None) -> bool:
        if not header or self.revoked:
            return False
        scheme, _, value = header.partition(" ")
        if self.cloud:
            expected = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
            return scheme == "Basic" and value == expected
        return scheme == "Bearer" and value == PAT

    def _content(self, id: str, query: dict[str, str]) -> tuple[int, dict, Any]:
        content = self.contents.get(id)
        if content is None or (content.status != "current" and not self.list_gone):
            return (
                404,
                {},
                error_body(404, f"No content found with id : ContentId{{id={id}}}"),
            )
        body = self.render(content, _expansions(query))
        body["_links"].update({"base": self.site, "context": self.context})
        return 200, {}, body

    def _search(self, query: dict[str, str]) -> tuple[int, dict, Any]:
        cql = query.get("cql", "")
        try:
            keep, order = parse_cql(cql, self.zone)
        except CQLError:
            return 400, {}, error_body(400, f"Could not parse cql : {cql}")
        expand = _expansions(query)
        cap = (
            BODY_CAP
            if any(e.startswith("body") for e in expand)
            else EXPANDED_CAP
            if expand
            else PLAIN_CAP
        )
        try:
            limit = min(int(query.get("limit", DEFAULT_LIMIT)), cap)
            start = int(query.get("start", 0))
            if "cursor" in query:  # Cloud pages by its cursor
                cursor = base64.urlsafe_b64decode(query["cursor"]).decode()
                start = int(cursor.split(":")[0])
        except ValueError:
            return 400, {}, error_body(400, "Invalid paging parameters")
        visible = [
            c
            for c in self.contents.values()
            if (c.status == "current" or self.list_gone) and keep(c)
        ]
        field_name, descending = order
        visible.sort(
            key=lambda c: (getattr(c, field_name), int(c.id)), reverse=descending
        )
        page = visible[start : start + limit]
        links = {
            "base": self.site,
            "context": self.context,
            "self": f"{self.site}/rest/api/content/search?{urlencode(query)}",
        }
        more = start + len(page) < len(visible)
        if self.cloud:
            more = more or len(page) == limit or self.always_next
        if more:
            links["next"] = self._next_link(cql, query, start + len(page), limit)
        return (
            200,
            {},
            {
                "results": [self.render(c, expand) for c in page],
                "start": start,
                "limit": limit,
                "size": len(page),
                "_links": links,
            },
        )

    def _next_link(
        self, cql: str, query: dict[str, str], start: int, limit: int
    ) -> str:
        params: dict[str, str] = {}
        if self.cloud:
            params["next"] = "true"
            self._cursors += 1  # opaque, and new at every answer
            token = f"{start}:{self._cursors}".encode()
            params["cursor"] = base64.urlsafe_b64encode(token).decode()
        if "expand" in query:
            params["expand"] = query["expand"]
        params.update({"limit": str(limit), "start": str(start), "cql": cql})
        path = f"{self.context}/rest" if self.rooted_next else "/rest"
        return f"{path}/api/content/search?" + urlencode(params, quote_via=quote)

    def render(self, c: Content, expand: set[str]) -> dict[str, Any]:
        """The content object as Confluence answers it, expanded as asked."""
        t = self._template
        slug = quote_plus(c.title)
        if c.type == "blogpost":
            webui = f"/spaces/{c.space}/blog/{c.created:%Y/%m/%d}/{c.id}/{slug}"
        else:
            webui = f"/spaces/{c.space}/pages/{c.id}/{slug}"
        data: dict[str, Any] = {
            "id": c.id,
            "type": c.type,
            "status": c.status,
            "title": c.title,
        }
        expandable = copy.deepcopy(t["_expandable"])
        expandable["space"] = expandable["container"] = f"/rest/api/space/{c.space}"
        expandable["children"] = f"/rest/api/content/{c.id}/child"
        expandable.update({"version": "", "body": "", "history": ""})
        if "version" in expand:
            expandable.pop("version")
            version = copy.deepcopy(t["version"])
            version["when"] = c.when.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            )
            version["number"] = c.number
            version["by"]["displayName"] = version["by"]["publicName"] = c.author
            version["_links"]["self"] = (
                f"{self.site}/rest/api/content/{c.id}/version/{c.number}"
            )
            version["_expandable"]["content"] = f"/rest/api/content/{c.id}"
            data["version"] = version
        if "history" in expand or "history.lastUpdated" in expand:
            expandable.pop("history")
            history = copy.deepcopy(t["history"])
            history["createdDate"] = c.created.isoformat(timespec="milliseconds")
            history["lastUpdated"] = data.get("version") or history["lastUpdated"]
            data["history"] = history
        if "space" in expand:
            expandable.pop("space")
            data["space"] = {
                "key": c.space,
                "name": c.space.lstrip("~"),
                "type": "personal" if c.space.startswith("~") else "global",
                "status": "current",
                "_links": {"webui": f"/spaces/{c.space}"},
            }
        if "body.storage" in expand:
            expandable.pop("body")
            storage = {
                "value": c.storage,
                "representation": "storage",
                "embeddedContent": [],
                "_expandable": {"content": f"/rest/api/content/{c.id}"},
            }
            if c.broken:
                del storage["value"]
            data["body"] = {
                "storage": storage,
                "_expandable": {**t["body"]["_expandable"], "view": ""},
            }
        data["_expandable"] = expandable
        data["_links"] = {
            "self": f"{self.site}/rest/api/content/{c.id}",
            "tinyui": t["_links"]["tinyui"],
            "editui": f"/pages/resumedraft.action?draftId={c.id}",
            "webui": webui,
        }
        return data


def _expansions(query: dict[str, str]) -> set[str]:
    return {e.strip() for e in query.get("expand", "").split(",") if e.strip()}


# -- CQL, as far as the source uses it

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|[=<>(),])'
    r"|(?P<word>[A-Za-z0-9_~.\-]+))"
)
_CQL_TIME = re.compile(r"^(\d{4})[-/](\d{2})[-/](\d{2})(?: (\d{2}):(\d{2}))?$")


def _tokens(cql: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    while at < len(cql):
        if not cql[at:].strip():
            break
        found = _TOKEN.match(cql, at)
        if not found:
            raise CQLError(cql)
        kind = found.lastgroup or ""
        text = found.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text))
        at = found.end()
    return tokens


def parse_cql(
    cql: str, zone: ZoneInfo
) -> tuple[Callable[[Content], bool], tuple[str, bool]]:
    """The filter and the order (field, descending) of a CQL query.

    Raises:
        CQLError: for anything but the clauses described in the module docstring.
    """
    tokens = _tokens(cql)
    at = 0

    def take(kind: str | None = None, text: str | None = None) -> str:
        nonlocal at
        if at >= len(tokens):
            raise CQLError(cql)
        got_kind, got = tokens[at]
        if (kind and got_kind != kind) or (
            text and (got_kind == "string" or got.lower() != text)
        ):
            raise CQLError(cql)
        at += 1
        return got

    def peek(text: str) -> bool:
        return (
            at < len(tokens)
            and tokens[at][0] != "string"
            and (tokens[at][1].lower() == text)
        )

    def value() -> str:
        if at < len(tokens) and tokens[at][0] == "string":
            return take("string")
        return take("word")

    def values() -> set[str]:
        if peek("="):
            take("op")
            return {value()}
        take("word", "in")
        take("op", "(")
        found = {value()}
        while peek(","):
            take("op")
            found.add(value())
        take("op", ")")
        return found

    tests: list[Callable[[Content], bool]] = []
    while True:
        name = take("word").lower()
        if name == "type":
            types = values()
            if not types <= {"page", "blogpost"}:
                raise CQLError(cql)
            tests.append(lambda c, types=types: c.type in types)
        elif name == "space":
            spaces = values()
            tests.append(lambda c, spaces=spaces: c.space in spaces)
        elif name == "lastmodified":
            take("op", ">=")
            since = _cql_time(take("string"), zone, cql)
            tests.append(lambda c, since=since: c.when >= since)
        else:
            raise CQLError(cql)
        if not peek("and"):
            break
        take("word")
    order = ("when", False)
    if peek("order"):
        take("word")
        take("word", "by")
        field_name = take("word").lower()
        if field_name not in ("lastmodified", "created"):
            raise CQLError(cql)
        descending = False
        if peek("asc") or peek("desc"):
            descending = take("word").lower() == "desc"
        order = ("when" if field_name == "lastmodified" else "created", descending)
    if at != len(tokens):
        raise CQLError(cql)
    return (lambda c: all(t(c) for t in tests)), order


def _cql_time(text: str, zone: ZoneInfo, cql: str) -> datetime:
    found = _CQL_TIME.match(text)
    if not found:
        raise CQLError(cql)
    year, month, day, hour, minute = (int(g) if g else 0 for g in found.groups())
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def _handler(fake: FakeConfluence) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out without a wait

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            request = Request(
                "GET", parts.path, query, self.headers.get("Authorization")
            )
            status, headers, body = fake.answer(request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class ConfluenceHarness:
    """The contract suite's harness (tests/source_harness.py): a Cloud site, read
    by a ``confluence`` source; a deletion moves the page to the trash."""

    kind = "confluence"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.fake = FakeConfluence(cloud=True).start()
        self._ids: dict[str, str] = {}

    def source(self) -> Any:
        from eventhub.integrations.confluence import ConfluenceSource

        source = ConfluenceSource(
            base_url=self.fake.base_url,
            allow_private=True,
            sleep=lambda seconds: None,
            **self.fake.credentials(),
        )
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        self._ids[key] = self.fake.put_text(
            title, text, id=self._ids.get(key), when=updated_at
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
        return self.fake.requests

    def close(self) -> None:
        self.fake.stop()
