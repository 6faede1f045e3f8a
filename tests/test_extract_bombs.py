"""Decompression and work bombs, one of each, read in a child process under a memory
and a CPU-time limit: each is refused by the limit meant for it, early enough that
the child stays within both (a regression dies of MemoryError or SIGXCPU)."""

import json
import subprocess
import sys

import pytest

from . import document_files as files
from .conftest import HELPERS

MIB = 1 << 20
MEMORY_MB, CPU_SECONDS = 1536, 60  # imports alone take ~580 MB of address space
CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGES = b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>"
PAGE = (
    files._FONT,
    files._PAGE % 5,
    files._stream(b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET"),
)


def deep_page_tree(depth):
    """Pages nodes each the only kid of the last, ``depth`` deep, then a page."""
    nodes = [
        b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (5 + i) for i in range(depth)
    ]
    page = b"<< /Type /Page /MediaBox [0 0 612 792] /Contents 3 0 R >>"
    return files.pdf_objects(
        b"<< /Type /Catalog /Pages 4 0 R >>", files._FONT, PAGE[2], *nodes, page
    )


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
    "many-members.docx": (
        lambda: files.docx_many_members(300_000),
        {},
        "too many zip members: 300003 (limit max_zip_members = 10000)",
    ),
    "lies-about-its-members.docx": (
        lambda: files.docx_many_members(20_000, declared=3),
        {},
        "too many zip members: 10001",
    ),
    "no-zip64-record.docx": (
        lambda: files.docx_many_members(20_000, declared=0xFFFF),
        {},
        "too many zip members",
    ),
    "cyclic-page-tree.pdf": (
        lambda: files.pdf_objects(
            CATALOG, b"<< /Type /Pages /Kids [4 0 R 2 0 R] /Count 2 >>", *PAGE
        ),
        {},
        "Detected cyclic page references",
    ),
    "deep-page-tree.pdf": (lambda: deep_page_tree(5000), {}, "page tree depth"),
    "million-kids.pdf": (
        lambda: files.pdf_objects(
            CATALOG,
            b"<< /Type /Pages /Kids [%s] /Count 1 >>" % (b"4 0 R " * 1_000_000),
            *PAGE,
        ),
        {},
        "maximum array element count",
    ),
    "huge-count.pdf": (
        lambda: files.pdf_objects(
            CATALOG, b"<< /Type /Pages /Kids [4 0 R] /Count 99999999999 >>", *PAGE
        ),
        {"max_pdf_pages": 1},
        "",  # the pages are counted, not the /Count believed: read
    ),
    "endless-stream.pdf": (
        lambda: files.pdf_objects(
            CATALOG,
            PAGES,
            *PAGE[:2],
            b"<< /Length 99999999999 >>\nstream\n" + b"(a) Tj " * 2_000_000,
        ),
        {},
        "exceeds maximum allowed length",
    ),
    "unterminated-stream.pdf": (
        lambda: files.pdf_objects(
            CATALOG, PAGES, *PAGE[:2], b"<< >>\nstream\n" + b"(a) Tj " * 2_000_000
        ),
        {},
        "Unable to find 'endstream'",
    ),
    "inflating-page.pdf": (
        lambda: files.pdf_objects(
            CATALOG, PAGES, *PAGE[:2], files.flate_stream(256 << 20)
        ),
        {},
        "Limit reached while decompressing",
    ),
    "unclosed-tags.html": (lambda: b"<a " * 40_000, {}, "no text"),
    "nested.eml": (lambda: files.email_nested(5000), {}, "limit max_mime_depth"),
}
EMBEDDED_BOMB = "embedded-bomb.docx"  # a 1 GiB zip bomb as a part: never opened
SPACED_HEADING = b"# a" + b" " * 100_000 + b"b\n\nbody"  # cubic for a naive regex


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    for name, (make, _, _) in BOMBS.items():
        (folder / name).write_bytes(make())
    (folder / "spaced-heading.md").write_bytes(SPACED_HEADING)
    (folder / EMBEDDED_BOMB).write_bytes(
        files.docx_embedding("word/embeddings/package.zip", files.docx_bomb())
    )
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


@pytest.mark.parametrize("name", sorted(n for n in BOMBS if BOMBS[n][2]))
def test_each_bomb_is_refused_by_its_limit(outcomes, name):
    assert BOMBS[name][2] in outcomes[name]["skipped"]


def test_a_page_count_that_lies_is_not_believed(outcomes):
    assert outcomes["huge-count.pdf"] == {"text": len("Hello")}


def test_a_zip_inside_a_docx_is_not_opened(outcomes):
    assert outcomes[EMBEDDED_BOMB] == {"text": len("outer text")}


def test_an_attachment_is_passed_over_in_bounded_memory(tmp_path):
    """An .eml of 67 MB, nearly all a 50 MB attachment: skipped by max_bytes under
    the defaults; with room for it, the body is read and the attachment passed over
    while it is parsed, so reading costs far less than the message (the parser
    would hold it three times over: its lines, joined, decoded)."""
    message = tmp_path / "report.eml"
    files.email_with_attachment(message, 50 * MIB)
    child = subprocess.run(
        [sys.executable, str(HELPERS / "bounded.py"), str(MEMORY_MB), str(CPU_SECONDS)]
        + ["peak", str(message), json.dumps([{}, {"max_bytes": 128 * MIB}])],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    defaults, roomy = json.loads(child.stdout.splitlines()[-1])
    assert "(limit max_bytes = 52428800)" in defaults["skipped"]
    assert roomy["text"].endswith("Subject: The report\n\nSee the attachment.")
    assert roomy["title"] == "The report"
    assert roomy["grew"] < 16 * MIB, roomy  # the message itself is 67 MB


def test_a_heading_full_of_spaces_is_read(outcomes):
    assert outcomes["spaced-heading.md"] == {"text": len(SPACED_HEADING)}
