"""``imap``: mail from IMAP mailboxes, one document per message.

::

    [sources.mail]
    kind = "imap"
    host = "imap.example.com"
    port = 993                          # default: 993 for tls, 143 otherwise
    security = "tls"                    # "tls" (default), "starttls", "none"
    username = "archive@example.com"
    password = { env = "IMAP_PASSWORD" }
    mailboxes = ["INBOX", "Archive"]    # default: ["INBOX"]
    timeout = 30                        # seconds a command may take

Mail is read with the stdlib ``imaplib``, mailboxes opened read-only (``EXAMINE``)
and bodies fetched with ``BODY.PEEK[]``: nothing is marked read. Per mailbox the
checkpoint holds ``[UIDVALIDITY, highest UID read]``; new mail is what ``UID SEARCH
UID <last+1>:*`` finds above that UID (the range always answers the highest existing
message, even when it is older), and nothing is searched when the mailbox's
``UIDNEXT`` says no message came since. A mailbox whose UIDVALIDITY changed
(recreated, restored, migrated) raises :class:`CheckpointExpired`: its UIDs name
other messages now, so the engine re-reads the source and deletes what is gone.
Messages are immutable in IMAP, so deletions (expunged mail) are found by listing
the UIDs of each mailbox (``UID SEARCH ALL``: one command a mailbox), which is cheap
enough to run at every sync (``prune`` defaults to 0).

A message's size (``RFC822.SIZE``) is fetched before its body: one over
``max_bytes`` is skipped with the reason and never downloaded. The message is
parsed by the e-mail format of :mod:`eventhub.documents.extract` (its parser and
its body choice), its attachments of supported types extracted with the same
registry. Broken mail is indexed as far as it can be read.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import imaplib
import ipaddress
import os
import quopri
import re
import socket
import ssl
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from eventhub.documents import (
    Change,
    Checkpoint,
    CheckpointExpired,
    Document,
    Source,
    SourceError,
)
from eventhub.documents.extract import (
    ExtractionError,
    LimitExceeded,
    email_body,
    email_header,
    extract,
    parse_email,
)
from eventhub.errors import ConfigError
from eventhub.hookspecs import hookimpl
from eventhub.redact import redact_text, register_secret

__all__ = ["IMAPSource"]

SECURITY = ("tls", "starttls", "none")
#: UIDs whose sizes one FETCH asks for, and so the messages between checkpoints.
SIZE_BATCH = 500
#: Most bytes and messages of bodies fetched by one command (a message larger than
#: this, up to max_bytes, is fetched alone).
BODY_BATCH_BYTES = 8 * 1024 * 1024
BODY_BATCH_COUNT = 100

#: The longest response line read. imaplib's own limit (1 MB) is the answer to a UID
#: SEARCH ALL of some 150,000 messages; this one is some 6 million.
MAX_LINE = 64 * 1024 * 1024

_SURROGATES = re.compile("[\ud800-\udfff]")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_MONTHS = {
    m: i + 1
    for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
}


class _LongLines:
    """imaplib's connections, reading response lines up to :data:`MAX_LINE`."""

    file: Any

    def readline(self) -> bytes:
        line: bytes = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise imaplib.IMAP4.error(f"a response line over {MAX_LINE} bytes")
        return line


class _IMAP4(_LongLines, imaplib.IMAP4):
    pass


class _IMAP4_SSL(_LongLines, imaplib.IMAP4_SSL):
    pass


class IMAPError(SourceError):
    """The server refused a command, or the connection failed: one line naming
    the source and the cause (never the password). ``answer`` is the server's
    ``NO`` text when it refused the command (the connection is fine), else None."""

    def __init__(self, message: str, answer: str | None = None) -> None:
        super().__init__(message)
        self.answer = answer


