"""crontab(5) expressions: parsing, next fire times and the APScheduler trigger.

An expression has five fields, ``minute hour day-of-month month day-of-week``, read as
crontab(5) (vixie cron) reads them:

* each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a
  comma-separated list of those; ``a/n`` means ``a-<last>/n`` (as APScheduler and
  croniter read it);
* month and day-of-week take three-letter names too (``jan``, ``mon-fri``), in any
  case; in day-of-week 0 and 7 are both Sunday (``1-7`` is Monday to Sunday, ``*/2``
  is Sunday, Tuesday, Thursday, Saturday) and ``sun`` ending a range means 7
  (``fri-sun``);
* when both day-of-month and day-of-week are restricted (neither starts with ``*``),
  a day matches when **either** matches: ``0 0 1 * mon`` fires on the first of the
  month and on every Monday. Otherwise both must match (``*/2`` in one of them is
  "starts with ``*``", as in cron);
* the aliases ``@yearly`` (``@annually``), ``@monthly``, ``@weekly`` (Sunday 00:00),
  ``@daily`` (``@midnight``) and ``@hourly``.

A day-of-month that no listed month has (``0 0 30 2 *``, ``0 0 31 4,6 *``) is refused
when the expression is parsed, rather than never firing.

Fire times are wall-clock times in the expression's time zone. Where daylight saving
time moves the clocks:

* a wall time that does not exist (clocks spring forward) fires once, at the first
  instant after the gap: ``30 2 * * *`` in Europe/Berlin fires at 03:00 CEST on the
  last Sunday of March. Several skipped times collapse into that one fire;
* a wall time that occurs twice (clocks fall back) fires once, at its first
  occurrence: ``30 1 * * *`` in America/New_York fires at 01:30 EDT on the first
  Sunday of November, not again at 01:30 EST;
* except when the hour field starts with ``*`` (``0 * * * *``, ``*/15 * * * *``):
  such a job is about elapsed time, so it fires at every wall time that occurs, as
  often as it occurs: in both passes of a repeated hour, and not for the skipped
  times of a gap (like vixie cron's "wildcard" jobs).

:meth:`Crontab.next_after` is the one function that decides when; the trigger and the
missed-run count both call it.
"""

from __future__ import annotations

import calendar
import dataclasses
import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

from ..errors import ConfigError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan feb mar apr may jun jul aug sep oct nov dec").split()
_WEEKDAYS = ("sun mon tue wed thu fri sat").split()
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: 29
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the number of names[0]
    sunday_ends_at_7: bool = False  # day-of-week: "fri-sun" is Friday to Sunday

    def number(self, token: str, text: str) -> int:
        if token.isdigit():
            value = int(token)
            if not self.low <= value <= self.high:
                raise _error(
                    text, f"{self.name} {value} is out of range {self.low}-{self.high}"
                )
            return value
        lowered = token.lower()
        if self.names and lowered in self.names:
            return self.names.index(lowered) + self.first_name
        kind = "a number"
        if self.names:
            kind += f" or a name ({self.names[0]}-{self.names[-1]})"
        raise _error(text, f"{self.name} {token!r} is not {kind}")


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, tuple(_MONTHS), first_name=1),
    _Field("day-of-week", 0, 7, tuple(_WEEKDAYS), sunday_ends_at_7=True),
)


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab(5) expression, evaluated in one time zone.

    Build one with :func:`parse_crontab`. Day-of-week numbers are 0 (Sunday) to 6.
    """

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: frozenset[int]
    day_or: bool
    """Both day fields are restricted: a day matches when either matches."""
    hour_any: bool
    """The hour field starts with ``*``: the elapsed-time rule for DST changes."""
    timezone: tzinfo = UTC
    _times: tuple[int, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _day_set: frozenset[int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        times = tuple(h * 60 + m for h in self.hours for m in self.minutes)
        object.__setattr__(self, "_times", times)  # minutes of the day, sorted
        object.__setattr__(self, "_day_set", frozenset(self.days))

    def __str__(self) -> str:
        return self.text

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment``, in UTC (None: never).

        Args:
            moment: An aware datetime.
        """
        moment = moment.astimezone(UTC)
        local = moment.astimezone(self.timezone)
        other = local.replace(fold=1 - local.fold).utcoffset()
        offset = local.utcoffset()
        assert offset is not None and other is not None
        # Instants after ``moment`` have wall times after this one, even in the
        # second pass of a repeated hour that ``moment`` is in the first pass of.
        earliest = (moment + min(offset, other)).replace(tzinfo=None)
        wall = earliest.replace(second=0, microsecond=0) + _MINUTE
        best: datetime | None = None
        try:
            found = self._next_wall(wall)
            while found is not None:
                instants = self._instants(found)
                for instant in instants:
                    if instant > moment and (best is None or instant < best):
                        best = instant
                # First-pass instants grow with the wall time: past the first one
                # after ``moment``, no later wall time fires earlier.
                if instants and instants[0] > moment:
                    return best
                found = self._next_wall(found + _MINUTE)
        except OverflowError:  # past the year 9999
            pass
        return best

    def _instants(self, wall: datetime) -> tuple[datetime, ...]:
        """When the wall time ``wall`` fires, by the DST rules of the module."""
        first = wall.replace(tzinfo=self.timezone).astimezone(UTC)
        second = wall.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        if first == second:
            return (first,)
        if first < second:  # the wall time occurs twice: clocks fell back
            return (first, second) if self.hour_any else (first,)
        # The wall time does not exist (clocks sprang forward): with fold=1 it was
        # read with the offset after the change, so it lies before the gap.
        return () if self.hour_any else (_transition(self.timezone, second, first),)

    def _next_wall(self, start: datetime) -> datetime | None:
        """The first matching wall time at or after the naive minute ``start``."""
        year, month, day = start.year, start.month, start.day
        first_minute = start.hour * 60 + start.minute
        while year <= datetime.max.year:
            for m in self.months[bisect_left(self.months, month) :]:
                if m != month:
                    day, first_minute = 1, 0
                for d in self._matching_days(year, m, day):
                    if d != day:
                        first_minute = 0
                    index = bisect_left(self._times, first_minute)
                    if index < len(self._times):
                        hour, minute = divmod(self._times[index], 60)
                        return datetime(year, m, d, hour, minute)
                    first_minute = 0
                day, first_minute = 1, 0
            year, month, day, first_minute = year + 1, 1, 1, 0
        return None

    def _matching_days(self, year: int, month: int, start: int) -> Iterator[int]:
        monday_first, last = calendar.monthrange(year, month)
        sunday_first = (monday_first + 1) % 7  # 0: Sunday, as in crontab
        if self.day_or:
            candidates: Iterable[int] = range(start, last + 1)
        else:
            candidates = self.days[bisect_left(self.days, start) :]
        for day in candidates:
            if day > last:
                return
            weekday = (sunday_first + day - 1) % 7
            if weekday in self.weekdays or (self.day_or and day in self._day_set):
                yield day


