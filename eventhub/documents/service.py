"""A hub's documents: its configured sources, the index, the sync engine.

``hub.documents`` (built on first use, since it loads the embedding model) is what
the CLI, the document-sync workflows and applications use::

    report = hub.documents.sync("docs")
    for hit in hub.documents.search("how do retries work?", k=5):
        print(hit.score, hit.title, hit.url)

``[index]`` in the config chooses the model and the FAISS cache file::

    [index]
    model = "all-MiniLM-L6-v2"     # any sentence-transformers name or path, or a
                                   # registered embedder: "NAME" or "NAME:ARGUMENT"
    path = "state/index.faiss"     # default: beside the state database
    batch_size = 16
    kind = "auto"                  # "flat" (exact), "ivf", "hnsw"; "auto": exact
                                   # below auto_threshold vectors, ivf above

and the approximate structures' tuning (``nlist``, ``nprobe``, ``m``,
``ef_construction``, ``ef_search``, ``auto_threshold``, ``save_after``: see
docs/documents.md and :class:`~eventhub.documents._faiss.IndexSettings`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import resolve_secrets
from ..errors import ConfigError, NameNotFound, UserError
from ..statedb import NamedLock
from ._faiss import IndexSettings
from .chunking import ChunkSettings
from .model import Source
from .store import DocumentIndex, Hit
from .sync import SyncEngine, SyncReport, parse_prune

if TYPE_CHECKING:
    from ..hub import Hub
    from ..integration import Integration
    from .embeddings import Embedder

#: The keys of a ``[sources.NAME]`` table that are settings of its sync (read by the
#: document-sync workflows and :meth:`DocumentService.sync`), not of the source.
#: (``timeout`` is the source's own: an HTTP source's request timeout; the sync
#: workflow's is ``sync_timeout``.)
SOURCE_SYNC_KEYS = {
    "schedule",
    "max_delete_share",
    "overlap",
    "prune",
    "sync_timeout",
    "sync_on_start",
}


class SourceNotFound(NameNotFound):
    """No document source configured under this name."""

    kind = "source"


class SyncInProgress(UserError):
    """Another process is syncing this source right now."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(f"a sync of {source!r} is already running in another process")


class DocumentService:
    """Sources, index and sync engine of one hub.

    Args:
        hub: The hub (its state database holds the index; its bus gets the events).
        embedder: The embedding model (default: the one ``[index] model`` names,
            among the embedders of the hub's plugins).
        index_path: The FAISS cache file (default beside the state database).
    """

    def __init__(
        self,
        hub: Hub,
        *,
        embedder: Embedder | None = None,
        index_path: str | Path | None = None,
        chunking: ChunkSettings | None = None,
    ) -> None:
        from .embeddings import embedder_factories, make_embedder

        settings: Mapping[str, Any] = hub.config.get("index", {})
        known = {"model", "path", "batch_size", "max_tokens", "overlap", "min_tokens"}
        unknown = set(settings) - known - set(_STRUCTURE_KEYS)
        if unknown:
            raise ConfigError(f"unknown setting index.{sorted(unknown)[0]}")
        structure = index_settings(settings)
        if embedder is None:
            options = (
                {"batch_size": settings["batch_size"]}
                if "batch_size" in settings
                else {}
            )
            embedder = make_embedder(
                settings.get("model"), factories=embedder_factories(hub.pm), **options
            )
        if chunking is None and {"max_tokens", "overlap", "min_tokens"} & set(settings):
            chunking = ChunkSettings(
                max_tokens=settings.get("max_tokens", 200),
                min_tokens=settings.get("min_tokens", 24),
                overlap=settings.get("overlap", 32),
            )
        self.hub = hub
        self.embedder = embedder
        self.index = DocumentIndex(
            hub.db,
            embedder,
            path=index_path or settings.get("path"),
            chunking=chunking,
            settings=structure,
        )
        self.engine = SyncEngine(hub.db, self.index, bus=hub.bus)
        self._locks: dict[str, threading.Lock] = {}

    def sources(self) -> dict[str, Source]:
        """The hub's document sources, by name (each built, its secrets read)."""
        return self.hub.get_integrations(Source)  # type: ignore[type-abstract]

    def configured(self) -> dict[str, str]:
        """The configured sources' kinds, by name, without building any (no
        secret is read)."""
        return {
            name: str(settings.get("kind"))
            for name, settings in self.hub.config.get("sources", {}).items()
        }

    def status(self) -> list[dict[str, Any]]:
        """Each configured source (and any source the index still holds documents
        of): its kind, documents, last sync, last prune, failures and skips."""
        kinds = self.configured()
        counts = self.index.document_counts()
        found = []
        for name in sorted(set(kinds) | set(counts)):
            state = self.engine.state(name)
            settings = self.hub.config.get("sources", {}).get(name, {})
            found.append(
                {
                    "name": name,
                    "kind": kinds.get(name),
                    "configured": name in kinds,
                    "documents": counts.get(name, 0),
                    "last_sync": state["last_sync"],
                    "last_full_sync": state["last_full_sync"],
                    "last_prune": state["last_prune"],
                    # As configured (None: the kind's default).
                    "prune": settings.get("prune"),
                    "cursor": state["cursor"],
                    "failures": len(state["failures"]),
                    "skipped": len(state["skipped"]),
                }
            )
        return found

    def documents(self, name: str) -> list[dict[str, Any]]:
        """The indexed documents of a configured source (see
        :meth:`DocumentIndex.documents`).

        Raises:
            SourceNotFound: for a name that is neither configured nor indexed.
        """
        if name not in self.configured() and name not in self.index.document_counts():
            raise SourceNotFound(name, sorted(self.configured()))
        return self.index.documents(name)

    def source(self, name: str) -> Source:
        """The source called ``name``, built (only it: a source whose secret is
        missing never stops another one).

        Raises:
            SourceNotFound: listing the configured sources.
        """
        try:
            found: Any = self.hub.get_integration(name)
        except NameNotFound:
            found = None
        if not isinstance(found, Source):
            try:
                known = sorted(self.sources())
            except ConfigError:  # some source cannot be built: name none
                known = []
            raise SourceNotFound(name, known)
        return found

    def sync(self, name: str, **options: Any) -> SyncReport:
        """Sync one source (see :meth:`SyncEngine.sync`); per-source settings from
        ``[sources.NAME]`` (``max_delete_share``, ``overlap``, ``prune``) apply."""
        source = self.source(name)
        settings = self.hub.config.get("sources", {}).get(name, {})
        for key in ("overlap", "max_delete_share"):
            if key in settings:
                options.setdefault(key, float(settings[key]))
        if "prune" in settings:
            options.setdefault(
                "prune", parse_prune(settings["prune"], f"sources.{name}")
            )
        with self._exclusive(name):
            return self.engine.sync(source, **options)

    def sync_ids(self, name: str, ids: list[str]) -> SyncReport:
        """Refetch some documents of a source (event-driven sync)."""
        source = self.source(name)
        with self._exclusive(name):
            return self.engine.sync_ids(source, ids)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """Documents best matching ``query`` (see :meth:`DocumentIndex.search`)."""
        if source is not None:
            self.source(source)
        return self.index.search(query, k, source=source, metadata=metadata)

    def close(self) -> None:
        self.index.close()

    def _exclusive(self, name: str) -> _Exclusive:
        lock = self._locks.setdefault(name, threading.Lock())
        return _Exclusive(
            lock, NamedLock(self.hub.db.lock_file(), f"sync:{name}"), name
        )


