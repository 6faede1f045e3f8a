"""Finding plugins: built-ins, the ``eventhub`` entry-point group, extra objects.

Built-in integrations and workflows are plugins like any other, listed in
:data:`DEFAULT_PLUGINS`. Entry points are loaded unless ``EVENTHUB_NO_ENTRYPOINTS`` is
set (the test suite sets it, so installed third-party plugins cannot change results).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from ._modules import import_plugin
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

DEFAULT_PLUGINS: tuple[str, ...] = (
    "eventhub.integrations.logsink",
    "eventhub.integrations.filesystem",
    "eventhub.integrations.rest",
    "eventhub.integrations.slack",
    "eventhub.integrations.jira",
    "eventhub.webhooks.builtin",
    "eventhub.documents.builtin",
    "eventhub.integrations.confluence",
    "eventhub.integrations.notion",
    "eventhub.integrations.gdrive",
    "eventhub.integrations.imap",
    "eventhub.integrations.sharepoint",
    "eventhub.integrations.s3",
    "eventhub.integrations.sql",
    "eventhub.integrations.redis_queue",
    "eventhub.integrations.rabbitmq",
    "eventhub.workflows.document_sync",
)
ENTRYPOINT_GROUP = "eventhub"


def make_plugin_manager(
    extra: Iterable[Any] = (), *, load_entrypoints: bool | None = None
) -> pluggy.PluginManager:
    """A plugin manager holding the built-ins, entry-point plugins and ``extra``.

    Raises:
        ConfigError: when a plugin implements a hook that does not exist (a typo in a
            ``@hookimpl`` name fails loudly instead of never being called).
    """
    pm = pluggy.PluginManager("eventhub")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints is None:
        load_entrypoints = _entrypoints_on()
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRYPOINT_GROUP)
    for plugin in extra:
        if not pm.is_registered(plugin):
            pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin error: {exc}") from exc
    return pm


def entrypoint_plugins_installed() -> bool:
    """Whether an installed package declares a plugin in the ``eventhub`` group (and
    entry points are not turned off), without importing any plugin."""
    return _entrypoints_on() and bool(entry_points(group=ENTRYPOINT_GROUP))


def _entrypoints_on() -> bool:
    return not os.environ.get("EVENTHUB_NO_ENTRYPOINTS")


def config_plugins(config: Config) -> list[ModuleType]:
    """The plugins a config names in ``plugins = [...]``, imported (files relative
    to the config's folder, or module names).

    Raises:
        ModuleLoadError: naming the plugin that cannot be imported.
    """
    return [import_plugin(spec, config.folder) for spec in config.plugins]
