"""SQL databases: the ``sql`` integration (queries, updates, the schema:
:mod:`.integration`) and the ``sql`` document source (rows as documents, by keyset:
:mod:`.source`), on SQLAlchemy 2 (``pip install 'eventhub[sql]'`` plus the
database's driver). Both register under the kind ``sql``: an integration for
``[integrations.NAME]``, a source for ``[sources.NAME]``."""

from __future__ import annotations

from typing import Any

from eventhub.hookspecs import hookimpl

from ._engine import ReadOnlyIntegration, SQLError, SQLTimeout, SQLUnavailable
from .integration import SQLIntegration
from .source import SQLSource

__all__ = [
    "ReadOnlyIntegration",
    "SQLError",
    "SQLIntegration",
    "SQLSource",
    "SQLTimeout",
    "SQLUnavailable",
]


@hookimpl
def register_integrations(register: Any) -> None:
    register(SQLIntegration)
    register(SQLSource)