class IMAPSource(Source):
    """Messages of IMAP mailboxes (see the module docstring).

    Args:
        host: The server.
        username: The account.
        password: Its password (a secret: never in logs, errors or the state).
        port: Default 993 with ``security = "tls"``, else 143.
        security: ``"tls"`` (implicit TLS), ``"starttls"`` (STARTTLS, refused
            if the server does not offer it) or ``"none"`` (plain text: only to a
            loopback host, or with ``allow_private``).
        mailboxes: The mailboxes to read, by name (hierarchy as the server writes
            it: ``"Archive/2024"`` or ``"Archive.2024"``).
        timeout: Seconds a connection or command may take.
        allow_private: Allow ``security = "none"`` to a host that is not loopback.
        ca_file: A PEM file of the certificate authorities to trust (a company
            CA) instead of the system's; the host name is checked all the same.
        **config: The extraction limits (``max_bytes`` ...).
    """

    kind = "imap"
    default_prune = 0.0

    def __init__(
        self,
        host: str,
        username: str,
        password: str,
        port: int | None = None,
        security: str = "tls",
        mailboxes: Sequence[str] = ("INBOX",),
        timeout: float = 30.0,
        allow_private: bool = False,
        ca_file: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        if not isinstance(host, str) or not host:
            raise ConfigError("imap source: host is required")
        if not username or not password:
            raise ConfigError("imap source: username and password are required")
        if security not in SECURITY:
            raise ConfigError(
                f"imap source: security must be one of {', '.join(SECURITY)},"
                f" not {security!r}"
            )
        if security == "none" and not allow_private and not _is_loopback(host):
            raise ConfigError(
                f'imap source: security = "none" would send the password to {host}'
                " in the clear: use tls or starttls (or, on a trusted network, set"
                " allow_private = true)"
            )
        if (
            isinstance(mailboxes, str)
            or not mailboxes
            or not all(isinstance(m, str) and m for m in mailboxes)
        ):
            raise ConfigError("imap source: mailboxes must be a list of names")
        if port is None:
            port = 993 if security == "tls" else 143
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"imap source: port must be 1-65535, not {port!r}")
        register_secret(password)
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.mailboxes = list(dict.fromkeys(mailboxes))
        self.timeout = float(timeout)
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ConfigError(f"imap source: ca_file {ca_file!r} is not a file")
        self.ca_file = ca_file
        self._conn: imaplib.IMAP4 | None = None
        self._selected: str | None = None

    # Source -------------------------------------------------------------------

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterator[Change]:
        state = self._checkpoint_state(checkpoint)
        try:
            for mailbox in self.mailboxes:
                validity, uidnext = self._examine(mailbox)
                known = state.get(mailbox)
                if known is not None and known[0] != validity:
                    raise CheckpointExpired(
                        f"mailbox {mailbox!r} has a new UIDVALIDITY ({known[0]}, now"
                        f" {validity}): its UIDs name other messages"
                    )
                last = known[1] if known is not None else 0
                state[mailbox] = [validity, last]
                if uidnext is not None and uidnext <= last:
                    # RFC 9051 2.3.1.1: UIDNEXT never goes back while UIDVALIDITY
                    # stays; a server that renumbered anyway (GMX has) would
                    # hide new mail below the saved UID: read it all again.
                    raise CheckpointExpired(
                        f"mailbox {mailbox!r} went back to UIDNEXT {uidnext} with"
                        f" the same UIDVALIDITY, below the UIDs already read ({last})"
                    )
                if uidnext == last + 1:
                    continue  # nothing arrived since
                found = self._search(f"UID {last + 1}:*")
                new = sorted(u for u in found if u > last)
                for start in range(0, len(new), SIZE_BATCH):
                    chunk = new[start : start + SIZE_BATCH]
                    yield from self._messages(mailbox, validity, chunk)
                    state[mailbox] = [validity, chunk[-1]]
                    yield Checkpoint(self._checkpoint_value(state))
                if uidnext is not None and uidnext - 1 > state[mailbox][1]:
                    # UIDs below UIDNEXT that no message holds (expunged, or moved
                    # away: Gmail's labels) never come back: not searched again.
                    state[mailbox] = [validity, uidnext - 1]
            yield Checkpoint(self._checkpoint_value(state))
        finally:
            self.close()

    def ids(self) -> list[str]:
        """The id of every message of every mailbox (``UID SEARCH ALL`` each).

        Raises:
            SourceError: a mailbox could not be listed (then nothing is deleted).
        """
        found: list[str] = []
        for mailbox in self.mailboxes:
            validity, _ = self._examine(mailbox)
            found += [f"{mailbox}/{validity}/{uid}" for uid in self._search("ALL")]
        return found

    def fetch(self, id: str) -> Document | None:
        parts = id.rsplit("/", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        mailbox, validity, uid = parts[0], int(parts[1]), int(parts[2])
        if mailbox not in self.mailboxes:
            return None
        current, _ = self._examine(mailbox)
        if current != validity:
            return None
        return next(iter(self._messages(mailbox, validity, [uid])), None)

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        """Log out (the next command connects again)."""
        conn, self._conn, self._selected = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.logout()

    # Checkpoints --------------------------------------------------------------

    def _checkpoint_value(self, state: dict[str, list[int]]) -> dict[str, Any]:
        return {
            "server": f"{self.host}:{self.port}",
            "username": self.username,
            "mailboxes": {m: list(v) for m, v in state.items()},
        }

    def _checkpoint_state(self, checkpoint: Any | None) -> dict[str, list[int]]:
        """The ``[uidvalidity, last uid]`` of each configured mailbox the
        checkpoint knows (a mailbox added to the config since is read whole)."""
        if checkpoint is None:
            return {}
        boxes = checkpoint.get("mailboxes") if isinstance(checkpoint, dict) else None
        if not isinstance(boxes, dict) or not all(
            isinstance(v, list)
            and len(v) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in v)
            for v in boxes.values()
        ):
            raise CheckpointExpired(f"not an imap checkpoint: {str(checkpoint)[:80]!r}")
        if (checkpoint.get("server"), checkpoint.get("username")) != (
            f"{self.host}:{self.port}",
            self.username,
        ):
            raise CheckpointExpired("the checkpoint is of another server or account")
        return {m: list(v) for m, v in boxes.items() if m in self.mailboxes}

    # Messages -----------------------------------------------------------------

    def _messages(
        self, mailbox: str, validity: int, uids: Sequence[int]
    ) -> Iterator[Document]:
        """The documents of these UIDs: sizes first, then the bodies of those
        within max_bytes, a few at a time."""
        sizes = self._sizes(uids)
        group: list[int] = []
        weight = 0
        for uid in uids:
            if uid not in sizes:
                continue  # expunged since the search
            size, when = sizes[uid]
            if size > self.limits.max_bytes:
                reason = LimitExceeded(
                    "max_bytes", self.limits.max_bytes, f"too large: {size} bytes"
                ).reason
                self.skip(f"{mailbox}/{validity}/{uid}", reason, when)
                continue
            if group and (
                weight + size > BODY_BATCH_BYTES or len(group) >= BODY_BATCH_COUNT
            ):
                yield from self._bodies(mailbox, validity, group, sizes)
                group, weight = [], 0
            group.append(uid)
            weight += size
        if group:
            yield from self._bodies(mailbox, validity, group, sizes)

    def _bodies(
        self,
        mailbox: str,
        validity: int,
        uids: list[int],
        sizes: dict[int, tuple[int, datetime | None]],
    ) -> Iterator[Document]:
        try:
            bodies = self._fetch_bodies(uids)
        except IMAPError as exc:
            if exc.answer is None:
                raise
            # A message the server cannot give ("NO Some messages could not be
            # FETCHed", says Gmail) fails alone: the rest are fetched one by one.
            bodies = {}
            for uid in uids:
                try:
                    bodies.update(self._fetch_bodies([uid]))
                except IMAPError as one:
                    if one.answer is None:
                        raise
                    self.fail(f"{mailbox}/{validity}/{uid}", one.answer)
        for uid in uids:
            doc_id = f"{mailbox}/{validity}/{uid}"
            raw = bodies.pop(uid, None)
            if raw is None:
                continue  # expunged between the two fetches, or failed above
            document = self._document(
                doc_id, mailbox, validity, uid, raw, sizes[uid][1]
            )
            if document is not None:
                yield document

    def _document(
        self,
        doc_id: str,
        mailbox: str,
        validity: int,
        uid: int,
        raw: bytes,
        when: datetime | None,
    ) -> Document | None:
        try:
            return _mail_document(self, doc_id, mailbox, validity, uid, raw, when)
        except ExtractionError as exc:
            self.skip(doc_id, exc.reason, when)
        except MemoryError:
            raise
        except Exception as exc:  # mail too broken for the parser: skipped, not fatal
            message = " ".join(str(exc).split())[:200]
            self.skip(
                doc_id, f"unreadable e-mail ({type(exc).__name__}: {message})", when
            )
        return None

    def imap_url(self, mailbox: str, validity: int, uid: int) -> str:
        """The message's IMAP URL (RFC 5092), for mail without a Message-ID."""
        user = quote(self.username, safe="")
        box = quote(mailbox, safe="/")
        return f"imap://{user}@{self.host}:{self.port}/{box};UIDVALIDITY={validity}/;UID={uid}"

    # IMAP ---------------------------------------------------------------------

    def _connect(self) -> imaplib.IMAP4:
        """A logged-in connection."""
        where = f"{self.host}:{self.port}"
        context = ssl.create_default_context(cafile=self.ca_file)
        conn: imaplib.IMAP4 | None = None
        try:
            if self.security == "tls":
                conn = _IMAP4_SSL(
                    self.host, self.port, ssl_context=context, timeout=self.timeout
                )
            else:
                conn = _IMAP4(self.host, self.port, timeout=self.timeout)
                if self.security == "starttls":
                    if "STARTTLS" not in conn.capabilities:
                        conn.shutdown()
                        raise self._error(
                            f"{where} does not offer STARTTLS",
                            "the password is not sent in the clear (is it an"
                            ' implicit TLS port? then security = "tls")',
                        )
                    conn.starttls(context)
        except (OSError, imaplib.IMAP4.error) as exc:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.shutdown()
            raise self._error(f"cannot connect to {where}", exc) from None
        try:
            conn.login(self.username, self._password)
        except (OSError, imaplib.IMAP4.error) as exc:
            with contextlib.suppress(Exception):
                conn.shutdown()
            raise self._error(
                f"{where} refused the login of {self.username!r}", exc
            ) from None
        return conn

    def _connection(self) -> imaplib.IMAP4:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _error(
        self, what: str, exc: BaseException | str, *, refused: bool = False
    ) -> IMAPError:
        detail = exc if isinstance(exc, str) else _text(exc)
        if not isinstance(exc, str) and isinstance(exc, socket.timeout | TimeoutError):
            detail = f"no answer within {self.timeout:g} s"
        line = " ".join(f"imap source {self.name!r}: {what}: {detail}".split())
        if len(self._password) >= 4:
            line = line.replace(self._password, "***")
            detail = detail.replace(self._password, "***")
        answer = redact_text(" ".join(detail.split())) if refused else None
        return IMAPError(redact_text(line), answer)

    def _command(self, what: str, call: Any, *args: Any) -> list[Any]:
        """Run an imaplib call; its data, or IMAPError (the connection is dropped
        after a failure: the next command connects again)."""
        conn = self._connection()
        try:
            status, data = call(conn, *args)
        except (OSError, imaplib.IMAP4.error) as exc:
            self._drop()
            raise self._error(what, exc) from None
        if status != "OK":
            raise self._error(what, _text_of(data), refused=True)
        return list(data or [])

    def _drop(self) -> None:
        conn, self._conn, self._selected = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.shutdown()

    def _examine(self, mailbox: str) -> tuple[int, int | None]:
        """Open a mailbox read-only: its UIDVALIDITY and UIDNEXT (None if the
        server did not say)."""
        self._selected = None
        self._command(
            f"cannot open mailbox {mailbox!r}",
            lambda c: c.select(_mailbox_arg(mailbox), readonly=True),
        )
        conn = self._connection()
        validity = _number(conn.response("UIDVALIDITY")[1])
        uidnext = _number(conn.response("UIDNEXT")[1])
        if validity is None:
            raise self._error(f"mailbox {mailbox!r}", "the server sent no UIDVALIDITY")
        self._selected = mailbox
        return validity, uidnext

    def _search(self, criteria: str) -> list[int]:
        data = self._command(
            f"cannot search mailbox {self._selected!r}",
            lambda c: c.uid("SEARCH", criteria),
        )
        return [int(u) for item in data if item for u in bytes(item).split()]

    def _sizes(self, uids: Sequence[int]) -> dict[int, tuple[int, datetime | None]]:
        data = self._command(
            f"cannot fetch from mailbox {self._selected!r}",
            lambda c: c.uid("FETCH", _uid_set(uids), "(UID RFC822.SIZE INTERNALDATE)"),
        )
        found: dict[int, tuple[int, datetime | None]] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid, size = _UID.search(line), _SIZE.search(line)
            if uid is None or size is None:
                continue  # an unsolicited FETCH (flags changed elsewhere)
            date = _INTERNALDATE.search(line)
            when = (
                _internaldate(date.group(1).decode("ascii", "replace"))
                if date
                else None
            )
            found[int(uid.group(1))] = (int(size.group(1)), when)
        return found

    def _fetch_bodies(self, uids: list[int]) -> dict[int, bytes]:
        data = self._command(
            f"cannot fetch from mailbox {self._selected!r}",
            lambda c: c.uid("FETCH", _uid_set(uids), "(UID BODY.PEEK[])"),
        )
        bodies: dict[int, bytes] = {}
        for n, item in enumerate(data):
            if not isinstance(item, tuple) or len(item) != 2:
                continue
            head, literal = item
            if b"BODY[]" not in head:
                continue
            uid = _UID.search(head)
            if uid is None and n + 1 < len(data) and isinstance(data[n + 1], bytes):
                uid = _UID.search(data[n + 1])  # UID sent after the body
            if uid is not None:
                bodies[int(uid.group(1))] = bytes(literal)
        return bodies