def parse_crontab(text: str, timezone: tzinfo = UTC) -> Crontab:
    """Parse a crontab(5) expression or alias.

    Args:
        text: Five whitespace-separated fields, or ``@yearly`` ... ``@hourly``.
        timezone: The zone whose wall clock the expression is read in.

    Returns:
        The expression; its ``text`` is the fields joined by single spaces, an
        alias replaced by its fields.

    Raises:
        ConfigError: naming the field and the value that is wrong.
    """
    written = " ".join(text.split())
    if written.startswith("@"):
        expanded = ALIASES.get(written.lower())
        if expanded is None:
            known = ", ".join(ALIASES)
            raise _error(written, f"{written} is not one of {known}")
        written_fields = expanded.split(" ")
        canonical = expanded
    else:
        written_fields = written.split(" ")
        canonical = written
    if len(written_fields) != 5:
        raise _error(written, f"a crontab has 5 fields, not {len(written_fields)}")
    minutes, hours, days, months, weekdays = (
        _parse_field(spec, field, written)
        for spec, field in zip(written_fields, _FIELDS, strict=True)
    )
    day_spec, month_spec, weekday_spec = written_fields[2:]
    day_or = not day_spec.startswith("*") and not weekday_spec.startswith("*")
    if not day_or and not any(min(days) <= _LONGEST_MONTH[m - 1] for m in months):
        raise _error(
            written, f"day-of-month {day_spec} never occurs in month {month_spec}"
        )
    return Crontab(
        text=canonical,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(sorted(days)),
        months=tuple(sorted(months)),
        weekdays=frozenset(w % 7 for w in weekdays),
        day_or=day_or,
        hour_any=written_fields[1].startswith("*"),
        timezone=timezone,
    )


class CrontabTrigger(BaseTrigger):
    """An APScheduler 3 trigger firing a :class:`Crontab` (what ``next_after`` says).

    Args:
        crontab: The expression, with its time zone.
        jitter: Up to this many seconds of random delay added to each fire.
    """

    __slots__ = ("crontab", "jitter")

    def __init__(self, crontab: Crontab, jitter: float | None = None) -> None:
        self.crontab = crontab
        self.jitter = jitter

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire after ``previous_fire_time`` (or at or after ``now``)."""
        after = now - timedelta(microseconds=1)
        if previous_fire_time is not None:
            after = min(after, previous_fire_time)
        found = self.crontab.next_after(after)
        if found is None:
            return None
        fire: datetime | None = self._apply_jitter(
            found.astimezone(self.crontab.timezone), self.jitter, now
        )
        return fire

    def __str__(self) -> str:
        return f"crontab[{self.crontab.text}, {self.crontab.timezone}]"

    def __repr__(self) -> str:
        jitter = f", jitter={self.jitter}" if self.jitter else ""
        return (
            f"<{type(self).__name__} ({self.crontab.text!r}, "
            f"timezone='{self.crontab.timezone}'{jitter})>"
        )


def _parse_field(spec: str, field: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for element in spec.split(","):
        base, slash, step_text = element.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _error(
                    text, f"{field.name} step {step_text!r} is not a positive number"
                )
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        else:
            if not base:
                raise _error(text, f"{field.name} {spec!r} has an empty item")
            first, dash, last = base.partition("-")
            low = field.number(first, text)
            if dash:
                high = field.number(last, text)
                if field.sunday_ends_at_7 and last.lower() == "sun":
                    high = 7
            else:
                high = field.high if slash else low
            if low > high:
                raise _error(text, f"{field.name} range {base} runs backwards")
        values.update(range(low, high + 1, step))
    return values


def _transition(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """The instant in ``(before, after]`` where ``zone`` changes its UTC offset."""

    def offset(second: int) -> timedelta | None:
        return datetime.fromtimestamp(second, UTC).astimezone(zone).utcoffset()

    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    offset_before = offset(low)
    while high - low > 1:
        middle = (low + high) // 2
        if offset(middle) == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _error(text: str, problem: str) -> ConfigError:
    return ConfigError(f"schedule {text!r}: {problem}")
