"""eventhub's benchmarks, each against a reference run in the same process.

Run them with ``python -m bench`` (or ``make bench``); see ``bench/__main__.py`` and
``/docs/benchmarks.md``. Each module has ``NAME`` and ``run(settings) -> list[Row]``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import (
    cross_process,
    dispatch,
    end_to_end,
    extraction,
    group_commit,
    index_sync,
    langchain_index,
    publish_many,
    queues,
    scale,
    sched_latency,
    scifact,
    sources,
    webhooks,
)

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        dispatch,
        publish_many,
        group_commit,
        end_to_end,
        sched_latency,
        cross_process,
        scifact,
        index_sync,
        langchain_index,
        webhooks,
        sources,
        extraction,
        queues,
        scale,
    )
}


def run_one(name: str, settings: Any) -> list[Any]:
    """Run the benchmark ``name`` (in whatever process calls it: ``python -m
    bench`` gives each its own) and return its rows."""
    return list(BENCHMARKS[name].run(settings))
