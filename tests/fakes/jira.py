"""A stateful fake of Jira's REST API on 127.0.0.1: Cloud (v3 and v2) or Server/Data
Center (v2 only, under a context path such as ``/jira``).

Built from the real responses in ``../shared/realdata/jira`` (the jira-ruby gem's
recordings of a Jira Server: a search page of 11 issues, an issue, its comments), it
holds issues that tests add, edit, comment on, move and delete, and serves:

* ``GET /rest/api/3/search/jql`` (Cloud): ``jql``, ``fields``, ``maxResults``
  (default 50; at most :attr:`FakeJira.page_cap`, or :attr:`FakeJira.id_page_cap`
  when only ``id``/``key`` are asked for), ``nextPageToken``; answers ``issues``,
  ``nextPageToken`` (while more follow) and ``isLast``. A query without any
  restriction is refused, as Cloud refuses unbounded JQL.
* ``GET /rest/api/2/search``: ``startAt``/``maxResults`` (capped at
  :attr:`FakeJira.v2_page_cap`, the answer saying what it used)/``total``.
* ``GET /rest/api/{3|2}/issue/{id}`` and ``.../issue/{id}/comment`` (``startAt``,
  ``maxResults``): 404 with Jira's body for an issue that is not there.

JQL is parsed as far as the jira source writes it: clauses joined by ``AND``, each
``project in ("A", ...)``, ``project = A``, ``labels = x``, ``status = x``,
``updated >= <epoch ms>``, ``created >= <epoch ms>`` or one in parentheses, then
``ORDER BY updated|created|key ASC|DESC``; anything else is Jira's 400 with
``errorMessages``. On v3 descriptions and comment bodies are Atlassian Document
Format (text given to the fake is made into paragraphs), on v2 wiki text. A search
embeds the first :attr:`FakeJira.embedded_comments` comments of an issue, with their
``total``. Cloud takes Basic auth (e-mail and API token), Data Center a bearer
personal access token; anything else is a 401. Requests are counted; 429s with
``Retry-After``, failures from now on and malformed issues can be injected.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REALDATA = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "realdata"
    / "jira"
    / "jira-ruby-mock_responses"
)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EMAIL = "bot@example.com"
API_TOKEN = "ATATT3xFfGF0-fake-jira-cloud-token"
PAT = "NjQ2-fake-jira-data-center-pat"
DEFAULT_MAX_RESULTS = 50
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction "
    "to your query."
)


def real(name: str) -> Any:
    """A recorded response body of ``realdata/jira`` (``issue.json``,
    ``issue/10002/comment.json`` ...)."""
    return json.loads((REALDATA / name).read_text())


def jira_time(moment: datetime) -> str:
    """A time as Jira writes it: milliseconds and an offset without a colon."""
    moment = moment.astimezone(UTC)
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    )


def parse_time(value: Any) -> datetime:
    """A Jira time; a value that is none (a recorded Agile issue has ``updated:
    1``) counts as 1970, so that the fake can still sort and filter it."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    except (TypeError, ValueError):
        return datetime(1970, 1, 1, tzinfo=UTC)


def millis(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def error_body(*messages: str, **errors: str) -> dict[str, Any]:
    """Jira's error body."""
    return {"errorMessages": list(messages), "errors": errors}


def to_adf(text: str) -> dict[str, Any]:
    """Text as ADF: paragraphs at blank lines, hard breaks at line ends (what
    Jira's editor makes of typed text)."""
    content = []
    for block in re.split(r"\n\s*\n", text.strip()):
        inline: list[dict[str, Any]] = []
        for i, line in enumerate(block.split("\n")):
            if i:
                inline.append({"type": "hardBreak"})
            if line:
                inline.append({"type": "text", "text": line})
        if inline:
            content.append({"type": "paragraph", "content": inline})
    return {"type": "doc", "version": 1, "content": content}


def to_wiki(value: Any) -> str:
    """An ADF document as wiki text, crudely (what v2 answers for a Cloud issue)."""
    if isinstance(value, str):
        return value
    lines: list[str] = []

    def walk(node: Any, line: list[str]) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "text":
            line.append(node.get("text", ""))
        for child in node.get("content") or []:
            walk(child, line)

    for block in (value or {}).get("content") or []:
        line: list[str] = []
        walk(block, line)
        lines.append("".join(line))
    return "\n".join(lines)


# JQL, as far as the source writes it ----------------------------------------------


class JQLError(ValueError):
    """A query the fake (and Jira, with this message) refuses."""


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=|>|<)|(?P<punct>[(),])|(?P<word>[A-Za-z0-9_.\-]+))'
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise JQLError(
                f"Error in the JQL Query: The character '{text[at:].strip()[:1]}' is "
                f"a reserved JQL character (at character {at + 1})."
            )
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        at = match.end()
    return tokens


