"""The file-share source: what it reads, what it refuses, and the real mixed corpus."""

import os
import shutil

import pytest
from eventhub.integrations.filesystem import FilesystemSource

from eventhub.documents.extract import decode_text

from .conftest import REALDATA

NETSHARE = REALDATA / "netshare" / "unstructured-example-docs"


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "share"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha text")
    (folder / "sub" / "b.md").write_text("# Bee\n\nbody of b")
    (tmp_path / "secret.txt").write_text("outside the root")
    return folder


def source(root, **options):
    src = FilesystemSource(path=root, **options)
    src.name = "share"
    return src


def test_lists_and_reads_supported_files(root):
    src = source(root)
    assert sorted(src.ids()) == ["a.txt", "sub/b.md"]
    doc = src.fetch("sub/b.md")
    assert doc.title == "Bee" and "body of b" in doc.text
    assert doc.metadata == {"path": "sub/b.md", "extension": ".md"}
    assert doc.url.startswith("file://") and doc.updated_at.tzinfo is not None


@pytest.mark.parametrize(
    "unsafe",
    [
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        "",
        "a.txt\x00.md",
        "sub\\..\\..\\secret.txt",
        "./../secret.txt",
    ],
)
def test_ids_outside_the_root_are_refused(root, unsafe):
    src = source(root)
    assert src.fetch(unsafe) is None
    assert src.skipped and "unsafe" in src.skipped[-1].reason


def test_a_symlink_leaving_the_root_is_never_followed(root, tmp_path):
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "linkdir").symlink_to(tmp_path)
    src = source(root)
    assert "link.txt" not in set(src.ids())
    assert any(
        s.id == "link.txt" and "leaves the root" in s.reason for s in src.skipped
    )
    assert src.fetch("link.txt") is None
    assert src.fetch("linkdir/secret.txt") is None
    texts = [d.text for d in src.changes(None)]
    assert not any("outside the root" in t for t in texts)


def test_a_symlink_inside_the_root_is_followed(root):
    (root / "alias.txt").symlink_to(root / "a.txt")
    assert source(root).fetch("alias.txt").text == "alpha text"


def test_fifos_are_never_opened(root):
    os.mkfifo(root / "pipe.txt")
    src = source(root)
    assert "pipe.txt" not in set(src.ids())
    assert src.fetch("pipe.txt") is None  # would block forever if opened for reading
    assert any("not a regular file" in s.reason for s in src.skipped)


def test_a_device_is_never_read(root):
    (root / "zero.txt").symlink_to("/dev/zero")
    src = source(root)
    assert src.fetch("zero.txt") is None


def test_include_exclude_and_hidden(root):
    (root / ".hidden.txt").write_text("hidden")
    (root / ".git").mkdir()
    (root / ".git" / "config.txt").write_text("git")
    (root / "sub" / "draft.txt").write_text("draft")
    src = source(root, include=["**/*.txt", "**/*.md"], exclude=["sub/draft.*"])
    assert sorted(src.ids()) == ["a.txt", "sub/b.md"]
    assert sorted(source(root, include=["*.txt"]).ids()) == ["a.txt"]


def test_too_large_and_empty_files_are_skipped(root):
    (root / "big.txt").write_text("x" * 5000)
    (root / "empty.txt").write_text("   \n")
    src = source(root, max_bytes=1000)
    assert src.fetch("big.txt") is None and src.fetch("empty.txt") is None
    reasons = {s.id: s.reason for s in src.skipped}
    assert reasons["big.txt"] == "too large: 5000 bytes (limit max_bytes = 1000)"
    assert reasons["empty.txt"] == "no text"


def test_a_skip_carries_the_files_time(root):
    (root / "empty.txt").write_text("   \n")
    os.utime(root / "empty.txt", (1_600_000_000, 1_600_000_000))
    src = source(root)
    src.fetch("empty.txt")
    assert src.skipped[0].updated_at.timestamp() == 1_600_000_000


