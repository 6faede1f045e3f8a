"""A real Dovecot IMAP server on 127.0.0.1, for the ``imap`` source's tests.

:class:`Dovecot` starts ``dovecot -F`` with a private configuration in a fresh
folder: its own ``base_dir``, Maildir mailboxes under the folder, one user in a
passwd-file (plaintext login allowed: it only listens on loopback, without TLS), a
free port. Run by root, the mail belongs to ``nobody`` and Dovecot's own processes
run as its ``dovecot``/``dovenull`` users (Dovecot refuses mail access as uid 0);
run by anyone else, everything runs as that user. :meth:`Dovecot.stop` ends it by
its PID and removes the folder.

Mail is put there over IMAP, as a mail client would: :meth:`Dovecot.client` logs in
and ``APPEND`` s messages (``realdata_messages()`` yields the real ones in
``../shared/realdata/email``: 113 .eml files, broken ones included, and the messages
of its mbox archives). :class:`IMAPHarness` is the Source contract suite's harness
on it, counting the IMAP commands the source sends.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from eventhub.integrations.imap import IMAPSource

USER = "archive"
PASSWORD = "s3cret-imap-pass"
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "email"


def realdata_messages() -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of every real message: the .eml files, then each message
    of each mbox archive (``name#n``)."""
    for path in sorted((REALDATA / "imap_tools-eml").rglob("*.eml")):
        yield str(path.relative_to(REALDATA)), path.read_bytes()
    for path in sorted((REALDATA / "perceval-mbox").glob("*")):
        if path.is_file() and not path.name.endswith(".md"):
            box = mailbox.mbox(path, create=False)
            try:
                for n, key in enumerate(box.keys()):
                    yield f"{path.relative_to(REALDATA)}#{n}", box.get_bytes(key)
            finally:
                box.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    """A Dovecot serving one Maildir user on a loopback port (see the module)."""

    def __init__(self, binary: str, *, tls: bool = False) -> None:
        self.binary = binary
        self.home = Path(tempfile.mkdtemp(prefix="eventhub-dovecot-"))
        self.port = _free_port()
        #: With ``tls``: the implicit-TLS port (``port`` then offers STARTTLS) and
        #: the self-signed certificate (for localhost and 127.0.0.1) to trust.
        self.tls_port = _free_port() if tls else 0
        self.cert: Path | None = None
        ssl_settings = "ssl = no"
        if tls:
            self.cert, key = _self_signed(self.home)
            ssl_settings = f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{key}"
        root = os.geteuid() == 0
        if root:
            owner = pwd.getpwnam("nobody")
            internal = _user_or("dovecot", "nobody")
            login = _user_or("dovenull", "nobody")
        else:
            owner = pwd.getpwuid(os.getuid())
            internal = login = owner.pw_name
        self.mail = self.home / "mail"
        self.mail.mkdir()
        run = self.home / "run"
        run.mkdir()
        (self.home / "users").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{owner.pw_uid}:{owner.pw_gid}::{self.mail}\n"
        )
        (self.home / "dovecot.conf").write_text(
            f"""\
base_dir = {run}
state_dir = {self.home / "state"}
instance_name = eventhub-test-{self.port}
protocols = imap
listen = 127.0.0.1
{ssl_settings}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_login_user = {login}
{"" if root else f"default_internal_group = {_group(owner.pw_gid)}"}
first_valid_uid = 1
log_path = {self.home / "dovecot.log"}
mail_location = maildir:~/Maildir
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.home / "users"}
}}
userdb {{
  driver = passwd-file
  args = {self.home / "users"}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
        )
        if root:
            os.chmod(self.home, 0o755)
            os.chown(self.mail, owner.pw_uid, owner.pw_gid)
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.home / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
                log = self.log()
                self.stop()
                raise RuntimeError(f"dovecot did not start: {error} {log}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("dovecot did not listen within 20 s")

    def log(self) -> str:
        path = self.home / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.home, ignore_errors=True)

    # Mail -----------------------------------------------------------------

    def client(self) -> imaplib.IMAP4:
        """A logged-in IMAP connection of the test user (the tests' mail client)."""
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        conn.login(USER, PASSWORD)
        return conn

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        conn = self.client()
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def append(
        self, conn: imaplib.IMAP4, mailbox: str, raw: bytes, when: datetime
    ) -> int:
        """APPEND a message; its UID (from Dovecot's APPENDUID)."""
        status, data = conn.append(
            _quoted(mailbox), None, imaplib.Time2Internaldate(when), raw
        )
        assert status == "OK", data
        code = conn.untagged_responses.pop("APPENDUID", [b""])[-1]
        return int(code.split()[-1])

    def create(self, conn: imaplib.IMAP4, mailbox: str) -> None:
        status, data = conn.create(_quoted(mailbox))
        assert status == "OK", data

    def delete_mailbox(self, conn: imaplib.IMAP4, mailbox: str) -> None:
        status, data = conn.delete(_quoted(mailbox))
        assert status == "OK", data

    def expunge(self, conn: imaplib.IMAP4, mailbox: str, *uids: int) -> None:
        status, data = conn.select(_quoted(mailbox))
        assert status == "OK", data
        uid_set = ",".join(str(u) for u in uids)
        conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
        conn.expunge()
        conn.close()

    def uids(self, conn: imaplib.IMAP4, mailbox: str) -> list[int]:
        conn.select(_quoted(mailbox), readonly=True)
        status, data = conn.uid("SEARCH", "ALL")
        conn.close()
        return [int(u) for u in (data[0] or b"").split()]

    def uidvalidity(self, conn: imaplib.IMAP4, mailbox: str) -> int:
        status, data = conn.status(_quoted(mailbox), "(UIDVALIDITY)")
        return int(data[0].split(b"UIDVALIDITY")[1].strip(b" )"))

    def flags(self, conn: imaplib.IMAP4, mailbox: str) -> list[bytes]:
        conn.select(_quoted(mailbox), readonly=True)
        status, data = conn.fetch("1:*", "(FLAGS)")
        conn.close()
        return [d for d in data if d]


def _quoted(name: str) -> str:
    """A mailbox name as a quoted string in modified UTF-7 (RFC 3501 5.1.3),
    made with the stdlib's UTF-7 codec (an oracle independent of the source's)."""

    def shifted(match: re.Match[str]) -> str:
        return "&" + match.group().encode("utf-7")[1:].decode().replace("/", ",")

    encoded = re.sub(r"[^\x20-\x7e]+", shifted, name.replace("&", "&-"))
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for localhost and 127.0.0.1, and its key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _user_or(name: str, fallback: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return fallback
    return name


def _group(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def simple_message(
    subject: str, text: str, *, sender: str = "alice@example.com", when: datetime
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"{USER}@example.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content(text)
    return message.as_bytes()


class CountingIMAPSource(IMAPSource):
    """An ``imap`` source whose connections count the commands they send."""

    counter: list[int]

    def _connect(self) -> imaplib.IMAP4:
        conn = super()._connect()
        counter = self.counter
        counter[0] += 2  # CAPABILITY and LOGIN, sent before the wrapper is on
        original = conn._command

        def counted(name: str, *args: Any) -> Any:
            counter[0] += 1
            return original(name, *args)

        conn._command = counted  # type: ignore[method-assign]
        return conn


class IMAPHarness:
    """The Source contract suite's harness: a Dovecot INBOX, read by an ``imap``
    source. Mail cannot be edited: an edit is a new message (a new UID, a new
    document id) with the old one expunged (``edits_replace``)."""

    kind = "imap"
    edits_replace = True
    #: For benchmark 11's notes.
    server_note = "a real Dovecot (tests/fakes/imap.py) on 127.0.0.1, one mailbox"
    requests_note = "requests = IMAP commands, counted at the source's connection"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        from ..conftest import require_binary

        binary = require_binary("dovecot", "/usr/sbin/dovecot", package="dovecot-imapd")
        self.server = Dovecot(binary)
        self._uids: dict[str, int] = {}
        self._uidvalidity = 0
        self._count = [0]
        self._failing = False
        self._conn: imaplib.IMAP4 | None = None

    def source(self, **config: Any) -> IMAPSource:
        source = CountingIMAPSource(
            host="127.0.0.1",
            port=self.server.port,
            security="none",
            username=USER,
            password="wrong" if self._failing else PASSWORD,
            **config,
        )
        source.counter = self._count
        source.name = "contract"
        return source

    def _client(self) -> imaplib.IMAP4:
        # One connection for every change (the benchmark puts 10,000 messages).
        if self._conn is None:
            self._conn = self.server.client()
            self._uidvalidity = self.server.uidvalidity(self._conn, "INBOX")
        return self._conn

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        conn = self._client()
        raw = simple_message(title, text, when=updated_at)
        uid = self.server.append(conn, "INBOX", raw, updated_at)
        old = self._uids.get(key)
        if old is not None:
            self.server.expunge(conn, "INBOX", old)
        self._uids[key] = uid

    def delete(self, key: str) -> None:
        self.server.expunge(self._client(), "INBOX", self._uids[key])

    def id_of(self, key: str) -> str:
        return f"INBOX/{self._uidvalidity}/{self._uids[key]}"

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = True  # the server refuses the login from now on

    def heal(self) -> None:
        self._failing = False

    @property
    def requests(self) -> int:
        return self._count[0]

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.logout()
        self.server.stop()
