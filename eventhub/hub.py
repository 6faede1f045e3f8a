"""The hub: the object an application embeds, and that the daemon runs.

It owns the state database, the event log and bus, the plugin manager and the
registered integrations::

    with Hub("app.db") as hub:
        hub.bus.subscribe("user.*", on_user, name="crm-sync")
        hub.bus.publish("user.created", {"id": 7})
        hub.bus.drain()
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pluggy
import structlog

from .bus import Clock, EventBus
from .config import Config, load_config, refers_to_secrets, resolve_secrets
from .errors import ConfigError, IntegrationNotFound
from .eventlog.base import EventLog
from .eventlog.sqlite import SQLiteLog
from .events import DEFAULT_MAX_DATA_BYTES
from .integration import Integration
from .orchestrator.engine import WorkflowOrchestrator
from .orchestrator.workflow import Workflow
from .plugins import config_plugins, make_plugin_manager
from .statedb import DEFAULT_JOURNAL_SIZE_LIMIT, StateDB, Synchronous

if TYPE_CHECKING:
    from .documents.service import DocumentService

log = structlog.get_logger(__name__)
IntegrationT = TypeVar("IntegrationT", bound=Integration)


class Hub:
    """Config, state database, bus, plugins and integrations in one place.

    Args:
        path: The state database file (created if missing), or ``":memory:"``.
        synchronous: ``"FULL"`` (default; a returned publish survives power loss) or
            ``"NORMAL"`` (faster; the last commits may be lost on power loss, never
            corrupted).
        busy_timeout: Seconds to wait on another writer before retrying.
        source: Default ``source`` of events published through this hub.
        clock: Wall-clock function for retries and retention (tests pass a fake).
        plugins: Extra plugin objects (modules or instances with ``@hookimpl``).
        load_entrypoints: Load plugins from the ``eventhub`` entry-point group
            (default: yes, unless ``EVENTHUB_NO_ENTRYPOINTS`` is set).
        poll_interval: How often idle consumers look for events from other processes.
        batch_size: Events per durable delivery step (bounds redelivery after a crash).
        max_data_bytes: Largest event payload accepted.
        config: Settings for plugins and integrations, kept as ``hub.config``.
        readonly: Open the state database read-only (it must exist): the hub can
            read history, runs, dead letters and the index, and raises
            :class:`~eventhub.errors.StorageReadOnly` for anything that writes.
        journal_size_limit: Bytes the state database's write-ahead log is cut back
            to after a checkpoint (-1: never).
        eventlog: The event log backend (default: a
            :class:`~eventhub.eventlog.sqlite.SQLiteLog` in the state database),
            e.g. a :class:`~eventhub.eventlog.memory.MemoryLog`; the hub closes it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        source: str = "eventhub",
        clock: Clock = time.time,
        plugins: Iterable[Any] = (),
        load_entrypoints: bool | None = None,
        poll_interval: float = 0.01,
        batch_size: int = 100,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        retention_interval: float = 60.0,
        config: Mapping[str, Any] | None = None,
        readonly: bool = False,
        journal_size_limit: int = DEFAULT_JOURNAL_SIZE_LIMIT,
        eventlog: EventLog | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.config: dict[str, Any] = dict(config or {})
        self.db = StateDB(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            readonly=readonly,
            journal_size_limit=journal_size_limit,
        )
        try:
            self.log: EventLog = (
                SQLiteLog(self.db, poll_interval=poll_interval)
                if eventlog is None
                else eventlog
            )
        except BaseException:
            self.db.close()
            raise
        self.bus = EventBus(
            self.log,
            source=source,
            clock=clock,
            batch_size=batch_size,
            max_data_bytes=max_data_bytes,
        )
        self.orchestrator = WorkflowOrchestrator(self)
        self.retention_interval = retention_interval
        self._extra_plugins = list(plugins)
        self._load_entrypoints = load_entrypoints
        self._pm: pluggy.PluginManager | None = None
        # Two namespaces: document sources ([sources.NAME]) and the other
        # integrations ([integrations.NAME]), so a vendor can have both kinds.
        self._integration_kinds: dict[str, type[Integration]] = {}
        self._source_kinds: dict[str, type[Integration]] = {}
        self._integrations: dict[str, Integration] = {}
        # Configured integrations that refer to secrets: built when first needed.
        self._deferred: dict[
            str, tuple[type[Integration], Callable[[], Integration]]
        ] = {}
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._maintenance: threading.Thread | None = None
        self._documents: DocumentService | None = None
        self._stopping = threading.Event()

    @classmethod
    def from_config(
        cls, config: str | os.PathLike[str] | Config, **options: Any
    ) -> Hub:
        """A hub as a configuration file describes it: state database, plugins,
        integrations and workflows (not started).

        An integration (or document source) whose settings refer to a secret is
        built when it is first needed: when the hub starts, or when it is asked
        for by name. Its secrets are read then, so a hub that only reads its
        state database never needs them.

        Raises:
            ConfigError: naming what is wrong (file, key, module, integration kind).
        """
        if not isinstance(config, Config):
            config = load_config(config)
        plugins = config_plugins(config)
        hub = cls(
            config.db,
            synchronous=config.synchronous,  # type: ignore[arg-type]
            source=config.source,
            plugins=[*plugins, *options.pop("plugins", ())],
            poll_interval=config.poll_interval,
            batch_size=config.batch_size,
            max_data_bytes=config.max_data_bytes,
            journal_size_limit=config.journal_size_limit,
            config={**config.sections, "integrations": config.integrations},
            **options,
        )
        try:
            kinds = hub.integration_kinds()
            for name, settings in config.integrations.items():
                kind = settings["kind"]
                if kind not in kinds:
                    known = ", ".join(sorted(kinds)) or "none"
                    raise ConfigError(
                        f"integrations.{name}: unknown kind {kind!r} (known: {known})"
                    )
                hub._add_configured(
                    name,
                    kinds[kind],
                    settings,
                    functools.partial(_make_integration, kinds[kind], name, settings),
                )
            sources = config.sections.get("sources", {})
            if sources:  # built by the documents service (the rag extra)
                from .documents.service import configured_sources

                for name, kind_cls, table, build in configured_sources(
                    hub.source_kinds(), sources, folder=config.folder
                ):
                    hub._add_configured(name, kind_cls, table, build)
            if config.workflows_dir is not None:
                hub.orchestrator.load_workflows(config.workflows_dir)
        except BaseException:
            hub.close()
            raise
        return hub

    def _add_configured(
        self,
        name: str,
        cls: type[Integration],
        settings: Mapping[str, Any],
        build: Callable[[], Integration],
    ) -> None:
        """Register a configured integration (of class ``cls``, built by
        ``build``) now, or, if its ``settings`` refer to secrets, when it is
        first needed."""
        if not refers_to_secrets(settings):
            self.register_integration(name, build())
            return
        with self._lock:
            if name in self._integrations or name in self._deferred:
                raise ConfigError(
                    f"an integration named {name!r} is already registered"
                )
            self._deferred[name] = (cls, build)

    def _build_deferred(self, names: Iterable[str]) -> None:
        """Build the deferred integrations among ``names``, reading their secrets.

        Raises:
            ConfigError: for a secret that cannot be read or a bad setting; the
                integration stays deferred (asking again fails again).
        """
        for name in list(names):
            with self._lock:
                if name not in self._deferred:
                    continue
                integration = self._deferred[name][1]()
                del self._deferred[name]
                self.register_integration(name, integration)

    @property
    def documents(self) -> DocumentService:
        """Sources, index and sync engine (loads the embedding model on first use)."""
        if self._documents is None:
            with self._lock:
                if self._documents is None:
                    from .documents.service import DocumentService

                    self._documents = DocumentService(self)
        return self._documents

    @documents.setter
    def documents(self, service: DocumentService) -> None:
        """Use a prepared service (another embedder, say; tests use the hashing one)."""
        self._documents = service

    @property
    def path(self) -> str:
        """The state database file."""
        return str(self.db.path)

    # Plugins ----------------------------------------------------------------

    @property
    def pm(self) -> pluggy.PluginManager:
        """The plugin manager, loaded on first use."""
        if self._pm is None:
            with self._lock:
                if self._pm is None:
                    pm = make_plugin_manager(
                        self._extra_plugins, load_entrypoints=self._load_entrypoints
                    )
                    pm.hook.register_integrations(register=self._register_kind)
                    pm.hook.register_workflows(
                        register=self._register_workflow, hub=self
                    )
                    self._pm = pm
        return self._pm

    def _register_kind(self, cls: type[Integration]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Integration)):
            raise ConfigError(
                f"register_integrations: {cls!r} is not an Integration class"
            )
        if not cls.kind:
            raise ConfigError(f"register_integrations: {cls.__name__} has no kind")
        from .documents.model import Source  # what registers a source imports it

        is_source = issubclass(cls, Source)
        kinds = self._source_kinds if is_source else self._integration_kinds
        existing = kinds.get(cls.kind)
        if existing is not None and existing is not cls:
            raise ConfigError(
                f"{'source' if is_source else 'integration'} kind {cls.kind!r} is "
                f"registered twice ({existing.__module__}.{existing.__name__} and "
                f"{cls.__module__}.{cls.__name__})"
            )
        kinds[cls.kind] = cls

    def _register_workflow(self, workflow: Workflow) -> None:
        self.orchestrator.register_workflow(workflow)

    def integration_kinds(self) -> dict[str, type[Integration]]:
        """Integration classes contributed by plugins, by kind: for
        ``[integrations.NAME]``. A source kind is one too, unless an integration
        has its name (``slack`` posts messages; the ``slack`` source reads them)."""
        self.pm  # noqa: B018 - loading the plugins fills the registry
        return {**self._source_kinds, **self._integration_kinds}

    def source_kinds(self) -> dict[str, type[Integration]]:
        """Document source classes (:class:`~eventhub.documents.Source`)
        contributed by plugins, by kind: for ``[sources.NAME]``."""
        self.pm  # noqa: B018 - loading the plugins fills the registry
        return dict(self._source_kinds)

    def workflows(self) -> dict[str, Workflow]:
        """Every workflow: from plugins, workflow folders and direct registration."""
        self.pm  # noqa: B018 - loading the plugins registers their workflows
        return self.orchestrator.get_workflows()

    # Integrations -----------------------------------------------------------

    def register_integration(self, name: str, integration: Integration) -> Integration:
        """Register an integration instance under a name.

        Its ``handle_events`` patterns are subscribed to ``handle_event`` (durably, as
        subscription ``integration.<name>``, unless it says ``delivery = "inline"``).
        On a running hub it is started at once.

        Raises:
            ConfigError: for a name already taken or an object that is no Integration.
        """
        if not isinstance(integration, Integration):
            raise ConfigError(f"{integration!r} is not an eventhub Integration")
        if not isinstance(name, str) or not name:
            raise ConfigError("an integration needs a non-empty name")
        with self._lock:
            if name in self._integrations or name in self._deferred:
                raise ConfigError(
                    f"an integration named {name!r} is already registered"
                )
            integration.name = name
            if integration.handle_events:
                self.bus.subscribe(
                    list(integration.handle_events),
                    integration.handle_event,
                    name=f"integration.{name}",
                    mode=integration.delivery,
                    filter=integration.event_filter,
                    retry=integration.retry,
                )
            self._integrations[name] = integration
            if self._started:
                integration.start(self)
        return integration

    def get_integration(self, name: str) -> Integration:
        """The integration registered under ``name`` (built now if it was
        waiting for its secrets).

        Raises:
            IntegrationNotFound: listing the known names.
            ConfigError: if it cannot be built (a secret cannot be read ...).
        """
        self._build_deferred([name])
        try:
            return self._integrations[name]
        except KeyError:
            known = sorted({*self._integrations, *self._deferred})
            raise IntegrationNotFound(name, known) from None

    @overload
    def get_integrations(self) -> dict[str, Integration]: ...

    @overload
    def get_integrations(
        self, of_type: type[IntegrationT]
    ) -> dict[str, IntegrationT]: ...

    def get_integrations(self, of_type: type[Any] | None = None) -> dict[str, Any]:
        """Every registered integration (or those that are an ``of_type``, say
        :class:`~eventhub.documents.model.Source`), by name, built.

        Raises:
            ConfigError: if one cannot be built (a secret cannot be read ...).
        """
        wanted: type[Any] = of_type or Integration
        self._build_deferred(
            name for name, (cls, _) in self._deferred.items() if issubclass(cls, wanted)
        )
        return {
            name: integration
            for name, integration in self._integrations.items()
            if isinstance(integration, wanted)
        }

    # Lifecycle --------------------------------------------------------------

    def start(self, *, run_scheduler: bool = True) -> Hub:
        """Start integrations, the scheduler, the durable delivery workers and
        retention. ``run_scheduler=False`` leaves scheduled workflows to another
        process (only one scheduler should fire a schedule)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this hub is closed")
            if self._started:
                return self
            pm = self.pm
            self._build_deferred(sorted(self._deferred))
            for integration in self._integrations.values():
                integration.start(self)
            self.orchestrator.start(run_scheduler=run_scheduler)
            self.bus.start()
            self._started = True
            self._stopping.clear()
            if self.bus.has_retention:
                self._maintenance = threading.Thread(
                    target=self._maintain, name="eventhub:retention", daemon=True
                )
                self._maintenance.start()
        pm.hook.startup(hub=self)
        return self

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop delivery and integrations. In-flight handlers get ``timeout`` seconds
        to finish; unfinished deliveries stay unacknowledged and are redelivered.

        Returns:
            False if some handler was still running at the deadline.
        """
        with self._lock:
            if not self._started:
                return True
            self._started = False
        self._stopping.set()
        deadline = time.monotonic() + timeout
        self.orchestrator.stop()
        finished = self.bus.stop(timeout)
        finished &= self.orchestrator.wait_idle(max(0.0, deadline - time.monotonic()))
        if self._maintenance is not None:
            self._maintenance.join(5.0)
            self._maintenance = None
        for integration in self._integrations.values():
            try:
                integration.stop()
            except Exception as exc:
                log.error(
                    "integration stop failed",
                    integration=integration.name,
                    exc_info=exc,
                )
        self.pm.hook.shutdown(hub=self)
        return finished

    def close(self) -> None:
        """Stop, then release the database (a ``":memory:"`` one is deleted)."""
        if self._closed:
            return
        self.stop()
        with self._lock:
            if self._documents is not None:
                self._documents.close()
            self.bus.close()
            self.log.close()
            self.db.close()
            self._closed = True

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._started

    def _maintain(self) -> None:
        while not self._stopping.wait(self.retention_interval):
            try:
                deleted = self.bus.trim()
                if deleted:
                    log.info("retention trimmed events", deleted=deleted)
            except Exception as exc:
                log.error("retention failed", exc_info=exc)

    def __repr__(self) -> str:
        return f"<Hub {self.path}>"


def _make_integration(
    cls: type[Integration], name: str, settings: dict[str, Any]
) -> Integration:
    """A configured ``[integrations.NAME]``, its secrets read now."""
    resolved = resolve_secrets(settings, f"integrations.{name}")
    options = {k: v for k, v in resolved.items() if k != "kind"}
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"integrations.{name}: {exc}") from None