@dataclass
class Query:
    """A parsed query: predicates over an issue, all of which must hold, and the
    order."""

    predicates: list[Any]
    order: list[tuple[str, bool]]
    bounded: bool


def parse_jql(text: str) -> Query:
    """Parse the JQL the jira source sends.

    Raises:
        JQLError: for anything else.
    """
    tokens = _tokens(text)
    at = 0

    def peek(offset: int = 0) -> tuple[str, str] | None:
        return tokens[at + offset] if at + offset < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal at
        if at >= len(tokens):
            raise JQLError("Error in the JQL Query: Expecting more of the query.")
        at += 1
        return tokens[at - 1]

    def word(value: str) -> bool:
        token = peek()
        return token is not None and token[0] == "word" and token[1].lower() == value

    def value() -> str:
        kind, text = take()
        if kind not in ("str", "word"):
            raise JQLError(
                f"Error in the JQL Query: Expecting a value but got '{text}'."
            )
        return text

    def clause() -> Any:
        kind, text = take()
        if kind == "punct" and text == "(":
            inner = conjunction()
            if take() != ("punct", ")"):
                raise JQLError("Error in the JQL Query: Expecting ')'.")
            return lambda issue: all(p(issue) for p in inner)
        name = text.lower()
        if kind != "word":
            raise JQLError(
                f"Error in the JQL Query: Expecting a field name but got '{text}'."
            )
        if name == "project" and word("in"):
            take()
            if take() != ("punct", "("):
                raise JQLError("Error in the JQL Query: Expecting '(' after 'in'.")
            values = [value()]
            while peek() == ("punct", ","):
                take()
                values.append(value())
            if take() != ("punct", ")"):
                raise JQLError("Error in the JQL Query: Expecting ')'.")
            return lambda issue: _project_in(issue, values)
        op = take()
        if name in ("project", "labels", "status") and op == ("op", "="):
            wanted = value()
            if name == "project":
                return lambda issue: _project_in(issue, [wanted])
            if name == "labels":
                return lambda issue: wanted in issue["fields"].get("labels", [])
            return lambda issue: (
                (issue["fields"].get("status") or {}).get("name") == wanted
            )
        if name in ("updated", "created") and op == ("op", ">="):
            number = value()
            if not number.isdigit():
                raise JQLError(
                    f"Error in the JQL Query: Date value '{number}' for field '{name}'"
                    " is invalid (the fake takes epoch milliseconds only)."
                )
            since = int(number)
            return lambda issue: millis(parse_time(issue["fields"].get(name))) >= since
        raise JQLError(
            f"Error in the JQL Query: the fake does not know '{text} {op[1]}'."
        )

    def conjunction() -> list[Any]:
        predicates = [clause()]
        while word("and"):
            take()
            predicates.append(clause())
        return predicates

    predicates: list[Any] = []
    if peek() is not None and not word("order"):
        predicates = conjunction()
    order: list[tuple[str, bool]] = []
    if word("order"):
        take()
        if not word("by"):
            raise JQLError("Error in the JQL Query: Expecting 'by' after 'order'.")
        take()
        while True:
            field = take()[1].lower()
            if field not in ("updated", "created", "key"):
                raise JQLError(f"Error in the JQL Query: cannot order by '{field}'.")
            ascending = True
            if word("asc") or word("desc"):
                ascending = take()[1].lower() == "asc"
            order.append((field, ascending))
            if peek() != ("punct", ","):
                break
            take()
    if peek() is not None:
        raise JQLError(
            f"Error in the JQL Query: Expecting either 'AND' or 'ORDER BY' but got "
            f"'{peek()[1]}'."  # type: ignore[index]
        )
    return Query(predicates, order, bounded=bool(predicates))


