"""An existing application that embeds eventhub only to publish.

Run the daemon in one terminal (`make run`) and this in another:

    .venv/bin/python examples/app.py

The daemon, holding the durable subscriptions on the same state database, runs the
CRM integration and the `welcome-mail` workflow for each user this app signs up.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eventhub import Hub

DB = Path(__file__).resolve().parent / "eventhub.db"


def sign_up(hub: Hub, user_id: int, email: str) -> None:
    # ... the app's own work (validate, store the user) would be here ...
    hub.bus.publish(
        "user.created",
        {"id": user_id, "email": email, "name": email.split("@")[0]},
        source="/example-app/signup",
        subject=f"user/{user_id}",
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with Hub(DB) as hub:
        start = len(hub.bus.history("user.created", limit=None)) + 1
        for user_id in range(start, start + count):
            sign_up(hub, user_id, f"user{user_id}@example.org")
            print(f"signed up user {user_id}")


if __name__ == "__main__":
    main()
