"""Importing user code by file path, under private module names.

A user's ``workflows/reports.py`` or ``plugins/crm.py`` is imported as
``eventhub_user.<stem>_<hash>``, so it never shadows (or is shadowed by) an installed
package of the same name, and two folders can hold files of the same name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from .errors import ConfigError, ModuleLoadError


def import_file(
    path: Path, error: type[ModuleLoadError] = ModuleLoadError
) -> ModuleType:
    """Import a Python file by path.

    Raises:
        ModuleLoadError (or ``error``): naming the file and, where known, the line.
    """
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"eventhub_user.{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise error(str(path), "cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError as exc:
        del sys.modules[name]
        raise error(str(path), str(exc)) from exc
    except BaseException as exc:  # an import error of any kind, even SystemExit
        del sys.modules[name]
        line = _line_in(exc, path)
        where = f" (line {line})" if line else ""
        raise error(
            str(path), f"import failed{where}: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def import_plugin(spec: str, folder: Path) -> ModuleType:
    """A plugin named in the config: a file (``plugins/crm.py``, relative to the
    config's folder) or an importable module name (``acme_eventhub.plugin``).

    Raises:
        ModuleLoadError: when it cannot be imported.
    """
    if spec.endswith(".py") or "/" in spec:
        path = (folder / spec).resolve()
        if not path.is_file():
            raise ModuleLoadError(str(path), "plugin file does not exist")
        return import_file(path)
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        raise ModuleLoadError(
            spec, f"import failed: {type(exc).__name__}: {exc}"
        ) from exc


def _line_in(exc: BaseException, path: Path) -> int | None:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).resolve() == path:
            return frame.lineno
    return None
