"""Webhook signature schemes: sign and verify, on the raw bytes of a request body.

Every ``verify_*`` function returns ``None`` for a good signature and raises
:class:`SignatureError` (with a short ``reason``) for anything else. They never parse
the body, compare in constant time on bytes, and fail closed: an empty secret, a
missing or malformed header, a timestamp outside the window, all raise.

Schemes:

* GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
* Slack: ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`` with
  ``X-Slack-Request-Timestamp: <ts>``, at most ``tolerance`` (300) seconds away.
* Standard Webhooks (Svix): ``webhook-signature: v1,<base64> [v1,<base64> ...]`` over
  ``"<webhook-id>.<webhook-timestamp>.<body>"``, key = base64 of ``whsec_...``.
* Stripe style: ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]`` over
  ``"<ts>.<body>"``.
* Plain HMAC: a configurable header, algorithm, prefix and encoding.

Several signatures in one header (the sender rotating its secret) and several
configured secrets (us rotating ours) are both accepted: any pair that matches.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Callable, Sequence

from ..errors import EventHubError

#: The largest replay window a receiver may be given (an hour): the window can be
#: widened, never switched off.
MAX_TOLERANCE = 3600.0
DEFAULT_TOLERANCE = 300.0
ALGORITHMS = ("sha1", "sha256", "sha512")


class SignatureError(EventHubError):
    """A request's signature did not verify; ``reason`` says why (safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"signature rejected: {reason}")
        self.reason = reason


Secrets = bytes | str | Sequence[bytes | str]


def _utf8(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _keys(
    secrets: Secrets, to_key: Callable[[bytes | str], bytes] = _utf8
) -> list[bytes]:
    """The HMAC keys of one or several secrets; fails closed on an empty one."""
    items = [secrets] if isinstance(secrets, bytes | str) else list(secrets)
    if not items or not all(items):
        raise SignatureError("no secret configured")
    return [to_key(s) for s in items]


def _header_bytes(value: str | None, name: str) -> bytes:
    if value is None:
        raise SignatureError(f"{name} header missing")
    if not value:
        raise SignatureError(f"{name} header empty")
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise SignatureError(f"{name} header is not ASCII") from None


def _any_match(expected: list[bytes], provided: list[bytes]) -> bool:
    # Every pair is compared, so the time taken does not say which one matched.
    matched = False
    for mine in expected:
        for theirs in provided:
            matched |= hmac.compare_digest(mine, theirs)
    return matched


def check_timestamp(value: str | None, name: str, now: float, tolerance: float) -> int:
    """Parse a Unix-seconds timestamp header and check it is within the window.

    Raises:
        SignatureError: missing, not an integer, or more than ``tolerance`` seconds
            before or after ``now``.
    """
    raw = _header_bytes(value, name)
    if not raw.isdigit() or len(raw) > 12:
        raise SignatureError(f"{name} is not a Unix timestamp")
    moment = int(raw)
    if abs(now - moment) > tolerance:
        raise SignatureError(f"{name} is outside the {tolerance:g} s window")
    return moment


def check_tolerance(tolerance: float) -> float:
    """A replay window in seconds: positive and at most :data:`MAX_TOLERANCE`."""
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not math.isfinite(tolerance)
        or not 0 < tolerance <= MAX_TOLERANCE
    ):
        raise ValueError(
            f"tolerance must be between 1 and {MAX_TOLERANCE:g} seconds "
            f"(the replay window cannot be turned off), not {tolerance!r}"
        )
    return float(tolerance)


def _hmac_hex(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, algorithm).hexdigest().encode()


# GitHub -----------------------------------------------------------------------


