"""``confluence``: the pages and blog posts of Confluence Cloud or Data Center.

::

    [sources.wiki]
    kind = "confluence"
    base_url = "https://example.atlassian.net/wiki/"   # Data Center: the site root
    email = "bot@example.com"                          # Cloud: e-mail + API token
    api_token = { env = "CONFLUENCE_API_TOKEN" }
    # token = { env = "CONFLUENCE_PAT" }               # Data Center: a personal
                                                       # access token (bearer)
    spaces = ["ENG", "~jdoe"]                          # default: every readable space
    timezone = "Europe/Berlin"                         # the account's time zone

The change feed is a CQL search (``rest/api/content/search``) for ``type in (page,
blogpost)`` in the spaces, ``lastmodified >= "yyyy-MM-dd HH:mm"`` ``order by
lastmodified asc``, followed through ``_links.next``. CQL reads that time to the
minute in the time zone of the account's profile (``timezone`` must say which), so
the checkpoint keeps the exact ``version.when`` of the latest change seen and the
query starts at the minute before it, less the overlap window: edits made in the
same minute as a sync come again at the next one (unchanged ones cost nothing, the
sync compares content hashes).

Confluence's search does not report deletions: a page moved to the trash drops out
of the listing (``ids()``, a CQL search without expansions), which the sync compares
with the index at each prune (every six hours by default). A page seen trashed or
archived (by id or in a search) is a tombstone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import structlog

from eventhub.documents import (
    Change,
    Checkpoint,
    CheckpointExpired,
    Deleted,
    Document,
    SourceError,
)
from eventhub.documents.extract import LimitExceeded
from eventhub.errors import ConfigError, InvalidEvent, TransientError
from eventhub.events import format_time, parse_time
from eventhub.hookspecs import hookimpl
from eventhub.http import HttpError
from eventhub.redact import redact_text

from ._apisource import APISource
from ._confluencetext import storage_to_text

__all__ = ["ConfluenceError", "ConfluenceSource", "storage_to_text"]

SEARCH = "rest/api/content/search"
#: What a document needs: the body in storage format, the version (its time,
#: number and author) and the space (its key).
EXPAND = "body.storage,version,space"
#: Results a page when the body is expanded (Confluence's cap), and without any
#: expansion (the largest Data Center documents for CQL searches).
BODY_LIMIT = 50
LIST_LIMIT = 1000
#: Empty pages in a row that still carry a next link before the listing is taken
#: as ended (Cloud sends a next link after a full last page; it leads to an empty
#: page).
EMPTY_PAGES = 3
_GONE = frozenset({"trashed", "archived", "deleted"})
_CONTENT_ID = re.compile(r"^\d{1,20}$")

log = structlog.get_logger(__name__)


class ConfluenceError(HttpError):
    """Confluence refused a request. ``message`` is what it said (its error body's
    ``message``, redacted); the URL is named without its query (the CQL)."""

    def __init__(
        self, method: str, url: str, status: int | None, message: str | None
    ) -> None:
        self.message = redact_text(message) if message else None
        super().__init__(method, url.split("?", 1)[0], status, reason=self.message)

    @classmethod
    def from_http_error(cls, exc: HttpError) -> ConfluenceError:
        """The error for an HTTP error whose body is Confluence's error JSON
        (``{"statusCode": 400, "message": "Could not parse cql : ..."}``)."""
        message: Any = None
        try:
            body = json.loads(exc.body or "")
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = body.get("message") or body.get("reason")
        if not isinstance(message, str) and exc.body:
            message = (
                exc.body.strip().splitlines()[0][:200] if exc.body.strip() else None
            )
        return cls(exc.method, exc.url, exc.status, message or None)


class ConfluenceSource(APISource):
    """Confluence pages and blog posts (see the module docstring).

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`
    and the document limits, plus:

    Args:
        spaces: Space keys to read (default: every space the account can read).
        timezone: The time zone of the account's Confluence profile, in which CQL
            reads the times of a query (an IANA name; default UTC).

    Raises:
        ConfigError: for missing credentials, a malformed space list or an unknown
            time zone.
    """

    kind = "confluence"
    # Cloud publishes no numbers for API-token traffic (it answers 429 with
    # Retry-After); 10 a second is Data Center's own example of a per-user limit.
    default_rate = 10.0
    default_burst = 20

    def __init__(
        self,
        *,
        spaces: Sequence[str] | None = None,
        timezone: str = "UTC",
        **config: Any,
    ) -> None:
        if not any(config.get(k) for k in ("token", "api_token", "password", "oauth")):
            raise ConfigError(
                "confluence source: credentials missing: email + api_token (Cloud) "
                "or token (Data Center)"
            )
        self.spaces = _space_keys(spaces)
        self.timezone = _zone(timezone)
        super().__init__(**config)

    # -- the Source API

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterable[Change]:
        """Pages and blog posts changed since ``checkpoint`` (see the module
        docstring), oldest first, with a checkpoint after each page of results.

        Raises:
            CheckpointExpired: for a checkpoint of another shape, site or spaces.
        """
        since = self._since(checkpoint)
        return self._feed(since, overlap)

    def fetch(self, id: str) -> Document | None:
        """A page or blog post by content id; None when it is gone (404, trashed,
        archived) or cannot be read (then also skipped)."""
        if not isinstance(id, str) or not _CONTENT_ID.match(id):
            return None
        try:
            item = self._get(f"rest/api/content/{id}", {"expand": EXPAND})
        except ConfluenceError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(item, dict):
            self.skip(id, "Confluence answered without a content object")
            return None
        base = _link_base(item) or self._site
        change, _when = self._change(item, base, fetching=True)
        return change if isinstance(change, Document) else None

    def ids(self) -> Iterator[str]:
        """Every current page and blog post in the spaces: a CQL search without
        expansions, so a page holds up to 1,000 ids.

        Raises:
            SourceError: when the listing cannot be known to be complete.
        """
        cql = self._cql(None, order="created")
        for page in self._pages(cql, expand=None, limit=LIST_LIMIT, complete=True):
            for item in page["results"]:
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                if item.get("status", "current") == "current":
                    yield str(item["id"])

    # -- the feed

    def _feed(self, since: datetime | None, overlap: float) -> Iterator[Change]:
        start = since - timedelta(seconds=overlap) if since is not None else None
        cql = self._cql(start, order="lastmodified")
        latest = marked = since
        for page in self._pages(cql, expand=EXPAND, limit=BODY_LIMIT, complete=False):
            base = _link_base(page) or self._site
            for item in page["results"]:
                change, when = self._change(item, base, fetching=False)
                if when is not None and (latest is None or when > latest):
                    latest = when
                if change is not None:
                    yield change
            # Results come oldest first: what follows changed at or after latest,
            # and the next sync reads from the minute before it again.
            if latest is not None and latest != marked:
                marked = latest
                yield Checkpoint(self._checkpoint(latest))
        yield Checkpoint(self._checkpoint(latest))

    def _change(
        self, item: Any, base: str, *, fetching: bool
    ) -> tuple[Document | Deleted | None, datetime | None]:
        """The document (or tombstone) a content object stands for, and its time.
        A malformed one fails in the feed (it is fetched again at the next sync)
        and is skipped by a fetch; one over a limit is skipped."""
        if not isinstance(item, dict) or not item.get("id"):
            log.warning("confluence result without an id", source=self.name)
            return None, None
        content_id = str(item["id"])
        when = _when(item, self.timezone)
        status = item.get("status", "current")
        if status in _GONE:
            return Deleted(content_id), when
        if status != "current":
            return None, when  # a draft, or a historical version
        try:
            return self._document(content_id, item, base, when), when
        except LimitExceeded as exc:
            self.skip(content_id, exc.reason, when)
        except _Malformed as exc:
            if fetching:
                self.skip(content_id, exc.reason, when)
            else:
                self.fail(content_id, exc.reason)
        return None, when

    def _document(
        self,
        content_id: str,
        item: Mapping[str, Any],
        base: str,
        when: datetime | None,
    ) -> Document:
        if when is None:
            raise _Malformed("the answer has no readable version.when")
        body = _get(item, "body", "storage", "value")
        if not isinstance(body, str):
            raise _Malformed("the answer has no body.storage value")
        size = len(body.encode())
        if size > self.limits.max_bytes:
            raise LimitExceeded(
                "max_bytes", self.limits.max_bytes, f"a storage body of {size} bytes"
            )
        text = storage_to_text(body)
        if len(text) > self.limits.max_chars:
            raise LimitExceeded(
                "max_chars", self.limits.max_chars, f"{len(text)} characters of text"
            )
        title = item.get("title")
        title = title if isinstance(title, str) else ""
        webui = _get(item, "_links", "webui")
        metadata: dict[str, Any] = {"type": str(item.get("type") or "page")}
        space = _space_key(item)
        if space:
            metadata["space"] = space
        number = _get(item, "version", "number")
        if isinstance(number, int) and not isinstance(number, bool):
            metadata["version"] = number
        author = _get(item, "version", "by", "displayName")
        if isinstance(author, str) and author:
            metadata["modified_by"] = author
        return Document(
            id=content_id,
            source=self.name,
            title=title or content_id,
            text=text or title,
            url=f"{base}{webui}" if isinstance(webui, str) and webui else None,
            updated_at=when,
            metadata=metadata,
        )

    # -- requests

    def _pages(
        self, cql: str, *, expand: str | None, limit: int, complete: bool
    ) -> Iterator[dict[str, Any]]:
        """The pages of a CQL search, followed through ``_links.next`` until it is
        absent. With ``complete``, a listing that cannot be known to be complete
        (a next link that loops, or leads to empty pages again and again) raises
        :class:`SourceError`; otherwise it ends there."""
        params: dict[str, Any] | None = {"cql": cql, "limit": limit}
        if expand and params is not None:
            params["expand"] = expand
        url, empty, seen = SEARCH, 0, set()
        while True:
            page = self._get(url, params)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise SourceError(
                    f"confluence: {SEARCH} answered without a list of results"
                )
            yield page
            links = page.get("_links") if isinstance(page.get("_links"), dict) else {}
            link = links.get("next")
            if not isinstance(link, str) or not link:
                return
            empty = 0 if results else empty + 1
            if empty >= EMPTY_PAGES or link in seen:
                if complete:
                    raise SourceError(
                        "confluence: the search kept sending next links without "
                        "results; the listing may be incomplete"
                    )
                return
            seen.add(link)
            url, params = self._next_url(link, links), None

    def _next_url(self, link: str, links: Mapping[str, Any]) -> str:
        """A next link as a URL on the configured site: Confluence gives it
        relative to the context path (``/rest/api/...`` after ``/wiki``)."""
        if urlsplit(link).scheme:
            return link
        parts = urlsplit(self.base_url)
        prefixes = {
            str(links.get("context") or "").rstrip("/"),
            parts.path.rstrip("/"),
        } - {""}
        if any(link.startswith(f"{p}/") for p in prefixes):
            return f"{parts.scheme}://{parts.netloc}{link}"  # from the host's root
        return self.base_url.rstrip("/") + "/" + link.lstrip("/")

    def _get(self, path: str, params: Mapping[str, Any] | None) -> Any:
        try:
            return self.get(path, params=params)
        except HttpError as exc:
            if isinstance(exc, ConfluenceError | TransientError) or exc.status is None:
                raise
            if 400 <= exc.status < 500:
                raise ConfluenceError.from_http_error(exc) from None
            raise

    # -- queries and checkpoints

    def _cql(self, since: datetime | None, *, order: str) -> str:
        clauses = ["type in (page, blogpost)"]
        if self.spaces is not None:
            clauses.append(f"space in ({', '.join(map(_quote, self.spaces))})")
        if since is not None:
            clauses.append(f'lastmodified >= "{cql_time(since, self.timezone)}"')
        return " and ".join(clauses) + f" order by {order} asc"

    def _checkpoint(self, latest: datetime | None) -> dict[str, Any]:
        return {
            "site": self.base_url,
            "spaces": self.spaces,
            "lastmodified": format_time(latest) if latest is not None else None,
        }

    def _since(self, checkpoint: Any | None) -> datetime | None:
        if checkpoint is None:
            return None
        if not isinstance(checkpoint, dict) or set(checkpoint) != {
            "site",
            "spaces",
            "lastmodified",
        }:
            raise CheckpointExpired(
                f"not a confluence checkpoint: {str(checkpoint)[:80]!r}"
            )
        if checkpoint["site"] != self.base_url:
            raise CheckpointExpired(
                f"the checkpoint is of another site ({checkpoint['site']!r})"
            )
        if checkpoint["spaces"] != self.spaces:
            raise CheckpointExpired(
                f"the checkpoint is of other spaces ({checkpoint['spaces']!r})"
            )
        value = checkpoint["lastmodified"]
        if value is None:
            return None
        try:
            return parse_time(value)
        except InvalidEvent:
            raise CheckpointExpired(
                f"the checkpoint's time is unreadable: {str(value)[:40]!r}"
            ) from None

    @property
    def _site(self) -> str:
        return self.base_url.rstrip("/")


class _Malformed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def cql_time(moment: datetime, zone: tzinfo) -> str:
    """``moment`` as CQL reads a time, ``yyyy-MM-dd HH:mm`` in ``zone``, rounded
    down to the minute. A wall time the zone passes twice (clocks set back) is
    moved before the repeated hour, so that either reading of it is early enough.
    """
    local = moment.astimezone(zone)
    for _ in range(3):
        if local.replace(fold=1 - local.fold).utcoffset() == local.utcoffset():
            break
        moment -= timedelta(hours=1)
        local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M")


def _when(item: Mapping[str, Any], zone: tzinfo) -> datetime | None:
    value = _get(item, "version", "when")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except InvalidEvent:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _space_key(item: Mapping[str, Any]) -> str | None:
    key = _get(item, "space", "key")
    if isinstance(key, str) and key:
        return key
    path = _get(item, "_expandable", "space")  # "/rest/api/space/ENG"
    if isinstance(path, str) and "/space/" in path:
        return path.rsplit("/space/", 1)[1] or None
    return None


def _link_base(obj: Any) -> str | None:
    base = _get(obj, "_links", "base")
    return base.rstrip("/") if isinstance(base, str) and base else None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _space_keys(spaces: Any) -> list[str] | None:
    if spaces is None:
        return None
    if (
        isinstance(spaces, str)
        or not isinstance(spaces, Sequence)
        or not spaces
        or not all(isinstance(s, str) and s.strip() for s in spaces)
    ):
        raise ConfigError(
            'confluence source: spaces must be a list of space keys (["ENG"])'
        )
    return sorted({s.strip() for s in spaces})


def _zone(name: Any) -> tzinfo:
    if name in ("UTC", "Z", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ValueError, KeyError, OSError):
        raise ConfigError(
            f"confluence source: unknown timezone {name!r} (an IANA name such as "
            '"Europe/Berlin")'
        ) from None


@hookimpl
def register_integrations(register: Any) -> None:
    register(ConfluenceSource)
