"""What the message-queue integrations (``rabbitmq``, ``redis_queue``) share: the
shape of their ``consume`` / ``publish`` tables, the id a message body names, the
rejection of a message that cannot be an event, the reconnection backoff."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eventhub.errors import ConfigError

#: Longest wait between reconnection attempts (seconds; the first is 0.1, doubled).
MAX_BACKOFF = 10.0


class Rejected(Exception):
    """A message that cannot become an event (its text is the reason)."""


def config_table(
    where: str,
    section: str,
    index: int,
    entry: Any,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> Mapping[str, Any]:
    """``entry``, the ``index``-th table of ``section`` (``consume``, ``publish``),
    checked: a table, no unknown keys, every ``required`` key a non-empty string.

    Raises:
        ConfigError: naming the table and what is wrong with it.
    """
    required = tuple(required)
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: {section}[{index}] must be a table")
    unknown = set(entry) - set(required) - set(optional)
    if unknown:
        raise ConfigError(
            f"{where}: {section}[{index}] has unknown keys {', '.join(sorted(unknown))}"
        )
    for key in required:
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError(f"{where}: {section}[{index}] needs {key}")
    return entry


def body_field(data: Any, name: str | None) -> str | None:
    """The text or whole number a JSON object ``data`` holds under ``name`` (an id,
    a subject), as text; None when there is none."""
    value = data.get(name) if name and isinstance(data, dict) else None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
