"""``sharepoint``: the files of a SharePoint document library or a OneDrive, through
Microsoft Graph (v1.0).

::

    [sources.intranet]
    kind = "sharepoint"
    tenant_id = "contoso.onmicrosoft.com"       # or the tenant's GUID
    client_id = "11111111-2222-3333-4444-555555555555"
    client_secret = { env = "GRAPH_CLIENT_SECRET" }
    site = "contoso.sharepoint.com:/sites/Engineering"   # or drive_id = "b!..."
    max_bytes = 52428800                         # larger files are skipped

The application authenticates as itself (the OAuth 2.0 client-credentials grant,
scope ``https://graph.microsoft.com/.default``) at ``token_url``; the token is kept
in memory until five minutes before it expires. The drive is ``drive_id``, or the
default document library of ``site`` (``GET sites/{hostname}:/{path}`` for the site
id, then ``GET sites/{id}/drive``).

The change feed is ``GET drives/{id}/root/delta``: without a token the first sync is
a complete listing; ``@odata.nextLink`` is followed until ``@odata.deltaLink``,
which is the checkpoint, and the next sync starts from it. Items with a ``deleted``
facet are tombstones; folders and other non-files are passed over. A file's
content comes from ``GET drives/{id}/items/{item}/content``, which answers 302 with
a pre-authenticated URL on another host (the SharePoint host): the HTTP client
follows it without the bearer token (credentials never leave the origin of
``base_url``), and only to the hosts of ``download_hosts``. ``410 Gone`` on a delta
link (``resyncRequired``) is a dead checkpoint: the engine resyncs. Throttling
(429 or 503 with ``Retry-After``) is waited out by the HTTP client.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from eventhub.auth import ClientCredentialsGrant
from eventhub.documents import (
    Change,
    Checkpoint,
    CheckpointExpired,
    Deleted,
    Document,
    SourceError,
)
from eventhub.documents.extract import (
    ExtractionError,
    LimitExceeded,
    extract,
    supported_suffixes,
)
from eventhub.errors import ConfigError, InvalidEvent, TransientError
from eventhub.events import parse_time
from eventhub.hookspecs import hookimpl
from eventhub.http import HttpClient, HttpError

from ._apisource import APISource

__all__ = ["DOWNLOAD_HOSTS", "GRAPH_SCOPE", "GraphError", "SharePointSource"]

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
#: Where Graph's pre-authenticated download URLs point (SharePoint Online in the
#: public and national clouds, OneDrive for consumers): the only hosts besides the
#: base_url's that the client may reach unless ``download_hosts`` or
#: ``allow_hosts`` say otherwise.
DOWNLOAD_HOSTS = (
    "*.sharepoint.com",
    "*.sharepoint.us",
    "*.sharepoint-mil.us",
    "*.sharepoint.de",
    "*.sharepoint.cn",
    "*.1drv.com",
    "*.svc.ms",
)
#: What a delta listing asks for (the content is downloaded separately).
_FIELDS = (
    "id,name,size,eTag,file,folder,package,deleted,root,webUrl,"
    "lastModifiedDateTime,lastModifiedBy,parentReference"
)
_VERSION = 1


class GraphError(HttpError):
    """Graph refused a request: ``code`` is Graph's (``InvalidAuthenticationToken``,
    ``itemNotFound``, ``accessDenied``, ``resyncRequired`` ...), ``graph_message``
    its words."""

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
        self.graph_message = message
        reason = f"{code}: {message}" if message else code
        super().__init__(method, url, status, reason=reason)
        self.body = body

    @classmethod
    def from_http_error(cls, exc: HttpError) -> GraphError:
        """The GraphError of an HTTP error whose body is Graph's
        ``{"error": {"code", "message"}}``."""
        try:
            body = orjson.loads(exc.body or "")
        except orjson.JSONDecodeError:
            body = None
        code, message = "http_error", " ".join((exc.body or "").split())[:200]
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = " ".join(str(error.get("message") or "").split())[:300]
        url = exc.url.split("?", 1)[0]
        return cls(exc.method, url, exc.status, code, message, exc.body)


class _Gone(Exception):
    """A delta link answered 410 Gone."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


