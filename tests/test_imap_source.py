"""The imap source against a real Dovecot on 127.0.0.1 (tests/fakes/imap.py), its
mailboxes filled by IMAP APPEND with the real mail in ../shared/realdata/email."""

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from eventhub.integrations.imap import IMAPError, IMAPSource

from eventhub.documents import Document
from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.sync import SourceFailed
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .conftest import require_binary
from .fakes.imap import (
    PASSWORD,
    USER,
    CountingIMAPSource,
    Dovecot,
    realdata_messages,
    simple_message,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REAL = list(realdata_messages())


@pytest.fixture
def dovecot():
    server = Dovecot(
        require_binary("dovecot", "/usr/sbin/dovecot", package="dovecot-imapd")
    )
    yield server
    server.stop()


@pytest.fixture
def counter():
    return [0]


@pytest.fixture
def make_source(dovecot, counter):
    def make(**config):
        options = {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "security": "none",
            "username": USER,
            "password": PASSWORD,
            "mailboxes": ["INBOX", "Archive"],
            **config,
        }
        source = CountingIMAPSource(**options)
        source.counter = counter
        source.name = "mail"
        return source

    return make


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path) as hub:
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        yield hub


def sync(hub, source, **options):
    return hub.documents.engine.sync(source, **options)


def indexed(hub):
    return hub.documents.index.document_ids("mail")


def server_ids(dovecot, *mailboxes):
    with dovecot.session() as conn:
        return {
            f"{box}/{dovecot.uidvalidity(conn, box)}/{uid}"
            for box in mailboxes
            for uid in dovecot.uids(conn, box)
        }


def fill(dovecot, mailbox, messages, start=T0):
    with dovecot.session() as conn:
        if mailbox != "INBOX":
            dovecot.create(conn, mailbox)
        return [
            dovecot.append(conn, mailbox, raw, start + timedelta(minutes=n))
            for n, (_, raw) in enumerate(messages)
        ]


def test_a_full_sync_indexes_every_real_message_broken_ones_too(
    hub, dovecot, make_source
):
    assert len(REAL) == 135 and any("error_emails" in name for name, _ in REAL)
    fill(dovecot, "INBOX", REAL)
    fill(dovecot, "Archive", [])
    report = sync(hub, make_source())
    assert report.failed == 0 and report.skipped == 0
    assert report.added == len(REAL)
    assert indexed(hub) == server_ids(dovecot, "INBOX", "Archive")
    documents = {d.id: d for d in hub_documents(make_source())}
    assert all(d.title.strip() and d.text.strip() for d in documents.values())
    titles = {d.title for d in documents.values()}
    assert "статус" in titles  # an RFC 2047 subject, decoded
    by_uid = {d.metadata["uid"]: d for d in documents.values()}
    first = by_uid[1]
    assert first.url == "mid:5fa9c763" and first.updated_at == T0
    assert first.metadata["message_id"] == "<5fa9c763>"
    assert first.metadata["to"][0] == "My Name <my.name@domain.com>"
    # Nothing was marked read.
    with dovecot.session() as conn:
        assert not any(b"\\Seen" in f for f in dovecot.flags(conn, "INBOX"))


def hub_documents(source):
    return [c for c in source.read(None) if isinstance(c, Document)]


def test_a_message_becomes_a_document_with_its_headers_and_attachments(
    dovecot, make_source
):
    message = EmailMessage()
    message["From"] = "=?utf-8?q?J=C3=BCrgen?= <jurgen@example.com>"
    message["To"] = "archive@example.com, Bob <bob@example.com>"
    message["Subject"] = "=?utf-8?b?UXVhcnRhbHNiZXJpY2h0IMOcYmVyc2ljaHQ=?="
    message["Date"] = "Mon, 2 Mar 2026 09:30:00 +0100"
    message["Message-ID"] = "<report-1@example.com>"
    message["In-Reply-To"] = "<q-1@example.com>"
    message["References"] = "<q-0@example.com> <q-1@example.com>"
    message.set_content("<p>The figures are <b>attached</b>.</p>", subtype="html")
    message.add_attachment(
        b"# Revenue\n\nRevenue grew by nine percent.\n",
        maintype="application",
        subtype="octet-stream",
        filename="revenue.md",
    )
    message.add_attachment(
        b"\x00\x01binary", maintype="image", subtype="png", filename="chart.png"
    )
    bad = b"From: x@example.com\nDate: Tuesday, the 31st\nSubject: bad date\n\nbody\n"
    fill(dovecot, "INBOX", [("m", message.as_bytes()), ("bad", bad)])
    fill(dovecot, "Archive", [])
    source = make_source()
    good, bad_date = hub_documents(source)
    assert good.title == "Quartalsbericht Übersicht"
    assert "The figures are attached." in good.text and "<b>" not in good.text
    assert "Attachment: revenue.md" in good.text and "nine percent" in good.text
    assert "From: Jürgen <jurgen@example.com>" in good.text
    assert good.metadata["attachments"] == ["revenue.md", "chart.png"]
    assert good.metadata["in_reply_to"] == "<q-1@example.com>"
    assert good.metadata["references"] == ["<q-0@example.com>", "<q-1@example.com>"]
    assert good.metadata["date"] == "2026-03-02T08:30:00+00:00"
    assert good.url == "mid:report-1@example.com"
    assert "date" not in bad_date.metadata and "body" in bad_date.text
    assert bad_date.url.startswith("imap://archive@127.0.0.1:")  # no Message-ID
    assert source.fetch(good.id) == good
    assert source.fetch(f"INBOX/{good.metadata['uidvalidity'] + 1}/1") is None
    assert source.fetch("Elsewhere/1/1") is None and source.fetch("nonsense") is None


