"""Benchmark 12: text extraction throughput of ``extract()`` against the bare parsers.

Per format (PDF, DOCX, e-mail, HTML), the same files go through
``eventhub.documents.extract.extract(raw, name)`` with the default limits (the format
registry, every limit and check, the surrogate and size checks on the result) and
through the bare library the way one would call it without eventhub:

- PDF: pypdf's ``PdfReader`` and ``page.extract_text()`` on every page;
- DOCX: python-docx, paragraphs and table rows (cells joined by `` | ``) in document
  order, the text eventhub's streaming reader gives;
- e-mail: the stdlib ``email.message_from_bytes`` and ``get_body().get_content()``
  (an HTML body through the HTML reference);
- HTML: ``lxml.html.document_fromstring``, scripts, styles and head stripped,
  ``text_content()`` (no blank lines between blocks, no title: less work than
  eventhub does).

Rounds alternate eventhub, bare (one uncounted round first); the ratio of a round
is eventhub's MB/s over the bare side's (bare time / eventhub time). Target: at
least 0.9, the limits nearly free.

The files: the realdata netshare documents of each format (its two encrypted PDFs
left out: both sides refuse them) and generated ones for volume: PDFs of ten pages
of text written by hand, .docx of 200 paragraphs and a table written with
python-docx, e-mails with a plain body, half with an HTML alternative, a quarter
with a 1 MiB attachment, HTML pages of 120 sections with a script and a style.
"""

from __future__ import annotations

import io
import statistics
import time
import zlib
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from eventhub.documents.extract import extract

from .common import Row, Settings, interleave

NAME = "extraction"
TARGET = 0.9
NETSHARE = Path("/work/shared/realdata/netshare/unstructured-example-docs")
ENCRYPTED = {"password.pdf", "copy-protected.pdf"}
WORDS = (
    "the quarterly report lists revenue by region and the margin of each product"
    " line while the appendix holds the tables of costs headcount and travel"
).split()
Files = list[tuple[str, bytes]]


def run(settings: Settings) -> list[Row]:
    """Run the extraction benchmark; returns its rows (one per format)."""
    scale = settings.size(1, 0)
    reps = settings.reps(5)
    rows = []
    for label, suffix, bare, generate in FORMATS:
        corpus = _netshare(suffix) + generate(scale)
        total = sum(len(raw) for _, raw in corpus)
        texts: dict[str, int] = {}

        def eventhub_side(
            corpus: Files = corpus, texts: dict[str, int] = texts
        ) -> float:
            started = time.perf_counter()
            produced = sum(len(extract(raw, name).text) for name, raw in corpus)
            seconds = time.perf_counter() - started
            texts["eventhub"] = produced
            return seconds

        def bare_side(
            corpus: Files = corpus,
            texts: dict[str, int] = texts,
            bare: Callable[[bytes], str] = bare,
        ) -> float:
            started = time.perf_counter()
            produced = sum(len(bare(raw)) for _, raw in corpus)
            seconds = time.perf_counter() - started
            texts["bare"] = produced
            return seconds

        samples = interleave(
            [("eventhub", eventhub_side), ("bare", bare_side)],
            reps,
            warmup=settings.warmup,
        )
        eh, raw = samples["eventhub"], samples["bare"]
        rows.append(
            Row(
                benchmark=f"12. {label} extraction vs bare parser, MB/s",
                eventhub=_rates(total, len(corpus), eh),
                reference=f"{BARE_NAMES[label]} {_rates(total, len(corpus), raw)}",
                kind="throughput",
                ratios=[r / e for e, r in zip(eh, raw, strict=True)],
                target=TARGET,
                note=f"{len(corpus)} files, {total / 1e6:.1f} MB"
                f" ({len(_netshare(suffix))} from realdata netshare); text"
                f" {texts['eventhub']} characters (eventhub) vs {texts['bare']} (bare)",
            )
        )
    return rows


def _rates(total: int, files: int, seconds: list[float]) -> str:
    median = statistics.median(seconds)
    return f"{total / 1e6 / median:.1f} MB/s, {files / median:.0f} files/s"


def _netshare(suffix: str) -> Files:
    if not NETSHARE.is_dir():
        return []
    return [
        (path.name, path.read_bytes())
        for path in sorted(NETSHARE.rglob(f"*{suffix}"))
        if path.name not in ENCRYPTED
    ]


def _sentence(i: int, length: int = 14) -> str:
    return " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(length)) + "."


# The bare sides ---------------------------------------------------------------


