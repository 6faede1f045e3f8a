"""eventhub.documents.extract: formats, the failure boundary, limits, odd documents."""

import pytest

from eventhub.documents import extract as extraction
from eventhub.documents.extract import (
    ExtractionError,
    ExtractionLimits,
    Format,
    LimitExceeded,
    extract,
    format_for,
)
from eventhub.errors import ConfigError

from . import document_files as files
from .conftest import REALDATA

EMAILS = REALDATA / "email" / "imap_tools-eml"


def reason(data, name, **limits):
    with pytest.raises(ExtractionError) as caught:
        extract(data, name, limits=ExtractionLimits(**limits))
    return caught.value


@pytest.fixture
def only_format(monkeypatch):
    """Make ``.x`` files read by ``function`` and nothing else."""

    def use(function):
        monkeypatch.setattr(extraction, "_FORMATS", [Format("X", function, (".x",))])

    return use


def test_the_media_type_wins_over_the_extension():
    assert format_for("notes.txt", "application/pdf; charset=binary").name == "PDF"
    assert format_for("notes.TXT").name == "text"
    assert format_for("notes.bin", "application/octet-stream") is None


def test_an_unsupported_format_is_refused_with_its_extension():
    assert reason(b"x", "deck.pptx").reason == "unsupported format .pptx"


@pytest.mark.parametrize("error", [KeyError, AssertionError, TypeError])
def test_any_parser_error_is_an_extraction_error_naming_it(only_format, error):
    def broken(raw, limits):
        raise error

    only_format(broken)
    assert reason(b"data", "a.x").reason.startswith(f"unreadable X ({error.__name__}")


def test_a_memory_error_is_never_hidden(only_format):
    def exhausted(raw, limits):
        raise MemoryError

    only_format(exhausted)
    with pytest.raises(MemoryError):
        extract(b"data", "a.x")


def test_lone_surrogates_in_extracted_text_are_replaced(only_format):
    only_format(lambda raw, limits: extraction.ExtractedText("T\udc80", "a\ud800b"))
    found = extract(b"data", "a.x")
    assert (found.title, found.text) == ("T\ufffd", "a\ufffdb")
    found.text.encode("utf-8")  # what SQLite and events need


def test_a_title_too_long_to_be_one_is_dropped():
    found = extract(b"# " + b"word " * 100 + b"\n\nBody.", "notes.md")
    assert found.title == "" and found.text.startswith("# word")


def test_a_file_that_cannot_be_opened_is_an_extraction_error(tmp_path):
    assert reason(tmp_path / "gone.txt", "gone.txt").reason.startswith("cannot read")


def test_a_file_path_reads_like_its_bytes(tmp_path):
    path = tmp_path / "memo.docx"
    path.write_bytes(files.docx("Quarterly memo", title="Memo"))
    assert extract(path, path.name) == extract(path.read_bytes(), "memo.docx")


def test_docx_text_is_paragraphs_then_rows_with_the_core_title():
    raw = files.docx("First.", "Second.", title="Plan", table=[["a", "b"], ["c", ""]])
    found = extract(raw, "plan.docx")
    assert found == extraction.ExtractedText(
        "Plan", "First.\n\nSecond.\n\na | b\n\nc | "
    )


def test_a_docx_without_core_properties_has_no_title():
    assert extract(files.docx("Body text."), "notes.docx").title == ""


def test_docx_reading_stops_at_the_character_limit():
    raw = files.docx(*["twenty characters!!!"] * 2000)
    refused = reason(raw, "long.docx", max_chars=1000)
    assert isinstance(refused, LimitExceeded) and refused.limit == "max_chars"


def test_malformed_docx_xml_is_a_reason_not_a_traceback():
    assert "XMLSyntaxError" in reason(files.docx_malformed(), "cut.docx").reason


def test_docx_entities_are_not_expanded_into_a_bomb():
    assert "amplification" in reason(files.docx_entity_bomb(), "lol.docx").reason


def test_html_keeps_the_title_and_visible_text_only():
    page = b"<title>Tide tables</title><script>var x=1;</script><p>High at 6.</p>"
    found = extract(page, "tides.html")
    assert (found.title, found.text.strip()) == ("Tide tables", "High at 6.")


def test_html_reading_stops_at_the_character_limit():
    refused = reason(b"<p>" + b"word " * 10_000, "long.html", max_chars=1000)
    assert refused.limit == "max_chars"


def test_html_nested_deeper_than_a_tree_parser_goes_is_read_to_its_end():
    """lxml's tree parser drops what lies past a few hundred open elements, and an
    XSLT walk over a deeper tree gives nothing: the streaming target reads it all."""
    found = extract(b"<div>" * 5000 + b"<font>" * 5000 + b"deep text", "deep.html")
    assert found.text.strip() == "deep text"


@pytest.mark.parametrize(
    "page",
    sorted((REALDATA / "netshare").rglob("*.htm*")),
    ids=lambda path: path.name,
)
def test_html_through_the_tree_reads_as_the_streamed_page_does(page, monkeypatch):
    """Small pages go through a tree and XSLT, large ones are streamed: one text."""
    raw = page.read_bytes()
    tree = extract(raw, page.name)
    monkeypatch.setattr(extraction, "HTML_TREE_CHARS", 0)
    streamed = extract(raw, page.name)
    assert tree.title == streamed.title
    assert tree.text.split() == streamed.text.split() != []


def test_html_just_past_the_tree_parsers_depth_is_read_to_its_end():
    found = extract(b"<p>" + b"<font>" * 300 + b"kept</p><p>after", "fonts.html")
    assert found.text.split() == ["kept", "after"]


def test_text_over_the_character_limit_is_refused():
    assert reason(b"x" * 2000, "big.txt", max_chars=1000).limit == "max_chars"


def test_an_unknown_charset_is_read_like_a_text_file():
    raw = (EMAILS / "plain_emails" / "raw_email10.eml").read_bytes()  # X-UNKNOWN
    assert "Waving" in extract(raw, "raw_email10.eml").text


def test_a_non_text_codec_as_charset_is_read_like_a_text_file():
    found = extract(files.email_message(b"caf\xc3\xa9", charset="zlib"), "a.eml")
    assert "café" in found.text


def test_nesting_past_the_limit_is_refused_before_the_parser_recurses():
    refused = reason(files.email_nested(3000), "deep.eml")
    assert refused.limit == "max_mime_depth"


def test_nesting_within_the_limit_is_read():
    assert "deep text" in extract(files.email_nested(12), "deep.eml").text


def test_every_real_email_gives_text_or_a_reason():
    messages = sorted(EMAILS.rglob("*.eml"))
    assert len(messages) == 113
    for path in messages:
        try:
            assert extract(path, path.name).text.strip()
        except ExtractionError as exc:
            assert exc.reason == "no text", path


def test_limits_are_positive_integers():
    with pytest.raises(ConfigError, match="max_chars must be a positive integer"):
        ExtractionLimits(max_chars=0)
    with pytest.raises(ConfigError, match="max_pdf_pages"):
        ExtractionLimits(max_pdf_pages="ten")
