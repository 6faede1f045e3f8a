"""A stateful fake of Google Drive API v3 and Google's token endpoint on 127.0.0.1.

It holds files and folders that tests add, edit, move, trash and remove, a change
log, and serves:

* ``POST /token``: the JWT bearer grant. The assertion's RS256 signature is checked
  with the public half of the test key, and its ``iss``, ``aud`` (this URL),
  ``scope`` (drive.readonly) and ``sub`` (the expected subject, or none); a bad one
  is Google's ``400 {"error": "invalid_grant", "error_description": ...}``. Tokens
  live ``expires_in`` = 3599 seconds; ``revoke_tokens()`` ends them.
* ``GET /drive/v3/changes/startPageToken`` and ``GET /drive/v3/changes`` (a token is
  a position in the change log; ``nextPageToken`` until ``newStartPageToken``; a
  token from before ``expire_tokens()`` or not from this fake is Drive's 400
  ``invalid`` on ``pageToken``);
* ``GET /drive/v3/files`` with ``q`` parsed as far as the source writes it (``'<id>'
  in parents`` joined by ``or``, in parentheses, ``and trashed = false``; anything
  else is Drive's 400 ``invalid`` on ``q``), ``pageToken`` paging, ``pageSize`` at
  most 1000, ``fields`` honoured for ``files(...)`` (without it, Drive's defaults);
* ``GET /drive/v3/files/{id}`` (metadata, or ``alt=media``: the bytes; a Google
  file cannot be downloaded: 403 ``fileNotDownloadable``), ``GET
  /drive/v3/files/{id}/export?mimeType=`` (Google files only);

every API call needing ``Authorization: Bearer <a token the endpoint issued>``
(else 401 ``authError``). Errors are the bodies of Drive's docs (``{"error":
{"errors": [{"domain", "reason", "message", ...}], "code", "message"}}``). Requests
are counted; 429s (with ``Retry-After``) and 403 ``userRateLimitExceeded`` /
``rateLimitExceeded`` can be injected after a number of requests, and failures from
now on.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
FORM = "application/vnd.google-apps.form"
EXPORTS = {DOC: "text/plain", SHEET: "text/csv", SLIDES: "text/plain"}
SCOPE = "https://www.googleapis.com/auth/drive.readonly"
MAX_PAGE_SIZE = 1000
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLIENT_EMAIL = "eventhub-reader@fake-project.iam.gserviceaccount.com"


@cache
def service_account_key() -> tuple[dict[str, str], bytes]:
    """A service account key made for the tests (RSA 2048, generated once per
    process) as Google hands it out, and the PEM of its public half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return key, public


@dataclass
class FakeFile:
    id: str
    name: str
    mime: str
    parents: list[str]
    content: bytes
    modified: datetime
    trashed: bool = False
    drive_id: str | None = None
    owners: list[str] = field(default_factory=lambda: ["Ada Lovelace"])

    def resource(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "modifiedTime": self.modified.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "webViewLink": _link(self),
            "owners": [
                {"kind": "drive#user", "displayName": n, "me": False}
                for n in self.owners
            ],
        }
        if not self.mime.startswith("application/vnd.google-apps."):
            body["size"] = str(len(self.content))
        if self.drive_id is not None:
            body["driveId"] = self.drive_id
            body.pop("owners")  # files in shared drives have no owners
        return body


def _link(file: FakeFile) -> str:
    if file.mime == FOLDER:
        return f"https://drive.google.com/drive/folders/{file.id}"
    if file.mime == DOC:
        return f"https://docs.google.com/document/d/{file.id}/edit?usp=drivesdk"
    if file.mime == SHEET:
        return f"https://docs.google.com/spreadsheets/d/{file.id}/edit?usp=drivesdk"
    return f"https://drive.google.com/file/d/{file.id}/view?usp=drivesdk"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


class _Failure(Exception):
    def __init__(self, status: int, body: dict[str, Any], **headers: str) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def google_error(
    status: int,
    reason: str,
    message: str,
    *,
    domain: str = "global",
    location: str | None = None,
    location_type: str | None = None,
) -> dict[str, Any]:
    """An error body as Drive's docs show them."""
    item: dict[str, Any] = {"domain": domain, "reason": reason, "message": message}
    if location is not None:
        item["location"] = location
        item["locationType"] = location_type or "parameter"
    return {"error": {"errors": [item], "code": status, "message": message}}


_UNAUTHENTICATED = google_error(
    401,
    "authError",
    "Invalid Credentials",
    location="Authorization",
    location_type="header",
)
_Q_PARENT = re.compile(r"'((?:[^'\\]|\\.)*)' in parents")


