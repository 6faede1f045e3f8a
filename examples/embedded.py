"""eventhub embedded in an application: publish, subscribe, look at the history.

Run with `make run` (or `python examples/embedded.py [DB]`). Each run appends to the
same state database, so the history grows and the durable subscription resumes where it
stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eventhub import Event, Hub, Integration, RetryPolicy


class CRMIntegration(Integration):
    """The seeds' CRM integration: keeps contacts in step with user events."""

    handle_events = ["user.created", "user.updated"]

    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[int, dict] = {}

    def handle_event(self, event: Event) -> dict:
        self.contacts[event.data["id"]] = event.data
        action = "created" if event.type == "user.created" else "updated"
        print(f"  crm: contact {event.data['id']} {action} ({event.data['email']})")
        return {"action": action, "contact_id": event.data["id"]}


def main() -> None:
    db = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/embedded.db")
    with Hub(db) as hub:
        # Inline: runs in the publisher's thread, for in-app reactions.
        hub.bus.subscribe("user.*", lambda e: print(f"  audit: {e.type} #{e.sequence}"))
        # Durable: a named cursor in the log; retried, dead-lettered, resumable.
        hub.register_integration("crm", CRMIntegration())
        hub.bus.subscribe(
            "**.failed",
            lambda e: print(f"  alert: {e.type} {e.data}"),
            name="alerts",
            retry=RetryPolicy(max_attempts=3),
        )

        print(f"publishing into {db}")
        run = len(hub.bus.history("user.created", limit=None)) + 1
        user = {"id": run, "email": f"user{run}@example.org"}
        hub.bus.publish("user.created", user, source="/signup", subject=f"user/{run}")
        hub.bus.publish(
            "user.updated",
            {**user, "email": f"u{run}@example.org"},
            subject=f"user/{run}",
        )
        hub.bus.publish("payment.failed", {"user": run, "reason": "card declined"})

        print("delivering durable subscriptions")
        hub.bus.drain()

        print("history (latest 10, oldest first):")
        for event in hub.bus.history(limit=10):
            print(
                f"  {event.sequence:>4}  {event.type:<16} "
                f"{event.subject or '':<10} {event.data}"
            )
        for status in hub.bus.durable_status():
            print(
                f"subscription {status.name}: cursor {status.cursor}, "
                f"{status.pending} pending, {status.dead_letters} dead letters"
            )


if __name__ == "__main__":
    main()
