from datetime import UTC, datetime, timedelta

import pytest

from eventhub import ConfigError
from eventhub.orchestrator.schedules import parse_schedule

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "kind", "text"),
    [
        ("*/5 * * * *", "cron", "*/5 * * * *"),
        ("  0  2 * * 1-5 ", "cron", "0 2 * * 1-5"),
        ("@daily", "cron", "0 0 * * *"),
        ("@hourly", "cron", "0 * * * *"),
        ("every 10m", "interval", "every 600s"),
        ("30s", "interval", "every 30s"),
        ("every 2h", "interval", "every 7200s"),
        (90, "interval", "every 90s"),
        (timedelta(minutes=5), "interval", "every 300s"),
        (datetime(2026, 2, 1, tzinfo=UTC), "date", "at 2026-02-01T00:00:00+00:00"),
        ("2026-02-01T09:30:00+01:00", "date", "at 2026-02-01T08:30:00+00:00"),
    ],
)
def test_schedules_parse(spec, kind, text):
    schedule = parse_schedule(spec)
    assert (schedule.kind, schedule.text) == (kind, text)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("* * * *", "neither a crontab"),
        ("every -5m", "neither a crontab"),
        (0, "positive duration"),
        (timedelta(0), "positive duration"),
        (datetime(2026, 1, 1), "needs a UTC offset"),
        ("", "not a crontab"),
        (True, "not a schedule"),
    ],
)
def test_bad_schedules_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_schedule(spec)


def test_unknown_time_zone():
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        parse_schedule("0 9 * * *", "Mars/Olympus")


def test_cron_fire_times():
    schedule = parse_schedule("*/15 * * * *")
    moment = datetime(2026, 1, 5, 10, 7, tzinfo=UTC)
    fires = []
    for _ in range(3):
        moment = schedule.next_after(moment, T0)
        fires.append(moment.strftime("%H:%M"))
    assert fires == ["10:15", "10:30", "10:45"]


def test_next_fire_is_strictly_after():
    schedule = parse_schedule("0 * * * *")
    assert schedule.next_after(T0, T0) == T0 + timedelta(hours=1)


def test_cron_in_a_time_zone():
    schedule = parse_schedule("0 9 * * *", "Europe/Paris")
    assert schedule.next_after(T0, T0) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


def test_interval_fire_times_are_anchored():
    schedule = parse_schedule("every 10m")
    after = datetime(2026, 1, 5, 10, 25, tzinfo=UTC)
    assert schedule.next_after(after, T0) == datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    assert schedule.next_after(T0, T0) == datetime(2026, 1, 5, 10, 10, tzinfo=UTC)


def test_a_date_fires_once():
    at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    schedule = parse_schedule(at)
    assert schedule.next_after(T0, T0) == at
    assert schedule.next_after(at, T0) is None


def test_down_for_ten_intervals_misses_ten_fires():
    schedule = parse_schedule("every 1h")
    missed = schedule.missed(T0, T0 + timedelta(hours=10, minutes=30), T0)
    assert missed.count == 10
    assert missed.first == T0 + timedelta(hours=1)
    assert missed.last == T0 + timedelta(hours=10)


def test_nothing_missed_before_the_next_fire():
    schedule = parse_schedule("*/5 * * * *")
    assert schedule.missed(T0, T0 + timedelta(minutes=4), T0).count == 0


def test_a_cron_daemon_down_over_a_weekend():
    schedule = parse_schedule("0 9 * * 1-5")  # weekdays at nine
    friday = datetime(2026, 1, 9, 9, 0, tzinfo=UTC)
    monday_noon = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
    assert schedule.missed(friday, monday_noon, T0).count == 1
