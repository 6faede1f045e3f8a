"""The daemon's configuration file (TOML).

::

    db = "state/eventhub.db"        # relative to this file's folder
    workflows_dir = "workflows"
    plugins = ["plugins/crm.py"]    # files (relative) or module names

    [log]
    level = "INFO"

    [daemon]
    shutdown_timeout = 20

    [integrations.crm]
    kind = "crm"
    api_token = { env = "CRM_API_TOKEN" }

Secrets are referenced, never written: ``{ env = "NAME" }`` reads an environment
variable, ``{ file = "/run/secrets/name" }`` a file. A plain string under a key that
names a secret (``password``, ``api_token``, ``client_secret`` ...:
:func:`eventhub.redact.is_secret_key`) is refused.

A loaded config keeps the references as written. The part that needs a secret reads
it when it starts (:func:`resolve_secrets`): an integration when the hub starts it,
a webhook receiver when the HTTP server starts. So commands that only read the state
database never need a secret, and :func:`missing_secrets` lists every reference that
cannot be read, for ``eventhub run --check``. Every value read is registered with
:func:`eventhub.redact.register_secret`, so it is redacted wherever it would be
written (log lines, errors, run records, dead letters, events).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .redact import is_secret_key, register_secret

_SECTIONS: dict[str, dict[str, type]] = {
    "log": {"level": str, "json": bool},
    "bus": {
        "synchronous": str,
        "batch_size": int,
        "poll_interval": float,
        "max_data_bytes": int,
        "journal_size_limit": int,
    },
    "daemon": {"shutdown_timeout": float, "scheduler": bool, "local_socket": bool},
}
_TOP_LEVEL = {
    "db",
    "workflows_dir",
    "plugins",
    "source",
    "log",
    "bus",
    "daemon",
    "integrations",
}
# Sections that other parts of eventhub read (document sources, HTTP server,
# webhooks, the index); kept as written, secret references included.
_PASSED_ON = {"sources", "server", "webhooks", "index"}


@dataclass
class Config:
    """A loaded configuration; paths are absolute."""

    path: Path
    db: Path
    workflows_dir: Path | None = None
    plugins: list[str] = field(default_factory=list)
    source: str = "eventhub"
    log_level: str = "INFO"
    log_json: bool | None = None
    synchronous: str = "FULL"
    batch_size: int = 100
    poll_interval: float = 0.01
    max_data_bytes: int = 1024 * 1024
    #: Bytes the state database's write-ahead log is cut back to after a burst.
    journal_size_limit: int = 64 * 1024 * 1024
    shutdown_timeout: float = 20.0
    run_scheduler: bool = True
    #: Serve the read-only API on a Unix socket beside the state database
    #: (``eventhub search`` answers through it; see eventhub._localapi).
    local_socket: bool = True
    #: ``[integrations.NAME]`` tables; secret references not resolved.
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The sections other parts read (``sources``, ``server``, ``webhooks``,
    #: ``index``); secret references not resolved.
    sections: dict[str, Any] = field(default_factory=dict)
    #: The file as written, secrets as their references: safe to log.
    written: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def missing_secrets(self) -> list[str]:
        """Every secret reference of this config that cannot be read now, as
        messages naming the key and the variable or file (never a value)."""
        problems = []
        for name, settings in self.integrations.items():
            problems += missing_secrets(settings, f"integrations.{name}")
        for name, section in sorted(self.sections.items()):
            problems += missing_secrets(section, name)
        return problems


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check a configuration file.

    Raises:
        ConfigError: naming the file and the key that is wrong.
    """
    file = Path(path).absolute()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    try:
        return _build(file, raw)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def _build(file: Path, raw: dict[str, Any]) -> Config:
    unknown = set(raw) - _TOP_LEVEL - _PASSED_ON
    if unknown:
        raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
    folder = file.parent
    config = Config(path=file, db=folder / _text(raw, "db", "eventhub.db"), written=raw)
    if "workflows_dir" in raw:
        config.workflows_dir = folder / _text(raw, "workflows_dir")
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError("plugins must be a list of file paths or module names")
    config.plugins = plugins
    config.source = _text(raw, "source", config.source)
    section_values = {name: _section(raw, name) for name in _SECTIONS}
    log = section_values["log"]
    config.log_level = log.get("level", config.log_level).upper()
    if config.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"log.level {config.log_level!r} is not a log level")
    config.log_json = log.get("json")
    bus = section_values["bus"]
    config.synchronous = bus.get("synchronous", config.synchronous).upper()
    if config.synchronous not in ("FULL", "NORMAL"):
        raise ConfigError("bus.synchronous must be 'FULL' or 'NORMAL'")
    config.batch_size = _positive(bus, "bus.batch_size", config.batch_size)
    config.poll_interval = _positive(bus, "bus.poll_interval", config.poll_interval)
    config.max_data_bytes = _positive(bus, "bus.max_data_bytes", config.max_data_bytes)
    config.journal_size_limit = _positive(
        bus, "bus.journal_size_limit", config.journal_size_limit
    )
    daemon = section_values["daemon"]
    config.shutdown_timeout = _positive(
        daemon, "daemon.shutdown_timeout", config.shutdown_timeout
    )
    config.run_scheduler = daemon.get("scheduler", True)
    config.local_socket = daemon.get("local_socket", True)
    integrations = raw.get("integrations", {})
    if not isinstance(integrations, dict):
        raise ConfigError("integrations must be tables: [integrations.NAME]")
    for name, settings in integrations.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"integrations.{name} must be a table")
        if not isinstance(settings.get("kind"), str):
            raise ConfigError(f'integrations.{name} needs kind = "..."')
        _check_secrets(settings, f"integrations.{name}")
        config.integrations[name] = settings
    for name in _PASSED_ON & set(raw):
        _check_secrets(raw[name], name)
        config.sections[name] = raw[name]
    return config