def test_new_expunged_and_recreated_mail_the_index_follows(hub, dovecot, make_source):
    inbox = fill(dovecot, "INBOX", REAL[:20])
    fill(dovecot, "Archive", REAL[20:30])
    assert sync(hub, make_source()).added == 30
    later = T0 + timedelta(days=1)
    with dovecot.session() as conn:
        dovecot.append(
            conn, "INBOX", simple_message("New", "Fresh mail", when=later), later
        )
        dovecot.append(
            conn, "Archive", simple_message("Old", "Filed mail", when=later), later
        )
        dovecot.expunge(conn, "INBOX", inbox[3], inbox[7])
    report = sync(hub, make_source())
    assert (report.added, report.updated, report.deleted) == (2, 0, 2)
    assert report.resync is None
    assert indexed(hub) == server_ids(dovecot, "INBOX", "Archive")
    # The newest message expunged: "UID SEARCH UID <last+1>:*" still answers the
    # highest one there is, which is not new.
    with dovecot.session() as conn:
        dovecot.expunge(conn, "INBOX", max(dovecot.uids(conn, "INBOX")))
    report = sync(hub, make_source())
    assert (report.added, report.deleted) == (0, 1)
    # Archive recreated: a new UIDVALIDITY, UIDs from 1 again.
    with dovecot.session() as conn:
        old = dovecot.uidvalidity(conn, "Archive")
        dovecot.delete_mailbox(conn, "Archive")
    fill(dovecot, "Archive", REAL[40:44])
    report = sync(hub, make_source())
    assert (
        report.resync
        and "'Archive'" in report.resync
        and "UIDVALIDITY" in report.resync
    )
    assert report.deleted == 11 and report.added == 4
    assert indexed(hub) == server_ids(dovecot, "INBOX", "Archive")
    assert all(f"Archive/{old}/" not in i for i in indexed(hub))
    (event,) = hub.bus.history("sync.resync")
    assert event.data["source"] == "mail"
    again = sync(hub, make_source())
    assert (again.added, again.deleted, again.resync) == (0, 0, None)


def test_an_unchanged_incremental_sync_is_a_handful_of_commands(
    hub, dovecot, make_source, counter
):
    fill(dovecot, "INBOX", REAL)
    fill(dovecot, "Archive", REAL[:5])
    sync(hub, make_source())
    before = counter[0]
    report = sync(hub, make_source(), prune=None)
    assert (report.added, report.updated, report.deleted) == (0, 0, 0)
    # CAPABILITY, LOGIN, EXAMINE twice (UIDNEXT says nothing came), LOGOUT.
    assert counter[0] - before <= 5
    before = counter[0]
    # Prune is due at every sync: CAPABILITY, LOGIN, EXAMINE and UID SEARCH ALL
    # per mailbox, the feed's EXAMINEs, LOGOUT.
    sync(hub, make_source())
    assert counter[0] - before <= 9


def test_a_checkpoint_is_per_mailbox_uidvalidity_and_uid(hub, dovecot, make_source):
    fill(dovecot, "INBOX", REAL[:3])
    fill(dovecot, "Archive", [])
    sync(hub, make_source())
    saved = hub.documents.engine.state("mail")["checkpoint"]
    with dovecot.session() as conn:
        inbox = dovecot.uidvalidity(conn, "INBOX")
        archive = dovecot.uidvalidity(conn, "Archive")
    assert saved == {
        "server": f"127.0.0.1:{dovecot.port}",
        "username": USER,
        "mailboxes": {"INBOX": [inbox, 3], "Archive": [archive, 0]},
    }
    other = make_source(username="someone-else")
    with pytest.raises(Exception, match="another server or account"):
        list(other.read(saved))


