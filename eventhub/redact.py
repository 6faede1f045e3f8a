"""What a secret is, and how secrets are taken out of what eventhub writes.

The one definition used wherever eventhub writes text: log lines, error messages,
run records, dead letters and events. A secret is recognised three ways:

* **By name**: a key, field, setting, header or query parameter whose name says it
  holds a secret (:func:`is_secret_key`, :func:`is_secret_param`, built on
  :data:`SECRET_WORDS`): ``password``, ``api_key``, ``Authorization``,
  ``client_secret``, ``X-Api-Key``, ``?sig=`` ...
* **By shape**: text that looks like a credential (:func:`redact_text`):
  ``token=...``, ``Authorization: Bearer ...``, ``scheme://user:password@``, Slack,
  GitHub and AWS keys, JSON Web Tokens.
* **By value**: every secret this process holds is registered
  (:func:`register_secret`) as it becomes known (read from the config, given to the
  HTTP client, obtained from an OAuth server, a webhook or JWT key, a new API token),
  and every occurrence of it is replaced, wherever it turns up: echoed in a vendor's
  error body, quoted in an exception, returned by a workflow.

A value is registered in the forms it takes when written: as is, JSON-escaped
(``\\"``, ``\\u00e9``, ``\\/``), URL-encoded, and for an HTTP Basic password the
base64 of ``user:password`` (the ``Authorization`` header's value). Values shorter
than :data:`MIN_SECRET_LENGTH` characters are not registered: short values are
common words and numbers, and replacing each of their occurrences would garble log
lines and events, while real credentials are longer (a name-based rule still hides
a short password under its key).

Checking text against the registry costs one search per registered secret (for the
longest run of its characters that every form keeps as is; the forms are searched
only when it occurs), and nothing when no secret is registered; JSON payloads are
decoded only when a form occurs in their bytes. This module imports nothing from
eventhub.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import date, time, timedelta
from enum import Enum
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit
from uuid import UUID

import orjson

__all__ = [
    "MAX_EPHEMERAL",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_WORDS",
    "forget_secret",
    "has_secrets",
    "is_secret_key",
    "is_secret_param",
    "redact_bytes",
    "redact_json_bytes",
    "redact_secrets",
    "redact_text",
    "redact_url",
    "redact_value",
    "register_secret",
    "secret_in",
]

REDACTED = "[REDACTED]"
#: Values shorter than this are not registered (see the module docstring).
MIN_SECRET_LENGTH = 8
#: Per-request values (a signature, an API key given to one call) kept at most.
MAX_EPHEMERAL = 256

# -- by name ---------------------------------------------------------------------

#: Words that name a secret; ``_`` stands for an optional separator (``api_key``
#: also matches ``apikey``, ``X-Api-Key`` and ``apiKey``).
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pwd",
    "secret",
    "token",
    "api_key",
    "private_key",
    "credential",
    "authorization",
    "authorisation",
    "cookie",
    "signature",
    "session_id",
    "jwt",
)
# Query parameters and header names are short (?key=, ?sig=, ?code= of an OAuth
# redirect, X-Auth, X-Session): there these words too mark a secret, anywhere in the
# name; hiding a harmless value costs nothing.
_SHORT_WORDS = ("key", "sig", "code", "auth(?!or)", "session", "ticket")
# A name ending with one of these holds where a secret is, not the secret
# (token_file, token_url, signature_header).
_REFERENCE_WORDS = frozenset(
    {"file", "path", "dir", "url", "uri", "endpoint", "env", "name", "type", "header"}
)
_SQUASHED_WORDS = frozenset(word.replace("_", "") for word in SECRET_WORDS)
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_PARAM = re.compile(
    "|".join([*(w.replace("_", "[_-]?") for w in SECRET_WORDS), *_SHORT_WORDS]),
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)  # log lines ask about the same field names
def is_secret_key(name: str) -> bool:
    """Whether a key, field or setting of this name holds a secret.

    It does when one of its words (or two adjacent words run together) is one of
    :data:`SECRET_WORDS`, plural or not (``password``, ``client_secret``,
    ``accessToken``, ``X-Api-Key``, ``credentials``), unless its last word says it
    names where a secret is (``token_file``, ``token_url``, ``signature_header``).
    """
    words = [w.lower() for w in _NAME_WORD.findall(name)]
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    for i, word in enumerate(words):
        pair = word + words[i + 1] if i + 1 < len(words) else ""
        for candidate in (word, pair):
            if candidate in _SQUASHED_WORDS or (
                candidate.endswith("s") and candidate[:-1] in _SQUASHED_WORDS
            ):
                return True
    return False


def is_secret_param(name: str) -> bool:
    """Whether a query parameter or header of this name may carry a secret: one of
    :data:`SECRET_WORDS` or of the short words (``key``, ``sig``, ``code``,
    ``auth``, ``session``, ``ticket``) anywhere in it."""
    return _SECRET_PARAM.search(name) is not None


# -- by shape ----------------------------------------------------------------------

_TEXT_NAMES = "|".join(
    w.replace("_", "[_-]?") for w in SECRET_WORDS if w not in ("pass", "pwd")
)
_SECRET_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    # "Authorization: Bearer abc", "token=abc", "password: abc", "x-api-key=abc"
    (
        re.compile(
            rf"(?i)(?<![a-z0-9])((?:{_TEXT_NAMES})s?)"
            r"(\"?'?\s*[:=]\s*\"?'?)(bearer\s+|basic\s+|token\s+)?([^\s\"',;&}]+)"
        ),
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}",
    ),
    (
        re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
        lambda m: f"{m.group(1)} {REDACTED}",
    ),
    # Credentials in URLs: scheme://user:password@host
    (
        # (a scheme of at most 32 characters: unbounded, the search is quadratic)
        re.compile(r"(\b[a-z][a-z0-9+.-]{0,31}://[^/\s:@]+):[^@\s/]+@"),
        lambda m: f"{m.group(1)}:{REDACTED}@",
    ),
    # Well-known token shapes: Slack, GitHub, AWS access keys, JWTs.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), lambda m: REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), lambda m: REDACTED),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), lambda m: REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), lambda m: REDACTED),
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        lambda m: REDACTED,
    ),
]


def redact_text(text: str) -> str:
    """Free text with every registered secret and every credential-shaped string
    replaced by ``[REDACTED]``."""
    text = redact_secrets(text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Values that hold no text, kept as they are (renderers write them their own way).
_PLAIN = (bool, int, float, date, time, timedelta, UUID, Enum)


def redact_value(key: str | None, value: Any, depth: int = 0) -> Any:
    """A value fit to be written: redacted whole when its key names a secret
    (``password=...``), else its text redacted (:func:`redact_text`), inside
    mappings and sequences too. Other objects become their redacted ``str``."""
    if key is not None and isinstance(key, str) and is_secret_key(key):
        return REDACTED if value not in (None, "") else value
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if depth > 8:
        return redact_text(str(value))
    if isinstance(value, Mapping):
        return {k: redact_value(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(None, v, depth + 1) for v in value)
    return redact_text(str(value))


def redact_url(url: str) -> str:
    """A URL fit for logs and errors: user info and the values of query parameters
    that may carry secrets (:func:`is_secret_param`: ``token``, ``key``, ``sig``,
    ``password``, ``code`` ...) replaced, then the rest as :func:`redact_text`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"

    def redact_pairs(text: str) -> str:
        pairs = []
        for pair in text.split("&"):
            name, eq, _value = pair.partition("=")
            secret = eq and is_secret_param(unquote(name))
            pairs.append(f"{name}={REDACTED}" if secret else pair)
        return "&".join(pairs)

    query, fragment = redact_pairs(parts.query), redact_pairs(parts.fragment)
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, fragment)))


