"""``slack``: post messages and look up users through the Slack Web API.

::

    [integrations.slack]
    kind = "slack"
    token = { env = "SLACK_BOT_TOKEN" }   # xoxb-...; needs chat:write, users:read
    rate = 1                              # chat.postMessage: about 1 a second a channel

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "..."}``; those
raise :class:`SlackError` with ``.error`` (``channel_not_found``, ``not_in_channel``
...). ``ratelimited`` (and HTTP 429 with ``Retry-After``) is retried by the HTTP
client, for posts too: Slack refused the call before doing anything. Slack has no
idempotency key, so any other failure after the request was sent is not repeated (it
might post twice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._webapi import SlackError, SlackWebAPI

__all__ = ["SlackError", "SlackIntegration"]


class SlackIntegration(SlackWebAPI):
    """The Slack Web API, authenticated with a bot or user token.

    Takes the settings of :class:`~eventhub.integrations.rest.RESTIntegration`;
    ``base_url`` defaults to ``https://slack.com/api/``.
    """

    kind = "slack"

    def send_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """Post a message (``chat.postMessage``).

        Args:
            channel: A channel id (``C0123``) or name, or a user id for a DM.
            text: The message, or the notification fallback when ``blocks`` are set.
            blocks: Block Kit blocks.
            thread_ts: ``ts`` of the parent message, to reply in its thread.

        Returns:
            Slack's answer: ``channel``, ``ts`` and the ``message`` posted.

        Raises:
            SlackError: for ``ok: false``.
        """
        payload: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            payload["blocks"] = list(blocks)
        if thread_ts:
            payload["thread_ts"] = thread_ts
        return self.call("POST", "chat.postMessage", json=payload)

    def get_user_info(self, user_id: str) -> dict[str, Any]:
        """A user's profile (``users.info``).

        Returns:
            The ``user`` object (``id``, ``name``, ``real_name``, ``profile`` ...).

        Raises:
            SlackError: for ``ok: false`` (``user_not_found`` ...).
        """
        body = self.call("GET", "users.info", params={"user": user_id})
        return dict(body["user"])