class FakeDrive:
    """The fake Drive (see the module docstring). ``start()`` it, read ``url``;
    ``stop()`` it at the end (a context manager does both)."""

    def __init__(self, subject: str | None = None) -> None:
        key, self.public_key = service_account_key()
        self.client_email = key["client_email"]
        self.subject = subject
        self.files: dict[str, FakeFile] = {}
        self.log: list[str] = []  # the change log: file ids, oldest first
        self.oldest_token = 1
        self.tokens: set[str] = set()
        self.requests: list[Request] = []
        self.clock = START
        self.on_request: Callable[[Request], None] | None = None
        self._throttles: list[list[Any]] = []
        self._failing: int | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.root = self.add_folder("Company docs", parents=["0AFakeMyDriveRoot"])

    # Serving ---------------------------------------------------------------------

    def start(self) -> FakeDrive:
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

    def __enter__(self) -> FakeDrive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def token_url(self) -> str:
        return self.url + "token"

    # What tests do at "Drive" ---------------------------------------------------

    def tick(self, when: datetime | None = None) -> datetime:
        with self._lock:
            self.clock = max(self.clock + timedelta(seconds=1), when or self.clock)
            return when or self.clock

    def add_folder(self, name: str, parents: list[str] | None = None) -> str:
        return self.add_file(name, b"", mime=FOLDER, parents=parents)

    def add_file(
        self,
        name: str,
        content: bytes | str,
        *,
        mime: str = DOC,
        parents: list[str] | None = None,
        modified: datetime | None = None,
        drive_id: str | None = None,
    ) -> str:
        with self._lock:
            file_id = "1" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
            self.files[file_id] = FakeFile(
                file_id,
                name,
                mime,
                list(parents if parents is not None else [self.root]),
                content.encode() if isinstance(content, str) else content,
                self.tick(modified),
                drive_id=drive_id,
            )
            self.log.append(file_id)
            return file_id

    def edit(
        self,
        file_id: str,
        content: bytes | str | None = None,
        *,
        name: str | None = None,
        modified: datetime | None = None,
    ) -> None:
        with self._lock:
            file = self.files[file_id]
            if content is not None:
                file.content = content.encode() if isinstance(content, str) else content
            if name is not None:
                file.name = name
            file.modified = self.tick(modified)
            self.log.append(file_id)

    def move(self, file_id: str, parents: list[str]) -> None:
        with self._lock:
            self.files[file_id].parents = list(parents)
            self.log.append(file_id)

    def trash(self, file_id: str) -> None:
        """To the trash (a folder's files too, as Drive does; only the folder's
        own change is logged)."""
        with self._lock:
            self.files[file_id].trashed = True
            for child in self._descendants(file_id):
                child.trashed = True
            self.log.append(file_id)

    def remove(self, file_id: str) -> None:
        """Deleted for good: the change log says ``removed``."""
        with self._lock:
            del self.files[file_id]
            self.log.append(file_id)

    def expire_tokens(self) -> None:
        """Every page token handed out so far becomes invalid."""
        with self._lock:
            self.oldest_token = len(self.log) + 1

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def rate_limit(
        self,
        path: str = "",
        *,
        after: int = 0,
        times: int = 1,
        status: int = 429,
        reason: str = "userRateLimitExceeded",
        retry_after: str | None = "7",
    ) -> None:
        """The next ``times`` requests whose path holds ``path``, after ``after``
        of them, are refused: 429 (with ``Retry-After``) or Drive's 403 rate limit
        (``reason``: ``userRateLimitExceeded`` or ``rateLimitExceeded``)."""
        with self._lock:
            self._throttles.append([after, times, path, status, reason, retry_after])

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = status

    def heal(self) -> None:
        self._failing = None

    def count(self, fragment: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if fragment in r.path and (method is None or r.method == method)
            )

    def _descendants(self, folder_id: str) -> list[FakeFile]:
        found: list[FakeFile] = []
        todo = [folder_id]
        while todo:
            parent = todo.pop()
            for file in self.files.values():
                if parent in file.parents:
                    found.append(file)
                    if file.mime == FOLDER:
                        todo.append(file.id)
        return found

    # The API --------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request(handler.command, parts.path, parse_qs(parts.query), headers)
        content_type = "application/json; charset=UTF-8"
        extra: dict[str, str] = {}
        with self._lock:
            self.requests.append(request)
            try:
                if self.on_request is not None:
                    self.on_request(request)
                if request.path == "/token" and request.method == "POST":
                    status, answer = 200, self._token(raw)
                else:
                    status, answer = 200, self._answer(request)
            except _Failure as failure:
                status, answer, extra = failure.status, failure.body, failure.headers
            except Exception as exc:  # the fake's own bug: show it
                status = 500
                answer = google_error(500, "backendError", f"fake: {exc!r}")
        if isinstance(answer, tuple):
            data, content_type = answer
        else:
            data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(data)

    def _token(self, raw: bytes) -> dict[str, Any]:
        import jwt

        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}

        def refuse(description: str) -> _Failure:
            body = {"error": "invalid_grant", "error_description": description}
            return _Failure(400, body)

        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise _Failure(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Invalid grant_type: "
                    f"{form.get('grant_type')}",
                },
            )
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise refuse(f"Invalid JWT: {type(exc).__name__}") from None
        if claims["iss"] != self.client_email:
            raise refuse("Invalid JWT Signature.")
        if claims["exp"] - claims["iat"] > 3600:
            raise refuse("Invalid JWT: Token must be a short-lived token (60 minutes)")
        if SCOPE not in str(claims.get("scope", "")).split():
            raise refuse("Invalid JWT: the scope is not drive.readonly")
        if claims.get("sub") != self.subject:
            raise _Failure(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve "
                    "access tokens using this method, or client not authorized "
                    "for any of the scopes requested.",
                },
            )
        token = f"ya29.fake-{uuid.uuid4().hex}"
        self.tokens.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _answer(self, request: Request) -> Any:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            raise _Failure(401, _UNAUTHENTICATED, WWW_Authenticate='Bearer realm=""')
        self._throttle(request)
        if self._failing is not None:
            status = self._failing
            raise _Failure(
                status, google_error(status, "backendError", "Backend Error")
            )
        segments = request.path.strip("/").split("/")
        if segments[:2] != ["drive", "v3"] or request.method != "GET":
            raise _Failure(404, google_error(404, "notFound", "Not Found"))
        rest = segments[2:]
        if rest == ["changes", "startPageToken"]:
            return {
                "kind": "drive#startPageToken",
                "startPageToken": str(len(self.log) + 1),
            }
        if rest == ["changes"]:
            return self._changes(request)
        if rest == ["files"]:
            return self._list(request)
        if len(rest) == 2 and rest[0] == "files":
            return self._get(request, rest[1])
        if len(rest) == 3 and rest[0] == "files" and rest[2] == "export":
            return self._export(request, rest[1])
        raise _Failure(404, google_error(404, "notFound", "Not Found"))

    def _throttle(self, request: Request) -> None:
        for throttle in self._throttles:
            after, times, path, status, reason, retry_after = throttle
            if path not in request.path or times <= 0:
                continue
            if after > 0:
                throttle[0] -= 1
                continue
            throttle[1] -= 1
            if status == 429:
                body = google_error(
                    429,
                    "rateLimitExceeded",
                    "Rate Limit Exceeded",
                    domain="usageLimits",
                )
                headers = {"Retry_After": retry_after} if retry_after else {}
                raise _Failure(429, body, **headers)
            message = (
                "User Rate Limit Exceeded"
                if reason == "userRateLimitExceeded"
                else "Rate Limit Exceeded"
            )
            raise _Failure(
                status, google_error(status, reason, message, domain="usageLimits")
            )

    def _page_size(self, request: Request, default: int) -> int:
        raw = request.param("pageSize", str(default)) or str(default)
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise _invalid(
                f"Invalid value '{raw}'. Values must be within the range: [1, 1000]",
                "pageSize",
            )
        return int(raw)

    def _changes(self, request: Request) -> dict[str, Any]:
        token = request.param("pageToken")
        if token is None:
            raise _Failure(
                400,
                google_error(
                    400,
                    "required",
                    "Required parameter: pageToken",
                    location="pageToken",
                ),
            )
        end = len(self.log) + 1
        if not token.isdigit() or not self.oldest_token <= int(token) <= end:
            raise _invalid("Invalid Value", "pageToken")
        start = int(token)
        size = self._page_size(request, 100)
        all_drives = request.param("includeItemsFromAllDrives") == "true"
        removed = request.param("includeRemoved", "true") == "true"
        stop = min(start + size, end)
        changes = []
        for position in range(start, stop):
            file_id = self.log[position - 1]
            file = self.files.get(file_id)
            if file is not None and file.drive_id is not None and not all_drives:
                continue
            change: dict[str, Any] = {
                "kind": "drive#change",
                "changeType": "file",
                "time": self.clock.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "fileId": file_id,
                "removed": file is None,
            }
            if file is not None:
                change["file"] = _fields(
                    file.resource(), request.param("fields"), "changes"
                )
            elif not removed:
                continue
            changes.append(change)
        answer: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        if stop < end:
            answer["nextPageToken"] = str(stop)
        else:
            answer["newStartPageToken"] = str(end)
        return answer

    def _list(self, request: Request) -> dict[str, Any]:
        query = request.param("q", "") or ""
        parents = {p.replace("\\'", "'") for p in _Q_PARENT.findall(query)}
        rest = _Q_PARENT.sub("", query)
        rest = re.sub(r"\bor\b|[()\s]", " ", rest)
        words = rest.split()
        if words not in (
            [],
            ["and", "trashed", "=", "false"],
            ["trashed", "=", "false"],
        ):
            raise _invalid("Invalid Value", "q")
        if parents and "trashed = false" not in query:
            raise _invalid("Invalid Value", "q")
        if (request.param("corpora") == "allDrives") != (
            request.param("includeItemsFromAllDrives") == "true"
        ):
            raise _invalid(
                "The includeItemsFromAllDrives parameter must be set to true when "
                "corpora is allDrives",
                "includeItemsFromAllDrives",
            )
        all_drives = request.param("includeItemsFromAllDrives") == "true"
        size = self._page_size(request, 100)
        chosen = [
            f
            for f in sorted(self.files.values(), key=lambda f: f.id)
            if (not parents or parents & set(f.parents))
            and not ("trashed = false" in query and f.trashed)
            and (all_drives or f.drive_id is None)
        ]
        token = request.param("pageToken")
        offset = 0
        if token is not None:
            if not token.startswith("p") or not token[1:].isdigit():
                raise _invalid("Invalid Value", "pageToken")
            offset = int(token[1:])
        page = chosen[offset : offset + size]
        answer: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [
                _fields(f.resource(), request.param("fields"), "files") for f in page
            ],
        }
        if offset + size < len(chosen):
            answer["nextPageToken"] = f"p{offset + size}"
        return answer

    def _file(self, file_id: str) -> FakeFile:
        file = self.files.get(file_id)
        if file is None:
            raise _Failure(
                404,
                google_error(
                    404,
                    "notFound",
                    f"File not found: {file_id}.",
                    location="fileId",
                ),
            )
        return file

    def _get(self, request: Request, file_id: str) -> Any:
        file = self._file(file_id)
        if request.param("alt") == "media":
            if file.mime.startswith("application/vnd.google-apps."):
                raise _Failure(
                    403,
                    google_error(
                        403,
                        "fileNotDownloadable",
                        "Only files with binary content can be downloaded. Use "
                        "Export with Docs Editors files.",
                        location="alt",
                    ),
                )
            return (file.content, file.mime)
        fields = request.param("fields")
        return _fields(file.resource(), f"files({fields})" if fields else None, "files")

    def _export(self, request: Request, file_id: str) -> Any:
        file = self._file(file_id)
        wanted = request.param("mimeType")
        if file.mime not in EXPORTS:
            raise _Failure(
                403,
                google_error(
                    403,
                    "fileNotExportable",
                    "Export only supports Docs Editors files.",
                ),
            )
        if wanted != EXPORTS[file.mime] and wanted != "text/plain":
            raise _invalid("The requested conversion is not supported.", "convertTo")
        return (file.content, f"{wanted}; charset=utf-8")