class _Exclusive:
    """One sync of a source at a time, in this process and across processes."""

    def __init__(self, local: threading.Lock, shared: NamedLock, name: str) -> None:
        self.local = local
        self.shared = shared
        self.name = name

    def __enter__(self) -> None:
        self.local.acquire()
        if not self.shared.acquire():
            self.local.release()
            raise SyncInProgress(self.name)

    def __exit__(self, *exc: object) -> None:
        self.shared.release()
        self.local.release()


def configured_sources(
    kinds: Mapping[str, type[Integration]],
    sources: Mapping[str, Mapping[str, Any]],
    *,
    folder: Path,
) -> Iterator[tuple[str, type[Source], Mapping[str, Any], Callable[[], Source]]]:
    """The sources a config's ``[sources.NAME]`` tables describe, for the hub to
    register: ``(name, class, settings, build)``, where ``build()`` makes the
    source, reading its secrets then (so the hub can wait until it is needed).

    Args:
        kinds: The integration classes the plugins registered, by kind.
        sources: The ``[sources]`` table: settings by source name.
        folder: The config file's folder; a relative ``path`` is taken from it.

    Raises:
        ConfigError: for a ``kind`` that is not a registered document source.
    """
    for name, settings in sources.items():
        cls = _source_class(kinds, name, settings)
        if "prune" in settings:
            parse_prune(settings["prune"], f"sources.{name}")
        build = functools.partial(_make_source, cls, name, settings, folder=folder)
        yield name, cls, settings, build


def _source_class(
    kinds: Mapping[str, type[Integration]], name: str, settings: Mapping[str, Any]
) -> type[Source]:
    kind = settings.get("kind")
    cls = kinds.get(kind) if isinstance(kind, str) else None
    if cls is None or not issubclass(cls, Source):
        known = sorted(k for k, c in kinds.items() if issubclass(c, Source))
        raise ConfigError(
            f"sources.{name}: kind {kind!r} is not a document source"
            f" (known: {', '.join(known) or 'none'})"
        )
    return cls


def _make_source(
    cls: type[Source], name: str, settings: Mapping[str, Any], *, folder: Path
) -> Source:
    """A configured ``[sources.NAME]``, its secrets read now; a relative ``path``
    is taken from the config file's folder."""
    resolved = resolve_secrets(settings, f"sources.{name}")
    options = {
        k: v for k, v in resolved.items() if k != "kind" and k not in SOURCE_SYNC_KEYS
    }
    if isinstance(options.get("path"), str) and not Path(options["path"]).is_absolute():
        options["path"] = str(folder / options["path"])
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"sources.{name}: {exc}") from None


#: The ``[index]`` keys of the FAISS structure, with the type each must have.
_STRUCTURE_KEYS: dict[str, type] = {
    "kind": str,
    "auto_threshold": int,
    "nlist": int,
    "nprobe": int,
    "m": int,
    "ef_construction": int,
    "ef_search": int,
    "save_after": float,
}


def index_settings(settings: Mapping[str, Any]) -> IndexSettings:
    """The FAISS structure the ``[index]`` table asks for; a wrong key's value is
    a :class:`ConfigError` naming it."""
    chosen: dict[str, Any] = {}
    for key, kind in _STRUCTURE_KEYS.items():
        if key not in settings:
            continue
        value = settings[key]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise ConfigError(
                f"index.{key} must be {'a number' if kind is float else kind.__name__}"
                f", not {value!r}"
            )
        chosen[key] = value
    try:
        return IndexSettings(**chosen)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
