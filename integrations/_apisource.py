"""The base of the document sources that read a vendor's HTTP API.

An :class:`APISource` is a :class:`~eventhub.documents.Source` with the HTTP
integrations' configured client (:class:`~eventhub.integrations.rest.RESTIntegration`:
``base_url``, ``token``, ``email`` + ``api_token``, ``username`` + ``password``,
``headers``, ``timeout``, ``attempts``, ``rate``, ``burst``, ``shared_rate_limit``,
``allow_hosts``, ``allow_private``), so it inherits timeouts, retries of 429/5xx with
``Retry-After``, the rate limiter and the SSRF guard. A kind states the vendor's
documented defaults as class attributes (``default_base_url``, ``default_rate``,
``default_burst``); the config overrides them.

Listing every id costs a request per page, so an API source prunes (enumerates to
find deletions its feed does not report) every six hours by default rather than at
every sync (``[sources.NAME] prune``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventhub.documents import Source

from .rest import RESTIntegration

__all__ = ["APISource"]


class APISource(Source, RESTIntegration):
    """A document source on a vendor's HTTP API (see the module docstring).

    Attributes:
        default_rate: Requests a second the vendor allows (None: no limit of ours).
        default_burst: Requests allowed back to back (None: ``rate``).
    """

    default_rate: ClassVar[float | None] = None
    default_burst: ClassVar[int | None] = None
    default_prune: ClassVar[float | None] = 6 * 3600.0

    def __init__(self, **config: Any) -> None:
        if "rate" not in config and self.default_rate is not None:
            config["rate"] = self.default_rate
            if "burst" not in config and self.default_burst is not None:
                config["burst"] = self.default_burst
        super().__init__(**config)
