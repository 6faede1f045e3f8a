"""The base class of every integration (connector).

An integration is registered on a hub under a name. If it lists ``handle_events``,
its :meth:`Integration.handle_event` is subscribed to those type patterns, durably by
default (subscription ``integration.<name>``). ``start`` and ``stop`` bracket the
hub's life. A minimal one::

    class CRMIntegration(Integration):
        handle_events = ["user.created", "user.updated"]

        def handle_event(self, event):
            return crm.upsert_contact(event.data)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .patterns import FilterSpec
from .retry import RetryPolicy
from .subscriptions import Mode

if TYPE_CHECKING:
    from .hub import Hub


class Integration:
    """A connector to an outside system.

    Attributes:
        kind: The name plugins register this class under (e.g. ``"slack"``).
        handle_events: Type patterns delivered to :meth:`handle_event`.
        event_filter: An optional CloudEvents filter or predicate for those events.
        delivery: ``"durable"`` (default: at-least-once, retried) or ``"inline"``.
        retry: The retry policy of the durable subscription (default policy if None).
    """

    kind: ClassVar[str] = ""
    handle_events: Sequence[str] = ()
    event_filter: FilterSpec = None
    delivery: Mode = "durable"
    retry: RetryPolicy | None = None

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.hub: Hub | None = None
        self.name: str = self.kind or type(self).__name__.lower()

    def start(self, hub: Hub) -> None:
        """Called when the hub starts (or at registration on a running hub)."""
        self.hub = hub

    def stop(self) -> None:
        """Called when the hub stops."""

    def handle_event(self, event: Any) -> Any:
        """Handle one event of a type in ``handle_events``."""
        raise NotImplementedError(
            f"{type(self).__name__} lists handle_events but has no handle_event()"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