def _project_in(issue: dict[str, Any], values: list[str]) -> bool:
    project = issue["fields"]["project"]
    return project["key"] in values or project["id"] in values


def _sort_key(issue: dict[str, Any], field: str) -> Any:
    if field == "key":
        prefix, _, number = issue["key"].partition("-")
        return (prefix, int(number))
    return (parse_time(issue["fields"].get(field)), int(issue["id"]))


# The fake ----------------------------------------------------------------------


class FakeJira:
    """Issues at a fake Jira (see the module docstring).

    Args:
        cloud: Cloud (Basic auth; v3 and v2) or Data Center (bearer PAT; v2 only).
        context: The context path Data Center is served under (``/jira``).
    """

    def __init__(self, *, cloud: bool = True, context: str = "") -> None:
        self.cloud = cloud
        self.context = context.rstrip("/")
        self.email, self.api_token, self.pat = EMAIL, API_TOKEN, PAT
        #: Issues by id, in v2's shape (descriptions and bodies as given).
        self.issues: dict[str, dict[str, Any]] = {}
        self.page_cap = 100
        self.id_page_cap = 5000
        self.v2_page_cap = 1000
        self.comment_page_cap = 100
        self.embedded_comments = 20
        #: Every request: (method, path, query) with single values.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.clock = START
        self._next_id = 10000
        self._comment_ids = itertools.count(20000)
        self._numbers: dict[str, int] = {}
        self._projects: dict[str, str] = {}
        self._throttle: dict[int, tuple[int, str]] = {}
        self._changes: dict[int, Any] = {}
        self._canned: dict[int, tuple[int, Any]] = {}
        self._failing: int | None = None
        self._broken: set[str] = set()
        self._comments_gone: set[str] = set()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Serving ---------------------------------------------------------------------

    def start(self) -> FakeJira:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
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

    def __enter__(self) -> FakeJira:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The site's base URL (with the context path), ending in ``/``."""
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.context}/"

    # What tests do at "Jira" ------------------------------------------------------

    def tick(self, at: datetime | None = None) -> datetime:
        """The time of a change: ``at``, or the fake's clock, a second on."""
        with self._lock:
            if at is None:
                self.clock += timedelta(seconds=1)
                return self.clock
            self.clock = max(self.clock, at)
            return at

    def add_issue(
        self,
        summary: str,
        description: Any = None,
        *,
        project: str = "ENG",
        comments: Sequence[tuple[str, Any]] = (),
        labels: Sequence[str] = (),
        issue_type: str = "Task",
        status: str = "To Do",
        updated: datetime | None = None,
    ) -> str:
        """Add an issue; its id. ``comments`` are ``(author, body)`` pairs."""
        with self._lock:
            while str(self._next_id) in self.issues:
                self._next_id += 1
            issue_id = str(self._next_id)
            self._next_id += 1
            number = self._numbers.get(project, 0) + 1
            self._numbers[project] = number
            project_id = self._projects.setdefault(
                project, str(10000 + len(self._projects))
            )
            at = jira_time(self.tick(updated))
            self.issues[issue_id] = {
                "id": issue_id,
                "key": f"{project}-{number}",
                "fields": {
                    "summary": summary,
                    "description": description,
                    "labels": list(labels),
                    "issuetype": {"id": "10001", "name": issue_type, "subtask": False},
                    "status": {"id": "1", "name": status},
                    "project": {"id": project_id, "key": project, "name": project},
                    "reporter": _user("Ada Reporter"),
                    "assignee": None,
                    "created": at,
                    "updated": at,
                    "comment": {"comments": []},
                },
            }
            for author, body in comments:
                self._comment(issue_id, author, body, at)
            return issue_id

    def add_real_issues(self) -> list[str]:
        """The 11 issues of the recorded search page (``issue.json``), as they were,
        issue 10002 with its two recorded comments; their ids."""
        with self._lock:
            ids = []
            for issue in real("issue.json")["issues"]:
                issue = copy.deepcopy(issue)
                issue["fields"].setdefault("comment", {"comments": []})
                self.issues[issue["id"]] = issue
                ids.append(issue["id"])
            comments = real("issue/10002/comment.json")["comments"]
            self.issues["10002"]["fields"]["comment"] = {"comments": comments}
            return ids

    def add_raw_issue(self, issue: dict[str, Any]) -> str:
        """Hold a recorded issue as it is (its fields may lack what others have);
        its id."""
        with self._lock:
            issue = copy.deepcopy(issue)
            issue["fields"].setdefault("comment", {"comments": []})
            if isinstance(issue["fields"]["comment"], list):  # the Agile API's shape
                issue["fields"]["comment"] = {"comments": issue["fields"]["comment"]}
            self.issues[issue["id"]] = issue
            return str(issue["id"])

    def edit(
        self,
        issue_id: str,
        *,
        summary: str | None = None,
        description: Any = ...,
        status: str | None = None,
        labels: list[str] | None = None,
        updated: datetime | None = None,
    ) -> None:
        with self._lock:
            fields = self.issues[issue_id]["fields"]
            if summary is not None:
                fields["summary"] = summary
            if description is not ...:
                fields["description"] = description
            if status is not None:
                fields["status"] = {"id": "3", "name": status}
            if labels is not None:
                fields["labels"] = list(labels)
            fields["updated"] = jira_time(self.tick(updated))

    def comment(self, issue_id: str, author: str, body: Any) -> None:
        """Comment on an issue (its ``updated`` moves, as in Jira)."""
        with self._lock:
            at = jira_time(self.tick())
            self._comment(issue_id, author, body, at)
            self.issues[issue_id]["fields"]["updated"] = at

    def _comment(self, issue_id: str, author: str, body: Any, at: str) -> None:
        comments = self.issues[issue_id]["fields"]["comment"]["comments"]
        comments.append(
            {
                "id": str(next(self._comment_ids)),
                "author": _user(author),
                "body": body,
                "updateAuthor": _user(author),
                "created": at,
                "updated": at,
            }
        )

    def move(self, issue_id: str, project: str) -> str:
        """Move an issue to another project: a new key, the same id; its new key."""
        with self._lock:
            issue = self.issues[issue_id]
            number = self._numbers.get(project, 0) + 1
            self._numbers[project] = number
            project_id = self._projects.setdefault(
                project, str(10000 + len(self._projects))
            )
            issue["key"] = f"{project}-{number}"
            issue["fields"]["project"] = {
                "id": project_id,
                "key": project,
                "name": project,
            }
            issue["fields"]["updated"] = jira_time(self.tick())
            return issue["key"]

    def delete(self, issue_id: str) -> None:
        with self._lock:
            del self.issues[issue_id]

    def key_of(self, issue_id: str) -> str:
        return self.issues[issue_id]["key"]

    def break_issue(self, issue_id: str) -> None:
        """Answer this issue with a garbled ``updated`` (a malformed body)."""
        self._broken.add(issue_id)

    def lose_comments(self, issue_id: str) -> None:
        """Answer this issue's comment endpoint with a 404 (deleted meanwhile)."""
        self._comments_gone.add(issue_id)

    def throttle(self, at: int, status: int = 429, retry_after: str = "0") -> None:
        """Answer the ``at``-th request from now (1: the next) with ``status`` and
        ``Retry-After``."""
        with self._lock:
            self._throttle[len(self.requests) + at] = (status, retry_after)

    def respond(self, at: int, body: Any, status: int = 200) -> None:
        """Answer the ``at``-th request from now with this body, whatever it asks
        (a server answering nonsense)."""
        with self._lock:
            self._canned[len(self.requests) + at] = (status, body)

    def before(self, at: int, change: Any) -> None:
        """Call ``change()`` before answering the ``at``-th request from now (a
        person editing while a sync pages)."""
        with self._lock:
            self._changes[len(self.requests) + at] = change

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = status

    def heal(self) -> None:
        self._failing = None

    def searches(self) -> list[dict[str, str]]:
        """The query parameters of the searches served."""
        return [
            q
            for _, path, q in self.requests
            if path.endswith(("/search", "/search/jql"))
        ]

    # Answers ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((handler.command, parts.path, query))
            number = len(self.requests)
            change = self._changes.pop(number, None)
            if change is not None:
                change()
            throttled = self._throttle.pop(number, None)
            failing = self._failing
            canned = self._canned.pop(number, None)
            try:
                if canned is not None and self._authorised(
                    handler.headers.get("Authorization", "")
                ):
                    (status, body), headers = canned, {}
                else:
                    status, headers, body = self._answer(
                        handler.command,
                        parts.path,
                        query,
                        handler.headers,
                        throttled,
                        failing,
                    )
            except Exception as exc:  # a bug of the fake: a 500 that says so
                status, headers = 500, {}
                body = error_body(f"fake jira: {type(exc).__name__}: {exc}")
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        content_type = "text/plain" if isinstance(body, bytes) else "application/json"
        handler.send_header("Content-Type", f"{content_type};charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Any,
        throttled: tuple[int, str] | None,
        failing: int | None,
    ) -> tuple[int, dict[str, str], Any]:
        if not self._authorised(headers.get("Authorization", "")):
            if self.cloud:
                return 401, {}, b"Client must be authenticated to access this resource."
            return (
                401,
                {},
                error_body(
                    "You are not authenticated. Authentication required to perform"
                    " this operation."
                ),
            )
        if throttled is not None:
            status, retry_after = throttled
            return (
                status,
                {"Retry-After": retry_after},
                error_body(
                    "Rate limit exceeded." if status == 429 else "Service unavailable."
                ),
            )
        if failing is not None:
            return failing, {}, error_body("Internal server error")
        if not path.startswith(self.context + "/rest/api/"):
            return 404, {}, error_body("Not found")
        version, _, rest = path[len(self.context) + len("/rest/api/") :].partition("/")
        if version not in ("2", "3") or (version == "3" and not self.cloud):
            return 404, {}, error_body("Not found")
        if method != "GET":
            return 405, {}, error_body("Method not allowed")
        try:
            if rest == "search/jql" and version == "3":
                return 200, {}, self._search_jql(query)
            if rest == "search":
                return 200, {}, self._search(version, query)
            match = re.fullmatch(r"issue/(\d+)(/comment)?", rest)
            if match:
                return self._issue(version, match.group(1), bool(match.group(2)), query)
        except JQLError as exc:
            return 400, {}, error_body(str(exc))
        except ValueError as exc:
            return 400, {}, error_body(f"Invalid request: {exc}")
        return 404, {}, error_body("Not found")

    def _authorised(self, header: str) -> bool:
        if self.cloud:
            token = base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
            return header == f"Basic {token}"
        return header == f"Bearer {self.pat}"

    def _matching(self, jql: str, version: str) -> tuple[Query, list[dict[str, Any]]]:
        query = parse_jql(jql)
        if version == "3" and not query.bounded:
            raise JQLError(UNBOUNDED)
        issues = [
            i for i in self.issues.values() if all(p(i) for p in query.predicates)
        ]
        for field, ascending in reversed(query.order or [("key", False)]):
            issues.sort(key=lambda i: _sort_key(i, field), reverse=not ascending)
        return query, issues

    def _search_jql(self, query: dict[str, str]) -> dict[str, Any]:
        jql = query.get("jql", "")
        fields = _fields(query.get("fields"))
        _, issues = self._matching(jql, "3")
        cap = self.id_page_cap if set(fields) <= {"id", "key"} else self.page_cap
        size = min(int(query.get("maxResults", DEFAULT_MAX_RESULTS)), cap)
        start = 0
        if "nextPageToken" in query:
            start = _token_offset(query["nextPageToken"], jql)
        page = issues[start : start + size]
        answer: dict[str, Any] = {
            "issues": [self._render(i, "3", fields) for i in page],
            "isLast": start + size >= len(issues),
        }
        if not answer["isLast"]:
            answer["nextPageToken"] = _token(start + size, jql)
        return answer

    def _search(self, version: str, query: dict[str, str]) -> dict[str, Any]:
        fields = _fields(query.get("fields"))
        _, issues = self._matching(query.get("jql", ""), version)
        size = min(int(query.get("maxResults", DEFAULT_MAX_RESULTS)), self.v2_page_cap)
        start = int(query.get("startAt", 0))
        page = issues[start : start + size]
        return {
            "expand": "schema,names",
            "startAt": start,
            "maxResults": size,
            "total": len(issues),
            "issues": [self._render(i, version, fields) for i in page],
        }

    def _issue(
        self, version: str, issue_id: str, comments: bool, query: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        issue = self.issues.get(issue_id)
        if issue is None or (comments and issue_id in self._comments_gone):
            return 404, {}, error_body(NOT_FOUND)
        if not comments:
            fields = _fields(query.get("fields"))
            return 200, {}, self._render(issue, version, fields, embedded=None)
        every = issue["fields"]["comment"]["comments"]
        start = int(query.get("startAt", 0))
        size = min(int(query.get("maxResults", 5000)), self.comment_page_cap)
        page = every[start : start + size]
        return (
            200,
            {},
            {
                "startAt": start,
                "maxResults": size,
                "total": len(every),
                "comments": [self._render_comment(c, version) for c in page],
            },
        )

    def _render(
        self,
        issue: dict[str, Any],
        version: str,
        fields: list[str],
        embedded: int | None = -1,
    ) -> dict[str, Any]:
        """An issue as the API version answers it, with the fields asked for."""
        base = self.url.rstrip("/")
        answer: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog",
            "id": issue["id"],
            "self": f"{base}/rest/api/{version}/issue/{issue['id']}",
            "key": issue["key"],
        }
        wanted = set(fields) if fields else set(issue["fields"]) - {"comment"}
        if "*all" in wanted:
            wanted = set(issue["fields"])
        out: dict[str, Any] = {}
        for name in wanted - {"id", "key"}:
            if name not in issue["fields"]:
                continue
            value = copy.deepcopy(issue["fields"][name])
            if name == "description" and value is not None:
                value = _body(value, version)
            if name == "comment":
                every = value["comments"]
                cap = self.embedded_comments if embedded == -1 else len(every)
                shown = every[:cap]
                value = {
                    "comments": [self._render_comment(c, version) for c in shown],
                    "self": f"{answer['self']}/comment",
                    "maxResults": len(shown),
                    "total": len(every),
                    "startAt": 0,
                }
            out[name] = value
        if issue["id"] in self._broken and "updated" in out:
            out["updated"] = "yesterday, around noon"
        answer["fields"] = out
        return answer

    def _render_comment(self, comment: dict[str, Any], version: str) -> dict[str, Any]:
        rendered = copy.deepcopy(comment)
        rendered["body"] = _body(comment["body"], version)
        return rendered


