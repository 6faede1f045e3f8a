"""crontab(5) schedules: weekdays, the day rule, aliases, DST, errors, the trigger."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from eventhub import ConfigError
from eventhub.orchestrator.crontab import CrontabTrigger
from eventhub.orchestrator.schedules import parse_schedule

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def fires(spec, start=NEW_YEAR, count=5, zone=None, fmt="%a %d %H:%M"):
    """The next ``count`` fire times after ``start``, as local wall times."""
    schedule = parse_schedule(spec, zone)
    found, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment, start)
        found.append(moment.astimezone(ZoneInfo(zone or "UTC")).strftime(fmt))
    return found


def local(text, zone):
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def test_day_of_week_1_is_monday():
    assert fires("0 9 * * 1", count=2) == ["Mon 05 09:00", "Mon 12 09:00"]


def test_1_to_5_is_monday_to_friday():
    days = fires("0 9 * * 1-5", count=7, fmt="%a")
    assert days == ["Thu", "Fri", "Mon", "Tue", "Wed", "Thu", "Fri"]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_0_and_7_are_sunday(sunday):
    assert fires(f"0 9 * * {sunday}", count=2) == ["Sun 04 09:00", "Sun 11 09:00"]


def test_weekly_is_sunday_midnight():
    assert fires("@weekly", count=2) == ["Sun 04 00:00", "Sun 11 00:00"]


@pytest.mark.parametrize(
    ("weekdays", "expected"),
    [
        ("*/2", ["Sat", "Sun", "Tue", "Thu", "Sat"]),
        ("1-7", ["Fri", "Sat", "Sun", "Mon", "Tue"]),
        ("fri-sun", ["Fri", "Sat", "Sun", "Fri", "Sat"]),
        ("Mon,wed", ["Mon", "Wed", "Mon", "Wed", "Mon"]),
    ],
)
def test_weekday_ranges_steps_and_names(weekdays, expected):
    assert fires(f"0 0 * * {weekdays}", fmt="%a") == expected


def test_both_days_restricted_fire_on_either():
    # The 13th, and every Friday: Friday the 13th is no special case.
    days = fires("0 0 13 * 5", count=6, fmt="%a %d")
    assert days == ["Fri 02", "Fri 09", "Tue 13", "Fri 16", "Fri 23", "Fri 30"]


def test_a_day_field_starting_with_a_star_is_anded():
    # "*/2" leaves day-of-month unrestricted for the rule: odd days that are Mondays.
    days = fires("0 0 */2 * 1", count=3, fmt="%a %m-%d")
    assert days == ["Mon 01-05", "Mon 01-19", "Mon 02-09"]


def test_rare_dates_are_found_years_ahead():
    assert fires("0 0 29 2 *", count=2, fmt="%Y-%m-%d") == ["2028-02-29", "2032-02-29"]
    assert fires("0 0 29 2 sun", fmt="%Y-%m-%d")[0] == "2026-02-01"  # or-rule
    assert fires("0 0 29 2 */7", count=2, fmt="%Y") == ["2032", "2060"]  # and-rule


def test_the_31st_or_a_monday():
    days = fires("0 0 31 * 1", fmt="%a %m-%d")
    assert days == ["Mon 01-05", "Mon 01-12", "Mon 01-19", "Mon 01-26", "Sat 01-31"]


@pytest.mark.parametrize(
    ("alias", "text"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_aliases(alias, text):
    assert parse_schedule(alias).text == text


def test_canonical_text_is_the_fields_as_written():
    schedule = parse_schedule("  0 9  * * Mon-Fri ", "Europe/Berlin")
    assert schedule.text == "0 9 * * Mon-Fri (Europe/Berlin)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("61 * * * *", "schedule '61 * * * *': minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * foo *", "month 'foo' is not a number or a name (jan-dec)"),
        ("0 0 * * L", "day-of-week 'L' is not a number or a name (sun-sat)"),
        ("*/0 * * * *", "minute step '0' is not a positive number"),
        ("0 5-1 * * *", "hour range 5-1 runs backwards"),
        ("0,,5 * * * *", "minute '0,,5' has an empty item"),
        ("0 0 30 2 *", "day-of-month 30 never occurs in month 2"),
        ("0 0 31 4,jun *", "day-of-month 31 never occurs in month 4,jun"),
        ("@reboot", "@reboot is not one of @yearly"),
    ],
)
def test_bad_crontabs_name_the_field_and_value(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_schedule(spec)


# Daylight saving time -------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "eve", "expected"),
    [
        ("Europe/Berlin", "2026-03-28T12:00", ["29 03:00+0200", "30 02:30+0200"]),
        ("America/New_York", "2026-03-07T12:00", ["08 03:00-0400", "09 02:30-0400"]),
    ],
)
def test_a_time_skipped_by_spring_forward_fires_once_after_the_gap(zone, eve, expected):
    start = local(eve, zone)
    assert fires("30 2 * * *", start, 2, zone, "%d %H:%M%z") == expected


def test_times_skipped_together_fire_once():
    start = local("2026-03-28T12:00", "Europe/Berlin")
    found = fires("*/15 2 * * *", start, 2, "Europe/Berlin", "%d %H:%M%z")
    assert found == ["29 03:00+0200", "30 02:00+0200"]


BERLIN_ONCE = ["25 02:30+0200", "26 02:30+0100"]  # not again at 02:30 CET
NEW_YORK_ONCE = ["01 01:30-0400", "02 01:30-0500"]  # not again at 01:30 EST


@pytest.mark.parametrize(
    ("zone", "spec", "eve", "expected"),
    [
        ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00", BERLIN_ONCE),
        ("America/New_York", "30 1 * * *", "2026-10-31T12:00", NEW_YORK_ONCE),
    ],
)
def test_a_time_repeated_by_fall_back_fires_once(zone, spec, eve, expected):
    assert fires(spec, local(eve, zone), 2, zone, "%d %H:%M%z") == expected


def test_a_daily_job_down_over_a_fall_back_night_missed_one_fire():
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    eve = local("2026-10-24T12:00", "Europe/Berlin")
    morning = local("2026-10-25T09:00", "Europe/Berlin")
    assert schedule.missed(eve, morning, eve).count == 1


BERLIN_REPEAT = ["01:30+0200", "02:30+0200", "02:30+0100", "03:30+0100"]
NEW_YORK_REPEAT = ["01:00-0400", "01:00-0500", "02:00-0500", "03:00-0500"]


@pytest.mark.parametrize(
    ("zone", "spec", "start", "expected"),
    [
        ("Europe/Berlin", "30 * * * *", "2026-10-25T01:00", BERLIN_REPEAT),
        ("America/New_York", "0 * * * *", "2026-11-01T00:30", NEW_YORK_REPEAT),
    ],
)
def test_an_hourly_job_fires_in_both_passes_of_a_repeated_hour(
    zone, spec, start, expected
):
    assert fires(spec, local(start, zone), 4, zone, "%H:%M%z") == expected


def test_an_hourly_job_skips_the_times_that_do_not_exist():
    start = local("2026-03-29T01:00", "Europe/Berlin")
    found = fires("30 * * * *", start, 2, "Europe/Berlin", "%H:%M%z")
    assert found == ["01:30+0100", "03:30+0200"]  # one hour apart, as every hour


def test_next_fire_from_inside_the_second_pass():
    zone = ZoneInfo("Europe/Berlin")
    second_pass = datetime(2026, 10, 25, 2, 10, tzinfo=zone, fold=1)
    assert fires("*/20 * * * *", second_pass, 1, "Europe/Berlin", "%H:%M%z") == [
        "02:20+0100"
    ]
    assert fires("*/20 2 * * *", second_pass, 1, "Europe/Berlin", "%d %H:%M") == [
        "26 02:00"
    ]


# The APScheduler trigger ----------------------------------------------------


def test_the_trigger_fires_what_next_after_computes():
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    trigger = schedule.trigger(NEW_YEAR)
    now = local("2026-03-28T12:00", "Europe/Berlin")
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first)
    assert first == schedule.next_after(now, now)
    assert second == schedule.next_after(first, now)
    assert first.tzinfo == ZoneInfo("Europe/Berlin")


def test_the_trigger_catches_up_from_its_previous_fire():
    trigger = parse_schedule("0 * * * *").trigger(NEW_YEAR)
    previous = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    now = previous + timedelta(hours=3, minutes=30)
    assert trigger.get_next_fire_time(previous, now) == previous + timedelta(hours=1)
    assert trigger.get_next_fire_time(None, now) == previous + timedelta(hours=4)


def test_the_trigger_fires_at_now_when_now_is_a_fire_time():
    trigger = parse_schedule("0 * * * *").trigger(NEW_YEAR)
    assert trigger.get_next_fire_time(None, NEW_YEAR) == NEW_YEAR


def test_the_trigger_jitter_delays_within_its_bound():
    trigger = parse_schedule("0 * * * *").trigger(NEW_YEAR, jitter=2.5)
    fire = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    for _ in range(20):
        found = trigger.get_next_fire_time(None, NEW_YEAR + timedelta(seconds=1))
        assert fire <= found <= fire + timedelta(seconds=3)


def test_the_trigger_says_what_it_fires():
    trigger = parse_schedule("0 9 * * 1-5", "Europe/Berlin").trigger(NEW_YEAR, 5)
    assert isinstance(trigger, CrontabTrigger)
    assert str(trigger) == "crontab[0 9 * * 1-5, Europe/Berlin]"
    assert repr(trigger) == (
        "<CrontabTrigger ('0 9 * * 1-5', timezone='Europe/Berlin', jitter=5)>"
    )
