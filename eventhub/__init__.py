"""eventhub: an embeddable event bus and integration orchestrator.

from eventhub import Hub

with Hub("app.db") as hub:
    hub.bus.subscribe("user.*", print)
    hub.bus.publish("user.created", {"id": 7})
"""

from __future__ import annotations

from ._version import __version__
from .bus import EventBus
from .errors import (
    ConfigError,
    DeadLetterNotFound,
    EventHubError,
    IntegrationNotFound,
    InvalidEvent,
    InvalidSubscription,
    MissingDependency,
    SkipEvent,
    StorageBusy,
    SubscriptionNotFound,
    TransientError,
    UndecodableEvent,
    UserError,
    WorkflowLoadError,
    WorkflowNotFound,
)
from .events import Event
from .hookspecs import hookimpl
from .hub import Hub
from .integration import Integration
from .orchestrator.engine import (
    IntegrationOrchestrator,
    WorkflowContext,
    WorkflowOrchestrator,
)
from .orchestrator.workflow import Workflow, workflow
from .retry import RetryPolicy
from .subscriptions import Delivery, HandlerResult, Subscription

__all__ = [
    "ConfigError",
    "DeadLetterNotFound",
    "Delivery",
    "Event",
    "EventBus",
    "EventHubError",
    "HandlerResult",
    "Hub",
    "Integration",
    "IntegrationNotFound",
    "IntegrationOrchestrator",
    "InvalidEvent",
    "InvalidSubscription",
    "MissingDependency",
    "RetryPolicy",
    "SkipEvent",
    "StorageBusy",
    "Subscription",
    "SubscriptionNotFound",
    "TransientError",
    "UndecodableEvent",
    "UserError",
    "Workflow",
    "WorkflowContext",
    "WorkflowLoadError",
    "WorkflowNotFound",
    "WorkflowOrchestrator",
    "__version__",
    "hookimpl",
    "workflow",
]
