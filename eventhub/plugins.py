"""Finding plugins: built-ins, the ``eventhub`` entry-point group, extra objects.

Built-in integrations and workflows are plugins like any other, listed in
:data:`DEFAULT_PLUGINS`. Entry points are loaded unless ``EVENTHUB_NO_ENTRYPOINTS`` is
set (the test suite sets it, so installed third-party plugins cannot change results).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError

DEFAULT_PLUGINS: tuple[str, ...] = (
    "eventhub.integrations.logsink",
    "eventhub.integrations.filesystem",
    "eventhub.integrations.rest",
    "eventhub.integrations.slack",
    "eventhub.integrations.jira",
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
        load_entrypoints = not os.environ.get("EVENTHUB_NO_ENTRYPOINTS")
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


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of the registered plugins, for status output."""
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)
