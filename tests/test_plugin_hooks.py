"""Every hook has a test and a documentation entry, and the entry shows the hook's
real signature."""

import inspect
import re

import pytest

from eventhub import hookspecs

from .conftest import HELPERS, ROOT

HOOKS = sorted(
    name
    for name in dir(hookspecs)
    if hasattr(getattr(hookspecs, name), "eventhub_spec")
)


def test_the_hooks_are_the_documented_contract():
    assert HOOKS == [
        "register_commands",
        "register_embedders",
        "register_integrations",
        "register_webhook_receivers",
        "register_workflows",
        "shutdown",
        "startup",
    ]


def docs_sections():
    """The sections of docs/hooks.md by heading (``## name``)."""
    parts = re.split(
        r"^## (\w+)\n", (ROOT / "docs" / "hooks.md").read_text(), flags=re.M
    )
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def parameters(text):
    """The parameter names of an argument list: ``"register, hub=None"``."""
    names = (re.split(r"[:=]", part)[0].strip() for part in text.split(","))
    return [name for name in names if name and name != "self"]


def spec_parameters(hook):
    return list(inspect.signature(getattr(hookspecs, hook)).parameters)


def test_every_hook_has_a_docs_section():
    assert set(HOOKS) <= set(docs_sections())


@pytest.mark.parametrize("hook", HOOKS)
def test_each_docs_section_opens_with_the_hookspecs_signature(hook):
    shown = re.match(rf"`{hook}\(([^)]*)\)`", docs_sections()[hook].lstrip())
    assert shown, f"docs/hooks.md: ## {hook} does not open with `{hook}(...)`"
    assert parameters(shown.group(1)) == spec_parameters(hook)


@pytest.mark.parametrize("hook", HOOKS)
def test_each_documented_implementation_takes_only_the_hooks_arguments(hook):
    # pluggy passes an implementation the arguments it names: a subset will do.
    shown = re.findall(rf"^def {hook}\(([^)]*)\)", docs_sections()[hook], re.M)
    assert shown, f"docs/hooks.md: ## {hook} has no example implementation"
    for arguments in shown:
        assert set(parameters(arguments)) <= set(spec_parameters(hook)), arguments


def test_every_hook_has_a_test():
    tests = "".join(
        path.read_text()
        for path in (ROOT / "tests").glob("test_*.py")
        if path.name != "test_plugin_hooks.py"
    )
    assert HELPERS.exists()
    for hook in HOOKS:
        assert re.search(rf"def {hook}\(|{hook}=hookimpl", tests), f"no test for {hook}"