# A message as a document ----------------------------------------------------------


def _mail_document(
    source: IMAPSource,
    doc_id: str,
    mailbox: str,
    validity: int,
    uid: int,
    raw: bytes,
    when: datetime | None,
) -> Document:
    limits = source.limits
    message = parse_email(raw, limits, attachments=True)
    header = {
        name: _clean(email_header(message, name))
        for name in ("subject", "from", "to", "cc", "date", "message-id", "in-reply-to")
    }
    subject = " ".join(header["subject"].split())
    try:
        body, text = email_body(message, limits)
    except LimitExceeded:
        raise
    except Exception:  # a body the parser cannot give: the headers still count
        body, text = None, ""
    lines = [
        f"{label}: {header[name]}"
        for label, name in (
            ("From", "from"),
            ("To", "to"),
            ("Cc", "cc"),
            ("Date", "date"),
        )
        if header[name]
    ]
    lines.append(f"Subject: {subject}")
    parts = ["\n".join(lines), _clean(text)]
    used = sum(len(p) for p in parts)
    names: list[str] = []
    for name, data, content_type in _attachments(message, body):
        names.append(name)
        try:
            found = extract(data, name, content_type, limits)
        except ExtractionError:
            continue  # an unsupported or unreadable attachment: the mail stays
        if used + len(found.text) > limits.max_chars:
            continue
        used += len(found.text)
        parts.append(f"Attachment: {name}\n\n{found.text}")
    message_id = header["message-id"].strip()
    mid = message_id.strip().strip("<>")
    metadata: dict[str, Any] = {
        "mailbox": mailbox,
        "uidvalidity": validity,
        "uid": uid,
        "from": _addresses(header["from"]),
        "to": _addresses(header["to"]),
        "cc": _addresses(header["cc"]),
    }
    if message_id:
        metadata["message_id"] = message_id
    if header["in-reply-to"]:
        metadata["in_reply_to"] = header["in-reply-to"].strip()
    references = _clean(email_header(message, "references")).split()
    if references:
        metadata["references"] = references
    sent = _date(header["date"])
    if sent is not None:
        metadata["date"] = sent.isoformat()
    if names:
        metadata["attachments"] = names
    return Document(
        id=doc_id,
        source=source.name,
        title=subject or "(no subject)",
        text="\n\n".join(p for p in parts if p.strip()),
        url=f"mid:{quote(mid, safe='@!$&()*+,;=:~.-_')}"
        if mid
        else source.imap_url(mailbox, validity, uid),
        updated_at=when,
        metadata=metadata,
    )


