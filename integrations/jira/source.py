"""``jira`` document source: Jira issues (Cloud REST v3, or v2 for Server/DC).

::

    [sources.tickets]
    kind = "jira"
    base_url = "https://example.atlassian.net/"
    email = "bot@example.com"                  # Cloud: e-mail + API token (basic)
    api_token = { env = "JIRA_API_TOKEN" }
    # token = { env = "JIRA_PAT" }             # Server/DC: a personal access token
    api_version = 3                            # 3 (Cloud, default) or 2 (Server/DC)
    projects = ["ENG"]                         # default: every visible project
    jql = "labels = docs"                      # optional, ANDed with the sync's own

One document per issue: its id is the numeric issue id (keys change when an issue
moves), its title ``KEY: summary``, its text the summary, the description (Atlassian
Document Format on v3, wiki text on v2, kept as it is) and the comments as
``author: text``. The change feed searches ``updated >= <epoch ms>`` (a number, so the
profile's time zone cannot shift it) ``ORDER BY updated ASC`` from the checkpoint
(the latest ``updated`` seen) minus the overlap; v3 pages through
``rest/api/3/search/jql`` by ``nextPageToken``, v2 through ``rest/api/2/search`` by
``startAt``. Jira's search reports no deletions: a deleted issue drops out of the
enumeration (``fields=id`` only, up to thousands of ids a page), which runs every
hour by default (``prune``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import structlog

from eventhub.documents import Checkpoint, CheckpointExpired, Document, SourceError
from eventhub.errors import ConfigError

from .._apisource import APISource
from .adf import adf_text
from .api import JiraIssueNotFound, call
from .api import api_version as checked_api_version

__all__ = ["JiraSource", "parse_jira_time"]

log = structlog.get_logger(__name__)

#: The fields the feed and fetch ask for (and nothing else: less to send).
FIELDS = (
    "summary,description,comment,updated,created,project,issuetype,status,"
    "reporter,assignee"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JIRA_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[+-]\d{2}:?\d{2}|Z)"
)
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)
_ISSUE_ID = re.compile(r"\d{1,19}")


class MalformedIssue(ValueError):
    """An issue whose JSON lacks what a document needs (or holds it garbled)."""


def parse_jira_time(value: Any) -> datetime:
    """A Jira time (``2026-03-01T12:00:00.000+0000``; Jira writes offsets without
    a colon) in UTC.

    Raises:
        MalformedIssue: for anything else: no guessing at a time zone.
    """
    if not isinstance(value, str) or not _JIRA_TIME.fullmatch(value):
        raise MalformedIssue(f"not a Jira time: {str(value)[:40]!r}")
    layout = "%Y-%m-%dT%H:%M:%S.%f%z" if "." in value else "%Y-%m-%dT%H:%M:%S%z"
    try:
        return datetime.strptime(value, layout).astimezone(UTC)
    except ValueError as exc:
        raise MalformedIssue(f"not a Jira time: {value!r} ({exc})") from None


def _millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _quoted(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JiraSource(APISource):
    """The issues of Jira projects as documents (see the module docstring).

    Args:
        base_url: The site (``https://example.atlassian.net/``; Server/DC: the
            context root, e.g. ``https://jira.example.com/jira/``).
        api_version: 3 (Cloud) or 2 (Server/Data Center).
        projects: Project keys (or ids) to index; default: every project the
            account can browse.
        jql: A JQL restriction ANDed with the sync's own clauses (no
            ``ORDER BY``: the sync orders by ``updated``).
        **settings: The keys of :class:`~eventhub.integrations.rest.RESTIntegration`
            and the extraction limits.

    Raises:
        ConfigError: naming the setting that is wrong.
    """

    kind = "jira"
    # Atlassian publishes no fixed numbers: API-token traffic meets per-endpoint
    # burst limits (a token bucket) and is answered 429 with Retry-After (503
    # with Retry-After when a resource limit is hit), which the client waits out.
    # Ten a second is the budget their rate-limiting guide reasons with.
    default_rate: ClassVar[float | None] = 10.0
    default_burst: ClassVar[int | None] = 10
    # The feed reports no deletions, and a listing of ids is cheap (thousands of
    # ids a request), so deletions are looked for every hour.
    default_prune: ClassVar[float | None] = 3600.0
    #: Issues asked for per search page (Jira may return fewer: paged by what came).
    page_size: ClassVar[int] = 100
    #: Ids asked for per page of the enumeration (Cloud returns up to 5000 when
    #: only ids are asked for; Server/DC caps pages at 1000 by default).
    id_page_sizes: ClassVar[Mapping[int, int]] = {3: 5000, 2: 1000}
    #: Comments asked for per page of ``issue/{id}/comment``.
    comment_page_size: ClassVar[int] = 100
    #: Issues a v2 page starts before the end of the last one: an issue updated
    #: during the listing moves to its end, and offset paging would otherwise skip
    #: the one that moved up into its place (repeats are dropped).
    page_overlap: ClassVar[int] = 5

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_version: int = 3,
        projects: Sequence[str] | None = None,
        jql: str | None = None,
        **settings: Any,
    ) -> None:
        where = "jira source"
        version = checked_api_version(api_version, where)
        if projects is not None and (
            isinstance(projects, str)
            or not all(isinstance(p, str) and p.strip() for p in projects)
        ):
            raise ConfigError(f"{where}: projects must be a list of project keys")
        if jql is not None and not (isinstance(jql, str) and jql.strip()):
            raise ConfigError(f"{where}: jql must be a non-empty JQL restriction")
        if jql is not None and _ORDER_BY.search(jql):
            raise ConfigError(
                f"{where}: jql must not have an ORDER BY (the sync orders by updated)"
            )
        super().__init__(base_url=base_url, **settings)
        self.api_version = version
        self.projects = [p.strip() for p in projects or ()]
        self.jql = jql.strip() if jql else None
        clauses = []
        if self.projects:
            keys = ", ".join(_quoted(p) for p in self.projects)
            clauses.append(f"project in ({keys})")
        if self.jql:
            clauses.append(f"({self.jql})")
        #: The restriction every search of this source starts with.
        self.restriction = " AND ".join(clauses)
        self.scope = hashlib.sha256(
            f"{version}\n{self.restriction}".encode()
        ).hexdigest()[:16]
        self.config.update(
            {"api_version": version, "projects": self.projects, "jql": self.jql}
        )

    # The change feed ------------------------------------------------------------

    def read(
        self, checkpoint: Any | None, *, overlap: float = 0.0
    ) -> Iterator[Checkpoint | Document]:
        """Issues updated since the checkpoint (all of them from None), oldest
        first, with a checkpoint after each page.

        The checkpoint is ``{"scope": ..., "updated": <epoch ms>}``: the latest
        ``updated`` seen, and a digest of the API version and restriction (a
        checkpoint of another configuration is not used).

        Raises:
            CheckpointExpired: for a checkpoint of another shape or configuration.
            JiraError: Jira refused the search (401, a JQL error ...).
        """
        since = self._since(checkpoint)
        return self._feed(since, overlap)

    def _since(self, checkpoint: Any | None) -> int | None:
        if checkpoint is None:
            return None
        if not isinstance(checkpoint, dict) or set(checkpoint) != {"scope", "updated"}:
            raise CheckpointExpired(f"not a jira checkpoint: {str(checkpoint)[:80]!r}")
        if checkpoint["scope"] != self.scope:
            raise CheckpointExpired(
                "the checkpoint was written for another api_version, projects or jql"
            )
        updated = checkpoint["updated"]
        if updated is None:
            return None
        if not isinstance(updated, int) or isinstance(updated, bool) or updated < 0:
            raise CheckpointExpired(f"not a jira checkpoint time: {updated!r}")
        return updated

    def _checkpoint(self, updated: int | None) -> Checkpoint:
        return Checkpoint({"scope": self.scope, "updated": updated})

    def _feed(
        self, since: int | None, overlap: float
    ) -> Iterator[Checkpoint | Document]:
        start = 0 if since is None else max(0, since - int(overlap * 1000))
        jql = self._jql(f"updated >= {start}", "ORDER BY updated ASC")
        latest = marked = since
        for page in self._search(jql, FIELDS, self.page_size):
            for issue in page:
                document = self._issue_document(issue)
                if document is None:
                    continue
                yield document
                if document.updated_at is not None:  # always: _document sets it
                    moment = _millis(document.updated_at)
                    latest = moment if latest is None else max(latest, moment)
            # Sorted by updated: everything before the latest time seen is covered
            # (its equals are read again, the next search being inclusive).
            if latest != marked:
                yield self._checkpoint(latest)
                marked = latest
        yield self._checkpoint(latest)

    def _issue_document(self, issue: Any) -> Document | None:
        """The document of a search hit; None (and the issue recorded as failed,
        fetched again next sync) when it is malformed or vanished meanwhile."""
        issue_id = issue.get("id") if isinstance(issue, Mapping) else None
        if not isinstance(issue_id, str) or not _ISSUE_ID.fullmatch(issue_id):
            log.warning(
                "jira issue without an id ignored",
                source=self.name,
                issue=str(issue)[:80],
            )
            return None
        try:
            return self._document(issue, self._more_comments(issue))
        except MalformedIssue as exc:
            self.fail(issue_id, f"malformed issue: {exc}")
        except JiraIssueNotFound:
            self.fail(issue_id, "the issue vanished while its comments were read")
        return None

    # Fetch and enumerate -------------------------------------------------------

    def fetch(self, id: str) -> Document | None:
        """The issue with this numeric id; None when it is gone (or not visible),
        or unreadable (then also skipped, with the reason)."""
        if not isinstance(id, str) or not _ISSUE_ID.fullmatch(id):
            return None
        try:
            issue = self._call("GET", f"issue/{id}", params={"fields": FIELDS})
            if not isinstance(issue, dict) or issue.get("id") != id:
                raise MalformedIssue("the answer is not this issue")
            if not self._in_projects(issue):
                return None
            return self._document(issue, self._more_comments(issue))
        except JiraIssueNotFound:
            return None
        except MalformedIssue as exc:
            self.skip(id, f"malformed issue: {exc}")
            return None

    def _in_projects(self, issue: Mapping[str, Any]) -> bool:
        """Whether a fetched issue is in the configured projects (it may have moved
        out). A ``jql`` restriction is Jira's to judge: an issue that no longer
        matches it leaves at the next enumeration."""
        if not self.projects:
            return True
        fields = issue.get("fields")
        project = fields.get("project") if isinstance(fields, Mapping) else None
        return bool({_name(project, "key"), _name(project, "id")} & set(self.projects))

    def ids(self) -> Iterator[str]:
        """The ids of every issue in the restriction (``fields=id``): a complete
        listing, or an exception."""
        jql = self._jql(None, "ORDER BY created ASC")
        size = self.id_page_sizes[self.api_version]
        for page in self._search(jql, "id", size):
            for issue in page:
                issue_id = issue.get("id") if isinstance(issue, Mapping) else None
                if not isinstance(issue_id, str) or not _ISSUE_ID.fullmatch(issue_id):
                    raise SourceError(
                        f"jira source {self.name!r}: a listed issue has no id"
                    )
                yield issue_id

    # Jira's search and its two ways of paging ------------------------------------

    def _jql(self, clause: str | None, order: str) -> str:
        """The restriction AND ``clause``, ordered. Cloud refuses an unbounded
        query: with neither, the query is bounded by ``updated >= 0``."""
        where = " AND ".join(c for c in (self.restriction, clause) if c)
        return f"{where or 'updated >= 0'} {order}"

    def _search(self, jql: str, fields: str, size: int) -> Iterator[list[Any]]:
        """The pages of a search, each a list of issues, repeats dropped."""
        pages = self._token_pages if self.api_version == 3 else self._offset_pages
        seen: set[tuple[Any, Any]] = set()
        for page in pages(jql, fields, size):
            fresh = []
            for issue in page:
                mark = _mark(issue)
                if mark not in seen:
                    seen.add(mark)
                    fresh.append(issue)
            yield fresh

    def _token_pages(self, jql: str, fields: str, size: int) -> Iterator[list[Any]]:
        """Cloud: ``search/jql``, paged by ``nextPageToken`` until ``isLast``."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": size}
            if token is not None:
                params["nextPageToken"] = token
            page = self._page("search/jql", params)
            yield page["issues"]
            last, token = token, page.get("nextPageToken")
            if page.get("isLast") is True or not token:
                return
            if not isinstance(token, str) or token == last:
                raise SourceError(
                    f"jira source {self.name!r}: the search answered a nextPageToken"
                    " that leads nowhere"
                )

    def _offset_pages(self, jql: str, fields: str, size: int) -> Iterator[list[Any]]:
        """Server/DC: ``search``, paged by ``startAt`` over ``total``; the server may
        return fewer than asked (its page cap): the next page starts after what
        came, a few issues early (:attr:`page_overlap`)."""
        start = 0
        while True:
            params = {
                "jql": jql,
                "fields": fields,
                "maxResults": size,
                "startAt": start,
            }
            page = self._page("search", params)
            issues = page["issues"]
            yield issues
            total = page.get("total")
            if not issues or (isinstance(total, int) and start + len(issues) >= total):
                return  # (without a total: until a page comes back empty)
            back = self.page_overlap if len(issues) > 2 * self.page_overlap else 0
            start += len(issues) - back

    def _page(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        page = self._call("GET", path, params=params)
        if not isinstance(page, dict) or not isinstance(page.get("issues"), list):
            raise SourceError(
                f"jira source {self.name!r}: a search answer without a list of issues"
            )
        return page

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return call(self, self.api_version, method, path, **kwargs)

    # Issues as documents -----------------------------------------------------------

    def _more_comments(self, issue: Mapping[str, Any]) -> list[Any]:
        """The comments past those the issue's ``comment`` field holds (Jira embeds
        the first ones only), through ``issue/{id}/comment``."""
        fields = issue.get("fields")
        embedded = fields.get("comment") if isinstance(fields, Mapping) else None
        if not isinstance(embedded, Mapping):
            return []
        held = embedded.get("comments")
        total = embedded.get("total")
        count = len(held) if isinstance(held, list) else 0
        if not isinstance(total, int) or total <= count:
            return []
        more: list[Any] = []
        start = count
        while start < total:
            page = self._call(
                "GET",
                f"issue/{issue['id']}/comment",
                params={
                    "startAt": start,
                    "maxResults": self.comment_page_size,
                    "orderBy": "created",
                },
            )
            comments = page.get("comments") if isinstance(page, dict) else None
            if not isinstance(comments, list):
                raise MalformedIssue("a comment page without comments")
            if not comments:
                break
            more += comments
            start += len(comments)
            if isinstance(page.get("total"), int):
                total = page["total"]
        return more

    def _document(self, issue: Mapping[str, Any], more_comments: list[Any]) -> Document:
        """An issue as a document.

        Raises:
            MalformedIssue: when the issue lacks its key, fields or times.
        """
        fields = issue.get("fields")
        key = issue.get("key")
        if not isinstance(fields, Mapping) or not isinstance(key, str) or not key:
            raise MalformedIssue("no key or fields")
        updated = parse_jira_time(fields.get("updated"))
        summary = fields.get("summary")
        summary = summary.strip() if isinstance(summary, str) else ""
        sections = [summary, adf_text(fields.get("description")).strip()]
        comment = fields.get("comment")
        comments = comment.get("comments") if isinstance(comment, Mapping) else comment
        lines = []
        for item in [*(comments if isinstance(comments, list) else []), *more_comments]:
            line = _comment_line(item)
            if line:
                lines.append(line)
        sections.append("\n".join(lines))
        project = fields.get("project")
        metadata: dict[str, Any] = {
            "key": key,
            "project": _name(project, "key"),
            "type": _name(fields.get("issuetype"), "name"),
            "status": _name(fields.get("status"), "name"),
            "reporter": _name(fields.get("reporter"), "displayName"),
            "assignee": _name(fields.get("assignee"), "displayName"),
        }
        return Document(
            id=str(issue["id"]),
            source=self.name,
            title=f"{key}: {summary}" if summary else key,
            text="\n\n".join(s for s in sections if s),
            url=f"{self.base_url}browse/{quote(key, safe='')}",
            updated_at=updated,
            metadata={k: v for k, v in metadata.items() if v is not None},
        )


def _comment_line(comment: Any) -> str:
    """``author: text`` (the text's further lines follow on their own)."""
    if not isinstance(comment, Mapping):
        return ""
    text = adf_text(comment.get("body")).strip()
    if not text:
        return ""
    author = _name(comment.get("author"), "displayName") or "Anonymous"
    return f"{author}: {text}"


def _name(value: Any, attribute: str) -> str | None:
    name = value.get(attribute) if isinstance(value, Mapping) else None
    return name if isinstance(name, str) and name else None


def _mark(issue: Any) -> tuple[Any, Any]:
    """What makes a search hit a repeat: the same issue, unchanged."""
    if not isinstance(issue, Mapping):
        return (id(issue), None)
    fields = issue.get("fields")
    updated = fields.get("updated") if isinstance(fields, Mapping) else None
    return (issue.get("id"), updated)
