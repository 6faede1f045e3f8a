"""Documents and their sources (``Document``, ``Source``); the ``rag`` extra's
chunking, embeddings, index and sync live in the submodules."""

from __future__ import annotations

from .extract import DEFAULT_LIMITS, ExtractionLimits
from .model import (  # noqa: F401
    Change,
    Checkpoint,
    CheckpointExpired,
    Deleted,
    Document,
    Failed,
    Skipped,
    Source,
    SourceError,
    normalize_text,
    timestamp_checkpoint,
)

__all__ = [
    "Change",
    "Checkpoint",
    "CheckpointExpired",
    "DEFAULT_LIMITS",
    "Deleted",
    "Document",
    "Failed",
    "ExtractionLimits",
    "normalize_text",
    "Skipped",
    "SourceError",
    "Source",
    "timestamp_checkpoint",
]
