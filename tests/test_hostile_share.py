"""A share of 21 good documents and one file of each hostile kind: the sync indexes
the good ones, skips the rest with their reasons and goes on, the next sync too. It
runs in a child process under a memory and a CPU-time limit, so that a regression
fails here instead of eating the machine."""

import itertools
import json
import os
import string
import subprocess
import sys

import pytest

from . import document_files as files
from .conftest import HELPERS

TOPICS = (
    "tides bread stars rivers comets glaciers lanterns orchards violins harbours"
    " beetles quarries kites ferns bridges deserts owls mosaics tunnels volcanoes"
    " meadows"
).split()
MEMORY_MB, CPU_SECONDS = 1536, 120  # imports alone take ~580 MB of address space


def good_file(n, topic):
    text = f"Notes on {topic}: the {topic} survey, number {n}, covers {topic} well."
    kind = n % 7
    if kind == 0:
        return f"{topic}.txt", text.encode()
    if kind == 1:
        return f"{topic}.md", f"# {topic.title()}\n\n{text}".encode()
    if kind == 2:
        return f"{topic}.html", f"<title>{topic}</title><p>{text}</p>".encode()
    if kind == 3:
        return f"{topic}.eml", files.email_message(text.encode(), subject=topic)
    if kind == 4:
        return f"{topic}.pdf", files.pdf(text)
    if kind == 5:
        return f"{topic}.docx", files.docx(text, title=topic)
    return f"{topic}.csv", f"topic,text\n{topic},{text}\n".encode()


def unique_words(count):
    words = ("".join(w) for w in itertools.product(string.ascii_lowercase, repeat=4))
    return " ".join(itertools.islice(words, count)).encode()


HOSTILE = {  # file name: (contents, words of the reason it is skipped for)
    "malformed.docx": (files.docx_malformed, "unreadable DOCX (XMLSyntaxError"),
    "bomb.docx": (files.docx_bomb, "limit max_inflated_bytes"),
    "bomb.pdf": (
        lambda: files.pdf_drawing(10, b"(Hello bomb) Tj", 300_000),
        "not a page of text",
    ),
    "nested.eml": (lambda: files.email_nested(2000), "limit max_mime_depth"),
    "words.txt": (lambda: unique_words(240_000), "limit max_chars"),
    "tags.html": (lambda: b"<a " * 40_000, "no text"),
}
ODD_NAME = "caf\\xe9.txt"  # how the id of b"caf\xe9.txt" is shown


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "share"
    folder.mkdir()
    for name, data in itertools.starmap(good_file, enumerate(TOPICS)):
        (folder / name).write_bytes(data)
    for name, (make, _) in HOSTILE.items():
        (folder / name).write_bytes(make())
    odd = files.email_message(b"caf\xe9 au lait", charset="x-no-such-charset")
    (folder / "odd-charset.eml").write_bytes(odd)
    fd = os.open(os.fsencode(folder) + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"a file whose name is Latin-1")
    os.close(fd)
    return folder


@pytest.fixture(scope="module")
def synced(share, tmp_path_factory):
    hub_folder = tmp_path_factory.mktemp("hub")
    limits = json.dumps({"max_chars": 1_000_000})
    child = subprocess.run(
        [sys.executable, str(HELPERS / "bounded.py"), str(MEMORY_MB), str(CPU_SECONDS)]
        + ["sync", str(share), str(hub_folder), limits],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.splitlines()[-1])  # after the log lines


def reasons(report):
    return {s["document_id"]: s["reason"] for s in report["skipped_documents"]}


def test_every_good_document_is_indexed(synced):
    good = {name for name, _ in itertools.starmap(good_file, enumerate(TOPICS))}
    assert len(good) == 21
    # An unknown charset is no reason to lose a message: it is read as text is.
    assert set(synced["indexed"]) == good | {"odd-charset.eml"}
    assert synced["reports"][0]["added"] == 22


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_file_is_skipped_with_its_reason(synced, name):
    assert HOSTILE[name][1] in reasons(synced["reports"][0])[name]


def test_a_name_that_is_not_utf8_is_skipped_under_a_printable_id(synced):
    assert "not UTF-8" in reasons(synced["reports"][0])[ODD_NAME]


def test_nothing_else_is_skipped_or_failed(synced):
    first = synced["reports"][0]
    assert set(reasons(first)) == set(HOSTILE) | {ODD_NAME}
    assert (first["skipped"], first["failed"]) == (7, 0)


def test_the_next_sync_goes_through_the_same_files_without_aborting(synced):
    second = synced["reports"][1]
    assert (second["added"], second["updated"], second["failed"]) == (0, 0, 0)
    assert second["unchanged"] == 22 and second["cursor"] is not None


def test_the_skips_are_kept_with_their_reasons(synced):
    kept = {s["document_id"]: s["reason"] for s in synced["state"]["skipped"]}
    assert kept == reasons(synced["reports"][0])
