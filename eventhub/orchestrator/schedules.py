"""Schedules: crontab strings, intervals and dates, as pure functions of time.

The daemon fires workflows with APScheduler's ``BackgroundScheduler``; everything
that decides *when* (next fire times, the fires missed while the daemon was down) is
computed here from explicit ``now`` values, so that it is tested with a fake clock.
Crontab strings follow crontab(5), with the daylight-saving rules of
:mod:`eventhub.orchestrator.crontab`; the daemon's trigger for them calls the same
:meth:`Schedule.next_after` as the missed-run count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .._durations import duration_seconds
from ..errors import ConfigError
from .crontab import Crontab, CrontabTrigger, parse_crontab

# Counting missed fires stops here: past it, "many" is all that matters.
MAX_COUNTED_MISSES = 100_000


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``text`` is its canonical form (stored to notice changes);
    a ``cron`` schedule holds its parsed
    :class:`~eventhub.orchestrator.crontab.Crontab`."""

    kind: Literal["cron", "interval", "date"]
    text: str
    cron: str | None = None
    seconds: float | None = None
    at: datetime | None = None
    timezone: tzinfo = UTC
    crontab: Crontab | None = None

    def next_after(self, moment: datetime, anchor: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (None: never again).

        ``anchor`` is when the schedule was first registered: interval fire times
        are ``anchor + k * interval``, stable across restarts.
        """
        if self.kind == "interval":
            step = self.seconds or 0.0
            elapsed = (moment - anchor).total_seconds()
            k = max(0, math.floor(elapsed / step) + 1)
            candidate = anchor + timedelta(seconds=k * step)
            while candidate <= moment:  # guard against float rounding
                candidate += timedelta(seconds=step)
            return candidate
        if self.kind == "date":
            return self.at if self.at is not None and self.at > moment else None
        assert self.crontab is not None
        return self.crontab.next_after(moment)

    def missed(self, last_fire: datetime, now: datetime, anchor: datetime) -> Missed:
        """The fire times in ``(last_fire, now]``: the ones nobody ran."""
        count, first, last = 0, None, None
        moment = self.next_after(last_fire, anchor)
        while moment is not None and moment <= now and count < MAX_COUNTED_MISSES:
            count += 1
            first = first or moment
            last = moment
            moment = self.next_after(moment, anchor)
        return Missed(count, first, last)

    def trigger(self, anchor: datetime, jitter: float | None = None) -> BaseTrigger:
        """The APScheduler trigger firing this schedule."""
        jitter_seconds = int(math.ceil(jitter)) if jitter else None
        if self.kind == "interval":
            return IntervalTrigger(
                seconds=self.seconds or 0.0,
                start_date=anchor,
                timezone=UTC,
                jitter=jitter_seconds,
            )
        if self.kind == "date":
            return DateTrigger(run_date=self.at, timezone=UTC)
        assert self.crontab is not None
        return CrontabTrigger(self.crontab, jitter=jitter_seconds)


@dataclass(frozen=True)
class Missed:
    """How many fires were missed, and the first and last of them."""

    count: int
    first: datetime | None
    last: datetime | None


def parse_schedule(value: Any, timezone: str | None = None) -> Schedule:
    """Parse a schedule.

    Args:
        value: A crontab(5) string with five fields (``"*/5 * * * *"``) or an
            alias (``"@hourly"``, ``"@daily"`` ...); an interval as seconds, a
            ``timedelta`` or ``"every 30s"`` / ``"10m"`` / ``"2h"`` / ``"1d"``; or an
            aware ``datetime`` (or ISO 8601 text) for a single run.
        timezone: IANA name for crontab schedules (default UTC).

    Raises:
        ConfigError: naming what is wrong with the schedule.
    """
    zone = _zone(timezone)
    if isinstance(value, bool):
        raise ConfigError(f"schedule {value!r} is not a schedule")
    if isinstance(value, int | float):
        return _interval(float(value), repr(value))
    if isinstance(value, timedelta):
        return _interval(value.total_seconds(), str(value))
    if isinstance(value, datetime):
        return _date(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"schedule {value!r} is not a crontab, interval or date")
    text = " ".join(value.split())
    seconds = duration_seconds(text)
    if seconds is not None:
        return _interval(seconds, text)
    if text.startswith("@") or len(text.split(" ")) == 5:
        crontab = parse_crontab(text, zone)
        label = f"{crontab.text} ({timezone})" if timezone else crontab.text
        return Schedule(
            "cron", label, cron=crontab.text, crontab=crontab, timezone=zone
        )
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"schedule {value!r} is neither a crontab (5 fields), an interval "
            "('every 10m') nor an ISO 8601 date"
        ) from None
    return _date(moment)


def _interval(seconds: float, label: str) -> Schedule:
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError(f"interval schedule {label} must be a positive duration")
    return Schedule("interval", f"every {seconds:g}s", seconds=seconds)


def _date(moment: datetime) -> Schedule:
    if moment.tzinfo is None:
        raise ConfigError(f"schedule date {moment.isoformat()} needs a UTC offset")
    moment = moment.astimezone(UTC)
    return Schedule("date", f"at {moment.isoformat()}", at=moment)


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}") from None
