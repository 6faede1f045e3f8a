"""Documents and their sources (``Document``, ``Source``); the ``rag`` extra's
chunking, embeddings, index and sync live in the submodules."""

from __future__ import annotations

from .extract import DEFAULT_LIMITS, ExtractionLimits
from .model import (  # noqa: F401
    Document,
    Skipped,
    Source,
    SourceError,
    normalize_text,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Document",
    "ExtractionLimits",
    "normalize_text",
    "Skipped",
    "SourceError",
    "Source",
]
