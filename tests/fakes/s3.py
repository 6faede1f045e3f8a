"""A real S3-compatible server on 127.0.0.1 (moto's, in server mode) for the ``s3``
source, behind a small WSGI layer of our own that counts the source's requests,
checks the access key id and injects failures (``SlowDown``, 500s) with S3's error
bodies.

Moto keeps its buckets in the process, so every :class:`S3Server` uses its own
bucket (a random name) and empties it when stopped.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.config
from eventhub.integrations.s3 import S3Source
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

KEY_ID = "AKIAEVENTHUBTEST0001"
SECRET = "eventhub-test-secret-0123456789abcdefghij"
REGION = "eu-west-1"
#: In the User-Agent of the harness's own client: its requests are not counted.
HARNESS_AGENT = "eventhub-s3-harness"

_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message>"
    "<RequestId>EVENTHUBFAKE</RequestId></Error>"
)
_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "InvalidAccessKeyId": (
        "The AWS Access Key Id you provided does not exist in our records."
    ),
}
_STATUS_CODES = {500: "InternalError", 503: "ServiceUnavailable"}


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


class S3Server:
    """Moto on a free loopback port, with request counting and fault injection.

    Attributes:
        url: The endpoint (``http://127.0.0.1:PORT``).
        bucket: This server's bucket (created at start).
        operations: The source's requests by operation (``ListObjectsV2``,
            ``GetObject``, ``HeadObject``, ``other``).
    """

    def __init__(self) -> None:
        self.bucket = f"eventhub-{uuid.uuid4().hex[:12]}"
        self.operations: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._failing: int | None = None
        self._faults: list[tuple[Callable[[str, dict[str, Any]], bool], str]] = []
        moto = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            "127.0.0.1",
            0,
            self._app(moto),
            threaded=True,
            request_handler=_QuietHandler,
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.client = boto3.session.Session(
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        ).client(
            "s3",
            endpoint_url=self.url,
            config=botocore.config.Config(
                user_agent_extra=HARNESS_AGENT,
                max_pool_connections=16,
                s3={"addressing_style": "path"},
            ),
        )
        self.client.create_bucket(
            Bucket=self.bucket,
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )

    @property
    def requests(self) -> int:
        """The source's requests so far (the harness's own are not counted)."""
        return sum(self.operations.values())

    def put(self, key: str, body: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)

    def put_many(self, objects: Iterable[tuple[str, bytes]]) -> None:
        """Put many objects at once (16 at a time)."""
        with ThreadPoolExecutor(16) as pool:
            for _ in pool.map(lambda kv: self.put(*kv), objects):
                pass

    def put_sparse(self, key: str, size: int) -> None:
        """Put an object of ``size`` bytes (zeros) without holding them: a small
        PUT, then moto's buffer of the key becomes a sparse file of that size
        (the listing, HEAD and GET all report and serve ``size`` bytes)."""
        from moto.s3.models import s3_backends

        self.put(key, b"\0")
        for regions in s3_backends.values():
            backend = regions["global"]
            if self.bucket in backend.buckets:
                fake = backend.buckets[self.bucket].keys[key]
                fake._value_buffer.rollover()  # to a file on disk ...
                fake._value_buffer.truncate(size)  # ... with a hole in it
                fake.contentsize = size
                fake._etag = uuid.uuid4().hex  # md5 of the zeros: not worth it
                return
        raise AssertionError(f"moto has no bucket {self.bucket}")

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def fail_from_now(self, status: int = 500) -> None:
        """Answer every later request of the source with ``status``."""
        self._failing = status

    def heal(self) -> None:
        self._failing = None
        self._faults.clear()

    def fault(
        self, when: Callable[[str, dict[str, Any]], bool], code: str = "SlowDown"
    ) -> None:
        """Answer the source's next request for which ``when(operation, query)``
        holds with S3's error ``code`` (503 for SlowDown), once."""
        self._faults.append((when, code))

    def stop(self) -> None:
        try:
            listed = self.client.get_paginator("list_objects_v2")
            for page in listed.paginate(Bucket=self.bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents") or ()]
                if keys:
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
            self.client.delete_bucket(Bucket=self.bucket)
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)

    # The WSGI layer -----------------------------------------------------------

    def _app(self, moto: Any) -> Callable[..., Any]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if HARNESS_AGENT in environ.get("HTTP_USER_AGENT", ""):
                return moto(environ, start_response)
            query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            operation = _operation(environ, query)
            with self._lock:
                self.operations[operation] += 1
                fault = next((f for f in self._faults if f[0](operation, query)), None)
                if fault is not None:
                    self._faults.remove(fault)
            if _key_id(environ) not in (KEY_ID, None):
                return _answer(start_response, 403, "InvalidAccessKeyId")
            if self._failing is not None:
                code = _STATUS_CODES.get(self._failing, "InternalError")
                return _answer(start_response, self._failing, code)
            if fault is not None:
                status = 503 if fault[1] in ("SlowDown", "ServiceUnavailable") else 500
                return _answer(start_response, status, fault[1])
            return moto(environ, start_response)

        return app


def _operation(environ: dict[str, Any], query: dict[str, Any]) -> str:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/").strip("/")
    if method == "GET" and "list-type" in query:
        return "ListObjectsV2"
    if method == "GET" and "/" in path and not query:
        return "GetObject"
    if method == "HEAD" and "/" in path:
        return "HeadObject"
    return "other"


def _key_id(environ: dict[str, Any]) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    _, found, rest = header.partition("Credential=")
    return rest.split("/", 1)[0] if found else None


def _answer(start_response: Callable[..., Any], status: int, code: str) -> list[bytes]:
    body = _ERROR.format(code=code, message=_MESSAGES.get(code, code)).encode()
    start_response(
        f"{status} {code}",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


class S3Harness:
    """A bucket on :class:`S3Server` read by an ``s3`` source (the Source
    contract suite's protocol, tests/source_harness.py).

    Puts are batched: they are sent (16 at a time) when a source is made, an
    object deleted, or the requests counted, so filling 10,000 objects is quick.
    S3 sets LastModified itself: ``updated_at`` is not sent.
    """

    kind = "s3"

    def __init__(self, tmp_path: Path | None = None, request: Any = None) -> None:
        self.server = S3Server()
        self._pending: dict[str, bytes] = {}

    def source(self, **config: Any) -> S3Source:
        self._flush()
        settings = {
            "bucket": self.server.bucket,
            "prefix": "docs/",
            "endpoint_url": self.server.url,
            "region": REGION,
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
            "sleep": lambda seconds: None,
            **config,
        }
        source = S3Source(**settings)
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        self._pending[self.id_of(key)] = f"# {title}\n\n{text}\n".encode()

    def delete(self, key: str) -> None:
        self._flush()
        self.server.delete(self.id_of(key))

    def id_of(self, key: str) -> str:
        return f"docs/{key}.md"

    def fail_from_now(self, status: int = 500) -> None:
        self._flush()
        self.server.fail_from_now(status)

    def heal(self) -> None:
        self.server.heal()

    @property
    def requests(self) -> int:
        self._flush()
        return self.server.requests

    def close(self) -> None:
        self._pending.clear()
        self.server.stop()

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            self.server.put_many(pending.items())
