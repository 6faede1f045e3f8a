"""Token buckets (in-process and shared through the state database) and the reading
of the server's rate-limit signals."""

import multiprocessing
import threading
from datetime import UTC, datetime

import pytest
import requests

from eventhub.errors import ConfigError
from eventhub.http.ratelimit import (
    RateLimiter,
    SharedRateLimiter,
    is_rate_limited,
    parse_retry_after,
)
from eventhub.statedb import StateDB


class Time:
    """A fake clock whose sleep moves it (by ``step`` at most: an early wake-up)."""

    def __init__(self, step=None):
        self.now = 1_000.0
        self.waits = []
        self.step = step

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds if self.step is None else min(seconds, self.step)


class Exhausted(Exception):
    pass


def refuse_to_wait(seconds):
    raise Exhausted(seconds)


@pytest.fixture
def fake():
    return Time()


def limiter(fake, rate, burst=None):
    return RateLimiter(rate, burst, clock=fake.clock, sleep=fake.sleep)


def test_a_burst_passes_then_callers_wait_for_tokens(fake):
    bucket = limiter(fake, rate=2, burst=3)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == 0.5 and fake.waits == [0.5]


def test_tokens_come_back_with_time(fake):
    bucket = limiter(fake, rate=2, burst=3)
    for _ in range(3):
        bucket.acquire()
    fake.now += 1.0
    assert [bucket.acquire(), bucket.acquire(), bucket.acquire()] == [0.0, 0.0, 0.5]


def test_many_acquires_at_a_tiny_rate_loop_without_recursion(fake):
    bucket = limiter(fake, rate=0.001, burst=1)
    waited = sum(bucket.acquire() for _ in range(10_000))
    assert waited == pytest.approx(9_999 / 0.001)


def test_early_wake_ups_keep_the_loop_going_without_recursion():
    fake = Time(step=0.001)  # every sleep ends after 1 ms whatever was asked
    bucket = RateLimiter(0.2, 1, clock=fake.clock, sleep=fake.sleep)
    bucket.acquire()
    assert bucket.acquire() == pytest.approx(5.0)
    assert len(fake.waits) >= 5000


def test_a_request_larger_than_the_burst_is_granted_into_debt(fake):
    bucket = limiter(fake, rate=10, burst=10)
    assert bucket.acquire(25) == 0.0
    assert bucket.acquire() == pytest.approx(1.6)  # 15 owed + 1 at 10 a second


def test_pause_holds_back_every_caller(fake):
    bucket = limiter(fake, rate=100)
    bucket.pause(30)
    assert bucket.acquire() == 30.0
    bucket.pause_until(fake.now - 5)  # a pause in the past changes nothing
    assert bucket.acquire() == 0.0


def test_threads_share_the_budget_exactly():
    bucket = RateLimiter(1, 200, clock=lambda: 5.0, sleep=refuse_to_wait)
    granted = []

    def take():
        try:
            while True:
                bucket.acquire()
                granted.append(1)
        except Exhausted:
            pass

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 200


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (1, 0)])
def test_invalid_rates_are_refused(rate, burst):
    with pytest.raises(ConfigError):
        RateLimiter(rate, burst)


# -- shared through the state database


@pytest.fixture
def dbs(db_path):
    first, second = StateDB(db_path), StateDB(db_path)
    yield first, second
    first.close()
    second.close()


def test_two_databases_on_one_file_share_one_bucket(dbs, fake):
    one, two = (
        SharedRateLimiter(db, "slack", 1, 3, clock=fake.clock, sleep=fake.sleep)
        for db in dbs
    )
    assert [one.acquire(), two.acquire(), one.acquire()] == [0.0, 0.0, 0.0]
    assert two.acquire() == 1.0 and fake.waits == [1.0]


def test_buckets_are_kept_apart_by_key(dbs, fake):
    slack = SharedRateLimiter(dbs[0], "slack", 1, 1, clock=fake.clock, sleep=fake.sleep)
    jira = SharedRateLimiter(dbs[1], "jira", 1, 1, clock=fake.clock, sleep=fake.sleep)
    assert [slack.acquire(), jira.acquire()] == [0.0, 0.0]


def test_a_pause_is_seen_by_the_other_instance(dbs, fake):
    one, two = (
        SharedRateLimiter(db, "slack", 10, 10, clock=fake.clock, sleep=fake.sleep)
        for db in dbs
    )
    one.pause_until(fake.now + 42)
    assert two.acquire() == 42.0
    one.pause(7)
    assert two.acquire() == 7.0


def test_the_bucket_table_comes_from_eventhub_http_migrations(dbs):
    SharedRateLimiter(dbs[0], "k", 1)
    applied = (
        dbs[0]
        .connection()
        .execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'eventhub.http'"
        )
    )
    assert [row[0] for row in applied] == ["m001_rate_limits"]


def _take_until_told_to_wait(path, start, results):
    db = StateDB(path)
    bucket = SharedRateLimiter(
        db, "shared", 1, 300, clock=lambda: 50.0, sleep=refuse_to_wait
    )
    start.wait()
    granted = 0
    try:
        while True:
            bucket.acquire()
            granted += 1
    except Exhausted:
        results.put(granted)
    finally:
        db.close()


def test_processes_share_one_budget(db_path):
    StateDB(db_path).close()
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=_take_until_told_to_wait, args=(db_path, start, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    granted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert sum(granted) == 300 and all(w.exitcode == 0 for w in workers)


# -- Retry-After


NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0.5", 0.5),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # RFC 850, still an HTTP-date
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # already past
        (str(10**12), 1e12),
        (
            "Fri, 31 Dec 9999 23:59:59 GMT",
            (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - NOW).total_seconds(),
        ),
    ],
)
def test_retry_after_seconds_and_dates(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "nan", "inf", "1e3", "3s"])
def test_unreadable_retry_after_is_none(value):
    assert parse_retry_after(value, NOW) is None


def test_retry_after_counts_from_a_timestamp_too():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", NOW.timestamp()) == 30.0


# -- rate limits in disguise


def response(status, body=b"", **headers):
    made = requests.Response()
    made.status_code = status
    made._content = body if isinstance(body, bytes) else body.encode()
    made.headers.update(headers)
    return made


@pytest.mark.parametrize(
    "made",
    [
        response(429),
        response(200, b'{"ok": false, "error": "ratelimited"}'),
        response(403, b'{"error": {"errors": [{"reason": "rateLimitExceeded"}]}}'),
        response(403, b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}'),
        response(403, b"", **{"X-RateLimit-Remaining": "0"}),
        response(503, b"", **{"X-RateLimit-Remaining": "0"}),
        response(403, b"<html>Rate limit exceeded</html>"),
        response(403, b"", **{"Retry-After": "60"}),
    ],
)
def test_rate_limits_are_recognised(made):
    assert is_rate_limited(made)


@pytest.mark.parametrize(
    "made",
    [
        response(200, b'{"ok": true, "text": "ratelimited is a word"}'),
        response(200, b'{"ok": false, "error": "channel_not_found"}'),
        response(
            403,
            b'{"error": {"errors": [{"reason": "dailyLimitExceeded",'
            b' "message": "Daily rate limit"}]}}',
        ),
        response(403, b'{"error": {"errors": [{"reason": "forbidden"}]}}'),
        response(403, b"Forbidden"),
        response(404, b"rate limit"),
        response(503, b"maintenance", **{"Retry-After": "60"}),
    ],
)
def test_other_responses_are_not_rate_limits(made):
    assert not is_rate_limited(made)
