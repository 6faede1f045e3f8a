"""``s3``: the objects of an S3 bucket (AWS, MinIO, Ceph, R2 ...) as documents.

::

    [sources.bucket]
    kind = "s3"
    bucket = "handbook"
    prefix = "docs/"                                  # default: the whole bucket
    endpoint_url = "https://minio.example.com"        # default: AWS
    region = "eu-west-1"
    access_key_id = "AKIA..."                         # default: the AWS chain
    secret_access_key = { env = "AWS_SECRET_ACCESS_KEY" }

boto3 makes the requests (``pip install 'eventhub[s3]'``). Every sync lists the
prefix (``ListObjectsV2``, continuation tokens until ``IsTruncated`` is false):
S3 has no "changed since", so an object is read (``GetObject``) only when its
``(ETag, Size)`` differs from what the checkpoint remembers of its key, and a key
the checkpoint remembers that a complete listing no longer has is a deletion. An
unchanged sync costs the listing pages and nothing else. The checkpoint holds one
short digest per key, compressed (see :class:`_Objects`).

Keys with a supported extension (:func:`~eventhub.documents.extract.supported_suffixes`)
are documents; folder markers (keys ending in ``/``) and other keys are left out.
An object over ``max_bytes`` is skipped from the listing's ``Size``, never
downloaded. Throttling (``SlowDown``, 503) and 5xx answers are retried by botocore's
``standard`` retry mode (exponential backoff with jitter, ``attempts`` in all).
"""

from __future__ import annotations

import base64
import hashlib
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import PurePosixPath
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
    Source,
    SourceError,
)
from eventhub.documents.extract import (
    ExtractionError,
    LimitExceeded,
    extract,
    supported_suffixes,
)
from eventhub.errors import ConfigError, MissingDependency
from eventhub.hookspecs import hookimpl

__all__ = ["S3Error", "S3Source"]

log = structlog.get_logger(__name__)

#: The most keys ListObjectsV2 returns in one page.
MAX_PAGE = 1000
_VERSION = 1
#: Digest of a key whose object must be read again (it failed this time).
_AGAIN = ""
#: Error codes that mean the source cannot be read at all.
_FATAL = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidBucketName",
    "InvalidToken",
    "NoSuchBucket",
    "PermanentRedirect",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
}


class S3Error(SourceError):
    """S3 refused a request: ``code`` is S3's (``NoSuchBucket``,
    ``InvalidAccessKeyId`` ...), ``operation`` the API call."""

    def __init__(self, bucket: str, operation: str, code: str, message: str) -> None:
        self.bucket = bucket
        self.operation = operation
        self.code = code
        text = " ".join(message.split())
        super().__init__(
            f"s3 bucket {bucket!r}: {operation} answered {code}"
            + (f": {text}" if text else "")
        )


class _Objects:
    """What a sync saw of the bucket: a digest of ``(ETag, Size)`` per key.

    In the checkpoint it is ``{"v": 1, "bucket", "prefix", "count", "objects"}``,
    ``objects`` being the sorted ``[key, digest]`` pairs as JSON, zlib-compressed,
    in base64: some 15 bytes a key (keys share prefixes; a digest is 8 bytes),
    where a readable mapping of keys to ETags would take 60 or more.
    """

    @staticmethod
    def load(value: Any, bucket: str, prefix: str) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or value.get("v") != _VERSION:
            raise CheckpointExpired(f"not an s3 checkpoint: {str(value)[:80]}")
        if value.get("bucket") != bucket or value.get("prefix") != prefix:
            raise CheckpointExpired(
                f"the checkpoint was written for s3://{value.get('bucket')}/"
                f"{value.get('prefix') or ''}, the source reads s3://{bucket}/{prefix}"
            )
        try:
            pairs = orjson.loads(zlib.decompress(base64.b64decode(value["objects"])))
            return {str(key): str(digest) for key, digest in pairs}
        except (KeyError, TypeError, ValueError, zlib.error):
            raise CheckpointExpired("an s3 checkpoint that does not decode") from None

    @staticmethod
    def dump(objects: Mapping[str, str], bucket: str, prefix: str) -> dict[str, Any]:
        pairs = orjson.dumps(sorted(objects.items()))
        return {
            "v": _VERSION,
            "bucket": bucket,
            "prefix": prefix,
            "count": len(objects),
            "objects": base64.b64encode(zlib.compress(pairs, 6)).decode("ascii"),
        }


