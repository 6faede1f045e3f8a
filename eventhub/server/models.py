"""The HTTP API's request and answer models, and the OpenAPI declarations of what
its routes read and answer (:mod:`eventhub.server._routes` serves them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from .. import cloudevents


class EventIn(BaseModel):
    """An event to publish."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "user.created", "data": {"id": 7}, "subject": "user/7"}
            ]
        },
    )
    type: str
    data: Any = None
    source: str | None = None
    subject: str | None = None
    id: str | None = None


class RunIn(BaseModel):
    """Input of a manual workflow run."""

    model_config = ConfigDict(extra="forbid")
    data: Any = None


class ErrorOut(BaseModel):
    """Every error answer: what is wrong, in one line."""

    error: str


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in the JSON format (for the OpenAPI document; the
    events are read by :mod:`eventhub.cloudevents`)."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema, _model: _replace(
            schema, cloudevents.EVENT_SCHEMA
        )
    )


class RunStarted(BaseModel):
    """A manual run still running: ``GET`` its ``Location`` for the record."""

    id: str
    workflow: str
    status: str


def _replace(schema: dict[str, Any], by: Mapping[str, Any]) -> None:
    schema.clear()
    schema.update(orjson.loads(orjson.dumps(by)))


ERROR_ANSWERS: dict[int, str] = {
    400: "A malformed request",
    401: "No token, or not a valid one",
    403: "A read-only token asked to write",
    404: "Not found",
    413: "The body is over the limit",
    415: "A content type that is not read here",
    422: "The input is invalid",
    500: "A fault of the server, such as a damaged stored event",
    503: "Busy or unavailable: try again later",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}}}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: ``{"error": ...}`` answers with these status codes."""
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        answers[code] = {"model": ErrorOut, "description": ERROR_ANSWERS[code]}
    if 401 in answers:
        answers[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if 503 in answers:
        answers[503]["headers"] = _RETRY_AFTER
    return answers


EVENT_REF = {"$ref": "#/components/schemas/CloudEvent"}
PUBLISH_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": f"ce-{name}",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": f"Binary mode: the event's {name} (every ce-* header is "
            "an attribute, percent-encoded; the body is the data).",
        }
        for name in ("specversion", "id", "source", "type")
    ],
    "requestBody": {
        "required": True,
        "description": "An event as {type, data, ...} (application/json); a "
        "CloudEvent in structured mode (application/cloudevents+json); a batch "
        "(application/cloudevents-batch+json: one transaction, all or nothing); "
        "or binary mode: ce-* headers, the body is the data, of any content type.",
        "content": {
            "application/json": {"schema": EventIn.model_json_schema()},
            cloudevents.STRUCTURED_CONTENT_TYPE: {"schema": EVENT_REF},
            cloudevents.BATCH_CONTENT_TYPE: {
                "schema": {"type": "array", "items": EVENT_REF}
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}
            },
        },
    },
}


def validation_message(errors: Any) -> str:
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
