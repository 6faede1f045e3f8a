import pytest

from eventhub import Event, InvalidSubscription
from eventhub.patterns import TypePattern, compile_filter


@pytest.mark.parametrize(
    ("pattern", "type_name", "expected"),
    [
        ("user.created", "user.created", True),
        ("user.created", "user.updated", False),
        ("user.*", "user.created", True),
        ("user.*", "user.created.v2", False),
        ("user.*", "user", False),
        ("user.**", "user.created", True),
        ("user.**", "user.created.v2", True),
        ("user.**", "user", True),
        ("user.**", "users.created", False),
        ("user.#", "user.created.v2", True),
        ("**.failed", "failed", True),
        ("**.failed", "job.run.failed", True),
        ("**.failed", "job.failed.not", False),
        ("*.failed", "job.run.failed", False),
        ("*.*.failed", "job.run.failed", True),
        ("#", "anything.at.all", True),
        ("**", "x", True),
        ("a.**.z", "a.z", True),
        ("a.**.z", "a.b.c.z", True),
        ("a.**.z", "a.b.c.y", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("order-v2.*", "order-v2.paid", True),
        ("user_events.*", "user_events.x", True),
        ("Microsoft.Storage.*", "Microsoft.Storage.BlobCreated", True),
        ("Microsoft.Storage.*", "microsoft.storage.blobcreated", False),
        ("microsoft.storage.*", "Microsoft.Storage.BlobCreated", False),
        ("Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobCreated", True),
        ("Microsoft.Storage.BlobCreated", "microsoft.storage.blobcreated", False),
        ("com.example.#", "com.example.Order Paid", True),
        ("a#b.*", "a#b.c", True),
        ("user..x", "user..x", True),
    ],
)
def test_type_patterns(pattern, type_name, expected):
    assert TypePattern(pattern).matches(type_name) is expected


def test_a_list_of_patterns_matches_any_of_them():
    pattern = TypePattern(["user.created", "order.**"])
    assert pattern.matches("user.created") and pattern.matches("order.paid.late")
    assert not pattern.matches("user.deleted")


@pytest.mark.parametrize(
    "pattern", ["", "user.*x", "a.b*", "**x.y", ["ok", 3], "user.\ud800", "\udfff.*"]
)
def test_bad_patterns_are_rejected(pattern):
    with pytest.raises(InvalidSubscription):
        TypePattern(pattern)


EVENT = Event.create(
    "user.created",
    source="/crm/eu",
    subject="acct/42",
    extensions={"tenant": "acme", "retries": 3, "vip": True},
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"exact": {"source": "/crm/eu"}}, True),
        ({"exact": {"source": "/crm"}}, False),
        ({"prefix": {"subject": "acct/"}}, True),
        ({"prefix": {"subject": "order/"}}, False),
        ({"suffix": {"source": "/eu"}}, True),
        ({"suffix": {"source": "/us"}}, False),
        ({"exact": {"tenant": "acme"}}, True),
        ({"exact": {"retries": "3"}}, True),
        ({"exact": {"vip": "true"}}, True),
        ({"exact": {"type": "user.created"}}, True),
        ({"exact": {"missing": "x"}}, False),
        ({"exact": {"source": "/crm/eu", "subject": "acct/42"}}, True),
        (
            {"all": [{"prefix": {"subject": "acct/"}}, {"exact": {"tenant": "acme"}}]},
            True,
        ),
        (
            {"all": [{"prefix": {"subject": "acct/"}}, {"exact": {"tenant": "x"}}]},
            False,
        ),
        ({"any": [{"exact": {"tenant": "x"}}, {"suffix": {"subject": "/42"}}]}, True),
        ({"any": [{"exact": {"tenant": "x"}}, {"suffix": {"subject": "/43"}}]}, False),
        ({"not": {"exact": {"tenant": "acme"}}}, False),
        ({"not": {"exact": {"tenant": "other"}}}, True),
        ([{"prefix": {"subject": "acct/"}}, {"exact": {"tenant": "acme"}}], True),
        (
            [{"prefix": {"subject": "acct/"}}, lambda e: e.extensions["retries"] > 5],
            False,
        ),
        (lambda e: e.subject.endswith("42"), True),
    ],
)
def test_filter_dialects(spec, expected):
    assert compile_filter(spec)(EVENT) is expected


@pytest.mark.parametrize(
    "spec",
    [
        {"sql": "source = 'x'"},
        {"exact": "source"},
        {"exact": {}},
        {"all": {"exact": {"a": "b"}}},
        {"any": []},
        {},
        "subject",
        {"exact": {"source": ["a"]}},
    ],
)
def test_malformed_filters_are_rejected_when_subscribing(spec):
    with pytest.raises(InvalidSubscription):
        compile_filter(spec)
