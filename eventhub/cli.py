"""The ``eventhub`` command-line tool.

A user mistake (bad option, bad JSON, unknown id, invalid event) prints one line on
standard error and exits 2; it never shows a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from .errors import EventHubError, UserError
from .events import Event, format_time

EXIT_USER_ERROR = 2


def _open_hub(ctx: click.Context, *, must_exist: bool) -> Any:
    from .hub import Hub

    path = ctx.obj["db"]
    if must_exist and not Path(path).exists():
        raise UserError(f"no state database at {path} (set --db or EVENTHUB_DB)")
    hub = Hub(path, source="eventhub/cli")
    ctx.call_on_close(hub.close)
    return hub


def _dump(obj: Any) -> None:
    click.echo(orjson.dumps(obj, default=str).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventhub", prog_name="eventhub")
@click.option(
    "--db",
    envvar="EVENTHUB_DB",
    default="eventhub.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="State database file (env EVENTHUB_DB).",
)
@click.pass_context
def cli(ctx: click.Context, db: str) -> None:
    """eventhub: an embeddable event bus and integration orchestrator."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


@cli.command()
@click.argument("type")
@click.option(
    "--data", "data_text", help="Event data as JSON; @FILE reads a file, - reads stdin."
)
@click.option("--source", help="Event source (default: eventhub/cli).")
@click.option("--subject", help="Event subject.")
@click.pass_context
def publish(
    ctx: click.Context,
    type: str,
    data_text: str | None,
    source: str | None,
    subject: str | None,
) -> None:
    """Publish an event of TYPE; prints the stored event as JSON."""
    data = None if data_text is None else _read_json_option(data_text)
    hub = _open_hub(ctx, must_exist=False)
    event = hub.bus.publish(type, data, source=source, subject=subject)
    _dump(event.to_dict())


@cli.command()
@click.option(
    "--type", "type_pattern", help="Type pattern, e.g. 'user.*' or 'order.**'."
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON array of CloudEvents."
)
@click.pass_context
def history(
    ctx: click.Context, type_pattern: str | None, limit: int, as_json: bool
) -> None:
    """Show stored events, oldest first (the latest LIMIT)."""
    hub = _open_hub(ctx, must_exist=True)
    events = hub.bus.history(type_pattern, limit)
    if as_json:
        _dump([e.to_dict() for e in events])
        return
    for event in events:
        click.echo(_event_line(event))


def _read_json_option(text: str) -> Any:
    if text == "-":
        raw: str | bytes = sys.stdin.buffer.read()
    elif text.startswith("@"):
        try:
            raw = Path(text[1:]).read_bytes()
        except OSError as exc:
            raise UserError(f"--data: cannot read {text[1:]}: {exc.strerror}") from None
    else:
        raw = text
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"--data is not valid JSON: {exc}") from None


def _event_line(event: Event) -> str:
    when = format_time(event.time)
    subject = f" subject={event.subject}" if event.subject else ""
    return f"{event.sequence:>8}  {when}  {event.type}  source={event.source}{subject}"


@cli.group()
def dlq() -> None:
    """Dead letters: deliveries that failed for the last time."""


@dlq.command("list")
@click.option("--subscription", help="Only this subscription's dead letters.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def dlq_list(ctx: click.Context, subscription: str | None, as_json: bool) -> None:
    """List dead letters, oldest first."""
    hub = _open_hub(ctx, must_exist=True)
    letters = hub.bus.dead_letters(subscription)
    if as_json:
        _dump(
            [
                {
                    "id": d.id,
                    "subscription": d.subscription,
                    "attempts": d.attempts,
                    "error": d.error,
                    "failed_at": d.failed_at.isoformat(),
                    "event": d.event.to_dict(),
                }
                for d in letters
            ]
        )
        return
    if not letters:
        click.echo("no dead letters")
    for d in letters:
        click.echo(
            f"{d.id:>6}  {d.subscription}  {d.event.type}  seq={d.event.sequence}"
            f"  attempts={d.attempts}  {d.error}"
        )


@dlq.command("redrive")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "redrive_all", is_flag=True, help="Redrive every dead letter.")
@click.pass_context
def dlq_redrive(ctx: click.Context, ids: Sequence[int], redrive_all: bool) -> None:
    """Put dead letters (by ID, or --all) back for delivery."""
    if bool(ids) == redrive_all:
        raise click.UsageError("give dead-letter IDs or --all (not both)")
    hub = _open_hub(ctx, must_exist=True)
    count = hub.bus.redrive(all=True) if redrive_all else hub.bus.redrive(list(ids))
    click.echo(f"redrove {count} dead letter{'s' if count != 1 else ''}")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _load_plugin_commands() -> None:
    from .plugins import make_plugin_manager

    try:
        pm = make_plugin_manager()
    except EventHubError as exc:
        _fail(str(exc).splitlines()[0], EXIT_USER_ERROR)
    pm.hook.register_commands(cli=cli)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``eventhub`` script."""
    _load_plugin_commands()
    try:
        code = cli.main(args=argv, prog_name="eventhub", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.ClickException as exc:
        _fail(exc.format_message().splitlines()[0], EXIT_USER_ERROR)
    except UserError as exc:
        _fail(str(exc).splitlines()[0], EXIT_USER_ERROR)
    except EventHubError as exc:
        _fail(str(exc).splitlines()[0], 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("EVENTHUB_NO_ENTRYPOINTS", "")
    main()