def _digest(entry: Mapping[str, Any]) -> str:
    """The short digest of a listed object's ``(ETag, Size)``."""
    mark = f"{entry.get('ETag', '')}\x00{entry.get('Size', '')}".encode()
    raw = hashlib.blake2b(mark, digest_size=8).digest()
    return base64.b64encode(raw).decode("ascii").rstrip("=")


class S3Source(Source):
    """The objects under a prefix of an S3 (or S3-compatible) bucket.

    Args:
        bucket: The bucket's name.
        prefix: Only keys starting with it (``"docs/"``); default: all.
        endpoint_url: Another store's endpoint (MinIO, Ceph, R2); default: AWS.
        region: The bucket's region; default: the AWS configuration's.
        access_key_id: With ``secret_access_key`` (and ``session_token`` for
            temporary credentials); default: the AWS credential chain
            (environment, shared files, instance or container role).
        secret_access_key: The secret of ``access_key_id``.
        session_token: The token of temporary credentials.
        profile: A profile of the shared AWS files (instead of keys).
        addressing_style: ``"path"``, ``"virtual"`` or ``"auto"``; default
            ``"path"`` with ``endpoint_url`` (most other stores want it), else
            ``"auto"``.
        page_size: Keys a listing request asks for (at most 1000).
        concurrency: Objects downloaded at a time (at most 32).
        attempts: Tries of a request, the first included (botocore's standard
            retry mode).
        timeout: Seconds to connect, and to wait for an answer.
        sleep: How retries wait (tests pass a fake; default ``time.sleep``).
        **config: The extraction limits (``max_bytes``, ``max_chars`` ...).

    Raises:
        ConfigError: for a malformed setting.
        MissingDependency: when boto3 is not installed.
    """

    kind = "s3"
    # Every read() lists the whole prefix and tombstones the keys gone: there is
    # nothing a separate enumeration would find (full syncs still run one).
    default_prune = None

    def __init__(
        self,
        *,
        bucket: str = "",
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        addressing_style: str | None = None,
        page_size: int = MAX_PAGE,
        concurrency: int = 8,
        attempts: int = 5,
        timeout: float = 60.0,
        sleep: Callable[[float], None] | None = None,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        if not isinstance(bucket, str) or not bucket.strip():
            raise ConfigError("s3 source: bucket is missing")
        if not isinstance(prefix, str):
            raise ConfigError("s3 source: prefix must be a string")
        if bool(access_key_id) != bool(secret_access_key):
            raise ConfigError(
                "s3 source: access_key_id and secret_access_key go together"
            )
        if session_token and not access_key_id:
            raise ConfigError("s3 source: session_token needs access_key_id")
        if endpoint_url is not None and (
            not isinstance(endpoint_url, str)
            or urlsplit(endpoint_url).scheme not in ("http", "https")
            or not urlsplit(endpoint_url).hostname
        ):
            raise ConfigError(
                f"s3 source: endpoint_url must be an http(s) URL, not {endpoint_url!r}"
            )
        style = addressing_style or ("path" if endpoint_url else "auto")
        if style not in ("path", "virtual", "auto"):
            raise ConfigError(
                "s3 source: addressing_style must be 'path', 'virtual' or 'auto'"
            )
        numbers = (
            ("page_size", page_size),
            ("concurrency", concurrency),
            ("attempts", attempts),
        )
        for name, value in numbers:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"s3 source: {name} must be a positive integer")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError("s3 source: timeout must be a positive number")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.page_size = min(page_size, MAX_PAGE)
        self._suffixes = supported_suffixes()
        self._pool = _Pool(min(concurrency, 32))
        self.client = _client(
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            profile=profile,
            addressing_style=style,
            attempts=attempts,
            connections=max(10, self._pool.workers),
            timeout=float(timeout),
            sleep=sleep or time.sleep,
        )

    # The change feed ----------------------------------------------------------

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterable[Change]:
        """The objects whose ``(ETag, Size)`` changed since the checkpoint (all of
        them without one), tombstones of the keys gone, and checkpoints
        (``{"v": 1, "bucket", "prefix", "count", "objects"}``, see
        :class:`_Objects`). ``overlap`` does not apply: nothing here is a time.

        Raises:
            CheckpointExpired: for a checkpoint of another shape, bucket or prefix.
            S3Error: when S3 refuses the listing (credentials, permissions, no
                such bucket); botocore's errors when the store cannot be reached.
        """
        previous = _Objects.load(checkpoint, self.bucket, self.prefix)
        return self._feed(previous)

    def _feed(self, previous: dict[str, str] | None) -> Iterator[Change]:
        known = previous or {}
        seen: dict[str, str] = {}
        for entries in self._pages():
            changed = []
            for entry in entries:
                key, digest = entry["Key"], _digest(entry)
                if known.get(key) == digest:
                    seen[key] = digest
                else:
                    changed.append((entry, digest))
            # A few GetObjects at a time: their latency, not our work, is the cost.
            for (entry, _), (document, remembered) in zip(
                changed, self._pool.map(lambda c: self._read(*c), changed), strict=True
            ):
                if remembered is not None:
                    seen[entry["Key"]] = remembered
                if document is not None:
                    yield document
            if changed:
                # Keys not listed yet keep what the last sync saw of them.
                yield Checkpoint(
                    _Objects.dump({**known, **seen}, self.bucket, self.prefix)
                )
        # The listing was complete: what it did not have is gone.
        for key in sorted(known.keys() - seen.keys()):
            yield Deleted(key)
        if previous is None or seen != previous:
            yield Checkpoint(_Objects.dump(seen, self.bucket, self.prefix))

    def _read(
        self, entry: Mapping[str, Any], digest: str
    ) -> tuple[Document | None, str | None]:
        """A listed object that changed: its document (None: skipped, failed or
        gone), and the digest to remember for its key (None: it is gone; a
        failed one is remembered as "read it again")."""
        key = entry["Key"]
        updated = _utc(entry.get("LastModified"))
        size = int(entry.get("Size") or 0)
        if size > self.limits.max_bytes:
            limit = self.limits.max_bytes
            reason = LimitExceeded("max_bytes", limit, f"too large: {size} bytes")
            self.skip(key, reason.reason, updated)  # read again once it changes
            return None, digest
        try:
            return self._document(key), digest
        except _Gone:
            return None, None
        except _Unreadable as exc:
            self.skip(key, str(exc), updated)
            return None, digest
        except _Again as exc:
            self.fail(key, str(exc))
            return None, _AGAIN

    def _pages(self) -> Iterator[list[Mapping[str, Any]]]:
        """The wanted objects of the listing, a page at a time."""
        params: dict[str, Any] = {"Bucket": self.bucket, "MaxKeys": self.page_size}
        if self.prefix:
            params["Prefix"] = self.prefix
        while True:
            answer = self._call("ListObjectsV2", **params)
            yield [e for e in answer.get("Contents") or () if self._wanted(e["Key"])]
            token = answer.get("NextContinuationToken")
            if not answer.get("IsTruncated"):
                return
            if not token:
                raise S3Error(
                    self.bucket,
                    "ListObjectsV2",
                    "MissingContinuationToken",
                    "a truncated listing without NextContinuationToken",
                )
            params["ContinuationToken"] = token

    # Documents ----------------------------------------------------------------

    def fetch(self, id: str) -> Document | None:
        """The object ``id`` (its key); None when it is gone, not of this source,
        or cannot be read (then also skipped).

        Raises:
            SourceError: when it cannot be read this time.
        """
        if not self._wanted(id):
            return None
        try:
            return self._document(id)
        except _Gone:
            return None
        except _Unreadable as exc:
            self.skip(id, str(exc))
            return None
        except _Again as exc:
            raise SourceError(f"s3 object {id!r}: {exc}") from None

    def ids(self) -> Iterator[str]:
        """Every wanted key under the prefix: the listing, page by page."""
        for entries in self._pages():
            for entry in entries:
                yield entry["Key"]

    def _document(self, key: str) -> Document:
        """GetObject, read within ``max_bytes``, through the extractors.

        Raises:
            _Gone: no such key (any more).
            _Unreadable: over a limit, denied, or not extractable.
            _Again: a failure worth another try at the next sync.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        limit = self.limits.max_bytes
        try:
            # The first max_bytes + 1 bytes at most: a larger object costs no
            # more than that, here or at the server, whatever its listed size.
            answer = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit}"
            )
        except ClientError as exc:
            code = _code(exc)
            if code == "InvalidRange":  # an empty object has no byte 0
                raise _Unreadable("no text") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise _Gone() from None
            if code in ("InvalidObjectState", "AccessDenied"):
                # Archived (Glacier) objects, or a key the credentials may not read.
                raise _Unreadable(f"cannot read the object: {code}") from None
            if code in _FATAL:
                raise _error(self.bucket, "GetObject", exc) from None
            raise _Again(f"GetObject answered {code}") from None
        body = answer["Body"]
        try:
            size = _total_size(answer)
            if size > limit:
                raise _Unreadable(
                    LimitExceeded("max_bytes", limit, f"too large: {size} bytes").reason
                )
            raw = body.read(limit + 1)
        except BotoCoreError as exc:
            raise _Again(f"GetObject body: {type(exc).__name__}") from None
        finally:
            body.close()
        content_type = answer.get("ContentType")
        try:
            found = extract(raw, key, _typed(content_type), limits=self.limits)
        except ExtractionError as exc:
            raise _Unreadable(exc.reason) from None
        etag = str(answer.get("ETag") or "").strip('"')
        return Document(
            id=key,
            source=self.name,
            title=found.title or PurePosixPath(key).name,
            text=found.text,
            url=f"s3://{self.bucket}/{key}",
            updated_at=_utc(answer.get("LastModified")),
            metadata={
                "bucket": self.bucket,
                "etag": etag,
                "size": size,
                "content_type": content_type or "",
            },
        )

    def _wanted(self, key: str) -> bool:
        return (
            key.startswith(self.prefix)
            and not key.endswith("/")
            and PurePosixPath(key).suffix.lower() in self._suffixes
        )

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            if operation == "ListObjectsV2":
                return self.client.list_objects_v2(**params)
            raise AssertionError(operation)
        except ClientError as exc:
            raise _error(self.bucket, operation, exc) from None


class _Pool:
    """Runs a function over items a few at a time, results in order; a thread
    pool made on first use (most syncs read nothing) and ended with the source."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None

    def map(self, function: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        if len(items) <= 1 or self.workers == 1:
            return map(function, items)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, "eventhub-s3")
            weakref.finalize(self, self._executor.shutdown, wait=False)
        return self._executor.map(function, items)