def test_a_name_that_is_not_utf8_is_skipped_under_a_printable_id(root):
    fd = os.open(os.fsencode(root) + b"/r\xe9sum\xe9.txt", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    src = source(root)
    assert sorted(src.ids()) == ["a.txt", "sub/b.md"]
    (skip,) = src.skipped
    assert skip.id == "r\\xe9sum\\xe9.txt" and "not UTF-8" in skip.reason
    assert [d.id for d in src.changes(None)] == ["a.txt", "sub/b.md"]


def test_an_id_holding_surrogates_is_refused_under_a_printable_id(root):
    src = source(root)
    assert src.fetch("r\udce9sum\udce9.txt") is None
    assert src.skipped[-1].id == "r\\xe9sum\\xe9.txt"


def test_a_hard_link_is_indexed_under_its_own_path(root, tmp_path):
    # A file inside the root is the file at that path; POSIX names no "original"
    # among a file's links, so one whose other link is outside is indexed too.
    os.link(tmp_path / "secret.txt", root / "linked.txt")
    doc = source(root).fetch("linked.txt")
    assert doc.text == "outside the root" and doc.id == "linked.txt"


def test_hard_links_are_skipped_when_the_source_says_so(root, tmp_path):
    os.link(tmp_path / "secret.txt", root / "linked.txt")
    src = source(root, skip_hard_links=True)
    assert src.fetch("linked.txt") is None and src.fetch("a.txt") is not None
    assert "hard link (2 links" in src.skipped[0].reason


def test_an_unreadable_file_is_not_read_again_until_it_changes(root, monkeypatch):
    from eventhub.integrations import filesystem

    (root / "empty.txt").write_text(" ")
    reads = []
    extract = filesystem.extract
    monkeypatch.setattr(
        filesystem, "extract", lambda *a, **k: reads.append(1) or extract(*a, **k)
    )
    src = source(root)
    for _ in range(3):
        assert src.fetch("empty.txt") is None
    (root / "empty.txt").write_text("now with text")
    assert src.fetch("empty.txt").text == "now with text"
    assert len(reads) == 2 and [s.reason for s in src.skipped] == ["no text"] * 3


def test_extraction_limits_come_from_the_source_settings(root):
    src = source(root, max_pdf_pages=3, max_chars=10)
    assert (src.limits.max_pdf_pages, src.limits.max_chars) == (3, 10)
    assert src.fetch("a.txt") is not None and src.fetch("sub/b.md") is None
    assert "limit max_chars = 10" in src.skipped[0].reason


def test_a_file_vanishing_between_listing_and_reading_is_just_gone(root):
    src = source(root)
    (root / "a.txt").unlink()
    assert src.fetch("a.txt") is None and src.skipped == []


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("héllo wörld".encode("utf-16"), "héllo wörld"),
        ("héllo".encode("utf-16-be").join([b"\xfe\xff", b""]), "héllo"),
        ("\ufeffhello".encode(), "hello"),
        ("naïve café".encode("cp1252"), "naïve café"),
    ],
)
def test_text_encodings(raw, text):
    assert decode_text(raw) == text


@pytest.fixture(scope="module")
def netshare(tmp_path_factory):
    if not NETSHARE.is_dir():
        pytest.skip("shared/realdata/netshare is not beside the project")
    folder = tmp_path_factory.mktemp("netshare") / "docs"
    shutil.copytree(NETSHARE, folder)
    src = FilesystemSource(path=folder)
    src.name = "netshare"
    return src, {d.id: d for d in src.changes(None)}


def test_real_share_text_formats_all_yield_text(netshare):
    _, docs = netshare
    for name in [
        "README.md",
        "fake-text.txt",
        "fake-html.html",
        "pdf/fake-memo.pdf",
        "simple.docx",
        "eml/family-day.eml",
        "norwich-city.txt",
        "pdf/layout-parser-paper-fast.pdf",
    ]:
        assert docs[name].text.strip(), name


def test_real_share_utf16_files_decode(netshare):
    _, docs = netshare
    plain = docs["fake-text.txt"].text.split()
    for name in ("fake-text-utf-16.txt", "fake-text-utf-16-be.txt"):
        assert docs[name].text.split() == plain, name


def test_real_share_scripts_are_not_indexed(netshare):
    _, docs = netshare
    text = docs["example-with-scripts.html"].text
    assert text.strip()
    assert "function(" not in text.replace(" ", "") and "var " not in text


def test_real_share_encrypted_pdfs_are_skipped_with_a_reason(netshare):
    src, docs = netshare
    reasons = {s.id: s.reason for s in src.skipped}
    assert "pdf/password.pdf" not in docs and "pdf/copy-protected.pdf" not in docs
    assert "encrypted" in reasons["pdf/password.pdf"]
    assert (
        "protected" in reasons["pdf/copy-protected.pdf"]
        or "encrypted" in reasons["pdf/copy-protected.pdf"]
    )


def test_real_share_unsupported_formats_are_left_out(netshare):
    _, docs = netshare
    assert not {n for n in docs if n.endswith((".pptx", ".xlsx", ".odt", ".rtf"))}


def test_a_plain_text_title_is_a_short_first_line_standing_alone(root):
    (root / "t.txt").write_text("Coffee machine\n\nDescale every Friday.")
    (root / "u.txt").write_text("no title here, the text just starts\nand goes on")
    src = source(root)
    assert src.fetch("t.txt").title == "Coffee machine"
    assert src.fetch("u.txt").title == "u"