def _invalid(message: str, location: str) -> _Failure:
    return _Failure(400, google_error(400, "invalid", message, location=location))


_DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")


def _fields(
    resource: dict[str, Any], fields: str | None, wrapper: str
) -> dict[str, Any]:
    """The parts of a file resource a ``fields`` parameter asks for (within
    ``files(...)``, ``changes(...file(...))`` or bare): Drive's default set
    without one."""
    if not fields:
        return {k: v for k, v in resource.items() if k in _DEFAULT_FIELDS}
    inner = (
        _inside(fields, "file(") if wrapper == "changes" else _inside(fields, "files(")
    )
    if inner is None:
        inner = fields
    names = {
        re.sub(r"\(.*", "", part).strip() for part in _top_level(inner) if part.strip()
    }
    if "*" in names:
        return dict(resource)
    return {k: v for k, v in resource.items() if k in names}


def _inside(text: str, opener: str) -> str | None:
    start = text.find(opener)
    if start < 0:
        return None
    depth, begin = 0, start + len(opener) - 1
    for index in range(begin, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[begin + 1 : index]
    return None


def _top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return parts


# The Source contract suite's harness ---------------------------------------------


class GDriveHarness:
    """A ``gdrive`` source reading one folder of a :class:`FakeDrive` through a
    service account; its documents are Google Docs."""

    kind = "gdrive"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.fake = FakeDrive().start()
        if request is not None:
            request.addfinalizer(self.fake.stop)
        self._ids: dict[str, str] = {}

    def source(self) -> Any:
        from eventhub.integrations.gdrive import GoogleDriveSource

        source = GoogleDriveSource(
            service_account=service_account_key()[0],
            token_url=self.fake.token_url,
            base_url=self.fake.url,
            folders=[self.fake.root],
            allow_private=True,
            rate=None,
            sleep=lambda seconds: None,
        )
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        if key in self._ids:
            self.fake.edit(self._ids[key], text, name=title, modified=updated_at)
        else:
            self._ids[key] = self.fake.add_file(title, text, modified=updated_at)

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