def _attachments(
    message: email.message.Message, body: email.message.Message | None
) -> Iterator[tuple[str, bytes, str]]:
    """(file name, bytes, media type) of each attachment: parts with a file name,
    and attached messages (as ``.eml``), never the body itself."""
    for part in _leaves(message):
        if part is body:
            continue
        try:
            name = part.get_filename()
        except Exception:
            name = None
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            encoded = _encoded_message(part)
            if encoded is not None:  # against RFC 2046, but real
                yield (name or "message.eml"), encoded, content_type
                continue
            inner = part.get_payload()
            if (
                isinstance(inner, list)
                and inner
                and isinstance(inner[0], email.message.Message)
            ):
                data = inner[0].as_bytes()
                title = _clean(email_header(inner[0], "subject")) or "message"
                yield (name or f"{title}.eml"), data, content_type
            continue
        if not name:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            yield _clean(" ".join(str(name).split())), payload, content_type


def _encoded_message(part: email.message.Message) -> bytes | None:
    """The bytes of an attached message sent base64 or quoted-printable (the
    parser reads such a body as a message of its own: garbage); None for one sent
    as it should be (7bit, 8bit, binary)."""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding not in ("base64", "quoted-printable"):
        return None
    raw = part.as_bytes()
    cut = min(
        (i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0),
        default=-1,
    )
    body = raw[cut:].strip() if cut >= 0 else b""
    if encoding == "base64":
        return base64.b64decode(body, validate=False)
    return quopri.decodestring(body)


