"""The built-in embedders, ``sentence-transformers`` and ``hash``, registered as a
plugin like any other (listed in :data:`eventhub.plugins.DEFAULT_PLUGINS`).

Registering imports no model library: torch and sentence-transformers are imported
when an embedder is made and has something to embed.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from .embeddings import BUILTIN_EMBEDDERS


@hookimpl
def register_embedders(register: Any) -> None:
    for name, factory in BUILTIN_EMBEDDERS.items():
        register(name, factory)
