import io
import json
import logging

import pytest
import structlog

from eventhub import log as eventhub_log
from eventhub.redact import forget_secret, register_secret


@pytest.fixture
def output():
    stream = io.StringIO()
    eventhub_log.configure(json=True, level="INFO", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_eventhub_handler", False):
            root.removeHandler(handler)
    structlog.reset_defaults()


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_lines_are_json_with_level_logger_and_time(output):
    structlog.get_logger("eventhub.test").info("hello", event_id="e1")
    (line,) = lines(output)
    assert line["event"] == "hello" and line["event_id"] == "e1"
    assert line["level"] == "info" and line["logger"] == "eventhub.test"
    assert line["timestamp"].endswith("Z")


def test_stdlib_loggers_render_the_same_way(output):
    logging.getLogger("apscheduler.scheduler").warning("job %s missed", "nightly")
    (line,) = lines(output)
    assert (
        line["event"] == "job nightly missed"
        and line["logger"] == "apscheduler.scheduler"
    )
    assert line["level"] == "warning"


def test_level_filters_lines(output):
    structlog.get_logger("x").debug("noise")
    logging.getLogger("y").debug("noise")
    assert lines(output) == []


@pytest.mark.parametrize(
    ("fields", "secret"),
    [
        ({"password": "hunter2hunter2"}, "hunter2hunter2"),
        ({"api_key": "k-123456789"}, "k-123456789"),
        ({"headers": {"Authorization": "Bearer abc.def.ghi123"}}, "abc.def.ghi123"),
        ({"detail": "sent Authorization: Bearer s3cr3tt0ken99"}, "s3cr3tt0ken99"),
        ({"url": "https://bob:pa55word@example.test/x"}, "pa55word"),
        ({"note": "token xoxb-1234567890-abcdefghij"}, "xoxb-1234567890-abcdefghij"),
        (
            {"note": "using ghp_abcdefghijklmnopqrstuvwxyz0123"},
            "ghp_abcdefghijklmnopqrstuvwxyz0123",
        ),
        ({"config": {"slack": {"token": "plain-secret-value"}}}, "plain-secret-value"),
        ({"query": "password=letmein99&user=bob"}, "letmein99"),
    ],
)
def test_secrets_are_redacted_before_rendering(output, fields, secret):
    structlog.get_logger("eventhub.test").info("calling", **fields)
    text = output.getvalue()
    assert secret not in text and "[REDACTED]" in text


def test_secrets_in_messages_and_exceptions_are_redacted(output):
    try:
        raise RuntimeError("login failed for password=opensesame123")
    except RuntimeError:
        structlog.get_logger("eventhub.test").exception("token=abcdef123456 rejected")
    logging.getLogger("requests").error("Authorization: Basic dXNlcjpwYXNzd29yZA==")
    text = output.getvalue()
    for secret in ("opensesame123", "abcdef123456", "dXNlcjpwYXNzd29yZA=="):
        assert secret not in text


def test_configure_twice_keeps_one_handler(output):
    eventhub_log.configure(json=True, stream=output)
    structlog.get_logger("x").info("once")
    assert len(lines(output)) == 1


@pytest.mark.parametrize("as_json", [True, False])
def test_a_registered_secret_is_redacted_in_lines_and_tracebacks(output, as_json):
    eventhub_log.configure(json=as_json, level="INFO", stream=output)
    register_secret("echoed-canary-42")
    try:
        try:
            raise RuntimeError("upstream said: invalid api key echoed-canary-42")
        except RuntimeError:
            structlog.get_logger("t").exception("failed", body="echoed-canary-42")
        logging.getLogger("urllib3").warning("GET /x?q=%s", "echoed-canary-42")
    finally:
        forget_secret("echoed-canary-42")
    text = output.getvalue()
    assert "echoed-canary-42" not in text and text.count("[REDACTED]") >= 3
    assert "RuntimeError: upstream said: invalid api key [REDACTED]" in text
