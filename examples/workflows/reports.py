"""A scheduled workflow: a small activity report every minute."""

from datetime import UTC, datetime, timedelta

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
