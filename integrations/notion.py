"""``notion``: Notion pages as documents, through the Notion API (version 2022-06-28).

::

    [sources.notes]
    kind = "notion"
    token = { env = "NOTION_TOKEN" }   # an internal integration's secret (bearer)
    databases = ["a1b2c3..."]          # default: every page shared with the integration
    max_blocks = 10000                 # a page with more blocks is skipped
    max_depth = 10                     # ... and one nested deeper

With ``databases``, each is read by ``POST v1/databases/{id}/query`` filtered on
``last_edited_time`` ``on_or_after`` the checkpoint and sorted by it ascending;
without, ``POST v1/search`` for pages, newest first, until past the checkpoint
(search cannot filter by time). Notion rounds ``last_edited_time`` down to the
minute, so the feed reads again from the checkpoint's minute minus the overlap:
repeats cost a listing, not a refetch (see :class:`_Stream`). A page's text is its
database properties as ``Name: value`` lines, then its blocks
(``GET v1/blocks/{id}/children``, paged, recursively) as lines: see
:mod:`._notiontext`. Pages in the trash the listing reports are tombstones; the
others are found by the prune (listings leave trashed pages out).

The ``Notion-Version`` header is pinned to 2022-06-28, the last version with
``databases/{id}/query``: a database with several data sources (2025-09-03) cannot
be queried with it, and is reported by Notion's own error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog

from eventhub.documents import (
    Change,
    Checkpoint,
    CheckpointExpired,
    Deleted,
    Document,
    SourceError,
)
from eventhub.errors import ConfigError, InvalidEvent, TransientError
from eventhub.events import parse_time
from eventhub.hookspecs import hookimpl
from eventhub.http import HttpError

from ._apisource import APISource
from ._notiontext import CONTAINERS, LEAVES, block_lines, page_title, property_lines

__all__ = ["NOTION_VERSION", "NotionError", "NotionNotFound", "NotionSource"]

NOTION_VERSION = "2022-06-28"
#: Notion's largest page of results.
PAGE_SIZE = 100
#: Most final versions a checkpoint remembers per stream (more: refetched).
MAX_SEEN = 1000

_HEX32 = re.compile(r"[0-9a-f]{32}")
_ASCENDING = [{"timestamp": "last_edited_time", "direction": "ascending"}]
_SEARCH = {
    "filter": {"property": "object", "value": "page"},
    "sort": {"timestamp": "last_edited_time", "direction": "descending"},
}
_VERSION = 1
_MARGIN = timedelta(minutes=1)

log = structlog.get_logger(__name__)


class NotionError(HttpError):
    """Notion refused a request: ``code`` is Notion's (``unauthorized``,
    ``object_not_found``, ``validation_error`` ...), ``notion_message`` its words."""

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None,
        code: str,
        message: str,
        body: str | None = None,
    ) -> None:
        self.code = code
        self.notion_message = message
        super().__init__(method, url, status, reason=f"{code}: {message}")
        self.body = body

    @classmethod
    def from_http_error(cls, exc: HttpError) -> NotionError:
        """The NotionError for an HTTP error whose body is Notion's error object
        (``{"object": "error", "status", "code", "message"}``)."""
        try:
            body = orjson.loads(exc.body or "")
        except orjson.JSONDecodeError:
            body = None
        code, message = "http_error", (exc.body or "").strip()
        if isinstance(body, dict) and body.get("object") == "error":
            code = str(body.get("code") or code)
            message = str(body.get("message") or "")
        not_found = exc.status == 404 or code == "object_not_found"
        error_class = NotionNotFound if not_found else cls
        return error_class(exc.method, exc.url, exc.status, code, message, exc.body)


class NotionNotFound(NotionError, LookupError):
    """No such page, block or database, or not shared with the integration
    (Notion does not say which)."""


class _Unreadable(Exception):
    """A page that cannot be read this time (its body is gone, or malformed)."""


class _TooLarge(Exception):
    """A page over :attr:`NotionSource.max_blocks`, ``max_depth`` or ``max_chars``."""


@dataclass
class _Stream:
    """Where one listing (a database query, or the search) stands.

    ``latest`` is the newest ``last_edited_time`` seen. ``seen`` holds the
    versions (page id: ``last_edited_time``) read in the overlap window that can
    no longer change without a new ``last_edited_time``: a version is final once
    the listing showed a later minute (Notion's clock was then past its minute;
    we ask for two, a margin for clocks). Re-listed unchanged, they are not
    fetched again; the versions of the newest minutes are (an edit in the same
    minute keeps the time).
    """

    latest: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, value: Any) -> _Stream:
        if not isinstance(value, dict) or set(value) - {"latest", "seen"}:
            raise ValueError("not a stream")
        latest = value.get("latest")
        seen = value.get("seen") or {}
        if not isinstance(seen, dict) or not all(
            isinstance(v, str) for v in seen.values()
        ):
            raise ValueError("not a stream")
        return cls(parse_time(latest) if latest is not None else None, dict(seen))

    def dump(self, overlap: float) -> dict[str, Any]:
        seen = self.seen
        if self.latest is not None:
            start = _notion_time(_window(self.latest, overlap))
            seen = {k: v for k, v in seen.items() if v >= start}
        if len(seen) > MAX_SEEN:
            seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-MAX_SEEN:])
        latest = _notion_time(self.latest) if self.latest is not None else None
        return {"latest": latest, "seen": seen}

    def observe(self, time: datetime) -> None:
        if self.latest is None or time > self.latest:
            self.latest = time


class NotionSource(APISource):
    """The pages of a Notion workspace shared with an integration.

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`
    (``base_url`` defaults to ``https://api.notion.com/``, ``rate`` to 3 a second)
    and the extraction limits, plus:

    Args:
        databases: Database ids (or their URLs) to read; default: every page the
            integration can see, through search.
        max_blocks: Most blocks read of one page; a larger page is skipped.
        max_depth: Deepest nesting of blocks read; a deeper page is skipped.

    Raises:
        ConfigError: for a missing token or a malformed setting.
    """

    kind = "notion"
    default_base_url = "https://api.notion.com/"
    default_rate = 3.0
    # Listings leave most trashed pages out: deletions come from the prune.
    default_prune = 3600.0

    def __init__(
        self,
        *,
        databases: Sequence[str] | None = None,
        max_blocks: int = 10_000,
        max_depth: int = 10,
        **config: Any,
    ) -> None:
        if not any(config.get(key) for key in ("token", "oauth")):
            raise ConfigError("notion source: token is missing")
        if databases is not None and (
            isinstance(databases, str) or not isinstance(databases, list | tuple)
        ):
            raise ConfigError("notion source: databases must be a list of ids")
        for name, value in (("max_blocks", max_blocks), ("max_depth", max_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"notion source: {name} must be a positive integer")
        headers = {
            k: v
            for k, v in (config.pop("headers", None) or {}).items()
            if str(k).lower() != "notion-version"
        }
        super().__init__(
            **config, headers={**headers, "Notion-Version": NOTION_VERSION}
        )
        self.databases = [_database_id(d) for d in databases or []]
        self.max_blocks = max_blocks
        self.max_depth = max_depth

    # The change feed ----------------------------------------------------------

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterable[Change]:
        """Changed pages, tombstones of trashed ones the listing reports, and
        checkpoints: ``{"v": 1, "databases": {id: stream}}`` (one stream per
        configured database) or ``{"v": 1, "search": stream}``, a stream being
        ``{"latest": time, "seen": {page id: time}}`` (see :class:`_Stream`).

        Raises:
            CheckpointExpired: for a checkpoint of another shape or written for
                other databases.
            NotionError: when Notion refuses a listing (401, a database not
                shared ...); HttpError for a failure of the API.
        """
        streams = self._streams(checkpoint)
        if self.databases:
            return self._read_databases(streams, overlap)
        return self._read_search(streams["search"], overlap)

    def _streams(self, checkpoint: Any | None) -> dict[str, _Stream]:
        keys = self.databases or ["search"]
        if checkpoint is None:
            return {key: _Stream() for key in keys}
        what = "databases" if self.databases else "search"
        if not isinstance(checkpoint, dict) or checkpoint.get("v") != _VERSION:
            raise CheckpointExpired(f"not a notion checkpoint: {str(checkpoint)[:80]}")
        if what not in checkpoint:
            other = "search" if self.databases else "databases"
            raise CheckpointExpired(
                f"the checkpoint was written for {other}, the source reads {what}"
            )
        try:
            if not self.databases:
                return {"search": _Stream.load(checkpoint["search"])}
            held = checkpoint["databases"]
            if not isinstance(held, dict) or sorted(held) != sorted(self.databases):
                raise CheckpointExpired(
                    "the checkpoint was written for other databases"
                )
            return {key: _Stream.load(held[key]) for key in keys}
        except (ValueError, InvalidEvent):
            raise CheckpointExpired(
                f"not a notion checkpoint: {str(checkpoint)[:80]}"
            ) from None

    def _read_databases(
        self, streams: dict[str, _Stream], overlap: float
    ) -> Iterator[Change]:
        for database in self.databases:
            stream = streams[database]
            since = stream.latest
            query: dict[str, Any] = {"sorts": _ASCENDING}
            if since is not None:
                query["filter"] = {
                    "timestamp": "last_edited_time",
                    "last_edited_time": {
                        "on_or_after": _notion_time(_window(since, overlap))
                    },
                }
            previous = stream.seen
            stream.seen = {}
            path = f"v1/databases/{database}/query"
            for results in self._listing("POST", path, query):
                pages = [_listed(page, path) for page in results]
                horizon = _horizon(pages, stream)
                for page, time in pages:
                    yield from self._change(page, time, previous, stream, horizon)
                # Ascending: what came before is covered (every listing has at
                # least one answer, so the last of these is the final checkpoint).
                yield Checkpoint(self._checkpoint(streams, overlap))

    def _read_search(self, stream: _Stream, overlap: float) -> Iterator[Change]:
        since = stream.latest
        stop = _window(since, overlap) if since is not None else None
        previous = stream.seen
        stream.seen = {}
        for results in self._listing("POST", "v1/search", _SEARCH):
            pages = [_listed(page, "v1/search") for page in results]
            horizon = _horizon(pages, stream)
            past = False
            for page, time in pages:
                if page.get("object") != "page":
                    continue
                if stop is not None and time < stop:
                    past = True  # newest first: the rest is older still
                    break
                yield from self._change(page, time, previous, stream, horizon)
            if past:
                break
        # Newest first: nothing is covered until the listing is done.
        yield Checkpoint({"v": _VERSION, "search": stream.dump(overlap)})

    def _change(
        self,
        page: Mapping[str, Any],
        time: datetime,
        previous: Mapping[str, str],
        stream: _Stream,
        horizon: datetime,
    ) -> Iterator[Change]:
        page_id = page["id"]
        stream.observe(time)
        if _trashed(page):
            yield Deleted(page_id)
            return
        stamp = _notion_time(time)
        # A minute's margin beyond the horizon, for clocks that disagree a little.
        final = time < horizon - _MARGIN
        if previous.get(page_id) == stamp:
            stream.seen[page_id] = stamp  # the version already read
            return
        try:
            document = self._document(page, time)
        except _Unreadable as exc:
            self.fail(page_id, str(exc))
            return
        if final:
            stream.seen[page_id] = stamp
        if document is not None:
            yield document

    def _checkpoint(self, streams: dict[str, _Stream], overlap: float) -> Any:
        dumped = {key: stream.dump(overlap) for key, stream in streams.items()}
        return {"v": _VERSION, "databases": dumped}

    # Documents ----------------------------------------------------------------

    def fetch(self, id: str) -> Document | None:
        """The page ``id``; None when it is gone, in the trash, outside the
        configured databases, or over a limit (then also skipped).

        Raises:
            SourceError: when its body cannot be read this time.
        """
        page_id = _page_id(id)
        if page_id is None:
            return None
        try:
            answer = self._call("GET", f"v1/pages/{page_id}")
        except NotionNotFound:
            return None
        page, time = _listed(answer, "v1/pages")
        if _trashed(page):
            return None
        if self.databases and _database_of(page) not in self.databases:
            return None
        try:
            return self._document(page, time)
        except _Unreadable as exc:
            raise SourceError(f"notion page {page_id}: {exc}") from None

    def ids(self) -> Iterable[str]:
        """Every page of the configured databases (or shared with the
        integration), trashed pages left out: a listing page by page."""
        if self.databases:
            for database in self.databases:
                path = f"v1/databases/{database}/query"
                for results in self._listing("POST", path, {}):
                    for page in results:
                        page, _ = _listed(page, path)
                        if not _trashed(page):
                            yield page["id"]
            return
        for results in self._listing(
            "POST", "v1/search", {"filter": _SEARCH["filter"]}
        ):
            for page in results:
                page, _ = _listed(page, "v1/search")
                if page.get("object") == "page" and not _trashed(page):
                    yield page["id"]

    def _document(self, page: Mapping[str, Any], time: datetime) -> Document | None:
        """The document of a listed page, or None when it is over a limit
        (skipped).

        Raises:
            _Unreadable: when its body is gone or malformed this time.
        """
        page_id = page["id"]
        lines = property_lines(page.get("properties"))
        if lines:
            lines.append("")
        try:
            lines += self._body(page_id)
        except _TooLarge as exc:
            self.skip(page_id, str(exc), time)
            return None
        except NotionNotFound as exc:
            raise _Unreadable(f"its blocks are gone ({exc.code})") from None
        except HttpError as exc:
            if exc.status is not None and exc.status < 300:  # 2xx, not JSON
                raise _Unreadable(str(exc)) from None
            raise
        url = page.get("url")
        return Document(
            id=page_id,
            source=self.name,
            title=page_title(page) or "Untitled",
            text="\n".join(lines),
            url=url if isinstance(url, str) else None,
            updated_at=time,
            metadata=_metadata(page),
        )

    def _body(self, page_id: str) -> list[str]:
        lines: list[str] = []
        budget = [self.max_blocks, self.limits.max_chars]
        self._walk(page_id, 0, 0, lines, budget)
        return lines

    def _walk(
        self,
        block_id: str,
        depth: int,
        indent: int,
        lines: list[str],
        budget: list[int],
    ) -> None:
        number = 0
        path = f"v1/blocks/{block_id}/children"
        for results in self._listing("GET", path, None):
            for block in results:
                if not isinstance(block, Mapping):
                    raise _Unreadable(f"{path}: a block is not an object")
                budget[0] -= 1
                if budget[0] < 0:
                    raise _TooLarge(f"more than {self.max_blocks} blocks")
                kind = block.get("type")
                number = number + 1 if kind == "numbered_list_item" else 0
                for line in block_lines(block, number):
                    budget[1] -= len(line) + 1
                    lines.append("  " * indent + line)
                if budget[1] < 0:
                    raise _TooLarge(f"more than {self.limits.max_chars} characters")
                if block.get("has_children") is not True or kind in LEAVES:
                    continue
                if depth + 1 > self.max_depth:
                    raise _TooLarge(f"blocks nested deeper than {self.max_depth}")
                child = _children_of(block)
                step = 0 if kind in CONTAINERS else 1
                try:
                    self._walk(child, depth + 1, indent + step, lines, budget)
                except NotionNotFound:
                    # A synced block from a page not shared with the integration.
                    log.debug("notion block not readable", block_id=child)

    # Requests -----------------------------------------------------------------

    def _listing(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> Iterator[list[Any]]:
        """The results of a paged list, an answer at a time (``start_cursor``,
        ``has_more``, ``next_cursor``; ``page_size`` 100)."""
        cursor: str | None = None
        while True:
            if method == "GET":
                params: dict[str, Any] = {"page_size": PAGE_SIZE}
                if cursor is not None:
                    params["start_cursor"] = cursor
                answer = self._call("GET", path, params=params)
            else:
                payload = {**(body or {}), "page_size": PAGE_SIZE}
                if cursor is not None:
                    payload["start_cursor"] = cursor
                answer = self._call(method, path, json=payload)
            if not isinstance(answer, dict) or not isinstance(
                answer.get("results"), list
            ):
                raise _malformed(path, "the answer is not a list")
            yield answer["results"]
            if answer.get("has_more") is not True:
                return
            cursor = answer.get("next_cursor")
            if not isinstance(cursor, str) or not cursor:
                raise _malformed(path, "has_more without a next_cursor")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if method == "POST":
            # Queries and searches are reads sent as POST: safe to repeat after a
            # 5xx, which the client does only for a POST with an idempotency key.
            kwargs["idempotency_key"] = True
        try:
            return self._json(method, path, **kwargs)
        except HttpError as exc:
            if isinstance(exc, NotionError | TransientError) or exc.status is None:
                raise
            if 400 <= exc.status < 500:
                raise NotionError.from_http_error(exc) from None
            raise


def _malformed(path: str, what: str) -> Exception:
    if path.startswith("v1/blocks/"):
        return _Unreadable(f"{path}: {what}")
    return SourceError(f"notion {path}: {what}")


def _listed(page: Any, path: str) -> tuple[dict[str, Any], datetime]:
    """A result of a listing (a page or database object), and its time.

    Raises:
        SourceError: when it is not one.
    """
    if isinstance(page, dict) and isinstance(page.get("id"), str):
        try:
            return page, parse_time(page.get("last_edited_time"))
        except InvalidEvent:
            pass
    raise SourceError(f"notion {path}: a result without an id and last_edited_time")


def _horizon(pages: list[tuple[dict[str, Any], datetime]], stream: _Stream) -> datetime:
    """The newest minute Notion's clock had passed when it gave this answer: the
    newest time in it, or seen before (a version older than that is final)."""
    times = [time for _, time in pages]
    if stream.latest is not None:
        times.append(stream.latest)
    return max(times) if times else datetime.min.replace(tzinfo=UTC)


def _trashed(page: Mapping[str, Any]) -> bool:
    return any(page.get(key) is True for key in ("in_trash", "archived", "is_archived"))


def _children_of(block: Mapping[str, Any]) -> str:
    """Whose children a block shows: a synced block's original's, else its own."""
    if block.get("type") == "synced_block":
        data = block.get("synced_block")
        origin = data.get("synced_from") if isinstance(data, Mapping) else None
        if isinstance(origin, Mapping) and isinstance(origin.get("block_id"), str):
            return str(origin["block_id"])
    return str(block.get("id"))


def _database_of(page: Mapping[str, Any]) -> str | None:
    parent = page.get("parent")
    if isinstance(parent, Mapping) and isinstance(parent.get("database_id"), str):
        return _page_id(parent["database_id"])
    return None


def _metadata(page: Mapping[str, Any]) -> dict[str, Any]:
    parent = page.get("parent")
    if not isinstance(parent, Mapping):
        return {}
    if isinstance(parent.get("database_id"), str):
        return {"database_id": _page_id(parent["database_id"])}
    if isinstance(parent.get("page_id"), str):
        return {"parent_page_id": _page_id(parent["page_id"])}
    return {}


def _page_id(value: Any) -> str | None:
    """A Notion id in its dashed form (None when ``value`` is not one)."""
    if not isinstance(value, str):
        return None
    compact = value.strip().replace("-", "").lower()
    if not _HEX32.fullmatch(compact):
        return None
    c = compact
    return f"{c[:8]}-{c[8:12]}-{c[12:16]}-{c[16:20]}-{c[20:]}"


def _database_id(value: Any) -> str:
    """A configured database: its id, dashed or not, or its URL."""
    text = value.strip() if isinstance(value, str) else ""
    if "/" in text:
        text = urlsplit(text).path.rstrip("/").rsplit("/", 1)[-1][-32:]
    found = _page_id(text)
    if found is None:
        raise ConfigError(f"notion source: {value!r} is not a database id")
    return found


def _window(since: datetime, overlap: float) -> datetime:
    """Where a listing from ``since`` starts: ``overlap`` earlier, rounded down to
    the minute (Notion's ``last_edited_time`` has minute precision)."""
    start = since - timedelta(seconds=overlap)
    return start.replace(second=0, microsecond=0)


def _notion_time(moment: datetime) -> str:
    """A time as Notion writes it (``2026-07-04T09:08:00.000Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@hookimpl
def register_integrations(register: Any) -> None:
    register(NotionSource)
