"""The signature schemes against their published vectors and independent oracles."""

import json
import time
from datetime import datetime

import pytest
import slack_sdk.signature
import standardwebhooks
import stripe

from eventhub.webhooks import signatures as sig
from eventhub.webhooks.signatures import SignatureError

from .conftest import REALDATA

VECTORS = json.loads((REALDATA / "signature-vectors" / "vectors.json").read_text())
GITHUB = VECTORS["github_x_hub_signature_256"]
SLACK = VECTORS["slack_v0_request_signing"]
STANDARD = VECTORS["standard_webhooks_v1"]


def test_github_documented_vector():
    body = GITHUB["body"].encode()
    assert (
        sig.github_signature(GITHUB["secret"], body)
        == "sha256=" + GITHUB["expected_hex"]
    )
    sig.verify_github(GITHUB["secret"], body, "sha256=" + GITHUB["expected_hex"])


@pytest.mark.parametrize(
    "secret",
    ["", b"", [], [""]],
)
def test_an_empty_secret_never_verifies(secret):
    body = b"Hello, World!"
    forged = "sha256=" + sig._hmac_hex(b"", body).decode()
    with pytest.raises(SignatureError, match="no secret"):
        sig.verify_github(secret, body, forged)


def test_slack_documented_vector_and_window():
    body, ts = SLACK["body"].encode(), SLACK["timestamp"]
    assert (
        sig.slack_signature(SLACK["signing_secret"], ts, body)
        == SLACK["expected_signature"]
    )
    for now in (int(ts) - 300, int(ts), int(ts) + 300):
        sig.verify_slack(
            SLACK["signing_secret"], body, ts, SLACK["expected_signature"], now=now
        )
    for now in (int(ts) - 301, int(ts) + 301):
        with pytest.raises(SignatureError, match="window"):
            sig.verify_slack(
                SLACK["signing_secret"], body, ts, SLACK["expected_signature"], now=now
            )


def test_slack_agrees_with_the_slack_sdk():
    secret, body, ts = (
        "8f742231b10e8888abcd99yyyzzz85a5",
        b"token=x&text=hi",
        1700000000,
    )
    signature = sig.slack_signature(secret, ts, body)
    verifier = slack_sdk.signature.SignatureVerifier(
        secret, clock=type("C", (), {"now": lambda self: float(ts)})()
    )
    assert verifier.is_valid(body, str(ts), signature)


def test_standard_webhooks_documented_vector():
    body = STANDARD["body"].encode()
    got = sig.standard_signature(
        STANDARD["secret"], STANDARD["msg_id"], STANDARD["timestamp"], body
    )
    assert got == STANDARD["expected_signature"]
    sig.verify_standard(
        STANDARD["secret"],
        body,
        STANDARD["msg_id"],
        str(STANDARD["timestamp"]),
        got,
        now=STANDARD["timestamp"],
    )


def test_standard_webhooks_rotation_and_oracle():
    old, new = "whsec_" + "A" * 32, STANDARD["secret"]
    body, ts = b'{"type": "invoice.paid"}', 1700000000
    header = " ".join(
        [sig.standard_signature(old, "msg_1", ts, body), "v1a,ignored"]
        + [sig.standard_signature(new, "msg_1", ts, body)]
    )
    sig.verify_standard([new], body, "msg_1", str(ts), header, now=ts)
    sig.verify_standard([old], body, "msg_1", str(ts), header, now=ts)
    with pytest.raises(SignatureError):
        sig.verify_standard(
            ["whsec_" + "B" * 32], body, "msg_1", str(ts), header, now=ts
        )
    oracle = standardwebhooks.Webhook(new)
    signed = oracle.sign("msg_1", datetime.fromtimestamp(ts), body.decode())
    sig.verify_standard(new, body, "msg_1", str(ts), signed, now=ts)


def test_stripe_style_against_the_stripe_library():
    secret, body = "whsec_test_secret", b'{"id": "evt_1", "type": "charge.succeeded"}'
    now = int(time.time())
    header = sig.stripe_signature(secret, now, body)
    assert stripe.WebhookSignature.verify_header(body.decode(), header, secret, 300)
    theirs = f"t={now},v1=" + stripe.WebhookSignature._compute_signature(
        f"{now}.{body.decode()}", secret
    )
    sig.verify_stripe(secret, body, theirs, now=now)


def test_stripe_style_rotation_unknown_schemes_and_missing_t():
    body, ts = b"{}", 1700000000
    mine = sig.stripe_signature("whsec_new", ts, body).split(",")[1]
    old = sig.stripe_signature("whsec_old", ts, body).split(",")[1]
    sig.verify_stripe("whsec_new", body, f"t={ts},{old},{mine},v0=abc", now=ts)
    sig.verify_stripe(["whsec_x", "whsec_old"], body, f"t={ts},{old}", now=ts)
    with pytest.raises(SignatureError, match="t="):
        sig.verify_stripe("whsec_new", body, mine, now=ts)
    with pytest.raises(SignatureError, match="no v1"):
        sig.verify_stripe("whsec_new", body, f"t={ts},v0=abc", now=ts)


@pytest.mark.parametrize("tolerance", [0, -1, float("inf"), float("nan"), 10**9, True])
def test_the_replay_window_cannot_be_switched_off(tolerance):
    with pytest.raises(ValueError, match="cannot be turned off"):
        sig.check_tolerance(tolerance)


@pytest.mark.parametrize(
    "options",
    [
        {"algorithm": "sha1", "prefix": "sha1=", "encoding": "hex"},
        {"algorithm": "sha256", "prefix": "", "encoding": "base64"},
        {"algorithm": "sha512", "prefix": "v1=", "encoding": "hex"},
    ],
)
def test_plain_hmac_schemes(options):
    body = b'{"x": 1}'
    header = sig.hmac_signature("s3cret", body, **options)
    sig.verify_hmac("s3cret", body, header, **options)
    with pytest.raises(SignatureError):
        sig.verify_hmac("s3cret", body + b" ", header, **options)
    with pytest.raises(SignatureError):
        sig.verify_hmac("s3cret", body, header.upper() + "X", **options)
