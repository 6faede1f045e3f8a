"""Every hook has a test and a documentation entry."""

import re

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
        "register_integrations",
        "register_webhook_receivers",
        "register_workflows",
        "shutdown",
        "startup",
    ]


def test_every_hook_has_a_docs_section():
    docs = (ROOT / "docs" / "hooks.md").read_text()
    headings = set(re.findall(r"^## (\w+)$", docs, re.MULTILINE))
    assert set(HOOKS) <= headings


def test_every_hook_has_a_test():
    tests = "".join(
        path.read_text()
        for path in (ROOT / "tests").glob("test_*.py")
        if path.name != "test_plugin_hooks.py"
    )
    assert HELPERS.exists()
    for hook in HOOKS:
        assert re.search(rf"def {hook}\(|{hook}=hookimpl", tests), f"no test for {hook}"