class _Gone(Exception):
    """No such key."""


class _Unreadable(Exception):
    """An object that cannot be read until it changes."""


class _Again(Exception):
    """An object that could not be read this time."""


def _code(exc: Any) -> str:
    error = exc.response.get("Error") or {}
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "error")


def _error(bucket: str, operation: str, exc: Any) -> S3Error:
    error = exc.response.get("Error") or {}
    return S3Error(bucket, operation, _code(exc), str(error.get("Message") or ""))


def _total_size(answer: Mapping[str, Any]) -> int:
    """The object's size from a ranged GetObject (``Content-Range: bytes
    0-N/TOTAL``), or its length when the store sent it whole."""
    _, _, total = str(answer.get("ContentRange") or "").rpartition("/")
    if total.isdigit():
        return int(total)
    return int(answer.get("ContentLength") or 0)


def _typed(content_type: str | None) -> str | None:
    """A content type worth telling the extractors: S3 gives untyped uploads
    ``binary/octet-stream`` (or ``application/octet-stream``), which says nothing."""
    if not content_type:
        return None
    media = content_type.partition(";")[0].strip().lower()
    return None if media.endswith("/octet-stream") else content_type


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
    profile: str | None,
    addressing_style: str,
    attempts: int,
    connections: int,
    timeout: float,
    sleep: Callable[[float], None],
) -> Any:
    """A boto3 S3 client with botocore's ``standard`` retries, waiting through
    ``sleep``.

    Raises:
        MissingDependency: without boto3.
    """
    try:
        import boto3
        import botocore.config
        from botocore.retries import standard
    except ImportError as exc:
        raise MissingDependency("boto3", "s3") from exc
    session = boto3.session.Session(
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        aws_session_token=session_token or None,
        region_name=region or None,
        profile_name=profile or None,
    )
    config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        max_pool_connections=connections,
        s3={"addressing_style": addressing_style},
        user_agent_extra="eventhub",
    )
    client = session.client("s3", endpoint_url=endpoint_url, config=config)
    # botocore sleeps between tries itself (time.sleep in its endpoint): its own
    # standard handler decides and computes the delay, ours waits through sleep.
    events = client.meta.events
    events.unregister("needs-retry.s3", unique_id="retry-config-s3")
    handler = standard.register_retry_handler(client, max_attempts=attempts)
    events.unregister("needs-retry.s3", unique_id="retry-config-s3")

    def wait(**kwargs: Any) -> float | None:
        delay = handler.needs_retry(**kwargs)
        if delay is None:
            return None
        log.info("s3 retry", delay=round(delay, 3), attempts=kwargs.get("attempts"))
        sleep(delay)
        return 0.0  # retry now: the wait is done

    events.register("needs-retry.s3", wait, unique_id="eventhub-retry-s3")
    return client


@hookimpl
def register_integrations(register: Any) -> None:
    register(S3Source)