def github_signature(secret: bytes | str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    (key,) = _keys(secret)
    return "sha256=" + _hmac_hex(key, body).decode()


def verify_github(secrets: Secrets, body: bytes, header: str | None) -> None:
    """Verify ``X-Hub-Signature-256`` (the SHA-1 header is never accepted)."""
    keys = _keys(secrets)
    provided = _header_bytes(header, "X-Hub-Signature-256")
    if not provided.startswith(b"sha256="):
        raise SignatureError("X-Hub-Signature-256 does not start with sha256=")
    expected = [b"sha256=" + _hmac_hex(key, body) for key in keys]
    if not _any_match(expected, [provided]):
        raise SignatureError("X-Hub-Signature-256 does not match")


# Slack ------------------------------------------------------------------------


def slack_signature(secret: bytes | str, timestamp: str | int, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends."""
    (key,) = _keys(secret)
    return (
        "v0=" + _hmac_hex(key, b"v0:%s:%s" % (str(timestamp).encode(), body)).decode()
    )


def verify_slack(
    secrets: Secrets,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Verify Slack's ``v0`` request signature and its replay window."""
    keys = _keys(secrets)
    provided = _header_bytes(signature, "X-Slack-Signature")
    moment = check_timestamp(timestamp, "X-Slack-Request-Timestamp", now, tolerance)
    message = b"v0:%d:%s" % (moment, body)
    expected = [b"v0=" + _hmac_hex(key, message) for key in keys]
    if not _any_match(expected, [provided]):
        raise SignatureError("X-Slack-Signature does not match")


# Standard Webhooks -------------------------------------------------------------


def _standard_key(secret: bytes | str) -> bytes:
    if isinstance(secret, bytes):
        return secret
    text = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(
            "a Standard Webhooks secret is 'whsec_' followed by base64"
        ) from None


def standard_signature(
    secret: bytes | str, msg_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one secret."""
    (key,) = _keys(secret, _standard_key)
    digest = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), timestamp, body), "sha256")
    return "v1," + base64.b64encode(digest.digest()).decode()


def verify_standard(
    secrets: Secrets,
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Verify a Standard Webhooks signature header (several ``v1,`` entries allowed;
    other versions are ignored)."""
    keys = _keys(secrets, _standard_key)
    header = _header_bytes(signature, "webhook-signature")
    ident = _header_bytes(msg_id, "webhook-id")
    moment = check_timestamp(timestamp, "webhook-timestamp", now, tolerance)
    provided = [
        part[3:] for part in header.split(b" ") if part.startswith(b"v1,") and part[3:]
    ]
    if not provided:
        raise SignatureError("webhook-signature has no v1 signature")
    message = b"%s.%d.%s" % (ident, moment, body)
    expected = [
        base64.b64encode(hmac.new(key, message, "sha256").digest()) for key in keys
    ]
    if not _any_match(expected, provided):
        raise SignatureError("webhook-signature does not match")


# Stripe style -----------------------------------------------------------------


def stripe_signature(secret: bytes | str, timestamp: int, body: bytes) -> str:
    """A ``Stripe-Signature`` header value (``t=...,v1=...``) for one secret."""
    (key,) = _keys(secret)
    return f"t={timestamp},v1=" + _hmac_hex(key, b"%d.%s" % (timestamp, body)).decode()


def verify_stripe(
    secrets: Secrets,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
    name: str = "Stripe-Signature",
) -> None:
    """Verify a ``t=<ts>,v1=<hex>[,v1=...]`` header; other schemes (``v0=``) are
    ignored."""
    keys = _keys(secrets)
    raw = _header_bytes(header, name)
    stamps: list[bytes] = []
    provided: list[bytes] = []
    for part in raw.split(b","):
        key, sep, value = part.strip().partition(b"=")
        if not sep:
            continue
        if key == b"t":
            stamps.append(value)
        elif key == b"v1" and value:
            provided.append(value)
    if len(stamps) != 1:
        raise SignatureError(f"{name} needs exactly one t=")
    moment = check_timestamp(stamps[0].decode(), f"{name} t=", now, tolerance)
    if not provided:
        raise SignatureError(f"{name} has no v1 signature")
    expected = [_hmac_hex(key, b"%d.%s" % (moment, body)) for key in keys]
    if not _any_match(expected, provided):
        raise SignatureError(f"{name} does not match")


# Plain HMAC ------------------------------------------------------------------


def hmac_signature(
    secret: bytes | str,
    body: bytes,
    *,
    algorithm: str = "sha256",
    prefix: str = "",
    encoding: str = "hex",
) -> str:
    """A plain HMAC header value: ``prefix`` + hex or base64 of HMAC(secret, body)."""
    (key,) = _keys(secret)
    return prefix + _encode(hmac.new(key, body, algorithm).digest(), encoding).decode()


def _encode(digest: bytes, encoding: str) -> bytes:
    if encoding == "hex":
        return binascii.hexlify(digest)
    if encoding == "base64":
        return base64.b64encode(digest)
    raise ValueError(f"encoding must be 'hex' or 'base64', not {encoding!r}")


def verify_hmac(
    secrets: Secrets,
    body: bytes,
    header: str | None,
    *,
    name: str = "X-Signature",
    algorithm: str = "sha256",
    prefix: str = "",
    encoding: str = "hex",
) -> None:
    """Verify a plain HMAC signature header (exact bytes: case counts)."""
    keys = _keys(secrets)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    provided = _header_bytes(header, name)
    if not provided.startswith(prefix.encode()):
        raise SignatureError(f"{name} does not start with {prefix!r}")
    expected = [
        prefix.encode() + _encode(hmac.new(key, body, algorithm).digest(), encoding)
        for key in keys
    ]
    if not _any_match(expected, [provided]):
        raise SignatureError(f"{name} does not match")


__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_TOLERANCE",
    "SignatureError",
    "check_timestamp",
    "check_tolerance",
    "github_signature",
    "hmac_signature",
    "slack_signature",
    "standard_signature",
    "stripe_signature",
    "verify_github",
    "verify_hmac",
    "verify_slack",
    "verify_standard",
    "verify_stripe",
]
