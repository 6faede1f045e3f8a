"""Event log backends: the :class:`EventLog` interface and its implementations,
:class:`SQLiteLog` (the default: durable, shared by processes) and
:class:`MemoryLog` (in this process only, not durable)."""

from __future__ import annotations

from .base import (  # noqa: F401
    UNDECODABLE_ERROR,
    UNDECODABLE_EXTENSION,
    UNDECODABLE_TYPE,
    Appended,
    Batch,
    DeadLetter,
    EventLog,
    HistoryQuery,
    Pending,
    Progress,
    RetentionRule,
    Start,
    StepOutcome,
    SubscriptionInfo,
    TypeMatch,
    UndecodableRecord,
    undecodable_placeholder,
)
from .memory import MemoryLog  # noqa: F401
from .sqlite import (  # noqa: F401
    SQLiteLog,
    m001_event_log,
    m002_dataschema_and_data_kind,
    m003_history_indexes,
)

__all__ = [
    "Start",
    "TypeMatch",
    "UNDECODABLE_EXTENSION",
    "UNDECODABLE_TYPE",
    "UNDECODABLE_ERROR",
    "Appended",
    "Batch",
    "Pending",
    "DeadLetter",
    "StepOutcome",
    "Progress",
    "SubscriptionInfo",
    "UndecodableRecord",
    "HistoryQuery",
    "RetentionRule",
    "EventLog",
    "undecodable_placeholder",
    "m001_event_log",
    "m002_dataschema_and_data_kind",
    "m003_history_indexes",
    "SQLiteLog",
    "MemoryLog",
]
