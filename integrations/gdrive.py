"""``gdrive``: the files of Google Drive (API v3) as documents.

::

    [sources.drive]
    kind = "gdrive"
    service_account = { file = "/run/secrets/drive-sa.json" }  # the key JSON
    subject = "docs-bot@example.com"   # optional: domain-wide delegation
    folders = ["0AbCdEf..."]           # default: everything the account can read

or ``[sources.drive.oauth]`` (the Google OAuth flow of :mod:`eventhub.auth`, scope
``drive.readonly`` unless ``scopes`` says otherwise) instead of ``service_account``.

A first sync asks ``changes.getStartPageToken`` *before* it lists anything, then lists
the configured folders with ``files.list`` (``'<id>' in parents``, 1000 a page, the
subfolders it meets are listed in their turn); the start page token is the checkpoint,
so a change made while the listing runs is read at the next sync. An incremental sync
reads ``changes.list`` from the saved token until ``newStartPageToken`` (the next
checkpoint; each ``nextPageToken`` on the way is one too): removed and trashed files
are tombstones, and so are files that moved out of the configured folders. A folder
that moves into them is listed; one that moves out of them (or is trashed) makes the
sync a resync (its files do not show in the changes). A token Drive rejects (400,
404) is a resync too.

Google Docs export as text/plain, Sheets as text/csv (the first sheet: Drive's CSV
export), Slides as text/plain; other files are downloaded (``alt=media``) and read by
:func:`eventhub.documents.extract.extract`. A file over ``max_bytes`` is skipped
before it is downloaded, and so is one of a type no extractor reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import orjson
import requests
import structlog
from requests.auth import AuthBase

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
    format_for,
)
from eventhub.errors import ConfigError, InvalidEvent, MissingDependency
from eventhub.events import parse_time
from eventhub.hookspecs import hookimpl
from eventhub.http import HttpClient, HttpError, json_body
from eventhub.redact import redact_text, register_secret

from ._apisource import APISource

__all__ = ["DRIVE_SCOPE", "DriveError", "GoogleDriveSource", "ServiceAccountAuth"]

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Drive's largest page of files.list and changes.list.
PAGE_SIZE = 1000
#: Folders named in one files.list query (``'a' in parents or 'b' in parents``).
PARENTS_PER_QUERY = 40
FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
#: Google's own formats with a text export: (media type, the name's suffix).
EXPORTS = {
    "application/vnd.google-apps.document": ("text/plain", ".txt"),
    "application/vnd.google-apps.spreadsheet": ("text/csv", ".csv"),
    "application/vnd.google-apps.presentation": ("text/plain", ".txt"),
}
FILE_FIELDS = (
    "id,name,mimeType,parents,driveId,trashed,modifiedTime,webViewLink,size,"
    "owners(displayName)"
)
_VERSION = 1
#: Seconds before its expiry that an access token is replaced.
_TOKEN_MARGIN = 300.0

log = structlog.get_logger(__name__)


class DriveError(HttpError):
    """Drive refused a request: ``reason`` is the first of Google's error reasons
    (``authError``, ``notFound``, ``insufficientFilePermissions`` ...), ``message``
    its words (redacted); the URL is named without its query."""

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None,
        google_reason: str,
        message: str,
        body: str | None = None,
    ) -> None:
        self.google_reason = google_reason
        self.message = redact_text(message)
        words = f"{google_reason}: {self.message}" if google_reason else self.message
        super().__init__(
            method, url.split("?", 1)[0], status, reason=" ".join(words.split())
        )
        self.body = body

    @classmethod
    def from_http_error(cls, exc: HttpError) -> DriveError:
        """The error for an HTTP error whose body is Google's error JSON
        (``{"error": {"code", "message", "errors": [{"reason"}], "status"}}``)."""
        try:
            body = orjson.loads(exc.body or "")
        except orjson.JSONDecodeError:
            body = None
        reason, message = "", (exc.body or "").strip()[:200]
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
            errors = error.get("errors")
            first = errors[0] if isinstance(errors, list) and errors else None
            if isinstance(first, dict) and first.get("reason"):
                reason = str(first["reason"])
            elif error.get("status"):
                reason = str(error["status"])
        elif isinstance(error, str):  # the token endpoint's OAuth error
            reason = error
            message = str(body.get("error_description") or "")  # type: ignore[union-attr]
        return cls(exc.method, exc.url, exc.status, reason, message, exc.body)


class ServiceAccountAuth(AuthBase):
    """Bearer auth with an access token of a service account (the JWT bearer
    grant, RFC 7523, as Google's token endpoint speaks it), cached until five
    minutes before it expires.

    Args:
        key: The service account's key (the JSON Google hands out: ``client_email``,
            ``private_key``, ``private_key_id``).
        token_url: The token endpoint (also the assertion's audience).
        scopes: The scopes asked for.
        subject: The user to act as (domain-wide delegation), if any.
        http: The client for the token endpoint.
        clock: Wall clock in seconds.

    Raises:
        ConfigError: for a key without an e-mail or a private key.
        MissingDependency: when pyjwt (with cryptography) is not installed.
    """

    def __init__(
        self,
        key: Mapping[str, Any],
        token_url: str,
        scopes: Sequence[str],
        *,
        subject: str | None,
        http: HttpClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        email, private_key = key.get("client_email"), key.get("private_key")
        if not isinstance(email, str) or not email:
            raise ConfigError("service_account: the key has no client_email")
        if not isinstance(private_key, str) or "PRIVATE KEY" not in private_key:
            raise ConfigError("service_account: the key has no private_key")
        register_secret(private_key)
        try:
            import jwt
            from cryptography.hazmat.primitives import serialization
        except ImportError:
            raise MissingDependency("pyjwt", "gdrive") from None
        try:
            self._key: Any = serialization.load_pem_private_key(
                private_key.encode(), password=None
            )
        except (ValueError, TypeError):
            raise ConfigError(
                "service_account: the private_key is not a PEM private key"
            ) from None
        self._jwt = jwt
        self.email = email
        self.key_id = key.get("private_key_id")
        self.token_url = token_url
        self.scopes = tuple(scopes)
        self.subject = subject
        self._http = http
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        """A valid access token: the cached one, or a new one.

        Raises:
            DriveError: when the token endpoint refuses the assertion.
            HttpError: when it cannot be reached.
        """
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires - _TOKEN_MARGIN:
                self._token, lifetime = self._request_token(now)
                self._expires = now + lifetime
            return self._token

    def _request_token(self, now: float) -> tuple[str, float]:
        claims: dict[str, Any] = {
            "iss": self.email,
            "scope": " ".join(self.scopes),
            "aud": self.token_url,
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        if self.subject:
            claims["sub"] = self.subject
        headers = {"kid": self.key_id} if isinstance(self.key_id, str) else None
        assertion = self._jwt.encode(claims, self._key, "RS256", headers=headers)
        register_secret(assertion, ephemeral=True)
        try:
            response = self._http.request(
                "POST",
                self.token_url,
                data={"grant_type": JWT_BEARER, "assertion": assertion},
                idempotency_key=True,  # a token request may be repeated
            )
        except HttpError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise DriveError.from_http_error(exc) from None
            raise
        body = json_body("POST", response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError("gdrive: the token endpoint answered no access_token")
        register_secret(token, ephemeral=True)
        lifetime = body.get("expires_in", 3600)
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
            lifetime = 3600
        return token, float(lifetime)


class _TooLarge(Exception):
    """A file whose content cannot be taken (too large, no export): skipped."""


class GoogleDriveSource(APISource):
    """The files of Google Drive (see the module docstring).

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`
    (``base_url`` defaults to ``https://www.googleapis.com/``, ``rate`` to 10 a
    second with bursts of 20) and the extraction limits, plus:

    Args:
        service_account: The service account's key: its JSON text (a ``{ file =
            ... }`` reference reads it) or a table.
        subject: The user the service account acts as (domain-wide delegation).
        folders: Folder (or shared drive) ids to read, subfolders included;
            default: every file the account can read.
        token_url: The token endpoint for the service account (default: Google's;
            the key's ``token_uri`` when it names another).
        oauth: The OAuth flow instead of a service account.

    Raises:
        ConfigError: for missing or conflicting credentials, or a malformed
            setting.
    """

    kind = "gdrive"
    default_base_url = "https://www.googleapis.com/"
    default_rate = 10.0
    default_burst = 20
    # The changes feed reports removals, trashing and moves: a daily listing is
    # only the safety net.
    default_prune = 86400.0

    def __init__(
        self,
        *,
        service_account: str | Mapping[str, Any] | None = None,
        subject: str | None = None,
        folders: Sequence[str] | None = None,
        token_url: str | None = None,
        **config: Any,
    ) -> None:
        where = "gdrive source"
        ways = [k for k in ("token", "oauth") if config.get(k)]
        if service_account:
            ways.append("service_account")
        if not ways:
            raise ConfigError(
                f"{where}: service_account (or an oauth table) is missing"
            )
        if len(ways) > 1:
            raise ConfigError(f"{where}: choose one of {' and '.join(ways)}")
        if config.get("oauth") is not None:
            table = config["oauth"]
            if isinstance(table, Mapping) and "scopes" not in table:
                config["oauth"] = {**table, "scopes": [DRIVE_SCOPE]}
        if folders is not None and (
            isinstance(folders, str)
            or not all(isinstance(f, str) and f.strip() for f in folders)
        ):
            raise ConfigError(f"{where}: folders must be a list of folder ids")
        if subject is not None and (not isinstance(subject, str) or not subject):
            raise ConfigError(f"{where}: subject must be a user's e-mail address")
        if subject is not None and not service_account:
            raise ConfigError(f"{where}: subject needs service_account")
        super().__init__(**config)
        self.folders = sorted({f.strip() for f in folders or []})
        self.subject = subject
        self._token_http: HttpClient | None = None
        if service_account:
            key = _service_account_key(service_account)
            uri = key.get("token_uri")
            self.token_url = token_url or (uri if isinstance(uri, str) else TOKEN_URL)
            settings = self._settings
            self._token_http = HttpClient(
                name=f"{self.kind}.token",
                timeout=settings["timeout"],
                attempts=settings["attempts"],
                allow_private=settings["allow_private"],
                sleep=settings["sleep"],
            )
            settings["auth"] = ServiceAccountAuth(
                key,
                self.token_url,
                [DRIVE_SCOPE],
                subject=subject,
                http=self._token_http,
            )
        else:
            self.token_url = token_url or TOKEN_URL
        # Folder id -> its parents, as far as this process has seen (fetch).
        self._parents: dict[str, list[str]] = {}

    def stop(self) -> None:
        super().stop()
        if self._token_http is not None:
            self._token_http.close()

    # The change feed ----------------------------------------------------------

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterable[Change]:
        """Changed files, tombstones and checkpoints: ``{"v": 1, "token": <page
        token>, "folders": [...configured], "scope": [...folders read]}`` (scope
        only with folders: the configured ones and every subfolder found).

        Raises:
            CheckpointExpired: for a checkpoint of another shape, of other folders,
                or a page token Drive rejects; or when a folder read leaves them.
            DriveError: when Drive refuses a request (401, 403 ...).
        """
        if checkpoint is None:
            return self._first()
        token, scope = self._load(checkpoint)
        return self._changes(token, scope)

    def _load(self, checkpoint: Any) -> tuple[str, set[str] | None]:
        if not isinstance(checkpoint, dict) or checkpoint.get("v") != _VERSION:
            raise CheckpointExpired(f"not a gdrive checkpoint: {str(checkpoint)[:80]}")
        token = checkpoint.get("token")
        if not isinstance(token, str) or not token:
            raise CheckpointExpired("the gdrive checkpoint has no page token")
        if checkpoint.get("folders") != self.folders:
            raise CheckpointExpired("the checkpoint was written for other folders")
        if not self.folders:
            return token, None
        scope = checkpoint.get("scope")
        if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
            raise CheckpointExpired("the gdrive checkpoint has no folder scope")
        return token, set(scope) | set(self.folders)

    def _checkpoint(self, token: str, scope: set[str] | None) -> Checkpoint:
        value: dict[str, Any] = {"v": _VERSION, "token": token, "folders": self.folders}
        if scope is not None:
            value["scope"] = sorted(scope - set(self.folders))
        return Checkpoint(value)

    def _first(self) -> Iterator[Change]:
        # Before the listing: whatever changes while it runs is in the feed after.
        answer = self._call(
            "GET", "drive/v3/changes/startPageToken", {"supportsAllDrives": "true"}
        )
        token = answer.get("startPageToken") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError("gdrive changes/startPageToken: no startPageToken")
        scope: set[str] | None = set(self.folders) if self.folders else None
        for file in self._listing(scope):
            yield from self._document_or_skip(file)
        yield self._checkpoint(token, scope)

    def _changes(self, token: str, scope: set[str] | None) -> Iterator[Change]:
        saved = token
        while True:
            params = {
                "pageToken": token,
                "pageSize": PAGE_SIZE,
                "includeRemoved": "true",
                "supportsAllDrives": "true",
                "includeItemsFromAllDrives": "true",
                "fields": (
                    "nextPageToken,newStartPageToken,"
                    f"changes(changeType,removed,fileId,file({FILE_FIELDS}))"
                ),
            }
            try:
                answer = self._call("GET", "drive/v3/changes", params)
            except DriveError as exc:
                if exc.status in (400, 404) and token == saved:
                    raise CheckpointExpired(
                        f"Drive rejected the saved page token ({exc.reason})"
                    ) from None
                raise
            if not isinstance(answer, dict) or not isinstance(
                answer.get("changes"), list
            ):
                raise SourceError("gdrive changes: the answer is not a change list")
            changes = [c for c in answer["changes"] if isinstance(c, dict)]
            yield from self._apply(changes, scope)
            following = answer.get("nextPageToken")
            final = answer.get("newStartPageToken")
            if isinstance(final, str) and final:
                yield self._checkpoint(final, scope)
                return
            if not isinstance(following, str) or not following or following == token:
                raise SourceError(
                    "gdrive changes: neither a next nor a new start token"
                )
            token = following
            yield self._checkpoint(token, scope)

    def _apply(
        self, changes: list[dict[str, Any]], scope: set[str] | None
    ) -> Iterator[Change]:
        """One page of changes: the folders first (so a file in a folder that came
        in on the same page is in scope), then the files."""
        files: list[tuple[str, dict[str, Any] | None]] = []
        for change in changes:
            if change.get("changeType", "file") != "file":
                continue  # a shared drive's own changes
            file_id = change.get("fileId")
            found = change.get("file")
            if not isinstance(file_id, str):
                continue
            file = found if change.get("removed") is not True else None
            if isinstance(file, dict) and file.get("mimeType") == FOLDER:
                yield from self._folder_change(file, scope)
                continue
            if not isinstance(file, dict):
                if scope is not None and file_id in scope:
                    raise CheckpointExpired(f"folder {file_id} is gone from Drive")
                file = None
            files.append((file_id, file))
        for file_id, file in files:
            if file is None or file.get("trashed") is True:
                yield Deleted(file_id)
            elif file.get("mimeType") == SHORTCUT:
                continue
            elif scope is not None and not _in(file, scope):
                yield Deleted(file_id)  # outside (or moved out): gone if it was in
            else:
                yield from self._document_or_skip(file)

    def _folder_change(
        self, folder: dict[str, Any], scope: set[str] | None
    ) -> Iterator[Change]:
        if scope is None:
            return  # everything is read: a folder holds nothing of its own
        folder_id = str(folder.get("id"))
        inside = folder.get("trashed") is not True and (
            folder_id in self.folders or _in(folder, scope)
        )
        if folder_id in scope and not inside:
            raise CheckpointExpired(
                f"folder {folder_id} left the configured folders (moved or trashed)"
            )
        if inside and folder_id not in scope:
            # Moved in (or made): its files are not in the changes; list them.
            scope.add(folder_id)
            sub = {folder_id}
            for file in self._listing(sub):
                yield from self._document_or_skip(file)
            scope |= sub

    # Listings -----------------------------------------------------------------

    def _listing(self, scope: set[str] | None) -> Iterator[dict[str, Any]]:
        """Every file (not folder, not shortcut, not trashed) in ``scope`` and
        its subfolders (found as the listing goes, and added to ``scope``), or of
        the whole account when ``scope`` is None."""
        if scope is None:
            for file in self._files("trashed = false"):
                if file.get("mimeType") not in (FOLDER, SHORTCUT):
                    yield file
            return
        pending = sorted(scope)
        while pending:
            batch, pending = pending[:PARENTS_PER_QUERY], pending[PARENTS_PER_QUERY:]
            parents = " or ".join(f"'{_quoted(f)}' in parents" for f in batch)
            for file in self._files(f"({parents}) and trashed = false"):
                kind = file.get("mimeType")
                if kind == FOLDER:
                    folder_id = file["id"]
                    if folder_id not in scope:
                        scope.add(folder_id)
                        pending.append(folder_id)
                elif kind != SHORTCUT:
                    yield file

    def _files(self, query: str) -> Iterator[dict[str, Any]]:
        """The files of a ``files.list`` query, page by page."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "q": query,
                "pageSize": PAGE_SIZE,
                "corpora": "allDrives",
                "supportsAllDrives": "true",
                "includeItemsFromAllDrives": "true",
                "fields": f"nextPageToken,incompleteSearch,files({FILE_FIELDS})",
            }
            if token is not None:
                params["pageToken"] = token
            answer = self._call("GET", "drive/v3/files", params)
            if not isinstance(answer, dict) or not isinstance(
                answer.get("files"), list
            ):
                raise SourceError("gdrive files: the answer is not a file list")
            if answer.get("incompleteSearch") is True:
                raise SourceError(
                    "gdrive files: Drive says the listing is incomplete "
                    "(incompleteSearch; name folders to read)"
                )
            for file in answer["files"]:
                if isinstance(file, dict) and isinstance(file.get("id"), str):
                    yield file
            following = answer.get("nextPageToken")
            if not following:
                return
            if following == token:
                raise SourceError("gdrive files: a nextPageToken that repeats itself")
            token = str(following)

    # Documents ----------------------------------------------------------------

    def fetch(self, id: str) -> Document | None:
        """The file ``id``; None when it is gone, trashed, outside the configured
        folders, a folder, or cannot be read (then also skipped)."""
        try:
            file = self._call(
                "GET",
                f"drive/v3/files/{_path_id(id)}",
                {"supportsAllDrives": "true", "fields": FILE_FIELDS},
            )
        except DriveError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(file, dict) or file.get("trashed") is True:
            return None
        if file.get("mimeType") in (FOLDER, SHORTCUT):
            return None
        if self.folders and not self._under_folders(file):
            return None
        for change in self._document_or_skip(file):
            return change
        return None

    def ids(self) -> Iterable[str]:
        """Every file in the configured folders (or the account): a listing."""
        scope = set(self.folders) if self.folders else None
        for file in self._listing(scope):
            yield file["id"]

    def _under_folders(self, file: Mapping[str, Any]) -> bool:
        """Whether a file lies under a configured folder (its parents walked up)."""
        seen: set[str] = set()
        todo = [p for p in file.get("parents") or [] if isinstance(p, str)]
        while todo:
            parent = todo.pop()
            if parent in self.folders:
                return True
            if parent in seen or len(seen) > 100:
                continue
            seen.add(parent)
            if parent not in self._parents:
                try:
                    answer = self._call(
                        "GET",
                        f"drive/v3/files/{_path_id(parent)}",
                        {"supportsAllDrives": "true", "fields": "id,parents"},
                    )
                except DriveError as exc:
                    if exc.status != 404:
                        raise
                    answer = {}
                found = answer.get("parents") if isinstance(answer, dict) else None
                self._parents[parent] = [p for p in found or [] if isinstance(p, str)]
            todo += self._parents[parent]
        return False

    def _document_or_skip(self, file: Mapping[str, Any]) -> Iterator[Document]:
        file_id = str(file["id"])
        try:
            updated = parse_time(file.get("modifiedTime"))
        except InvalidEvent:
            self.fail(file_id, "the file has no modifiedTime")
            return
        name = str(file.get("name") or file_id)
        try:
            text = self._text(file, name)
        except _TooLarge as exc:
            self.skip(file_id, str(exc), updated)
            return
        except ExtractionError as exc:
            self.skip(file_id, exc.reason, updated)
            return
        except DriveError as exc:
            if exc.status == 404:
                self.fail(file_id, str(exc))  # gone in passing: the changes say
                return
            if exc.status == 403 and exc.google_reason in (
                "cannotDownloadFile",
                "cannotExportFile",
                "exportSizeLimitExceeded",
                "fileNotDownloadable",
            ):
                self.skip(file_id, f"Drive: {exc.reason}", updated)
                return
            raise
        link = file.get("webViewLink")
        yield Document(
            id=file_id,
            source=self.name,
            title=name,
            text=text,
            url=link if isinstance(link, str) else None,
            updated_at=updated,
            metadata=_metadata(file),
        )

    def _text(self, file: Mapping[str, Any], name: str) -> str:
        """A file's text: exported (Google's formats) or downloaded and extracted.

        Raises:
            _TooLarge, ExtractionError: the file is skipped.
            DriveError: Drive refused it.
        """
        kind = str(file.get("mimeType") or "")
        file_id = _path_id(str(file["id"]))
        if kind in EXPORTS:
            export, suffix = EXPORTS[kind]
            raw = self._content(
                f"drive/v3/files/{file_id}/export", {"mimeType": export}
            )
            return extract(raw, f"{name}{suffix}", export, self.limits).text
        if kind.startswith("application/vnd.google-apps."):
            raise _TooLarge(f"a Google file with no text export ({kind})")
        # Decide before downloading: the type, then the size.
        media_type = kind or None
        if format_for(name, media_type) is None:
            suffix = PurePosixPath(name).suffix.lower()
            raise ExtractionError(
                f"unsupported format {suffix or '(no extension)'} ({kind or 'no type'})"
            )
        size = _size(file.get("size"))
        if size is not None and size > self.limits.max_bytes:
            limit = self.limits.max_bytes
            raise _TooLarge(
                LimitExceeded("max_bytes", limit, f"too large: {size} bytes").reason
            )
        raw = self._content(
            f"drive/v3/files/{file_id}", {"alt": "media", "supportsAllDrives": "true"}
        )
        return extract(raw, name, media_type, self.limits).text

    # Requests -----------------------------------------------------------------

    def _content(self, path: str, params: Mapping[str, Any]) -> bytes:
        try:
            return self.request("GET", path, params=params).content
        except HttpError as exc:
            raise self._error(exc) from None

    def _call(self, method: str, path: str, params: Mapping[str, Any]) -> Any:
        try:
            return self._json(method, path, params=params)
        except HttpError as exc:
            raise self._error(exc) from None

    @staticmethod
    def _error(exc: HttpError) -> HttpError:
        if isinstance(exc, DriveError) or exc.status is None:
            return exc
        if 400 <= exc.status < 500:
            return DriveError.from_http_error(exc)
        return exc


def _service_account_key(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            key = orjson.loads(value)
        except orjson.JSONDecodeError:
            key = None
        if isinstance(key, dict):
            return key
    raise ConfigError(
        "gdrive source: service_account must be the key's JSON "
        '(service_account = { file = "key.json" })'
    )


def _in(file: Mapping[str, Any], scope: set[str]) -> bool:
    parents = file.get("parents")
    return isinstance(parents, list) and any(p in scope for p in parents)


def _quoted(value: str) -> str:
    """A value inside a Drive query's single quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _path_id(value: str) -> str:
    """A file id as a path segment (Drive's ids are URL-safe; anything else is
    refused rather than sent)."""
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise SourceError(f"gdrive: {value[:60]!r} is not a Drive file id")
    return value


def _size(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _metadata(file: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"mime_type": file.get("mimeType")}
    parents = file.get("parents")
    if isinstance(parents, list):
        metadata["parents"] = [p for p in parents if isinstance(p, str)]
    if isinstance(file.get("driveId"), str):
        metadata["drive_id"] = file["driveId"]
    owners = file.get("owners")
    if isinstance(owners, list):
        names = [o.get("displayName") for o in owners if isinstance(o, dict)]
        if any(isinstance(n, str) for n in names):
            metadata["owners"] = [n for n in names if isinstance(n, str)]
    return metadata


@hookimpl
def register_integrations(register: Any) -> None:
    register(GoogleDriveSource)
