"""The Slack Web API as both Slack kinds call it (the integration that posts and
the source that reads).

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "..."}``;
:meth:`SlackWebAPI.call` turns those into :class:`SlackError` with ``.error``
(``channel_not_found``, ``not_in_channel``, ``invalid_auth`` ...). A rate limit,
``ratelimited`` in that shape or HTTP 429, never gets here: the HTTP client
recognises both (:func:`eventhub.http.is_rate_limited`), waits ``Retry-After`` and
asks again, for any method (Slack refused the call before doing anything); once its
attempts are spent it raises ``HttpTransientError``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from eventhub.errors import ConfigError
from eventhub.http import HttpError

from ..rest import RESTIntegration

__all__ = ["AUTH_ERRORS", "SlackError", "SlackWebAPI"]

#: Slack's errors that say the token itself is no good: nothing else will work.
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
    }
)

_JSON = {"Content-Type": "application/json; charset=utf-8"}


class SlackError(HttpError):
    """Slack said ``ok: false``. ``error`` is Slack's code; ``needed`` the missing
    scope, when Slack names one."""

    def __init__(
        self,
        method: str,
        url: str,
        error: str,
        status: int | None = 200,
        *,
        needed: str | None = None,
    ) -> None:
        self.error = error
        self.needed = needed
        reason = f"Slack error {error}"
        if needed:
            reason += f" (needs scope {needed})"
        elif error in AUTH_ERRORS:
            reason += " (the token was refused)"
        super().__init__(method, url, status, reason=reason)

    @property
    def refused_token(self) -> bool:
        """Whether Slack refused the token (``invalid_auth``, ``token_revoked`` ...)."""
        return self.error in AUTH_ERRORS


class SlackWebAPI(RESTIntegration):
    """What both Slack kinds share: a token, ``base_url`` defaulting to
    ``https://slack.com/api/``, and :meth:`call` (not registered as a kind)."""

    default_base_url = "https://slack.com/api/"
    #: How configuration errors name the kind (``slack integration: ...``).
    role: ClassVar[str] = "integration"

    def __init__(self, base_url: str | None = None, **settings: Any) -> None:
        if not any(settings.get(key) for key in ("token", "oauth")):
            raise ConfigError(f"{self.kind} {self.role}: token is missing")
        super().__init__(base_url, **settings)

    def call(self, method: str, api_method: str, **kwargs: Any) -> dict[str, Any]:
        """Call any Web API method; the decoded answer when ``ok`` is true.

        Raises:
            SlackError: for ``ok: false`` or an answer that is not a Slack one.
        """
        if "json" in kwargs:
            kwargs["headers"] = {**_JSON, **(kwargs.get("headers") or {})}
        response = self.request(method, api_method, **kwargs)
        return _ok(method, response)


def _ok(method: str, response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "ok" not in body:
        raise SlackError(method, response.url, "invalid_response", response.status_code)
    if body["ok"] is not True:
        needed = body.get("needed")
        raise SlackError(
            method,
            response.url,
            str(body.get("error") or "unknown_error"),
            response.status_code,
            needed=needed if isinstance(needed, str) else None,
        )
    return body
