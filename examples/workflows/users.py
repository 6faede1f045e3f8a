"""Workflows reacting to user events."""

from eventhub import workflow


@workflow("welcome-mail", on="user.created")
def welcome_mail(ctx):
    """Queue a welcome mail for each new user."""
    user = ctx.event.data
    ctx.log.info("queueing welcome mail", email=user["email"])
    ctx.publish(
        "mail.queued",
        {"to": user["email"], "template": "welcome"},
        subject=f"user/{user['id']}",
    )
    return {"to": user["email"]}
