"""Structured logging: structlog, configured once, with the stdlib bridged.

``configure()`` sends eventhub's own log lines and every stdlib logger's (APScheduler,
urllib3 ...) through one handler and one renderer, console or JSON. A redaction
processor runs before the renderer, on the message, every field and the rendered
traceback: tokens, passwords, Authorization headers and every secret registered with
:func:`eventhub.redact.register_secret` never reach the output, whichever logger
produced them. The redaction helpers live in :mod:`eventhub.redact`; ``REDACTED``,
``redact_text`` and ``redact_value`` are importable from here too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import orjson
import structlog

from .errors import ConfigError
from .redact import REDACTED, redact_text, redact_value

__all__ = ["REDACTED", "configure", "redact_processor", "redact_text", "redact_value"]

_HANDLER_MARK = "_eventhub_handler"


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
