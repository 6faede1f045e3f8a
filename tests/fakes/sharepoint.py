"""A stateful fake of Microsoft Graph (v1.0) and the Microsoft identity platform's
token endpoint on 127.0.0.1, with a second server acting as SharePoint's download
host.

The Graph server (``http://127.0.0.1:<port>/``) serves:

* ``POST /{tenant}/oauth2/v2.0/token``: the client-credentials grant, a form with
  ``grant_type=client_credentials``, ``client_id``, ``client_secret`` and
  ``scope=https://graph.microsoft.com/.default`` (anything else is the identity
  platform's ``{"error", "error_description", "error_codes"}``: 401
  ``invalid_client`` for a wrong secret, 400 ``invalid_scope`` /
  ``unsupported_grant_type`` / ``invalid_request``, 400 for an unknown tenant);
  tokens live ``expires_in`` = 3599 seconds (:meth:`FakeGraph.expire_tokens`
  ends them early);
* ``GET /v1.0/sites/{hostname}:/{path}`` and ``GET /v1.0/sites/{id}/drive``;
* ``GET /v1.0/drives/{id}/root/delta``: without a token the whole drive (the root,
  folders, files: live ones only), with ``?token=`` what changed since it, deleted
  items with a ``deleted`` facet; pages of ``page_size`` items linked by
  ``@odata.nextLink`` (``$skiptoken``), the last with ``@odata.deltaLink``;
  ``$select`` honoured; a token made dead by :meth:`FakeGraph.expire_delta_links`
  answers 410 ``resyncRequired``;
* ``GET /v1.0/drives/{id}/items/{item}`` and ``.../items/{item}/content``: the
  latter answers 302 with a pre-authenticated URL on the download server
  (``http://localhost:<other port>/download/...?tempauth=...``: another host name
  and another port), which serves the bytes and refuses (400) a request that
  carries an ``Authorization`` header.

Every Graph request needs ``Authorization: Bearer <a live token>`` (else 401
``InvalidAuthenticationToken``); errors are Graph's ``{"error": {"code",
"message", "innerError"}}``. Requests to both servers are counted; 429 / 503 with
``Retry-After`` and failures from now on can be injected.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "fake~graph~secret~0123456789abcdef"
SCOPE = "https://graph.microsoft.com/.default"
HOSTNAME = "contoso.sharepoint.com"
SITE_PATH = "/sites/Engineering"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAGE_SIZE = 200

_RESYNC = (
    "Resync required. Replace any local items with the server's version (including "
    "deletes) if you're sure that the service was up to date with your local changes "
    "when you last sync'd. Upload any local changes that the server doesn't know about."
)
_MESSAGES = {
    429: ("TooManyRequests", "Please retry after"),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("generalException", "An unspecified error has occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable."),
    504: ("generalException", "The operation has timed out."),
}


@dataclass
class FakeItem:
    id: str
    name: str
    folder: str  # the parent folder's path below the root ("" for the root)
    content: bytes | None  # None: a folder
    mime: str
    modified: datetime
    modified_by: str
    seq: int
    deleted: bool = False
    etag_version: int = 1


@dataclass
class Request:
    server: str  # "graph" or "download"
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


class _Failure(Exception):
    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


@dataclass
class _Listing:
    """A delta answer computed once and served page by page."""

    items: list[dict[str, Any]]
    end: int  # the change sequence the delta link continues from
    pages: dict[int, str] = field(default_factory=dict)


class FakeGraph:
    """The fake Graph and its download host (see the module docstring).
    ``start()`` it, read ``url`` (the Graph ``base_url``) and ``token_url``."""

    def __init__(self, *, page_size: int = PAGE_SIZE) -> None:
        self.client_secret = CLIENT_SECRET
        self.page_size = page_size
        self.site_id = f"{HOSTNAME},{uuid.uuid4()},{uuid.uuid4()}"
        self.drive_id = "b!" + secrets.token_urlsafe(48)
        self.items: dict[str, FakeItem] = {}
        self.requests: list[Request] = []
        self.clock = START
        self.tokens: set[str] = set()
        self.revoked = False  # the app's consent withdrawn: every token refused
        self.delta_tokens: dict[str, int] = {}  # token -> change sequence
        self.listings: dict[str, tuple[_Listing, int]] = {}  # skiptoken -> (, offset)
        self.downloads: dict[str, str] = {}  # tempauth -> item id
        self._seq = itertools.count(1)
        self._folders: dict[str, FakeItem] = {}  # path below the root -> folder
        self._throttles: list[list[Any]] = []
        self._failing: int | None = None
        self._lock = threading.RLock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.root = self._new_item("root", "", None, "")

    # Serving ---------------------------------------------------------------------

    def start(self) -> FakeGraph:
        for name in ("graph", "download"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(name))
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def _handler(self, name: str) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(name, self)

            def do_POST(self) -> None:
                fake._handle(name, self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._servers, self._threads = [], []

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _port(self, index: int) -> int:
        assert self._servers, "start() the fake first"
        return int(self._servers[index].server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port(0)}"

    @property
    def url(self) -> str:
        """Graph's base_url."""
        return f"{self.origin}/v1.0/"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/{TENANT}/oauth2/v2.0/token"

    @property
    def download_origin(self) -> str:
        """The download host: another name (localhost) and another port."""
        return f"http://localhost:{self._port(1)}"

    # What tests do at "SharePoint" -----------------------------------------------

    def tick(self, modified: datetime | None = None) -> datetime:
        with self._lock:
            if modified is None:
                self.clock += timedelta(minutes=1)
                return self.clock
            self.clock = max(self.clock, modified)
            return modified.astimezone(UTC)

    def _new_item(
        self, name: str, folder: str, content: bytes | None, mime: str, **kw: Any
    ) -> FakeItem:
        item = FakeItem(
            id="01" + uuid.uuid4().hex.upper()[:32],
            name=name,
            folder=folder,
            content=content,
            mime=mime,
            modified=kw.get("modified") or self.clock,
            modified_by=kw.get("modified_by") or "Megan Bowen",
            seq=next(self._seq),
        )
        self.items[item.id] = item
        return item

    def add_folder(self, path: str) -> str:
        """A folder (and its parents) below the root; its item id."""
        with self._lock:
            parent = ""
            found = None
            for part in [p for p in path.split("/") if p]:
                here = f"{parent}/{part}".lstrip("/")
                found = self._folders.get(here)
                if found is not None and found.deleted:
                    found = None
                if found is None:
                    found = self._new_item(part, parent, None, "", modified=self.tick())
                    self._folders[here] = found
                parent = here
            assert found is not None
            return found.id

    def add_file(
        self,
        name: str,
        content: bytes | str,
        *,
        folder: str = "",
        mime: str = "",
        modified: datetime | None = None,
        modified_by: str = "Megan Bowen",
    ) -> str:
        """A file in ``folder`` (made if need be); its item id."""
        with self._lock:
            if folder:
                self.add_folder(folder)
            data = content.encode() if isinstance(content, str) else content
            item = self._new_item(
                name,
                folder,
                data,
                mime or _mime(name),
                modified=self.tick(modified),
                modified_by=modified_by,
            )
            return item.id

    def edit(
        self,
        item_id: str,
        content: bytes | str | None = None,
        *,
        name: str | None = None,
        modified: datetime | None = None,
        modified_by: str | None = None,
    ) -> None:
        with self._lock:
            item = self.items[item_id]
            if content is not None:
                item.content = content.encode() if isinstance(content, str) else content
            if name is not None:
                item.name = name
            if modified_by is not None:
                item.modified_by = modified_by
            item.modified = self.tick(modified)
            item.etag_version += 1
            item.seq = next(self._seq)

    def delete(self, item_id: str) -> None:
        """To the recycle bin: the delta feed reports it with a deleted facet."""
        with self._lock:
            item = self.items[item_id]
            item.deleted = True
            item.seq = next(self._seq)

    def delete_folder(self, item_id: str, *, report_children: bool = False) -> None:
        """Delete a folder; like SharePoint, the feed reports only the folder
        unless ``report_children``."""
        with self._lock:
            folder = self.items[item_id]
            path = f"{folder.folder}/{folder.name}".lstrip("/")
            for item in list(self.items.values()):
                if item.folder == path or item.folder.startswith(path + "/"):
                    item.deleted = True
                    if report_children:
                        item.seq = next(self._seq)
            self.delete(item_id)

    def live_files(self) -> set[str]:
        return {
            i.id for i in self.items.values() if i.content is not None and not i.deleted
        }

    def expire_tokens(self) -> None:
        """Every access token given out so far stops working."""
        with self._lock:
            self.tokens.clear()

    def expire_delta_links(self) -> None:
        """Every delta token given out so far answers 410 resyncRequired."""
        with self._lock:
            self.delta_tokens.clear()

    def throttle(
        self,
        *,
        after: int = 0,
        times: int = 1,
        status: int = 429,
        retry_after: str = "3",
        path: str = "",
    ) -> None:
        """The ``times`` Graph requests after the next ``after`` whose path holds
        ``path`` are answered ``status`` with ``Retry-After``."""
        with self._lock:
            self._throttles.append([after, times, status, retry_after, path])

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = status

    def heal(self) -> None:
        self._failing = None

    def count(self, fragment: str = "", server: str = "") -> int:
        return sum(
            1
            for r in self.requests
            if fragment in r.path and (not server or r.server == server)
        )

    # Graph's JSON -----------------------------------------------------------------

    def item_json(self, item: FakeItem) -> dict[str, Any]:
        drive = self.drive_id
        if item is self.root:
            return {
                "id": item.id,
                "name": "root",
                "root": {},
                "folder": {"childCount": 0},
                "webUrl": f"https://{HOSTNAME}{SITE_PATH}/Shared%20Documents",
                "parentReference": {"driveId": drive, "driveType": "documentLibrary"},
                "lastModifiedDateTime": _stamp(item.modified),
            }
        if item.deleted:
            return {
                "id": item.id,
                "deleted": {"state": "deleted"},
                "parentReference": {"driveId": drive, "id": self.root.id},
                **({"file": {}} if item.content is not None else {"folder": {}}),
            }
        parent = f"/drives/{drive}/root:" + (f"/{item.folder}" if item.folder else "")
        path = "/".join(p for p in (item.folder, item.name) if p)
        body: dict[str, Any] = {
            "id": item.id,
            "name": item.name,
            "eTag": f'"{{{item.id[2:10]}-0000}},{item.etag_version}"',
            "cTag": f'"c:{{{item.id[2:10]}-0000}},{item.etag_version}"',
            "createdDateTime": _stamp(START),
            "lastModifiedDateTime": _stamp(item.modified),
            "lastModifiedBy": {
                "user": {
                    "email": "megan@contoso.com",
                    "id": "48d31887-5fad-4d73-a9f5-3c356e68a038",
                    "displayName": item.modified_by,
                }
            },
            "parentReference": {
                "driveType": "documentLibrary",
                "driveId": drive,
                "id": self.root.id,
                "path": parent,
            },
            "webUrl": f"https://{HOSTNAME}{SITE_PATH}/Shared%20Documents/{quote(path)}",
        }
        if item.content is None:
            body["folder"] = {"childCount": 0}
            body["size"] = 0
        else:
            body["file"] = {
                "mimeType": item.mime,
                "hashes": {"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
            }
            body["size"] = len(item.content)
        return body

    # The servers ------------------------------------------------------------------

    def _handle(self, server: str, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request(
            server, handler.command, parts.path, parse_qs(parts.query), headers, raw
        )
        content_type = "application/json"
        extra: dict[str, str] = {}
        with self._lock:
            self.requests.append(request)
            try:
                if server == "download":
                    status, answer, content_type = 200, *self._download(request)
                elif parts.path.endswith("/oauth2/v2.0/token"):
                    status, answer = 200, self._token(request)
                else:
                    status, answer, extra = self._graph(request)
            except _Failure as failure:
                status, extra = failure.status, failure.headers
                content_type = "application/json"
                if failure.code.startswith("aad:"):
                    answer = _aad_error(failure.code[4:], failure.message)
                else:
                    answer = {
                        "error": {
                            "code": failure.code,
                            "message": failure.message,
                            "innerError": {
                                "date": _stamp(datetime.now(UTC)),
                                "request-id": str(uuid.uuid4()),
                                "client-request-id": str(uuid.uuid4()),
                            },
                        }
                    }
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(data)

    def _token(self, request: Request) -> dict[str, Any]:
        if request.method != "POST":
            raise _Failure(405, "aad:invalid_request", "AADSTS900561: POST required.")
        tenant = request.path.strip("/").split("/")[0]
        if tenant != TENANT:
            raise _Failure(
                400,
                "aad:invalid_request",
                f"AADSTS90002: Tenant '{tenant}' not found.",
            )
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            raise _Failure(
                400,
                "aad:unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            )
        if form.get("client_id") != CLIENT_ID:
            raise _Failure(
                400,
                "aad:unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' "
                f"was not found in the directory '{TENANT}'.",
            )
        if form.get("client_secret") != self.client_secret:
            raise _Failure(
                401,
                "aad:invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret "
                "being sent in the request is the client secret value, not the "
                "client secret ID, for a secret added to app "
                f"'{CLIENT_ID}'.",
            )
        if form.get("scope") != SCOPE:
            raise _Failure(
                400,
                "aad:invalid_scope",
                f"AADSTS1002012: The provided value for scope {form.get('scope')} "
                "is not valid. Client credential flows must have a scope value with "
                "/.default suffixed to the resource identifier.",
            )
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(32)
        self.tokens.add(token)
        return {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }

    def _graph(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise _Failure(401, "InvalidAuthenticationToken", "Access token is empty.")
        if self.revoked:
            raise _Failure(
                401,
                "InvalidAuthenticationToken",
                "The application's access to the tenant has been revoked.",
            )
        if auth[7:] not in self.tokens:
            raise _Failure(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        self._throttle(request)
        if self._failing is not None:
            code, message = _MESSAGES.get(self._failing, _MESSAGES[500])
            raise _Failure(self._failing, code, message)
        path = unquote(request.path)
        if not path.startswith("/v1.0/"):
            raise _Failure(400, "BadRequest", "Invalid version.")
        rest = path[len("/v1.0/") :]
        routes: list[tuple[Callable[[str], bool], Callable[..., Any]]] = [
            (lambda p: p.startswith("sites/") and p.endswith("/drive"), self._drive),
            (lambda p: p.startswith("sites/"), self._site),
            (lambda p: p.endswith("/root/delta"), self._delta),
            (lambda p: p.endswith("/content"), self._content),
            (lambda p: "/items/" in p, self._item),
        ]
        for matches, route in routes:
            if matches(rest):
                return route(request, rest)
        raise _Failure(
            400, "BadRequest", f"Resource not found for the segment '{rest}'."
        )

    def _throttle(self, request: Request) -> None:
        for throttle in self._throttles:
            after, times, status, retry_after, path = throttle
            if path not in request.path or times <= 0:
                continue
            if after > 0:
                throttle[0] -= 1
                continue
            throttle[1] -= 1
            code, message = _MESSAGES.get(status, _MESSAGES[500])
            raise _Failure(status, code, message, Retry_After=retry_after)

    def _site(self, request: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        wanted = f"sites/{HOSTNAME}:{SITE_PATH}"
        if (
            rest.rstrip("/").lower() != wanted.lower()
            and rest != f"sites/{self.site_id}"
        ):
            raise _Failure(404, "itemNotFound", "Requested site could not be found")
        return (
            200,
            {
                "id": self.site_id,
                "name": "Engineering",
                "displayName": "Engineering",
                "webUrl": f"https://{HOSTNAME}{SITE_PATH}",
            },
            {},
        )

    def _drive(self, request: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        if rest != f"sites/{self.site_id}/drive":
            raise _Failure(404, "itemNotFound", "Requested site could not be found")
        return (
            200,
            {
                "id": self.drive_id,
                "driveType": "documentLibrary",
                "name": "Documents",
                "webUrl": f"https://{HOSTNAME}{SITE_PATH}/Shared%20Documents",
            },
            {},
        )

    def _check_drive(self, rest: str) -> None:
        drive = rest.split("/")[1]
        if drive != self.drive_id:
            raise _Failure(404, "itemNotFound", "The resource could not be found.")

    def _delta(self, request: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        self._check_drive(rest)
        query = {k: v[0] for k, v in request.query.items()}
        link = f"{self.url}drives/{quote(self.drive_id)}/root/delta"
        if "$skiptoken" in query:
            held = self.listings.pop(query["$skiptoken"], None)
            if held is None:
                raise _Failure(400, "invalidRequest", "Invalid skip token.")
            listing, offset = held
        else:
            if "token" in query:
                since = self.delta_tokens.get(query["token"])
                if since is None:
                    raise _Failure(410, "resyncRequired", _RESYNC)
                changed = [i for i in self.items.values() if i.seq > since]
            else:
                changed = [i for i in self.items.values() if not i.deleted]
            changed.sort(key=lambda i: i.seq)
            select = query.get("$select")
            bodies = [_selected(self.item_json(i), select) for i in changed]
            end = max((i.seq for i in self.items.values()), default=0)
            listing, offset = _Listing(bodies, end), 0
        page = listing.items[offset : offset + self.page_size]
        answer: dict[str, Any] = {
            "@odata.context": f"{self.url}$metadata#Collection(driveItem)",
            "value": page,
        }
        if offset + self.page_size < len(listing.items):
            skip = secrets.token_urlsafe(16)
            self.listings[skip] = (listing, offset + self.page_size)
            answer["@odata.nextLink"] = f"{link}?$skiptoken={skip}"
        else:
            token = secrets.token_urlsafe(24)
            self.delta_tokens[token] = listing.end
            answer["@odata.deltaLink"] = f"{link}?token={token}"
        return 200, answer, {}

    def _found(self, rest: str) -> FakeItem:
        self._check_drive(rest)
        item_id = rest.split("/")[3]
        item = self.items.get(item_id)
        if item is None or item.deleted:
            raise _Failure(404, "itemNotFound", "The resource could not be found.")
        return item

    def _item(self, request: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        item = self._found(rest)
        return (
            200,
            _selected(self.item_json(item), request.query.get("$select", [None])[0]),
            {},
        )

    def _content(self, request: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        item = self._found(rest)
        if item.content is None:
            raise _Failure(404, "itemNotFound", "The resource could not be found.")
        tempauth = secrets.token_urlsafe(24)
        self.downloads[tempauth] = item.id
        location = (
            f"{self.download_origin}/download/{quote(item.name)}?tempauth={tempauth}"
        )
        return 302, b"", {"Location": location}

    def _download(self, request: Request) -> tuple[bytes, str]:
        if "authorization" in request.headers:
            raise _Failure(
                400, "invalidRequest", "a bearer token sent to the download host"
            )
        tempauth = request.query.get("tempauth", [""])[0]
        item = self.items.get(self.downloads.get(tempauth, ""))
        if item is None or item.deleted or item.content is None:
            raise _Failure(401, "unauthenticated", "Invalid or expired tempauth.")
        return item.content, item.mime or "application/octet-stream"


def _aad_error(code: str, description: str) -> dict[str, Any]:
    trace = str(uuid.uuid4())
    return {
        "error": code,
        "error_description": f"{description} Trace ID: {trace} Correlation ID: "
        f"{uuid.uuid4()} Timestamp: {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
        "error_codes": [int(description[6:].split(":")[0] or 0)],
        "timestamp": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
    }


def _selected(body: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return body
    keep = {f.strip() for f in select.split(",")} | {"id"}
    return {k: v for k, v in body.items() if k in keep}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mime(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return {
        ".md": "text/markdown",
        ".txt": "text/plain",
        ".html": "text/html",
        ".pdf": "application/pdf",
        ".docx": "application/vnd.openxmlformats-officedocument."
        "wordprocessingml.document",
        ".png": "image/png",
    }.get(suffix, "application/octet-stream")


# The Source contract suite's harness ---------------------------------------------


class SharePointHarness:
    """A ``sharepoint`` source reading the site's drive of a :class:`FakeGraph`."""

    kind = "sharepoint"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.fake = FakeGraph().start()
        if request is not None:
            request.addfinalizer(self.fake.stop)
        self._ids: dict[str, str] = {}

    def source(self) -> Any:
        from eventhub.integrations.sharepoint import SharePointSource

        source = SharePointSource(
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=self.fake.client_secret,
            site=f"{HOSTNAME}:{SITE_PATH}",
            base_url=self.fake.url,
            token_url=self.fake.token_url,
            download_hosts=["localhost"],
            allow_private=True,
            rate=None,
            sleep=lambda seconds: None,
        )
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        content = f"# {title}\n\n{text}\n"
        if key in self._ids:
            self.fake.edit(self._ids[key], content, modified=updated_at)
        else:
            self._ids[key] = self.fake.add_file(
                f"{key}.md", content, folder="Notes", modified=updated_at
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
        """Stop the fake servers (also done by the test's finalizer)."""
        self.fake.stop()
