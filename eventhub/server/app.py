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

Routes (:mod:`eventhub.server._routes`):

* ``POST /webhooks/{name}``: a configured receiver; signature checked on the raw
  bytes, answered 2xx once the events are durable in the log. Handlers run on the
  bus, later: a slow workflow never delays the answer.
* ``POST /events`` (the CloudEvents HTTP binding: structured, batched and binary
  mode, see :mod:`eventhub.cloudevents`, or a plain ``{"type", "data"}`` body),
  ``GET /events``, ``POST /workflows/{name}/runs``, ``GET /runs``, ``GET /runs/{id}``,
  ``GET /search``: behind an API token (``eventhub tokens create``) or a JWT, as
  ``Authorization: Bearer ...`` (:mod:`eventhub.server._security`).
* ``GET /health`` and ``GET /metrics`` (Prometheus): no authentication; nor
  ``GET /openapi.json`` and ``GET /docs``, which describe the API and hold no data.

Every error is answered ``{"error": "..."}``, with the status (and message, and
``Retry-After``) the error's class declares (:class:`~eventhub.errors.EventHubError`).
Bodies over the limit are answered 413 before they are read whole, with or without
``Content-Length``. :class:`~eventhub.server._runner.HTTPServer` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .._version import __version__
from ..auth.apitokens import APITokenStore
from ..errors import EventHubError, StorageError, TransientError
from ..webhooks.appender import BatchAppender
from ..webhooks.base import WebhookReceiver
from ..webhooks.intake import WebhookIntake, WebhookRoute
from ..webhooks.receivers import make_receivers, receiver_kinds
from ._routes import (
    add_event_routes,
    add_operation_routes,
    add_search_routes,
    add_webhook_routes,
    add_workflow_routes,
)
from ._security import Authenticator, Denied, jwt_verifier
from .metrics import HubMetrics
from .middleware import BodyLimit, Observed
from .models import validation_message
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["ServerSettings", "create_app"]

log = structlog.get_logger(__name__)


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
        receivers: Webhook receivers by name (default: from ``hub.config``, of the
            kinds the hub's plugins register).
        metrics: The metrics registry to count into (a new one if None).
        serve_metrics: Serve ``/health`` and ``/metrics`` here (off when they have
            a bind of their own).

    Raises:
        ConfigError: for a receiver or ``[server.jwt]`` setting that is wrong.
    """
    settings = settings or ServerSettings()
    if receivers is None:
        section = hub.config.get("webhooks", {})
        receivers = make_receivers(section, receiver_kinds(hub.pm) if section else None)
    metrics = metrics or HubMetrics(hub)
    verify_jwt = jwt_verifier(settings.jwt) if settings.jwt else None
    auth = Authenticator(APITokenStore(hub.db), verify_jwt)
    # Webhook deliveries and POST /events are written off the event loop, in
    # batches, and give up with 503 past server.write_timeout
    # (eventhub.webhooks.appender).
    appender = BatchAppender(hub.bus, timeout=settings.write_timeout, db=hub.db)
    metrics.watch_writes(lambda: appender.waiting)
    intake = WebhookIntake(hub.bus, receivers, appender)
    app = FastAPI(
        title="eventhub",
        version=__version__,
        description="Webhook intake and the API of an eventhub daemon.",
    )
    add_error_answers(app)
    add_webhook_routes(app.router, intake, receivers)
    add_event_routes(app.router, hub, appender, auth)
    add_workflow_routes(app.router, hub, auth, settings.max_manual_runs)
    add_search_routes(app.router, hub, auth)
    if serve_metrics:
        add_operation_routes(app.router, hub, metrics)
    limits = {f"/webhooks/{n}": r.max_body_bytes for n, r in receivers.items()}
    app.add_middleware(WebhookRoute, intake=intake)
    app.add_middleware(BodyLimit, limits=limits, default=settings.max_body_bytes)
    # Outermost: counts 413s too, under the route they were meant for.
    app.add_middleware(Observed, metrics=metrics, routes=app.router.routes)
    app.state.metrics = metrics
    app.state.receivers = receivers
    app.state.intake = intake
    app.state.appender = appender
    return app


def error_answer(exc: EventHubError) -> Response:
    """The answer to an eventhub error, as its class declares it:
    ``{"error": public or the message}`` with its ``http_status`` and, if it has
    one, ``Retry-After``."""
    retry = exc.http_retry_after
    return JSONResponse(
        {"error": str(exc) if exc.public is None else exc.public},
        exc.http_status,
        headers=None if retry is None else {"Retry-After": str(retry)},
    )


def add_error_answers(app: FastAPI) -> None:
    """Answer every error ``{"error": "..."}``: eventhub's by the attributes of
    their class, refused credentials, invalid requests, anything else 500."""

    @app.exception_handler(EventHubError)
    async def _on_eventhub_error(_r: Request, exc: EventHubError) -> Response:
        if isinstance(exc, StorageError):
            # Full, busy, I/O: 503 and when to try again; damaged or read-only:
            # 500. The client is not told where the database is; the log says.
            report = log.warning if isinstance(exc, TransientError) else log.error
            report("state database fault", error=str(exc))
        elif exc.public is not None and exc.http_status >= 500:
            # Not the client's business, and no handler above says more.
            log.error("request failed", exc_info=exc)
        return error_answer(exc)

    @app.exception_handler(Denied)
    async def _on_denied(_r: Request, exc: Denied) -> Response:
        return JSONResponse({"error": exc.reason}, exc.http_status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(_r: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"error": validation_message(exc.errors())}, 422)

    @app.exception_handler(HTTPException)
    async def _on_http(_r: Request, exc: HTTPException) -> Response:
        return JSONResponse(
            {"error": str(exc.detail)}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _on_unexpected(request: Request, exc: Exception) -> Response:
        # Whatever no handler took, also from the middleware in front of the
        # routes (webhook deliveries): a JSON answer, never a bare 500.
        if isinstance(exc, EventHubError):
            return await _on_eventhub_error(request, exc)
        return JSONResponse({"error": "internal server error"}, 500)
