"""``logsink``: writes the events it subscribes to into the structured log.

Useful to watch a bus while wiring it up::

    hub.register_integration("watch", LogSink(handle_events=["order.**"]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from eventhub.events import Event
from eventhub.hookspecs import hookimpl
from eventhub.integration import Integration


class LogSink(Integration):
    """Logs each event it receives (type, id, sequence, subject, source)."""

    kind = "logsink"
    delivery = "inline"

    def __init__(self, handle_events: Sequence[str] = ("#",), **config: Any) -> None:
        super().__init__(**config)
        self.handle_events = list(handle_events)
        self._log = structlog.get_logger("eventhub.logsink")

    def handle_event(self, event: Event) -> None:
        self._log.info(
            "event",
            event_type=event.type,
            event_id=event.id,
            sequence=event.sequence,
            subject=event.subject,
            source=event.source,
        )


@hookimpl
def register_integrations(register: Any) -> None:
    register(LogSink)
