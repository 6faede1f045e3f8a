"""Splitting text into chunks sized in model tokens.

Chunks follow paragraphs: a paragraph is one chunk; paragraphs shorter than
``min_tokens`` join the next ones; a paragraph longer than ``max_tokens`` is cut into
windows of ``max_tokens`` overlapping by ``overlap`` tokens, at sentence ends where
possible. Because boundaries follow the text's own structure, editing one paragraph
changes the chunks of that paragraph only, and only those are embedded again.

Token counts come from the embedding model's own tokenizer (all-MiniLM-L6-v2 reads at
most 256 word pieces; past that it silently truncates).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .model import normalize_text

#: Character spans of the tokens of a text: [(start, end), ...].
TokenSpans = Callable[[str], Sequence[tuple[int, int]]]

_WORD = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"[.!?。！？](?:[\"')\]]*)\s")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text. ``model_input`` is what the embedding model
    reads for it (by default the text itself; the index puts the title in front);
    ``hash`` identifies that input, so equal hashes mean equal vectors."""

    position: int
    text: str
    model_input: str = ""

    @property
    def hash(self) -> str:
        return hashlib.sha256((self.model_input or self.text).encode()).hexdigest()


@dataclass(frozen=True)
class ChunkSettings:
    """Chunk sizes, in tokens of the embedding model."""

    max_tokens: int = 200
    min_tokens: int = 24
    overlap: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.max_tokens or self.min_tokens > self.max_tokens:
            raise ValueError("chunk sizes need 0 <= overlap < max_tokens >= min_tokens")


def word_spans(text: str) -> list[tuple[int, int]]:
    """A plain word tokenizer (for tests and the hashing embedder)."""
    return [m.span() for m in _WORD.finditer(text)]


def chunk_text(
    text: str, spans: TokenSpans = word_spans, settings: ChunkSettings = ChunkSettings()
) -> list[Chunk]:
    """Split normalised text into chunks (see the module docstring)."""
    text = normalize_text(text)
    pieces: list[str] = []
    pending: list[str] = []
    pending_tokens = 0
    for paragraph in text.split("\n\n"):
        token_spans = spans(paragraph)
        count = len(token_spans)
        if count == 0:
            continue
        if count > settings.max_tokens:
            if pending:
                pieces.append("\n\n".join(pending))
                pending, pending_tokens = [], 0
            pieces.extend(_windows(paragraph, token_spans, settings))
            continue
        if pending and pending_tokens + count > settings.max_tokens:
            pieces.append("\n\n".join(pending))
            pending, pending_tokens = [], 0
        pending.append(paragraph)
        pending_tokens += count
        if pending_tokens >= settings.min_tokens:
            pieces.append("\n\n".join(pending))
            pending, pending_tokens = [], 0
    if pending:
        pieces.append("\n\n".join(pending))
    return [Chunk(i, piece) for i, piece in enumerate(pieces)]


def _windows(
    paragraph: str, spans: Sequence[tuple[int, int]], settings: ChunkSettings
) -> list[str]:
    """Cut a long paragraph into overlapping windows, ending at a sentence end in
    the last quarter of a window when there is one."""
    windows: list[str] = []
    # Where sentences start: just after ". " (any whitespace).
    starts = {m.end() for m in _SENTENCE_END.finditer(paragraph)}

    def starts_sentence(i: int) -> bool:
        return spans[i][0] in starts

    start = 0
    while start < len(spans):
        end = min(start + settings.max_tokens, len(spans))
        if end < len(spans):
            earliest = start + (settings.max_tokens * 3) // 4
            end = next((c for c in range(end, earliest, -1) if starts_sentence(c)), end)
        windows.append(paragraph[spans[start][0] : spans[end - 1][1]])
        if end >= len(spans):
            break
        # The next window repeats up to `overlap` tokens, from a sentence start
        # within them when there is one.
        lowest = max(end - settings.overlap, start + 1)
        start = next((i for i in range(lowest, end) if starts_sentence(i)), lowest)
    return windows