def _body(value: Any, version: str) -> Any:
    if version == "3":
        return to_adf(value) if isinstance(value, str) else value
    return to_wiki(value)


def _fields(value: str | None) -> list[str]:
    return [f.strip() for f in value.split(",") if f.strip()] if value else []


def _user(name: str) -> dict[str, Any]:
    account = hashlib.sha1(name.encode()).hexdigest()[:24]
    return {"accountId": account, "displayName": name, "active": True}


def _token(offset: int, jql: str) -> str:
    raw = json.dumps({"o": offset, "q": hashlib.sha1(jql.encode()).hexdigest()[:12]})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _token_offset(token: str, jql: str) -> int:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        if raw["q"] != hashlib.sha1(jql.encode()).hexdigest()[:12]:
            raise ValueError("another query")
        return int(raw["o"])
    except (ValueError, KeyError, TypeError):
        raise JQLError("The provided next page token is invalid or expired.") from None


# The contract suite's harness ------------------------------------------------------


class JiraHarness:
    """A ``jira`` source on one project of a Cloud :class:`FakeJira` (v3)."""

    kind = "jira"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.fake = FakeJira().start()
        if request is not None:
            request.addfinalizer(self.fake.stop)
        self._ids: dict[str, str] = {}

    def source(self) -> Any:
        from eventhub.integrations.jira import JiraSource

        source = JiraSource(
            base_url=self.fake.url,
            email=self.fake.email,
            api_token=self.fake.api_token,
            projects=["CON"],
            allow_private=True,
            rate=None,
            attempts=2,
            sleep=lambda seconds: None,
        )
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        if key in self._ids:
            self.fake.edit(
                self._ids[key], summary=title, description=text, updated=updated_at
            )
        else:
            self._ids[key] = self.fake.add_issue(
                title, text, project="CON", updated=updated_at
            )

    def delete(self, key: str) -> None:
        self.fake.delete(self._ids[key])

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
        self.fake.stop()
