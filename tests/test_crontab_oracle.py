"""Crontab fire times checked against croniter, and the DST rules against a
minute-by-minute reference.

croniter (a dev dependency) is the oracle for crontab(5) semantics. Where eventhub
means to differ, the case says how (``INTENDED``) and the test asserts exactly that
difference, so a change on either side shows up.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from eventhub.orchestrator.schedules import parse_schedule

FIRES = 6

# (expression, start as local wall time, zone)
CASES = [
    ("* * * * *", "2026-01-05T10:07:30", "UTC"),
    ("*/15 * * * *", "2026-01-05T10:07", "UTC"),
    ("5/15 * * * *", "2026-01-05T10:07", "UTC"),
    ("1-59/10 3 * * *", "2026-01-05T10:07", "UTC"),
    ("0,30 8-18/2 * * 1-5", "2026-01-05T10:07", "UTC"),
    ("0 9 * * 1", "2026-01-01T00:00", "UTC"),
    ("0 9 * * 1-5", "2026-01-09T10:00", "UTC"),
    ("0 9 * * 0", "2026-01-01T00:00", "UTC"),
    ("0 9 * * 7", "2026-01-01T00:00", "UTC"),
    ("0 0 * * 1-7", "2026-01-01T00:00", "UTC"),
    ("0 0 * * */2", "2026-01-01T00:00", "UTC"),
    ("0 0 * * 5-7", "2026-01-01T00:00", "UTC"),
    ("0 0 * * mon-fri", "2026-01-01T00:00", "UTC"),
    ("0 0 * * MON,wed,Fri", "2026-01-01T00:00", "UTC"),
    ("0 0 * * fri-sun", "2026-01-01T00:00", "UTC"),
    ("0 0 1 * mon", "2026-01-01T00:00", "UTC"),
    ("0 0 13 * 5", "2026-01-01T00:00", "UTC"),
    ("0 0 */2 * 1", "2026-01-01T00:00", "UTC"),
    ("0 0 1-7 * */7", "2026-01-01T00:00", "UTC"),
    ("0 0 29 2 *", "2026-01-01T00:00", "UTC"),
    ("0 0 31 * 1", "2026-01-01T00:00", "UTC"),
    ("0 0 31 * *", "2026-01-01T00:00", "UTC"),
    ("0 12 1 jan,JUL *", "2026-01-01T12:00", "UTC"),
    ("0 0 1 */3 *", "2026-02-01T00:00", "UTC"),
    ("@yearly", "2026-03-01T00:00", "UTC"),
    ("@monthly", "2026-03-01T00:00", "UTC"),
    ("@weekly", "2026-03-01T00:00", "UTC"),
    ("@daily", "2026-03-01T00:00", "UTC"),
    ("@hourly", "2026-03-01T00:00", "UTC"),
    ("0 9 * * *", "2026-01-05T10:00", "Europe/Paris"),
    ("30 2 * * *", "2026-03-28T12:00", "Europe/Berlin"),
    ("30 2 * * 0", "2026-03-20T12:00", "Europe/Berlin"),
    ("0 2 * * *", "2026-03-28T12:00", "Europe/Berlin"),
    ("0 3 * * *", "2026-03-28T12:00", "Europe/Berlin"),
    ("* 2 * * *", "2026-03-29T01:58", "Europe/Berlin"),
    ("30 * * * *", "2026-03-29T00:00", "Europe/Berlin"),
    ("*/20 * * * *", "2026-03-29T01:00", "Europe/Berlin"),
    ("30 2 * * *", "2026-10-24T12:00", "Europe/Berlin"),
    ("0 1-3 * * *", "2026-10-25T00:30", "Europe/Berlin"),
    ("30 * * * *", "2026-10-25T00:00", "Europe/Berlin"),
    ("*/20 * * * *", "2026-10-25T01:50", "Europe/Berlin"),
    ("0 */2 * * *", "2026-10-24T23:00", "Europe/Berlin"),
    ("30 2 * * *", "2026-03-07T12:00", "America/New_York"),
    ("15 * * * *", "2026-03-08T00:00", "America/New_York"),
    ("0 9 * * 1-5", "2026-03-06T00:00", "America/New_York"),
    ("30 1 * * *", "2026-10-31T12:00", "America/New_York"),
    ("0 1 * * *", "2026-10-31T12:00", "America/New_York"),
    ("0 * * * *", "2026-11-01T00:00", "America/New_York"),
    ("30 1 * * 0", "2026-10-30T00:00", "America/New_York"),
    ("30 2 * * *", "2026-10-03T12:00", "Australia/Sydney"),
    ("30 2 * * *", "2026-04-04T12:00", "Australia/Sydney"),
    ("0 2 * * *", "2026-04-04T00:00", "Australia/Lord_Howe"),
    ("0 0 * * *", "2026-09-05T12:00", "America/Santiago"),
    ("0 9 * * 1", "2026-01-01T00:00", "Asia/Tokyo"),
    ("45 23 * * 6", "2026-01-01T00:00", "Asia/Kolkata"),
    ("0 12 * * *", "2026-09-26T00:00", "Pacific/Chatham"),
]

# What eventhub means to do differently from croniter 7:
# "and": a day field that starts with "*" ("*/2") is unrestricted for crontab(5),
#   so day-of-month and day-of-week are ANDed; croniter ORs them. Expected: what
#   croniter gives with day_or=False.
# "first pass": a job with a fixed hour fires once, at the first occurrence of a
#   repeated wall time; croniter fires at both. Expected: croniter's fires less
#   those in the second pass (fold=1) of a repeated hour.
INTENDED = {
    ("0 0 */2 * 1", "2026-01-01T00:00", "UTC"): "and",
    ("0 0 1-7 * */7", "2026-01-01T00:00", "UTC"): "and",
    ("30 2 * * *", "2026-10-24T12:00", "Europe/Berlin"): "first pass",
    ("0 1-3 * * *", "2026-10-25T00:30", "Europe/Berlin"): "first pass",
    ("30 1 * * *", "2026-10-31T12:00", "America/New_York"): "first pass",
    ("0 1 * * *", "2026-10-31T12:00", "America/New_York"): "first pass",
    ("30 1 * * 0", "2026-10-30T00:00", "America/New_York"): "first pass",
    ("30 2 * * *", "2026-04-04T12:00", "Australia/Sydney"): "first pass",
}


def ours(expression, start, zone):
    schedule = parse_schedule(expression, zone)
    fires, moment = [], start
    for _ in range(FIRES):
        moment = schedule.next_after(moment, start)
        fires.append(moment)
    return fires


def croniters(expression, start, zone, difference=None):
    fires = croniter(expression, start, day_or=difference != "and")
    found = (fires.get_next(datetime) for _ in range(FIRES * 2))
    if difference == "first pass":
        found = (f for f in found if f.astimezone(ZoneInfo(zone)).fold == 0)
    return [next(found).astimezone(UTC) for _ in range(FIRES)]


def test_the_oracle_table_is_big_enough():
    assert len(set(CASES)) == len(CASES) >= 40
    assert set(INTENDED) <= set(CASES)


@pytest.mark.parametrize(("expression", "start", "zone"), CASES)
def test_fire_times_agree_with_croniter(expression, start, zone):
    start_at = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(zone))
    difference = INTENDED.get((expression, start, zone))
    expected = croniters(expression, start_at, zone, difference)
    assert ours(expression, start_at, zone) == expected
    if difference is not None:  # and croniter's own reading is indeed different
        assert croniters(expression, start_at, zone) != expected


def matches(crontab, wall):
    """Whether the naive wall time is one the crontab names (day rule included)."""
    in_days = wall.day in crontab.days
    in_weekdays = (wall.weekday() + 1) % 7 in crontab.weekdays
    day = (in_days or in_weekdays) if crontab.day_or else (in_days and in_weekdays)
    time = wall.hour in crontab.hours and wall.minute in crontab.minutes
    return day and time and wall.month in crontab.months


def reference(expression, zone, start, end):
    """Fire times by the documented DST rules, found minute by minute in UTC: a
    named wall time fires when it occurs (fixed hour: its first occurrence only);
    with a fixed hour, the first instant after a gap fires if the gap named one."""
    crontab, tz, minute = parse_schedule(expression, zone).crontab, ZoneInfo(zone), 60
    fires = []
    for second in range(int(start.timestamp()), int(end.timestamp()), minute):
        local = datetime.fromtimestamp(second, tz)
        wall = local.replace(tzinfo=None)
        previous = datetime.fromtimestamp(second - minute, tz).replace(tzinfo=None)
        skipped = int((wall - previous).total_seconds()) // minute - 1
        gap = (wall - timedelta(minutes=k + 1) for k in range(skipped))
        if matches(crontab, wall) and (crontab.hour_any or local.fold == 0):
            fires.append(local.astimezone(UTC))
        elif not crontab.hour_any and any(matches(crontab, w) for w in gap):
            fires.append(local.astimezone(UTC))
    return fires


# Days before a DST change, for a three-day window; Lord Howe moves by 30 minutes,
# Santiago at midnight.
WINDOWS = [
    ("Europe/Berlin", "2026-03-28"),
    ("Europe/Berlin", "2026-10-24"),
    ("America/New_York", "2026-03-07"),
    ("America/New_York", "2026-10-31"),
    ("Australia/Lord_Howe", "2026-04-04"),
    ("Australia/Lord_Howe", "2026-10-03"),
    ("America/Santiago", "2026-04-04"),
    ("America/Santiago", "2026-09-05"),
]
EXPRESSIONS = [
    "30 2 * * *",
    "*/15 2 * * *",
    "0 0 * * *",
    "30 * * * *",
    "*/20 * * * *",
    "0 1-3 * * *",
    "0 */2 * * *",
]


@pytest.mark.parametrize(("zone", "day"), WINDOWS)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_dst_rules_agree_with_a_minute_by_minute_reference(expression, zone, day):
    start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    end = start + timedelta(days=3)
    schedule = parse_schedule(expression, zone)
    fires, moment = [], start - timedelta(microseconds=1)
    while (moment := schedule.next_after(moment, start)) < end:
        fires.append(moment)
    assert fires == reference(expression, zone, start, end)
