"""The daemon's HTTP server: webhook intake and an API over the hub.

Configured by ``[server]`` (and ``[webhooks.*]`` for the receivers)::

    [server]
    host = "127.0.0.1"
    port = 8765
    # metrics_port = 9108          # /health and /metrics on a bind of their own
    # max_body_bytes = 2097152     # API request bodies (webhooks: their own limit)
    # header_timeout = 10          # and body_timeout, max_header_bytes,
    #                              # max_connections, write_timeout ... (see
    #                              # eventhub.server.settings, docs/server.md)

    [server.jwt]                   # optional: accept JWTs besides API tokens
    secret = { env = "EVENTHUB_JWT_SECRET" }

Routes:

* ``POST /webhooks/{name}``: a configured receiver; signature checked on the raw
  bytes, answered 2xx once the events are durable in the log. Handlers run on the
  bus, later: a slow workflow never delays the answer.
* ``POST /events`` (the CloudEvents HTTP binding: structured, batched and binary
  mode, see :mod:`eventhub.cloudevents`, or a plain ``{"type", "data"}`` body),
  ``GET /events``, ``POST /workflows/{name}/runs``, ``GET /runs``, ``GET /runs/{id}``,
  ``GET /search``: behind an API token (``eventhub tokens create``) or a JWT, as
  ``Authorization: Bearer ...``.
* ``GET /health`` and ``GET /metrics`` (Prometheus): no authentication; nor
  ``GET /openapi.json`` and ``GET /docs``, which describe the API and hold no data.

Every error is answered ``{"error": "..."}``. Bodies over the limit are answered 413
before they are read whole, with or without ``Content-Length``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import structlog
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import cloudevents
from .._version import __version__
from ..auth.apitokens import APITokenStore
from ..cloudevents import UnsupportedContentType
from ..errors import (
    ConfigError,
    MissingDependency,
    NameNotFound,
    StorageError,
    TransientError,
    UndecodableEvent,
    UserError,
    WorkflowNotFound,
)
from ..events import Event, is_json_type, uuid7
from ..webhooks.intake import IntakeWriter, WebhookIntake, WebhookRoute
from ..webhooks.receivers import WebhookReceiver, make_receivers
from .metrics import CONTENT_TYPE, HubMetrics
from .middleware import BodyLimit, Observed
from .models import (
    EVENT_REF,
    PUBLISH_OPENAPI,
    CloudEvent,
    ErrorOut,
    EventIn,
    RunIn,
    RunStarted,
    answers,
)
from .settings import SIDE_CONNECTIONS, ServerSettings

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["HTTPServer", "ServerSettings", "create_app"]

log = structlog.get_logger(__name__)

_MAX_SEQUENCE = 2**63 - 1

# Module level: FastAPI resolves the (string) annotations in this module's globals.
_BEARER = HTTPBearer(auto_error=False, description="An API token or a JWT.")


def _jwt_verifier(settings: Mapping[str, Any]) -> Callable[[str], Mapping[str, Any]]:
    """``verify_token`` of a :class:`~eventhub.auth.jwt.JWTManager` for
    ``[server.jwt]``: ``secret`` (HMAC) or ``public_key`` (RS/PS/ES/EdDSA,
    verification only), and ``algorithm``, ``algorithms``, ``issuer``, ``audience``,
    ``leeway``."""
    from ..auth.jwt import JWTManager

    options = dict(settings)
    secret = options.pop("secret", None)
    public_key = options.pop("public_key", None)
    key = secret if secret is not None else public_key
    if not isinstance(key, str) or not key or (secret and public_key):
        raise ConfigError(
            'server.jwt needs secret = { env = "NAME" } or public_key = '
            '{ file = "PATH" } (one of them)'
        )
    allowed = {"algorithm", "algorithms", "issuer", "audience", "leeway"}
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"unknown setting server.jwt.{sorted(unknown)[0]}")
    try:
        manager = JWTManager(key, verify_key=key, **options)
    except ConfigError as exc:
        raise ConfigError(f"server.jwt: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"server.jwt: {exc}") from None
    return manager.verify_token


def create_app(
    hub: Hub,
    settings: ServerSettings | None = None,
    receivers: Mapping[str, WebhookReceiver] | None = None,
    *,
    metrics: HubMetrics | None = None,
    serve_metrics: bool = True,
) -> FastAPI:
    """The ASGI application over ``hub``.

    Args:
        hub: The hub whose bus, orchestrator and documents the API serves.
        settings: ``[server]`` settings (defaults if None).
        receivers: Webhook receivers by name (default: from ``hub.config``).
        metrics: The metrics registry to count into (a new one if None).
        serve_metrics: Serve ``/health`` and ``/metrics`` here (off when they have
            a bind of their own).
    """
    settings = settings or ServerSettings()
    if receivers is None:
        receivers = make_receivers(hub.config.get("webhooks", {}))
    metrics = metrics or HubMetrics(hub)
    tokens = APITokenStore(hub.db)
    verify_jwt = _jwt_verifier(settings.jwt) if settings.jwt else None
    touched: dict[str, int] = {}
    # Webhook deliveries and POST /events are written off the event loop, in
    # batches, and give up with 503 past server.write_timeout
    # (eventhub.webhooks.intake).
    appender = IntakeWriter(hub.bus, timeout=settings.write_timeout, db=hub.db)
    metrics.watch_writes(lambda: appender.waiting)
    intake = WebhookIntake(hub.bus, receivers, appender)
    manual_runs = threading.BoundedSemaphore(settings.max_manual_runs)
    app = FastAPI(
        title="eventhub",
        version=__version__,
        description="Webhook intake and the API of an eventhub daemon.",
    )

    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> _Principal:
        if request.scope.get("eventhub.local"):
            # The daemon's local socket (eventhub.localapi): only users who may
            # read the database can connect, and only GET gets through.
            return _Principal("the local socket", False)
        if credentials is None:
            raise _Unauthorized("missing bearer token")
        token = credentials.credentials
        found = tokens.check(token)
        if found is not None:
            minute = int(time.time() // 60)
            if touched.get(found.name) != minute:
                touched[found.name] = minute
                # Not awaited: a database locked by another process must not hold
                # up the request (nor a thread of the pool) for a "last used".
                threading.Thread(
                    target=_touch_quietly,
                    args=(tokens, found.name),
                    name="eventhub-token-touch",
                    daemon=True,
                ).start()
            return _Principal(f"token {found.name!r}", found.scope == "write")
        if verify_jwt is not None and token.count(".") == 2:
            try:
                claims = verify_jwt(token)
            except UserError:
                raise _Unauthorized("invalid token") from None
            return _Principal(f"JWT subject {str(claims.get('sub', '?'))!r}", True)
        raise _Unauthorized("invalid token")

    # A default, not Annotated: string annotations cannot name a local function.
    async def writer(who: _Principal = Depends(principal)) -> _Principal:  # noqa: B008
        if not who.can_write:
            raise _Forbidden(f"{who.name} is read-only")
        return who

    authed = [Depends(principal)]
    writes = [Depends(writer)]

    @app.exception_handler(_Unauthorized)
    async def _on_unauthorized(_r: Request, exc: _Unauthorized) -> Response:
        return JSONResponse(
            {"error": exc.reason}, 401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(_Forbidden)
    async def _on_forbidden(_r: Request, exc: _Forbidden) -> Response:
        return JSONResponse({"error": exc.reason}, 403)

    @app.exception_handler(NameNotFound)
    async def _on_not_found(_r: Request, exc: NameNotFound) -> Response:
        return JSONResponse({"error": str(exc)}, 404)

    @app.exception_handler(UserError)
    async def _on_user_error(_r: Request, exc: UserError) -> Response:
        return JSONResponse({"error": str(exc)}, 422)

    @app.exception_handler(UnsupportedContentType)
    async def _on_media(_r: Request, exc: UnsupportedContentType) -> Response:
        return JSONResponse({"error": str(exc)}, 415)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(_r: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"error": _validation_message(exc.errors())}, 422)

    @app.exception_handler(HTTPException)
    async def _on_http(_r: Request, exc: HTTPException) -> Response:
        return JSONResponse(
            {"error": str(exc.detail)}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(MissingDependency)
    async def _on_missing(_r: Request, exc: MissingDependency) -> Response:
        return JSONResponse({"error": str(exc)}, 503)

    @app.exception_handler(TransientError)
    async def _on_busy(_r: Request, exc: TransientError) -> Response:
        return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "1"})

    @app.exception_handler(UndecodableEvent)
    async def _on_damaged(_r: Request, exc: UndecodableEvent) -> Response:
        return JSONResponse({"error": str(exc)}, 500)  # the server's fault

    @app.exception_handler(StorageError)
    async def _on_storage(_r: Request, exc: StorageError) -> Response:
        # Full, busy, I/O: 503 and when to try again; damaged or read-only: 500.
        # The client is not told where the database is; the log says it all.
        report = log.warning if isinstance(exc, TransientError) else log.error
        report("state database fault", error=str(exc))
        retry = exc.retry_after
        headers = None if retry is None else {"Retry-After": str(retry)}
        return JSONResponse({"error": exc.public}, exc.http_status, headers=headers)

    @app.exception_handler(Exception)
    async def _on_unexpected(request: Request, exc: Exception) -> Response:
        # Whatever no handler took, also from the middleware in front of the
        # routes (webhook deliveries): a JSON answer, never a bare 500.
        if isinstance(exc, StorageError):
            return await _on_storage(request, exc)
        return JSONResponse({"error": "internal server error"}, 500)

    # Webhooks ---------------------------------------------------------------

    @app.post(
        "/webhooks/{name}",
        tags=["webhooks"],
        summary="Receive a webhook delivery",
        responses={
            200: {"description": "Stored: the ids of the events"},
            **answers(400, 404, 413, 422, 503),
            401: {"model": ErrorOut, "description": "Signature rejected"},
        },
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": {}}}}
        },
    )
    async def receive_webhook(
        request: Request,
        name: str = FastAPIPath(
            description="A configured receiver ([webhooks.NAME])",
            examples=sorted(receivers)[:1] or ["github"],
        ),
    ) -> Response:
        # Served by the WebhookRoute middleware; declared here for the OpenAPI
        # document (and reached only if that middleware is not in front).
        answer = await intake.answer(name, request.headers, await request.body())
        retry = answer.retry_after
        return Response(
            answer.encode(),
            answer.status,
            headers=None if retry is None else {"Retry-After": str(retry)},
            media_type=None if answer.body is None else "application/json",
        )

    # Events -----------------------------------------------------------------

    @app.post(
        "/events",
        status_code=201,
        tags=["events"],
        dependencies=writes,
        summary="Publish events",
        response_class=Response,
        responses={
            201: {
                "description": "Stored (or stored before: the same source and id): "
                "the event, or the events of a batch, in order",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                EVENT_REF,
                                {"type": "array", "items": EVENT_REF},
                            ]
                        }
                    }
                },
            },
            **answers(401, 403, 413, 415, 422, 503),
        },
        openapi_extra=PUBLISH_OPENAPI,
    )
    async def publish_event(request: Request) -> Response:
        """Publish one event, or a batch in one transaction; answered once they
        are durable."""
        body = await request.body()
        limit = hub.bus.max_data_bytes
        mode = cloudevents.content_mode(request.headers)
        if mode == "batch":
            events = cloudevents.from_batch(body, max_data_bytes=limit)
        elif mode == "structured":
            events = [cloudevents.from_structured(body, max_data_bytes=limit)]
        elif mode == "binary":
            headers = request.headers
            events = [cloudevents.from_binary(headers, body, max_data_bytes=limit)]
        else:
            events = [_plain_event(hub, request.headers.get("content-type"), body)]
        stored = await appender.publish(events)
        answer = (
            [e.to_dict() for e in stored] if mode == "batch" else stored[0].to_dict()
        )
        return Response(orjson.dumps(answer), 201, media_type="application/json")

    @app.get(
        "/events",
        tags=["events"],
        dependencies=authed,
        response_class=Response,
        responses={
            200: {
                "model": list[CloudEvent],
                "description": "Structured-mode CloudEvents, as application/json "
                "or, if Accept asks for it, application/cloudevents-batch+json",
            },
            **answers(401, 422, 500),
        },
    )
    def list_events(
        request: Request,
        type: str | None = Query(
            None, description="A type pattern, e.g. user.* (case-sensitive)"
        ),
        source: str | None = None,
        subject: str | None = None,
        after: int | None = Query(None, ge=0, le=_MAX_SEQUENCE),
        before: int | None = Query(None, ge=0, le=_MAX_SEQUENCE),
        limit: int = Query(100, ge=1, le=1000),
    ) -> Response:
        """Stored events, oldest first (the latest ``limit``, or the first after
        ``after``)."""
        try:
            found = hub.bus.history(
                type,
                limit,
                source=source,
                subject=subject,
                after=after,
                before=before,
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        batch = cloudevents.BATCH_CONTENT_TYPE in request.headers.get("accept", "")
        return Response(
            orjson.dumps([e.to_dict() for e in found]),
            media_type=cloudevents.BATCH_CONTENT_TYPE if batch else "application/json",
        )

    # Workflows and runs -----------------------------------------------------

    @app.post(
        "/workflows/{name}/runs",
        tags=["workflows"],
        dependencies=writes,
        responses={
            200: {"description": "The run, ended within wait seconds"},
            202: {
                "model": RunStarted,
                "description": "Still running",
                "headers": {
                    "Location": {
                        "description": "/runs/{id}: the run record",
                        "schema": {"type": "string"},
                    }
                },
            },
            **answers(400, 401, 403, 404, 413, 422, 503),
        },
    )
    async def run_workflow(
        name: str,
        run: RunIn | None = None,
        wait: float = Query(0, ge=0, le=300, description="Seconds to wait for it."),
    ) -> Response:
        """Start a manual run; answered 200 with the run if it ends within
        ``wait`` seconds, else 202 with its id (see ``GET /runs/{id}``)."""
        hub.orchestrator.get_workflow(name)
        if not manual_runs.acquire(blocking=False):
            return JSONResponse(
                {
                    "error": f"{settings.max_manual_runs} manual runs are in progress"
                    " (server.max_manual_runs); try again later"
                },
                503,
                headers={"Retry-After": "1"},
            )
        run_id = uuid7()
        thread = threading.Thread(
            target=_run_quietly,
            args=(hub, name, run.data if run else None, run_id, manual_runs),
            name=f"eventhub-run-{name}",
            daemon=True,
        )
        thread.start()
        if wait:
            await run_in_threadpool(thread.join, wait)
        record = hub.orchestrator.runs.get(run_id)
        if not thread.is_alive() and record is not None:
            return JSONResponse(record.to_dict(), 200)
        return JSONResponse(
            {"id": run_id, "workflow": name, "status": "running"},
            202,
            headers={"Location": f"/runs/{run_id}"},
        )

    @app.get(
        "/runs",
        tags=["workflows"],
        dependencies=authed,
        responses=answers(401, 404, 422),
    )
    def list_runs(
        workflow: str | None = None, limit: int = Query(20, ge=1, le=1000)
    ) -> list[dict[str, Any]]:
        """Workflow runs, newest first. A workflow name that is neither configured
        nor in the run history is 404, naming the known ones."""
        found = hub.orchestrator.runs.list(workflow, limit)
        if workflow is not None and not found:
            known = {name for name, _status in hub.orchestrator.runs.counts()}
            known.update(hub.workflows())
            if workflow not in known:
                raise WorkflowNotFound(workflow, sorted(known))
        return [r.to_dict() for r in found]

    @app.get(
        "/runs/{run_id}",
        tags=["workflows"],
        dependencies=authed,
        responses={
            200: {"description": "The run record"},
            **answers(401, 404, 422),
        },
    )
    def get_run(run_id: str) -> Response:
        """One run record."""
        record = hub.orchestrator.runs.get(run_id)
        if record is None:
            return JSONResponse({"error": f"no run with id {run_id!r}"}, 404)
        return JSONResponse(record.to_dict())

    # Search -------------------------------------------------------------------

    @app.get(
        "/search",
        tags=["documents"],
        dependencies=authed,
        responses=answers(401, 404, 422, 503),
    )
    def search(
        q: str = Query(min_length=1, max_length=4000),
        k: int = Query(10, ge=1, le=100),
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """The indexed documents best matching ``q``, best first."""
        if not q.strip():
            raise UserError("the query is empty")
        return [h.to_dict() for h in hub.documents.search(q, k, source=source)]

    if serve_metrics:
        _add_health_routes(app, hub, metrics)
    limits = {f"/webhooks/{n}": r.max_body_bytes for n, r in receivers.items()}
    app.add_middleware(WebhookRoute, intake=intake)
    app.add_middleware(BodyLimit, limits=limits, default=settings.max_body_bytes)
    # Outermost: counts 413s too, under the route they were meant for.
    app.add_middleware(Observed, metrics=metrics, routes=app.router.routes)
    app.state.metrics = metrics
    app.state.receivers = receivers
    app.state.intake = intake
    app.state.writer = appender
    return app


def _touch_quietly(tokens: APITokenStore, name: str) -> None:
    try:
        tokens.touch(name, datetime.now(UTC))
    except Exception as exc:  # best effort: it is only "last used"
        log.warning("token use not recorded", token=name, error=str(exc))


def _run_quietly(
    hub: Hub, name: str, data: Any, run_id: str, slots: threading.Semaphore
) -> None:
    try:
        hub.orchestrator.trigger_workflow(name, data, run_id=run_id)
    except Exception:  # recorded as a failed run, and logged, by the orchestrator
        log.exception("manual run could not start", workflow=name, run_id=run_id)
    finally:
        slots.release()


def _plain_event(hub: Hub, content_type: str | None, body: bytes) -> Event:
    """The ``{"type", "data", ...}`` body of ``POST /events``, with the bus's
    defaults."""
    media = cloudevents.media_type(content_type)
    if media and not is_json_type(media):
        raise UnsupportedContentType(
            media,
            f"{media} is not read here: send an event as application/json, "
            f"CloudEvents as {cloudevents.STRUCTURED_CONTENT_TYPE} or "
            f"{cloudevents.BATCH_CONTENT_TYPE}, or binary mode with ce-* headers",
        )
    try:
        event = EventIn.model_validate_json(body)
    except ValidationError as exc:
        message = _validation_message(
            exc.errors(include_url=False, include_input=False)
        )
        if b'"specversion"' in body:
            message += (
                f" (a CloudEvent? send it as {cloudevents.STRUCTURED_CONTENT_TYPE})"
            )
        raise UserError(f"invalid event: {message}") from None
    return hub.bus.prepare(event.model_dump())


def _validation_message(errors: Any) -> str:
    """One line from pydantic's errors, without their inputs (which may be bytes
    that are not UTF-8)."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(
            f"{where}: {error.get('msg', 'invalid')}"
            if where
            else error.get("msg", "invalid")
        )
    return "; ".join(parts) or "invalid request"