def test_a_message_over_max_bytes_is_skipped_without_download(
    hub, dovecot, make_source, counter
):
    big = EmailMessage()
    big["From"] = "scanner@example.com"
    big["Subject"] = "The scans"
    big["Message-ID"] = "<scans@example.com>"
    big.set_content("Fifty megabytes of scans attached.")
    big.add_attachment(
        os.urandom(50 * 1024 * 1024),
        maintype="application",
        subtype="pdf",
        filename="scans.pdf",
    )
    raw = big.as_bytes()
    del big
    fill(
        dovecot,
        "INBOX",
        [("small", simple_message("Hello", "Small mail", when=T0)), ("big", raw)],
    )
    size = len(raw)
    del raw
    fill(dovecot, "Archive", [])
    tracemalloc.start()
    try:
        report = sync(hub, make_source())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.added == 1 and report.skipped == 1 and report.failed == 0
    assert peak < 16 * 1024 * 1024  # the 68 MB message never came over
    (skip,) = report.skipped_documents
    assert "max_bytes" in str(skip) and "too large" in str(skip)
    assert size > 50 * 1024 * 1024


def test_a_wrong_password_fails_the_sync_on_one_line_without_it(
    hub, dovecot, make_source
):
    fill(dovecot, "INBOX", REAL[:3])
    fill(dovecot, "Archive", [])
    sync(hub, make_source())
    before = hub.documents.engine.state("mail")["checkpoint"]
    with pytest.raises(SourceFailed) as failed:
        sync(hub, make_source(password="not-the-password-42"), prune=None)
    message = str(failed.value)
    assert "\n" not in message and "'mail'" in message
    assert "refused the login of 'archive'" in message
    assert "not-the-password-42" not in message
    assert hub.documents.engine.state("mail")["checkpoint"] == before


