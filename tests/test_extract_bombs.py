"""Decompression and work bombs, one of each, read in a child process under a memory
and a CPU-time limit: each is refused by the limit meant for it, early enough that
the child stays within both (a regression dies of MemoryError or SIGXCPU)."""

import json
import subprocess
import sys

import pytest

from . import document_files as files
from .conftest import HELPERS

MEMORY_MB, CPU_SECONDS = 1536, 60  # imports alone take ~580 MB of address space
BOMBS = {  # file name: (contents, limits, words of the reason)
    "declares-1gib.docx": (files.docx_bomb, {}, "limit max_inflated_bytes"),
    "lies-about-its-size.docx": (
        files.docx_lying_about_size,
        {},
        "unreadable DOCX (BadZipFile: Bad CRC-32",
    ),
    "many-pages.pdf": (lambda: files.pdf(*["page"] * 1500), {}, "too many pages: 1500"),
    "many-operators.pdf": (
        lambda: files.pdf_drawing(200, b"() Tj", 2_000),
        {"max_pdf_operators": 100_000},
        "limit max_pdf_operators",
    ),
    "one-long-line.pdf": (
        lambda: files.pdf_drawing(10, b"(Hello bomb) Tj", 100_000),
        {},
        "a page showing more than 100000 characters",
    ),
    "huge-page.pdf": (
        lambda: files.pdf_drawing(1, b"() Tj", 1_500_000),
        {},
        "a page of more than 4194304 bytes of content",
    ),
    "much-content.pdf": (
        lambda: files.pdf_drawing(8, b"q Q", 150_000),
        {"max_inflated_bytes": 2 << 20, "max_pdf_operators": 10**8},
        "too much page content",
    ),
    "unclosed-tags.html": (lambda: b"<a " * 40_000, {}, "no text"),
    "nested.eml": (lambda: files.email_nested(5000), {}, "limit max_mime_depth"),
}
SPACED_HEADING = b"# a" + b" " * 100_000 + b"b\n\nbody"  # cubic for a naive regex


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    for name, (make, _, _) in BOMBS.items():
        (folder / name).write_bytes(make())
    (folder / "spaced-heading.md").write_bytes(SPACED_HEADING)
    limits = json.dumps({name: given for name, (_, given, _) in BOMBS.items()})
    child = subprocess.run(
        [sys.executable, str(HELPERS / "bounded.py"), str(MEMORY_MB), str(CPU_SECONDS)]
        + ["extract", str(folder), limits],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_each_bomb_is_refused_by_its_limit(outcomes, name):
    assert BOMBS[name][2] in outcomes[name]["skipped"]


def test_a_heading_full_of_spaces_is_read(outcomes):
    assert outcomes["spaced-heading.md"] == {"text": len(SPACED_HEADING)}
