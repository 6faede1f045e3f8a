"""The layer rules that import-linter's contracts (setup.cfg, ``make lint``) cannot
see: no import cycle between modules, and no import of the first-party plugins by
the core (they live outside the package's folder, where import-linter never looks).
"""

import ast
import importlib

import grimp
import pytest

from .conftest import ROOT

CORE = sorted((ROOT / "eventhub").rglob("*.py"))
PLUGIN_PACKAGES = ("eventhub.integrations", "eventhub.workflows")


def _cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One import cycle among the graph's modules (a depth-first search), or None."""
    state: dict[str, str] = {}  # "open" while on the path, then "done"
    for start in sorted(graph.modules):
        if start in state:
            continue
        path, state[start] = [start], "open"
        stack = [iter(sorted(graph.find_modules_directly_imported_by(start)))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
                state[path.pop()] = "done"
            elif state.get(following) == "open":
                return path[path.index(following) :] + [following]
            elif following not in state:
                path.append(following)
                state[following] = "open"
                imported = graph.find_modules_directly_imported_by(following)
                stack.append(iter(sorted(imported)))
    return None


def test_no_module_imports_another_in_a_cycle():
    """Function-level imports count; imports under TYPE_CHECKING never run."""
    graph = grimp.build_graph(
        "eventhub", exclude_type_checking_imports=True, cache_dir=None
    )
    assert "eventhub.hub" in graph.find_modules_directly_imported_by("eventhub.cli")
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.d")
    assert _cycle(graph) is None
    graph.add_import(importer="a.d", imported="a.b")
    assert _cycle(graph) == ["a.b", "a.c", "a.d", "a.b"]


def _imported_names(tree: ast.AST) -> list[str]:
    """Every module a file imports, at any level, relative ones left out (they
    stay inside eventhub/), plus ``importlib.import_module("...")`` literals."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(str(node.args[0].value))
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_imports_a_first_party_plugin(path):
    tree = ast.parse(path.read_text(), str(path))
    imported = _imported_names(tree)
    assert [name for name in imported if name.startswith(PLUGIN_PACKAGES)] == []


def test_the_core_names_the_first_party_plugins_only_in_default_plugins():
    from eventhub.plugins import DEFAULT_PLUGINS

    naming = [
        path.relative_to(ROOT).as_posix()
        for path in CORE
        if any(package in path.read_text() for package in PLUGIN_PACKAGES)
    ]
    assert naming == ["eventhub/plugins.py"]
    assert all(importlib.import_module(name) for name in DEFAULT_PLUGINS)


@pytest.mark.parametrize(
    "name, home",
    [
        ("HttpError", "eventhub.http"),
        ("HttpTransientError", "eventhub.http"),
        ("HostNotAllowed", "eventhub.http"),
        ("InvalidToken", "eventhub.auth"),
        ("ReauthorizationRequired", "eventhub.auth"),
    ],
)
def test_errors_that_moved_are_still_importable_from_eventhub_errors(name, home):
    import eventhub.errors

    assert getattr(eventhub.errors, name) is getattr(
        importlib.import_module(home), name
    )
    assert name in dir(eventhub.errors)


def test_eventhub_errors_imports_no_layer_above_it():
    tree = ast.parse((ROOT / "eventhub" / "errors.py").read_text())
    top_level = [
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level == 1
    ]
    assert top_level == ["redact"]
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        import eventhub.errors

        eventhub.errors.Nothing  # noqa: B018
