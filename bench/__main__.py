"""Run the benchmarks: ``python -m bench [--quick] [--full] [NAME ...]``.

Each benchmark runs in a process of its own. Prints a table of results. A full
run of every benchmark also rewrites ``docs/benchmarks.md`` (``--docs`` /
``--no-docs`` override that). ``--full`` (or ``BENCH_FULL_CORPUS=1``) runs the
large sizes: the SciFact quality benchmark on the whole corpus (5,183 documents:
about 12 minutes of model time on 2 cores) instead of its subset, the sources
benchmark with three full syncs per kind and first syncs of 100 documents, and the
scale benchmark at a million chunks and ten million events (``python -m bench scale
--full --docs --output docs/benchmarks-scale.md`` writes those rows on their own).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from . import BENCHMARKS, run_one
from .common import Row, Settings, cpu_note
from .report import environment, render_markdown, render_table

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _isolated(name: str, settings: Settings) -> list[Row]:
    """Run one benchmark in a process of its own: what one leaves behind (threads,
    a large heap, loaded models) cannot slow the next."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply_async(run_one, (name, settings)).get(timeout=3600)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the chosen benchmarks, print and record them."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and smaller sizes"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="large sizes: scifact on the whole corpus (minutes of model time),"
        " sources with three full syncs and 100-document first syncs, scale at"
        " 1M chunks and 10M events",
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite docs/benchmarks.md (default: only for a full run of all)",
    )
    parser.add_argument(
        "--output", type=Path, default=DOCS, help="where --docs writes the report"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    names = args.names or list(BENCHMARKS)
    full_corpus = args.full or os.environ.get("BENCH_FULL_CORPUS", "") == "1"
    settings = Settings(quick=args.quick, full_corpus=full_corpus)
    write_docs = args.docs
    if write_docs is None:
        write_docs = not args.quick and names == list(BENCHMARKS)

    load_before = cpu_note()
    started = time.perf_counter()
    sections: list[tuple[ModuleType, list[Row]]] = []
    failed: list[str] = []
    for name in names:
        module = BENCHMARKS[name]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rows = _isolated(name, settings)
        except Exception:  # the others' results are kept; the run fails at the end
            traceback.print_exc()
            failed.append(name)
            continue
        sections.append((module, rows))
        took = time.perf_counter() - t0
        print(f"  {name}: {took:.1f} s", file=sys.stderr, flush=True)
        print(render_table(rows), file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    load_after = cpu_note()
    rows = [row for _, module_rows in sections for row in module_rows]

    print()
    print(render_table(rows))
    print()
    print(
        f"{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; "
        f"before: {load_before}; after: {load_after}"
    )
    if any(r.noisy for r in rows):
        print(
            "(*) the middle half of the per-pair ratios differ by more than 20 %: "
            "the machine was busy; "
            "run again before quoting these rows"
        )
    if failed:
        print(f"FAILED: {', '.join(failed)} (docs/benchmarks.md left as it was)")
        return 1
    if write_docs:
        env = environment(load_before, load_after, elapsed, settings)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render_markdown(sections, env), encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
