"""Workflows reacting to user events."""

from eventhub import InvalidEvent, workflow


@workflow("welcome-mail", on="user.created")
def welcome_mail(ctx):
    """Queue a welcome mail for each new user that gave an e-mail address (by
    hand: --data '{"id": 7, "email": "ada@example.org"}')."""
    user = ctx.data
    if not isinstance(user, dict) or "id" not in user:
        # Retrying cannot fix the event: an eventhub error is not retried, so it
        # goes to the dead letters at once, for someone to look at.
        raise InvalidEvent("data", 'a user.created event needs {"id": ...}')
    if not user.get("email"):
        ctx.log.info("no e-mail address, no welcome mail", user=user["id"])
        return {"skipped": "no email"}
    ctx.log.info("queueing welcome mail", email=user["email"])
    ctx.publish(
        "mail.queued",
        {"to": user["email"], "template": "welcome"},
        subject=f"user/{user['id']}",
    )
    return {"to": user["email"]}