def test_the_cli_syncs_from_a_config_file_and_a_bad_password_is_one_line(
    tmp_path, dovecot
):
    fill(dovecot, "INBOX", REAL[:4])
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(f"""
        db = "hub.db"
        [index]
        model = "hash:64"
        [sources.mail]
        kind = "imap"
        host = "127.0.0.1"
        port = {dovecot.port}
        security = "none"
        username = "{USER}"
        password = {{ env = "EH_TEST_IMAP_PASSWORD" }}
    """)
    )

    def run(password):
        env = {**os.environ, "EH_TEST_IMAP_PASSWORD": password}
        command = [sys.executable, "-m", "eventhub", "--config", str(config)]
        return subprocess.run(
            [*command, "sync", "mail", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    good = run(PASSWORD)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["added"] == 4
    bad = run("wrong-imap-secret-77")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    (error,) = [line for line in bad.stderr.splitlines() if line.startswith("Error:")]
    assert "'mail'" in error and "refused the login" in error
    assert "wrong-imap-secret-77" not in bad.stderr + bad.stdout


def test_security_none_is_refused_unless_loopback_or_allowed():
    common = {"username": "u", "password": "p", "security": "none"}
    with pytest.raises(ConfigError, match="in the clear"):
        IMAPSource(host="imap.example.com", **common)
    with pytest.raises(ConfigError, match="in the clear"):
        IMAPSource(host="10.0.0.5", **common)
    assert IMAPSource(host="10.0.0.5", allow_private=True, **common).port == 143
    assert IMAPSource(host="localhost", **common).port == 143
    assert IMAPSource(host="::1", **common).port == 143
    assert IMAPSource(host="imap.example.com", username="u", password="p").port == 993
    with pytest.raises(ConfigError, match="security"):
        IMAPSource(host="imap.example.com", security="ssl", username="u", password="p")


def test_mailbox_names_are_sent_in_modified_utf7(dovecot, make_source):
    fill(
        dovecot, "Entwürfe & Notizen", [("m", simple_message("Idee", "Text", when=T0))]
    )
    fill(dovecot, "INBOX", [])
    source = make_source(mailboxes=["Entwürfe & Notizen"])
    (document,) = hub_documents(source)
    assert document.id.startswith("Entwürfe & Notizen/") and document.title == "Idee"
    assert source.ids() == [document.id]


def test_uids_left_empty_below_uidnext_are_not_searched_again(
    hub, dovecot, make_source, counter
):
    fill(dovecot, "INBOX", REAL[:3])
    fill(dovecot, "Archive", [])
    sync(hub, make_source())
    with dovecot.session() as conn:  # arrives and goes before the next sync
        uid = dovecot.append(conn, "INBOX", REAL[3][1], T0)
        dovecot.expunge(conn, "INBOX", uid)
        validity = dovecot.uidvalidity(conn, "INBOX")
    report = sync(hub, make_source(), prune=None)
    assert (report.added, report.deleted) == (0, 0)
    saved = hub.documents.engine.state("mail")["checkpoint"]
    assert saved["mailboxes"]["INBOX"] == [validity, uid]
    before = counter[0]
    sync(hub, make_source(), prune=None)
    assert counter[0] - before == 5  # CAPABILITY, LOGIN, 2 EXAMINE, LOGOUT


def test_a_uidnext_below_the_checkpoint_is_a_resync(hub, dovecot, make_source):
    fill(dovecot, "INBOX", REAL[:3])
    fill(dovecot, "Archive", [])
    sync(hub, make_source())
    saved = hub.documents.engine.state("mail")["checkpoint"]
    saved["mailboxes"]["INBOX"][1] = 1000  # as if the server renumbered
    hub.documents.engine._save_checkpoint("mail", saved)
    report = sync(hub, make_source(), prune=None)
    assert report.resync and "UIDNEXT" in report.resync
    assert indexed(hub) == server_ids(dovecot, "INBOX", "Archive")
    fixed = hub.documents.engine.state("mail")["checkpoint"]
    assert fixed["mailboxes"]["INBOX"][1] == 3


@pytest.fixture
def tls_dovecot():
    server = Dovecot(
        require_binary("dovecot", "/usr/sbin/dovecot", package="dovecot-imapd"),
        tls=True,
    )
    yield server
    server.stop()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_check_the_certificate(hub, tls_dovecot, security):
    fill(tls_dovecot, "INBOX", REAL[:2])
    port = tls_dovecot.tls_port if security == "tls" else tls_dovecot.port

    def source(**config):
        made = IMAPSource(
            host="localhost",
            port=port,
            security=security,
            username=USER,
            password=PASSWORD,
            **config,
        )
        made.name = "mail"
        return made

    assert sync(hub, source(ca_file=str(tls_dovecot.cert))).added == 2
    with pytest.raises(SourceFailed) as failed:  # self-signed: not in the system's CAs
        sync(hub, source(), full=True)
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
    assert "\n" not in str(failed.value)


def test_starttls_to_a_server_without_it_fails_instead_of_going_plain(
    hub, dovecot, make_source
):
    with pytest.raises(SourceFailed) as failed:
        sync(hub, make_source(security="starttls"))
    assert "STARTTLS" in str(failed.value) and PASSWORD not in str(failed.value)


def test_a_missing_mailbox_fails_the_sync_on_one_line(hub, dovecot, make_source):
    with pytest.raises(SourceFailed) as failed:
        sync(hub, make_source(mailboxes=["INBOX", "Nowhere"]), prune=None)
    message = str(failed.value)
    assert "cannot open mailbox 'Nowhere'" in message and "\n" not in message


def test_long_response_lines_are_read_past_imaplibs_limit(
    hub, dovecot, make_source, monkeypatch
):
    # imaplib refuses lines over 1 MB: a UID SEARCH ALL of 150,000 messages. The
    # source reads longer ones; here imaplib's limit is made tiny instead.
    fill(dovecot, "INBOX", REAL[:60])
    fill(dovecot, "Archive", [])
    import imaplib

    monkeypatch.setattr(imaplib, "_MAXLINE", 100)
    report = sync(hub, make_source(), prune=0)
    assert report.added == 60 and report.pruned and report.deletions_skipped is None


def test_a_message_the_server_will_not_give_fails_alone(hub, dovecot, make_source):
    uids = fill(dovecot, "INBOX", REAL[:6])
    fill(dovecot, "Archive", [])
    broken = uids[2]

    class Refusing(CountingIMAPSource):
        # As Gmail answers for a message it cannot read: NO to the whole FETCH.
        def _fetch_bodies(self, wanted):
            if broken in wanted and not self.healed:
                raise IMAPError("refused", "Some messages could not be FETCHed")
            return super()._fetch_bodies(wanted)

    def source(healed=False):
        made = make_source()
        made.__class__ = Refusing
        made.healed = healed
        return made

    report = sync(hub, source())
    assert (report.added, report.failed) == (5, 1)
    with dovecot.session() as conn:
        validity = dovecot.uidvalidity(conn, "INBOX")
    again = sync(hub, source(healed=True), prune=None)  # fetched again by id
    assert again.added == 1 and again.failed == 0
    assert f"INBOX/{validity}/{broken}" in indexed(hub)
