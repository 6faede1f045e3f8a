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
names a secret (``password``, ``api_token``, ``client_secret`` ...) is refused.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

_SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|passphrase|secret|token|api_?key|private_key|credentials?)$",
    re.IGNORECASE,
)
_SECTIONS: dict[str, dict[str, type]] = {
    "log": {"level": str, "json": bool},
    "bus": {
        "synchronous": str,
        "batch_size": int,
        "poll_interval": float,
        "max_data_bytes": int,
    },
    "daemon": {"shutdown_timeout": float, "scheduler": bool},
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
# webhooks, the index); kept as written, after secrets are resolved.
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
    shutdown_timeout: float = 20.0
    run_scheduler: bool = True
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    #: The file as written, secrets as their references: safe to log.
    written: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent


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
    daemon = section_values["daemon"]
    config.shutdown_timeout = _positive(
        daemon, "daemon.shutdown_timeout", config.shutdown_timeout
    )
    config.run_scheduler = daemon.get("scheduler", True)
    integrations = raw.get("integrations", {})
    if not isinstance(integrations, dict):
        raise ConfigError("integrations must be tables: [integrations.NAME]")
    for name, settings in integrations.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"integrations.{name} must be a table")
        if not isinstance(settings.get("kind"), str):
            raise ConfigError(f'integrations.{name} needs kind = "..."')
        config.integrations[name] = resolve_secrets(settings, f"integrations.{name}")
    for name in _PASSED_ON & set(raw):
        config.sections[name] = resolve_secrets(raw[name], name)
    return config


def resolve_secrets(value: Any, where: str) -> Any:
    """Replace ``{ env = "NAME" }`` and ``{ file = "PATH" }`` by what they refer to.

    Raises:
        ConfigError: for a missing variable or file, or a secret written inline.
    """
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return os.environ[name]
        if set(value) == {"file"}:
            try:
                return Path(str(value["file"])).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{where}: cannot read secret file: {exc.strerror}"
                ) from None
        resolved = {}
        for key, item in value.items():
            if _SECRET_KEY.search(str(key)) and isinstance(item, str) and item:
                raise ConfigError(
                    f"{where}.{key} is a secret written in the file; "
                    f'use {{ env = "NAME" }} or {{ file = "PATH" }}'
                )
            resolved[key] = resolve_secrets(item, f"{where}.{key}")
        return resolved
    if isinstance(value, list):
        return [resolve_secrets(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


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