def resolve_secrets(value: Any, where: str) -> Any:
    """A copy of ``value`` with each ``{ env = "NAME" }`` and ``{ file = "PATH" }``
    replaced by what it refers to (read now, and registered as a secret of this
    process: :func:`eventhub.redact.register_secret`). Values already resolved are
    kept.

    Args:
        value: A config table, list or value.
        where: Its config key (``integrations.crm``), for messages.

    Raises:
        ConfigError: naming the key and the variable or file that cannot be read
            (the first one; :func:`missing_secrets` lists them all).
    """
    reference = _reference(value, where)
    if reference is not None:
        return _read_secret(*reference, where)
    if isinstance(value, dict):
        return {
            key: resolve_secrets(item, f"{where}.{key}") for key, item in value.items()
        }
    if isinstance(value, list):
        return [resolve_secrets(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def refers_to_secrets(value: Any) -> bool:
    """Whether ``value`` holds a secret reference (anywhere inside)."""
    if isinstance(value, dict):
        return set(value) in ({"env"}, {"file"}) or any(
            refers_to_secrets(item) for item in value.values()
        )
    if isinstance(value, list):
        return any(refers_to_secrets(item) for item in value)
    return False


def missing_secrets(value: Any, where: str) -> list[str]:
    """Every reference in ``value`` that cannot be read now, as messages."""
    reference = _reference(value, where)
    if reference is not None:
        try:
            _read_secret(*reference, where)
        except ConfigError as exc:
            return [str(exc)]
        return []
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(f"{where}.{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
    return [problem for key, item in items for problem in missing_secrets(item, key)]


def _reference(value: Any, where: str) -> tuple[str, str] | None:
    """``("env", NAME)`` or ``("file", PATH)`` for a secret reference, else None."""
    if isinstance(value, dict) and set(value) in ({"env"}, {"file"}):
        (how, target) = next(iter(value.items()))
        if not isinstance(target, str) or not target:
            raise ConfigError(f'{where}: {{ {how} = "..." }} needs a non-empty string')
        return how, target
    return None


def _read_secret(how: str, target: str, where: str) -> str:
    value = _read_reference(how, target, where)
    register_secret(value)
    return value


def _read_reference(how: str, target: str, where: str) -> str:
    if how == "env":
        if target not in os.environ:
            raise ConfigError(f"{where}: environment variable {target} is not set")
        return os.environ[target]
    try:
        return Path(target).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read secret file {target}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: secret file {target} is not UTF-8 text") from None


def _check_secrets(value: Any, where: str) -> None:
    """Refuse secrets written in the file and malformed references (nothing is
    read: secrets are read by the part that uses them, when it starts)."""
    if _reference(value, where) is not None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if is_secret_key(str(key)) and isinstance(item, str) and item:
                raise ConfigError(
                    f"{where}.{key} is a secret written in the file; "
                    f'use {{ env = "NAME" }} or {{ file = "PATH" }}'
                )
            _check_secrets(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_secrets(item, f"{where}[{i}]")


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{name} must be a table: [{name}]")
    expected = _SECTIONS[name]
    for key, value in section.items():
        kind = expected.get(key)
        if kind is None:
            raise ConfigError(f"unknown setting {name}.{key}")
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{name}.{key} must be {kind.__name__}, not {value!r}")
    return section


def _text(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string")
    return value


def _positive(section: Mapping[str, Any], name: str, default: Any) -> Any:
    value = section.get(name.split(".", 1)[1], default)
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value
