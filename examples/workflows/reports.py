"""Scheduled workflows: reports on the event log."""

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from eventhub import workflow


@workflow("activity-report", schedule="* * * * *", timeout=30)
def activity_report(ctx):
    """Count the user events of the last hour and publish a report."""
    since = datetime.now(UTC) - timedelta(hours=1)
    users = ctx.hub.bus.history("user.*", limit=None, since=since)
    report = {"since": since.isoformat(), "user_events": len(users)}
    last = ctx.state.get("last_report")
    ctx.state["last_report"] = report
    ctx.publish("report.activity", {**report, "previous": last})
    return report


@workflow("nightly-report", schedule="0 2 * * *", timeout=600)
def nightly_report(ctx):
    """Count yesterday's events (UTC) by type and publish them as report.nightly.

    By hand, for another day:
    eventhub --config examples/eventhub.toml workflows run nightly-report
    --data '{"day": "2026-11-21"}'
    """
    day = _day((ctx.data or {}).get("day"), ctx.run.started)
    start = datetime.combine(day, time.min, UTC)
    events = ctx.hub.bus.history(
        None, limit=None, since=start, until=start + timedelta(days=1)
    )
    counts = Counter(event.type for event in events)
    report = {
        "day": day.isoformat(),
        "events": len(events),
        "by_type": dict(counts.most_common()),
    }
    ctx.state["last_day"] = report["day"]
    ctx.publish("report.nightly", report, subject=f"reports/{report['day']}")
    return report


def _day(text, started):
    """The day asked for (YYYY-MM-DD), or the day before the run started."""
    if text is None:
        return (started.astimezone(UTC) - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"day must be a date as YYYY-MM-DD, not {text!r}") from None
