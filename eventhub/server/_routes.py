"""The routes of the HTTP API, one function per area adding them to a router
(an application's ``app.router``), over what they serve:

* :func:`add_webhook_routes`: ``POST /webhooks/{name}``;
* :func:`add_event_routes`: ``POST /events`` and ``GET /events``;
* :func:`add_workflow_routes`: ``POST /workflows/{name}/runs``, ``GET /runs``,
  ``GET /runs/{id}``;
* :func:`add_search_routes`: ``GET /search``;
* :func:`add_operation_routes`: ``GET /health`` and ``GET /metrics``.

The routes go on the application's own router rather than on routers of their
own that it includes: FastAPI serves an included router through a layer of its
own, which the metrics middleware cannot name a route by (and which costs every
request a little).

Errors are raised (eventhub's own, or :mod:`eventhub.server._security`'s refusals)
and answered by the application's handlers (:mod:`eventhub.server.app`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .. import cloudevents
from .._version import __version__
from ..cloudevents import UnsupportedContentType
from ..errors import UserError, WorkflowNotFound
from ..events import Event, is_json_type, uuid7
from ..webhooks.appender import BatchAppender
from ..webhooks.base import WebhookReceiver
from ..webhooks.intake import WebhookIntake
from ._security import Authenticator
from .metrics import CONTENT_TYPE, HubMetrics
from .models import (
    EVENT_REF,
    PUBLISH_OPENAPI,
    CloudEvent,
    ErrorOut,
    EventIn,
    RunIn,
    RunStarted,
    answers,
    validation_message,
)

if TYPE_CHECKING:
    from ..hub import Hub

log = structlog.get_logger(__name__)

_MAX_SEQUENCE = 2**63 - 1


# Webhooks -----------------------------------------------------------------------


def add_webhook_routes(
    router: APIRouter,
    intake: WebhookIntake,
    receivers: Mapping[str, WebhookReceiver],
) -> None:
    """``POST /webhooks/{name}``, served by :class:`WebhookIntake`."""

    @router.post(
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


# Events -------------------------------------------------------------------------


def add_event_routes(
    router: APIRouter, hub: Hub, appender: BatchAppender, auth: Authenticator
) -> None:
    """``POST /events`` (written by ``appender``) and ``GET /events``."""

    @router.post(
        "/events",
        status_code=201,
        tags=["events"],
        dependencies=[Depends(auth.writer)],
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

    @router.get(
        "/events",
        tags=["events"],
        dependencies=[Depends(auth.principal)],
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
        message = validation_message(exc.errors(include_url=False, include_input=False))
        if b'"specversion"' in body:
            message += (
                f" (a CloudEvent? send it as {cloudevents.STRUCTURED_CONTENT_TYPE})"
            )
        raise UserError(f"invalid event: {message}") from None
    return hub.bus.prepare(event.model_dump())


# Workflows and runs -------------------------------------------------------------


def add_workflow_routes(
    router: APIRouter, hub: Hub, auth: Authenticator, max_manual_runs: int
) -> None:
    """Manual runs (at most ``max_manual_runs`` at once) and the run records."""
    manual_runs = threading.BoundedSemaphore(max_manual_runs)

    @router.post(
        "/workflows/{name}/runs",
        tags=["workflows"],
        dependencies=[Depends(auth.writer)],
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
                    "error": f"{max_manual_runs} manual runs are in progress"
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

    @router.get(
        "/runs",
        tags=["workflows"],
        dependencies=[Depends(auth.principal)],
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

    @router.get(
        "/runs/{run_id}",
        tags=["workflows"],
        dependencies=[Depends(auth.principal)],
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


def _run_quietly(
    hub: Hub, name: str, data: Any, run_id: str, slots: threading.Semaphore
) -> None:
    try:
        hub.orchestrator.trigger_workflow(name, data, run_id=run_id)
    except Exception:  # recorded as a failed run, and logged, by the orchestrator
        log.exception("manual run could not start", workflow=name, run_id=run_id)
    finally:
        slots.release()


# Search -------------------------------------------------------------------------


def add_search_routes(router: APIRouter, hub: Hub, auth: Authenticator) -> None:
    """``GET /search`` over the hub's document index."""

    @router.get(
        "/search",
        tags=["documents"],
        dependencies=[Depends(auth.principal)],
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


# Operations ---------------------------------------------------------------------


def add_operation_routes(
    router: APIRouter, hub: Hub, metrics: HubMetrics | None
) -> None:
    """``GET /health`` and, with ``metrics``, ``GET /metrics``: no authentication."""

    @router.get(
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

        @router.get("/metrics", tags=["operations"], response_class=Response)
        def prometheus() -> Response:
            """Prometheus text format."""
            return Response(metrics.render(), media_type=CONTENT_TYPE)