def _leaves(
    part: email.message.Message, depth: int = 0
) -> Iterator[email.message.Message]:
    """The parts that are not multiparts, attached messages left whole."""
    if part.get_content_maintype() == "multipart" and depth < 64:
        payload = part.get_payload()
        if isinstance(payload, list):
            for inner in payload:
                if isinstance(inner, email.message.Message):
                    yield from _leaves(inner, depth + 1)
        return
    yield part


def _addresses(value: str) -> list[str]:
    if not value:
        return []
    try:
        pairs = getaddresses([value])
    except Exception:
        return [value]
    found = [
        f"{name} <{address}>" if name and address else (address or name)
        for name, address in pairs
        if name or address
    ]
    return found or [value]


def _date(value: str) -> datetime | None:
    """A Date header as a UTC time; None when it cannot be read."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 5322's -0000: UTC, origin unknown
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _internaldate(value: str) -> datetime | None:
    """An INTERNALDATE (``" 2-Dec-2026 01:02:03 +0100"``) as a UTC time."""
    match = re.fullmatch(
        r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)",
        value,
    )
    if match is None:
        return None
    day, month, year, hh, mm, ss, sign, oh, om = match.groups()
    if month.title() not in _MONTHS:
        return None
    offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
    try:
        return datetime(
            int(year),
            _MONTHS[month.title()],
            int(day),
            int(hh),
            int(mm),
            int(ss),
            tzinfo=timezone(offset),
        ).astimezone(UTC)
    except ValueError:
        return None


def _clean(text: str) -> str:
    """Text that encodes as UTF-8 (undecodable header bytes come as surrogates)."""
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _mailbox_arg(name: str) -> str:
    """A mailbox name as an IMAP quoted string in modified UTF-7 (RFC 3501 5.1.3)."""
    encoded = _utf7(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utf7(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _uid_set(uids: Iterable[int]) -> str:
    """UIDs as an IMAP sequence set, runs as ranges (``1:5,7,9:12``)."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(ranges)


def _number(data: Any) -> int | None:
    values = [d for d in (data or []) if d]
    if not values:
        return None
    try:
        return int(values[-1])
    except (TypeError, ValueError):
        return None


def _text(exc: BaseException) -> str:
    """An imaplib error as text (its message is often a bytes repr)."""
    args = exc.args
    if len(args) == 1 and isinstance(args[0], bytes):
        return args[0].decode("utf-8", "replace")
    message = str(exc)
    if message.startswith(("b'", 'b"')) and message.endswith(("'", '"')):
        message = message[2:-1]
    return message or type(exc).__name__


def _text_of(data: Any) -> str:
    items = [d for d in (data or []) if d]
    if not items:
        return "refused"
    first = items[0]
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)


@hookimpl
def register_integrations(register: Any) -> None:
    register(IMAPSource)
