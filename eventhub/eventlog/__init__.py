"""Event log backends: the :class:`EventLog` interface and its implementations."""

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
    SubscriptionInfo,
    TypeMatch,
    UndecodableRecord,
    undecodable_placeholder,
)
from .sqlite import (  # noqa: F401
    SQLiteLog,
    m001_event_log,
    m002_dataschema_and_data_kind,
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
    "Progress",
    "SubscriptionInfo",
    "UndecodableRecord",
    "HistoryQuery",
    "RetentionRule",
    "EventLog",
    "undecodable_placeholder",
    "m001_event_log",
    "m002_dataschema_and_data_kind",
    "SQLiteLog",
]
