"""Structured logging: structlog, configured once, with the stdlib bridged.

``configure()`` sends eventhub's own log lines and every stdlib logger's (APScheduler,
urllib3 ...) through one handler and one renderer, console or JSON. A redaction
processor runs before the renderer, so tokens, passwords and Authorization headers
never reach the output, whichever logger produced them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import orjson
import structlog

from .errors import ConfigError

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?$|secret|token|api[_-]?key|authori[sz]ation|cookie"
    r"|credential|private[_-]?key|signature|session[_-]?id",
    re.IGNORECASE,
)
# Values that are secrets whatever key they sit under.
_SECRET_PATTERNS = [
    # "Authorization: Bearer abc", "token=abc", "password: abc", "api_key=abc"
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key|api[_-]?key|access[_-]?token"
            r"|refresh[_-]?token|token|password|passwd|secret|client[_-]?secret)"
            r"(\"?'?\s*[:=]\s*\"?'?)(bearer\s+|basic\s+|token\s+)?([^\s\"',;&}]+)"
        ),
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}",
    ),
    (
        re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
        lambda m: f"{m.group(1)} {REDACTED}",
    ),
    # Credentials in URLs: scheme://user:password@host
    (
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"),
        lambda m: f"{m.group(1)}:{REDACTED}@",
    ),
    # Well-known token shapes: Slack, GitHub, AWS access keys, JWTs.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), lambda m: REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), lambda m: REDACTED),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), lambda m: REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), lambda m: REDACTED),
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        lambda m: REDACTED,
    ),
]

_HANDLER_MARK = "_eventhub_handler"


def redact_text(text: str) -> str:
    """Replace the secrets recognisable in free text."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(key: str | None, value: Any, depth: int = 0) -> Any:
    """Redact a value by its key (``password=...``) or by its shape."""
    if key is not None and isinstance(key, str) and _SENSITIVE_KEY.search(key):
        return REDACTED if value not in (None, "") else value
    if depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(None, v, depth + 1) for v in value)
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every field of the event dict, message included."""
    for key, value in list(event_dict.items()):
        if key == "event" and isinstance(value, str):
            event_dict[key] = redact_text(value)
        else:
            event_dict[key] = redact_value(key, value)
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(
    *,
    json: bool | None = None,
    level: str | int = "INFO",
    stream: IO[str] | None = None,
) -> None:
    """Configure logging for eventhub and the stdlib, once (calling again replaces it).

    Args:
        json: One JSON object per line; default: JSON unless ``stream`` is a terminal.
        level: The lowest level written.
        stream: Where lines go (default: standard error).
    """
    stream = stream or sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ConfigError(f"unknown log level {level!r}")
        level = numeric
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