# -- by value ------------------------------------------------------------------------

_lock = threading.Lock()
# A registered value's entry: a probe (a run of its characters that every form keeps
# as is: one search tells that no form occurs), and its forms, longest first, as
# text and as UTF-8.
_Entry = tuple[str, bytes, tuple[str, ...], tuple[bytes, ...]]
_lasting: dict[str, _Entry] = {}
_ephemeral: OrderedDict[str, _Entry] = OrderedDict()
# Every entry, longest value first, and their probes (rebuilt on change, read
# without a lock).
_entries: tuple[_Entry, ...] = ()
_text_probes: tuple[str, ...] = ()
_byte_probes: tuple[bytes, ...] = ()
# Characters that neither JSON escaping nor URL-encoding changes.
_KEPT_RUN = re.compile(r"[A-Za-z0-9_.~-]+")
_REDACTED_BYTES = REDACTED.encode()


def register_secret(
    value: str | bytes | None,
    *,
    username: str | None = None,
    ephemeral: bool = False,
) -> bool:
    """Remember a secret of this process, so that it is redacted wherever it turns
    up in what eventhub writes from now on.

    Args:
        value: The secret (bytes are taken as UTF-8; others are ignored). Values
            shorter than :data:`MIN_SECRET_LENGTH` are not registered.
        username: For an HTTP Basic password, its user: the base64 of
            ``user:password`` is registered too.
        ephemeral: A value of one request (a signed URL's signature, an API key
            passed to one call): kept among the :data:`MAX_EPHEMERAL` latest such
            values instead of for the life of the process.

    Returns:
        Whether anything was registered (False for a value too short, or known).
    """
    added = False
    if username is not None and isinstance(value, str):
        basic = base64.b64encode(f"{username}:{value}".encode()).decode("ascii")
        added = register_secret(basic, ephemeral=ephemeral)
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return added
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return added
    if value in _lasting or (ephemeral and value in _ephemeral):
        if ephemeral:
            with _lock:
                if value in _ephemeral:
                    _ephemeral.move_to_end(value)
        return added
    entry = _entry(value)
    with _lock:
        if ephemeral:
            _ephemeral[value] = entry
            while len(_ephemeral) > MAX_EPHEMERAL:
                _ephemeral.popitem(last=False)
        else:
            _lasting[value] = entry
            _ephemeral.pop(value, None)
        _rebuild()
    return True