class SharePointSource(APISource):
    """The files of one drive (a SharePoint document library, a OneDrive).

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`
    (``base_url`` defaults to ``https://graph.microsoft.com/v1.0/``) and the
    extraction limits, plus:

    Args:
        tenant_id: The Entra ID tenant (its GUID or a domain of it).
        client_id: The application (client) id of the app registration.
        client_secret: A client secret of it.
        site: ``{hostname}:/{server-relative path}`` of a SharePoint site; its
            default document library is read.
        drive_id: A drive id instead (another library, a user's OneDrive).
        token_url: The token endpoint (``{tenant_id}`` is filled in).
        download_hosts: Hosts (``*.example.com`` patterns) the content redirects
            may lead to; default :data:`DOWNLOAD_HOSTS`. Ignored with
            ``allow_hosts``, which then has to name them itself.

    Raises:
        ConfigError: for missing credentials, neither or both of ``site`` and
            ``drive_id``, or a malformed setting.
    """

    kind = "sharepoint"
    default_base_url = "https://graph.microsoft.com/v1.0/"
    default_token_url = (
        "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
    )
    # Graph throttles per app and tenant with 429 + Retry-After and publishes no
    # fixed rate; ours keeps a sync well below what trips it.
    default_rate = 10.0
    default_burst = 20
    # The delta feed reports deletions; the daily prune catches what it leaves
    # out (the files of a deleted folder are not always reported one by one).
    default_prune = 24 * 3600.0

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        site: str | None = None,
        drive_id: str | None = None,
        token_url: str | None = None,
        download_hosts: Iterable[str] | None = None,
        **config: Any,
    ) -> None:
        where = "sharepoint source"
        for key, value in (
            ("tenant_id", tenant_id),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: {key} is missing")
        for key in ("token", "username", "email", "oauth"):
            if config.get(key) is not None:
                raise ConfigError(
                    f"{where}: {key} is not used; the source authenticates with "
                    "tenant_id, client_id and client_secret"
                )
        if (site is None) == (drive_id is None):
            raise ConfigError(f"{where}: give either site or drive_id")
        if site is not None:
            site = _site(site, where)
        if drive_id is not None and (not isinstance(drive_id, str) or not drive_id):
            raise ConfigError(f"{where}: drive_id must be a drive id")
        if download_hosts is None:
            hosts = list(DOWNLOAD_HOSTS)
        elif isinstance(download_hosts, str) or not all(
            isinstance(h, str) and h for h in download_hosts
        ):
            raise ConfigError(f"{where}: download_hosts must be a list of host names")
        else:
            hosts = list(download_hosts)
        assert isinstance(tenant_id, str) and isinstance(client_id, str)
        assert isinstance(client_secret, str)
        url = (token_url or self.default_token_url).replace(
            "{tenant_id}", quote(tenant_id.strip(), safe="")
        )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: token_url must be an http(s) URL")
        if config.get("allow_hosts") is None:
            base = urlsplit(str(config.get("base_url") or self.default_base_url))
            config["allow_hosts"] = [base.hostname or "", *hosts]
        super().__init__(**config)
        settings = self._settings
        self._token_http = HttpClient(
            name=f"{self.kind}.token",
            timeout=settings["timeout"],
            attempts=settings["attempts"],
            allow_private=settings["allow_private"],
            sleep=settings["sleep"],
        )
        self.grant = ClientCredentialsGrant(
            url,
            client_id,
            client_secret,
            scopes=[GRAPH_SCOPE],
            name="microsoft",
            http=self._token_http,
        )
        settings["auth"] = self.grant.auth()
        self.site = site
        self.drive_id = drive_id
        self.token_url = url
        self.download_hosts = hosts
        self._drive: str | None = drive_id

    def stop(self) -> None:
        super().stop()
        self._token_http.close()

    # The change feed ----------------------------------------------------------

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterable[Change]:
        """Changed files, tombstones, and at the end of the feed the checkpoint
        ``{"v": 1, "site": site or None, "drive": drive id, "delta": delta link}``.

        Raises:
            CheckpointExpired: for a checkpoint of another shape, drive, site or
                base_url, and when Graph answers 410 Gone to its delta link.
            GraphError: when Graph refuses the listing (401, 403, a missing site);
                HttpError for a failure of the API.
        """
        start: str | None = None
        if checkpoint is not None:
            drive, start = self._from_checkpoint(checkpoint)
            self._drive = drive
        return self._feed(start)

    def _from_checkpoint(self, checkpoint: Any) -> tuple[str, str]:
        if (
            not isinstance(checkpoint, dict)
            or checkpoint.get("v") != _VERSION
            or not isinstance(checkpoint.get("drive"), str)
            or not isinstance(checkpoint.get("delta"), str)
        ):
            raise CheckpointExpired(
                f"not a sharepoint checkpoint: {str(checkpoint)[:80]}"
            )
        if self.drive_id is not None and checkpoint["drive"] != self.drive_id:
            raise CheckpointExpired("the checkpoint was written for another drive")
        if self.drive_id is None and checkpoint.get("site") != self.site:
            raise CheckpointExpired("the checkpoint was written for another site")
        link = checkpoint["delta"]
        if not self._ours(link):
            raise CheckpointExpired("the checkpoint's delta link is not on base_url")
        return checkpoint["drive"], link

    def _feed(self, start: str | None) -> Iterator[Change]:
        drive = self.drive()
        seen: dict[str, str] = {}  # item id -> eTag already yielded in this feed
        try:
            for items in self._delta(drive, start, _FIELDS):
                latest: dict[str, dict[str, Any]] = {}
                for item in items:  # an item may come twice: the last one holds
                    latest[item["id"]] = item
                for item_id, item in latest.items():
                    if item.get("deleted") is not None:
                        seen.pop(item_id, None)
                        yield Deleted(item_id)
                        continue
                    if not isinstance(item.get("file"), Mapping):
                        continue  # a folder, the root, a OneNote package
                    tag = str(item.get("eTag") or item.get("lastModifiedDateTime"))
                    if seen.get(item_id) == tag:
                        continue
                    seen[item_id] = tag
                    document = self._document(drive, item)
                    if document is not None:
                        yield document
                link = self._delta_link
                if link is not None:
                    yield Checkpoint(
                        {
                            "v": _VERSION,
                            "site": self.site,
                            "drive": drive,
                            "delta": link,
                        }
                    )
        except _Gone as exc:
            if start is None:
                raise SourceError(
                    f"sharepoint drive {drive}: the delta listing answered 410 Gone "
                    f"({exc.code}) without a delta link"
                ) from None
            raise CheckpointExpired(
                f"Graph answered 410 Gone to the delta link ({exc.code})"
            ) from None

    _delta_link: str | None = None

    def _delta(
        self, drive: str, start: str | None, fields: str
    ) -> Iterator[list[dict[str, Any]]]:
        """The items of a delta listing, a page at a time; :attr:`_delta_link` is
        set once the last page is read."""
        self._delta_link = None
        url = start or f"drives/{quote(drive, safe='')}/root/delta"
        params: dict[str, str] | None = {"$select": fields} if start is None else None
        visited: set[str] = set()
        while True:
            answer = self._call("GET", url, params=params, delta=True)
            params = None  # links carry their own query
            values = answer.get("value") if isinstance(answer, dict) else None
            if not isinstance(values, list):
                raise SourceError(
                    f"sharepoint drive {drive}: a delta answer without value"
                )
            items = [
                v
                for v in values
                if isinstance(v, dict) and isinstance(v.get("id"), str)
            ]
            if len(items) != len(values):
                raise SourceError(
                    f"sharepoint drive {drive}: a delta item without an id"
                )
            nxt = answer.get("@odata.nextLink")
            if nxt is None:
                delta = answer.get("@odata.deltaLink")
                if not isinstance(delta, str) or not self._ours(delta):
                    raise SourceError(
                        f"sharepoint drive {drive}: the delta listing ended without "
                        "a delta link on base_url"
                    )
                self._delta_link = delta
                yield items
                return
            if not isinstance(nxt, str) or not self._ours(nxt) or nxt in visited:
                raise SourceError(
                    f"sharepoint drive {drive}: a next link that is not on base_url "
                    "or leads back"
                )
            visited.add(nxt)
            yield items
            url = nxt

    def _ours(self, link: str) -> bool:
        return link.startswith(self.base_url)

    # Documents ----------------------------------------------------------------

    def drive(self) -> str:
        """The id of the drive read: ``drive_id``, or the site's document library
        (looked up once per source object).

        Raises:
            GraphError: when Graph does not know the site or refuses it.
        """
        if self._drive is None:
            assert self.site is not None
            host, _, path = self.site.partition(":")
            site = self._call("GET", f"sites/{host}:{quote(path)}")
            site_id = site.get("id") if isinstance(site, dict) else None
            if not isinstance(site_id, str) or not site_id:
                raise SourceError(f"sharepoint site {self.site}: Graph gave no site id")
            drive = self._call("GET", f"sites/{quote(site_id, safe='')}/drive")
            drive_id = drive.get("id") if isinstance(drive, dict) else None
            if not isinstance(drive_id, str) or not drive_id:
                raise SourceError(f"sharepoint site {self.site}: the site has no drive")
            self._drive = drive_id
        return self._drive

    def fetch(self, id: str) -> Document | None:
        """The file ``id``; None when it is gone, deleted, not a file, or cannot
        be read (then it is also skipped).

        Raises:
            SourceError: when its content cannot be downloaded this time.
        """
        drive = self.drive()
        try:
            item = self._call(
                "GET",
                f"drives/{quote(drive, safe='')}/items/{quote(id, safe='')}",
                params={"$select": _FIELDS},
            )
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(item, dict) or item.get("id") != id:
            raise SourceError(f"sharepoint item {id}: Graph answered another item")
        if item.get("deleted") is not None or not isinstance(item.get("file"), Mapping):
            return None
        before = len(self.failed)
        document = self._document(drive, item)
        if len(self.failed) > before:
            raise SourceError(self.failed.pop().error)
        return document

    def ids(self) -> Iterable[str]:
        """Every file of the drive: a delta listing from the start, ids only."""
        drive = self.drive()
        try:
            for items in self._delta(drive, None, "id,file,deleted"):
                for item in items:
                    if item.get("deleted") is None and isinstance(
                        item.get("file"), Mapping
                    ):
                        yield item["id"]
        except _Gone as exc:
            raise SourceError(
                f"sharepoint drive {drive}: the listing answered 410 Gone ({exc.code})"
            ) from None

    def _document(self, drive: str, item: Mapping[str, Any]) -> Document | None:
        """The document of a file item: its content downloaded and extracted, or
        None (skipped with the reason, or failed to be fetched again)."""
        item_id = item["id"]
        name = str(item.get("name") or item_id)
        updated = _parse_time_or_none(item.get("lastModifiedDateTime"))
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in supported_suffixes():
            self.skip(
                item_id, f"unsupported format {suffix or '(no extension)'}", updated
            )
            return None
        size = item.get("size")
        limit = self.limits.max_bytes
        if isinstance(size, int) and size > limit:
            reason = LimitExceeded(
                "max_bytes", limit, f"too large: {size} bytes"
            ).reason
            self.skip(item_id, reason, updated)
            return None
        file = item["file"]
        mime = file.get("mimeType") if isinstance(file.get("mimeType"), str) else None
        path = f"drives/{quote(drive, safe='')}/items/{quote(item_id, safe='')}/content"
        try:
            response = self.request("GET", path)
        except HttpError as exc:
            if (
                isinstance(exc, TransientError)
                or exc.status is None
                or exc.status >= 500
            ):
                raise
            if not _same_origin(exc.url, self.base_url):
                # The download host: its URL holds a pre-authenticated token.
                self.fail(
                    item_id, f"download: HTTP {exc.status} from the download host"
                )
                return None
            error = GraphError.from_http_error(exc)
            if exc.status in (401, 403):
                raise error from None  # the application lost its access
            self.fail(
                item_id, f"download: {error.status} {error.code}: {error.graph_message}"
            )
            return None
        try:
            found = extract(response.content, name, mime, limits=self.limits)
        except ExtractionError as exc:
            self.skip(item_id, exc.reason, updated)
            return None
        return Document(
            id=item_id,
            source=self.name,
            title=name,
            text=found.text,
            url=item.get("webUrl") if isinstance(item.get("webUrl"), str) else None,
            updated_at=updated,
            metadata=_metadata(item, mime),
        )

    # Requests -----------------------------------------------------------------

    def _call(
        self, method: str, url: str, *, delta: bool = False, **kwargs: Any
    ) -> Any:
        try:
            return self._json(method, url, **kwargs)
        except HttpError as exc:
            if isinstance(exc, GraphError | TransientError) or exc.status is None:
                raise
            if delta and exc.status == 410:
                raise _Gone(GraphError.from_http_error(exc).code) from None
            if 400 <= exc.status < 500:
                raise GraphError.from_http_error(exc) from None
            raise


def _site(value: Any, where: str) -> str:
    """A configured site: ``hostname:/path`` (a site URL is taken too)."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith(("https://", "http://")):
        parts = urlsplit(text)
        text = f"{parts.hostname}:{parts.path or '/'}"
    host, colon, path = text.partition(":")
    if not host or not colon or not path.startswith("/") or "/" in host:
        raise ConfigError(
            f"{where}: site must be 'hostname:/server-relative path' "
            "(contoso.sharepoint.com:/sites/Engineering)"
        )
    return f"{host.lower()}:{path.rstrip('/') or '/'}"


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _metadata(item: Mapping[str, Any], mime: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    parent = item.get("parentReference")
    if isinstance(parent, Mapping) and isinstance(parent.get("path"), str):
        found["path"] = parent["path"]
    if mime:
        found["mime_type"] = mime
    modifier = item.get("lastModifiedBy")
    user = modifier.get("user") if isinstance(modifier, Mapping) else None
    if isinstance(user, Mapping) and isinstance(user.get("displayName"), str):
        found["modified_by"] = user["displayName"]
    return found


def _parse_time_or_none(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except InvalidEvent:
        return None


@hookimpl
def register_integrations(register: Any) -> None:
    register(SharePointSource)