def _add_health_routes(app: FastAPI, hub: Hub, metrics: HubMetrics | None) -> None:
    @app.get(
        "/health",
        tags=["operations"],
        responses={503: {"description": "The state database does not answer"}},
    )
    def health() -> Response:
        """Liveness: the state database answers."""
        try:
            last = hub.log.last_sequence()
        except Exception as exc:
            return JSONResponse({"status": "error", "error": str(exc)}, 503)
        return JSONResponse(
            {"status": "ok", "version": __version__, "last_sequence": last}
        )

    if metrics is not None:

        @app.get("/metrics", tags=["operations"], response_class=Response)
        def prometheus() -> Response:
            """Prometheus text format."""
            return Response(metrics.render(), media_type=CONTENT_TYPE)


class _Denied(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Unauthorized(_Denied):
    """No credentials, or not valid ones: 401."""


class _Forbidden(_Denied):
    """Valid credentials without the right: 403."""


@dataclass(frozen=True)
class _Principal:
    """Who made a request: a token or a JWT subject, and whether it may write."""

    name: str
    can_write: bool


# Running it -----------------------------------------------------------------


class HTTPServer:
    """The API (and, if configured, a separate metrics bind) served by uvicorn on
    threads of the daemon process.

    Args:
        hub: The hub to serve.
        settings: The ``[server]`` settings.
        receivers: Webhook receivers (default: from ``hub.config``).
        tcp: Serve the API on ``settings.host``/``port`` (off: the local socket
            alone, for a daemon without ``[server]``).
        local_socket: Also serve the read-only API, without tokens, on the Unix
            socket beside the state database (see :mod:`eventhub.localapi`).
    """

    def __init__(
        self,
        hub: Hub,
        settings: ServerSettings,
        receivers: Mapping[str, WebhookReceiver] | None = None,
        *,
        tcp: bool = True,
        local_socket: bool = False,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.tcp = tcp
        self.metrics = HubMetrics(hub)
        separate = settings.metrics_port is not None
        self.app = create_app(
            hub,
            settings,
            receivers if tcp else {},
            metrics=self.metrics,
            serve_metrics=not separate,
        )
        # (app, host, port, connections it may have open)
        self._binds: list[tuple[Any, str, int, int]] = []
        if tcp:
            limit = settings.connection_limit()
            self._binds.append((self.app, settings.host, settings.port, limit))
        self._local_app: Any = self.app
        if separate:
            ops = FastAPI(title="eventhub operations", openapi_url=None)
            _add_health_routes(ops, hub, self.metrics)
            host = settings.metrics_host or settings.host
            port = int(settings.metrics_port or 0)
            if tcp:
                self._binds.append((ops, host, port, SIDE_CONNECTIONS))
            # The local socket keeps answering /health (eventhub.localapi).
            self._local_app = _Operations(ops, self.app)
        self.local_socket = local_socket
        self._local: tuple[socket.socket, Path, int] | None = None
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []
        self.addresses: list[tuple[str, int]] = []

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve; returns once every bind accepts connections.

        Raises:
            ConfigError: if an address cannot be bound (in use, not local...).
        """
        sockets = [_bind(host, port) for _app, host, port, _n in self._binds]
        self.metrics.connect()
        for (app, _host, _port, limit), sock in zip(self._binds, sockets, strict=True):
            self._serve(app, sock, limit, self.settings.access_log)
            self.addresses.append(sock.getsockname()[:2])
        if self.local_socket:
            self._start_local()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline or not all(
                t.is_alive() for t in self._threads
            ):
                self.stop()
                raise ConfigError("the HTTP server did not start")
            time.sleep(0.01)
        if self.addresses:
            log.info(
                "HTTP server listening",
                addresses=[f"{h}:{p}" for h, p in self.addresses],
            )

    def _serve(
        self, app: Any, sock: socket.socket, connections: int, access_log: bool
    ) -> None:
        import uvicorn

        from ._protocol import ConnectionLimits, LimitedHttpToolsProtocol

        settings = self.settings
        limits = ConnectionLimits(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_connections=connections,
            keep_alive_timeout=settings.keep_alive_timeout,
        )
        config = uvicorn.Config(
            app,
            # uvicorn's httptools protocol with timeouts and limits of ours.
            http=LimitedHttpToolsProtocol.configured(limits, self.metrics),
            ws="none",  # no WebSocket routes: upgrades are not offered
            log_config=None,
            access_log=access_log,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name="eventhub-http",
            daemon=True,
        )
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def _start_local(self) -> None:
        """The local socket; a daemon that cannot have it (another daemon of the
        database holds it, the path is taken) runs on without it."""
        from .. import localapi

        address = localapi.socket_path(self.hub.db.path)
        try:
            sock = localapi.bind_socket(self.hub.db.path)
        except OSError as exc:
            log.warning(
                "local socket not served", path=str(address), error=exc.strerror
            )
            return
        if sock is None:
            log.info("local socket served by another daemon", path=str(address))
            return
        self._local = (sock, address, os.stat(address).st_ino)
        app = localapi.local_only(self._local_app, self.hub.db.identity)
        self._serve(app, sock, SIDE_CONNECTIONS, access_log=False)
        log.info("local socket listening", path=str(address))

    @property
    def url(self) -> str:
        host, port = self.addresses[0]
        return f"http://{host}:{port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests; requests in flight get ``timeout`` seconds."""
        for server in self._servers:
            server.should_exit = True
        for thread in self._threads:
            thread.join(timeout)
        if self._local is not None:
            from ..localapi import remove_socket

            remove_socket(*self._local)
            self._local = None
        self.app.state.writer.close(timeout)
        self.metrics.disconnect()
        self._servers.clear()
        self._threads.clear()


class _Operations:
    """``/health`` and ``/metrics`` from ``ops``, everything else from ``app``."""

    PATHS = ("/health", "/metrics")

    def __init__(self, ops: Any, app: Any) -> None:
        self.ops = ops
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        inner = self.ops if scope.get("path") in self.PATHS else self.app
        await inner(scope, receive, send)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"server: cannot resolve {host!r}: {exc.strerror}") from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"server: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    sock.set_inheritable(True)
    return sock