def bare_pdf(raw: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(raw))
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)


def bare_docx(raw: bytes) -> str:
    from docx import Document
    from docx.table import Table

    parts = []
    for block in Document(io.BytesIO(raw)).iter_inner_content():
        if isinstance(block, Table):
            parts += (" | ".join(c.text for c in row.cells) for row in block.rows)
        elif block.text.strip():
            parts.append(block.text)
    return "\n\n".join(parts)


def bare_email(raw: bytes) -> str:
    message: Any = message_from_bytes(raw, policy=policy.default)
    body = message.get_body(("plain", "html"))
    if body is None:
        return ""
    content: str = body.get_content()
    if body.get_content_type() == "text/html":
        content = bare_html(content.encode())
    return content


def bare_html(raw: bytes) -> str:
    from lxml import etree, html

    tree = html.document_fromstring(raw)
    etree.strip_elements(tree, "script", "style", "head", with_tail=False)
    text: str = tree.text_content()
    return text


# Generated files ---------------------------------------------------------------


def generated_pdfs(scale: int) -> Files:
    count = 8 + 32 * scale
    return [(f"report-{i}.pdf", _pdf_of_pages(i, 10)) for i in range(count)]


def _pdf_of_pages(seed: int, pages: int) -> bytes:
    """A PDF of ``pages`` pages of 40 lines of text each (Helvetica)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for page in range(pages):
        lines = b"".join(
            b"(%s) Tj 0 -14 Td\n" % _sentence(seed * 131 + page * 41 + n).encode()
            for n in range(40)
        )
        content = zlib.compress(b"BT /F1 10 Tf 50 750 Td\n" + lines + b"ET")
        objects.append(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
            % (len(content), content)
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources"
            b" << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def generated_docx(scale: int) -> Files:
    from docx import Document

    files = []
    for i in range(10 + 40 * scale):
        document = Document()
        document.core_properties.title = f"Report {i}"
        for n in range(200):
            document.add_paragraph(_sentence(i * 211 + n, 24))
        table = document.add_table(rows=20, cols=4)
        for r, row in enumerate(table.rows):
            for c, cell in enumerate(row.cells):
                cell.text = WORDS[(i + r * 4 + c) % len(WORDS)]
        buffer = io.BytesIO()
        document.save(buffer)
        files.append((f"report-{i}.docx", buffer.getvalue()))
    return files


def generated_emails(scale: int) -> Files:
    files = []
    attachment = bytes(range(256)) * 4096  # 1 MiB
    for i in range(20 + 80 * scale):
        message = EmailMessage()
        message["From"] = f"Ann <ann{i}@example.com>"
        message["To"] = "team@example.com"
        message["Subject"] = f"Report {i}"
        message.set_content("\n\n".join(_sentence(i * 17 + n, 30) for n in range(40)))
        if i % 2:
            message.add_alternative(
                "<html><body>"
                + "".join(f"<p>{_sentence(i * 17 + n, 30)}</p>" for n in range(40))
                + "</body></html>",
                subtype="html",
            )
        if i % 4 == 0:
            message.add_attachment(
                attachment, maintype="application", subtype="pdf", filename="r.pdf"
            )
        files.append((f"message-{i}.eml", bytes(message)))
    return files


def generated_html(scale: int) -> Files:
    files = []
    for i in range(20 + 80 * scale):
        script = (
            "<script>var data = [" + ",".join(map(str, range(2000))) + "];</script>"
        )
        body = "".join(
            f"<h2>Section {n}</h2><p>{_sentence(i * 13 + n, 40)}</p>"
            f"<table><tr><td>{n}</td><td>{WORDS[n % len(WORDS)]}</td></tr></table>"
            for n in range(120)
        )
        page = (
            f"<html><head><title>Page {i}</title><style>p {{ margin: 0 }}</style>"
            f"</head><body>{script}{body}</body></html>"
        )
        files.append((f"page-{i}.html", page.encode()))
    return files


FORMATS: tuple[tuple[str, str, Callable[[bytes], str], Callable[[int], Files]], ...] = (
    ("PDF", ".pdf", bare_pdf, generated_pdfs),
    ("DOCX", ".docx", bare_docx, generated_docx),
    ("e-mail", ".eml", bare_email, generated_emails),
    ("HTML", ".html", bare_html, generated_html),
)
BARE_NAMES = {
    "PDF": "pypdf",
    "DOCX": "python-docx",
    "e-mail": "stdlib email",
    "HTML": "lxml.html",
}