def forget_secret(value: str | None) -> None:
    """Stop redacting a value registered before (a token replaced by a new one)."""
    if value is None or (value not in _lasting and value not in _ephemeral):
        return
    with _lock:
        _lasting.pop(value, None)
        _ephemeral.pop(value, None)
        _rebuild()


def has_secrets() -> bool:
    """Whether any secret is registered (when not, nothing needs redacting by
    value)."""
    return bool(_entries)


def _entry(value: str) -> _Entry:
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    ascii_escaped = json.dumps(value)[1:-1]
    forms = {
        value,
        escaped,
        ascii_escaped,  # \u00e9 for non-ASCII characters
        escaped.replace("/", "\\/"),  # JSON encoders that escape the slash
        ascii_escaped.replace("/", "\\/"),
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }
    ordered = tuple(sorted(forms, key=lambda f: (-len(f), f)))
    probe = max(_KEPT_RUN.findall(value), key=len, default="")
    if len(probe) < 4:
        probe = ""  # too little to tell: every form is searched
    return (
        probe,
        probe.encode("ascii"),
        ordered,
        tuple(f.encode("utf-8", "surrogatepass") for f in ordered),
    )


def _rebuild() -> None:
    global _entries, _text_probes, _byte_probes
    values = sorted({*_lasting, *_ephemeral}, key=lambda v: (-len(v), v))
    _entries = tuple(_lasting.get(v) or _ephemeral[v] for v in values)
    _text_probes = tuple({entry[0]: None for entry in _entries})
    _byte_probes = tuple({entry[1]: None for entry in _entries})


def redact_secrets(text: str) -> str:
    """Text with every registered secret (in each of its written forms) replaced
    by ``[REDACTED]``; returned unchanged, at once, when none occurs."""
    for probe in _text_probes:
        if probe in text:
            break
    else:
        return text  # the usual case: one search per secret
    for probe, _, forms, _ in _entries:
        if probe in text:
            for form in forms:
                if form in text:
                    text = text.replace(form, REDACTED)
    return text


def redact_bytes(payload: bytes) -> bytes:
    """Bytes (UTF-8 text, or any binary data) with every registered secret's bytes
    replaced; the same object when none occurs."""
    if not secret_in(payload):
        return payload
    for _, _, _, forms in _entries:
        for form in forms:
            payload = payload.replace(form, _REDACTED_BYTES)
    return payload


def redact_json_bytes(payload: bytes) -> bytes:
    """Encoded JSON with every registered secret replaced inside its strings (keys
    included); the same object when no form of a secret occurs in the bytes (the
    only work then). On a hit the document is decoded, redacted and encoded again;
    bytes that are not JSON are redacted as :func:`redact_bytes`."""
    if not secret_in(payload):
        return payload
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return redact_bytes(payload)
    try:
        cleaned = _redact_json(document, 0)
    except _TooDeep:
        # A document nested past any real payload: its text cannot be reached
        # safely, so none of it is kept.
        return orjson.dumps(REDACTED)
    return orjson.dumps(cleaned)


def secret_in(payload: bytes) -> bool:
    """Whether a form of a registered secret occurs in these bytes (the one search
    per secret that the redaction of bytes makes when none does)."""
    # bytes.find, not "in": for bytes, "in" first tries the operand as an integer.
    find = payload.find
    for probe in _byte_probes:
        if find(probe) != -1:
            break
    else:
        return False  # the usual case: one search per secret
    for _, probe, _, forms in _entries:
        if find(probe) != -1:
            for form in forms:
                if find(form) != -1:
                    return True
    return False


class _TooDeep(Exception):
    pass


def _redact_json(node: Any, depth: int) -> Any:
    if isinstance(node, str):
        return redact_secrets(node)
    if depth > 200:
        raise _TooDeep
    if isinstance(node, dict):
        return {
            redact_secrets(key): _redact_json(item, depth + 1)
            for key, item in node.items()
        }
    if isinstance(node, list):
        return [_redact_json(item, depth + 1) for item in node]
    return node
