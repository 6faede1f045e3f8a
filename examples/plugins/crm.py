"""An example integration plugin: the seeds' CRM, kept in step with user events.

The config registers it with `plugins = ["plugins/crm.py"]` and configures an instance
under `[integrations.crm]`. The "CRM" is a JSON file, so the example runs anywhere.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from eventhub import Event, Integration, InvalidEvent, hookimpl


class CRMIntegration(Integration):
    """Creates and updates CRM contacts on `user.created` / `user.updated`."""

    kind = "crm"
    handle_events = ["user.created", "user.updated"]

    def __init__(self, contacts_file: str = "crm-contacts.json", **config: Any) -> None:
        super().__init__(**config)
        self.contacts_file = Path(contacts_file)
        self._lock = threading.Lock()

    def handle_event(self, event: Event) -> dict[str, Any]:
        user = event.data
        if not isinstance(user, dict) or "id" not in user:
            # Retrying cannot fix the event: an eventhub error is not retried, so
            # it goes to the dead letters at once, for someone to look at.
            raise InvalidEvent("data", f'a {event.type} event needs {{"id": ...}}')
        with self._lock:
            contacts = self._load()
            contact = contacts.get(str(user["id"]), {})
            action = "updated" if contact else "created"
            contacts[str(user["id"])] = {
                "email": user.get("email", contact.get("email")),
                "name": user.get("name", contact.get("name")),
            }
            self.contacts_file.write_text(json.dumps(contacts, indent=2))
        return {"action": action, "contact_id": user["id"]}

    def _load(self) -> dict[str, Any]:
        if not self.contacts_file.exists():
            return {}
        return json.loads(self.contacts_file.read_text())


@hookimpl
def register_integrations(register: Any) -> None:
    register(CRMIntegration)
