"""The ``eventhub`` command-line tool.

A user mistake (bad option, bad JSON, unknown id, invalid event) prints one line on
standard error and exits 2; it never shows a traceback.

Plugins add commands through ``register_commands``. They come from the plugin
manager the config describes (the built-ins, entry points and the config's
``plugins = [...]``), loaded only when a command is not built in, or when the list
of commands is shown and a plugin other than the built-ins could add one: so
``eventhub --version``, ``eventhub --help`` and the built-in commands import no
integration (a command that builds the hub loads the plugins there, once).
"""

from __future__ import annotations

import gc
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from ._version import __version__
from .errors import (
    ConfigProblems,
    EventHubError,
    UndecodableEvent,
    UserError,
    WorkflowNotFound,
)
from .events import Event, format_time

EXIT_USER_ERROR = 2
DEFAULT_DB = "eventhub.db"
# Row ids and counts are SQLite integers (64-bit); limits are kept well below.
_MAX_ID = 2**63 - 1
_MAX_LIMIT = 1_000_000_000


def _config(ctx: click.Context) -> Any:
    """The loaded config file, if one was given (loaded once per command)."""
    from .config import load_config

    obj = ctx.find_root().obj
    if obj.get("config") and "loaded" not in obj:
        obj["loaded"] = load_config(obj["config"])
    return obj.get("loaded")


def _open_hub(
    ctx: click.Context, *, must_exist: bool, full: bool = False, reading: bool = False
) -> Any:
    """The hub to work on. ``full`` builds it as the daemon would (plugins,
    integrations, workflows); otherwise only the state database is opened.
    ``reading``: the command only reads, so a database this user may not write
    is opened read-only (instead of failing to open)."""
    from .hub import Hub

    obj = ctx.find_root().obj
    config = _config(ctx)
    path = _db_path(ctx)
    if must_exist and not Path(path).exists():
        raise UserError(
            f"no state database at {path} (set --db, --config or EVENTHUB_DB)"
        )
    readonly = reading and Path(path).exists() and not _may_write(Path(path))
    if full and config is not None and not obj["db"]:
        hub = Hub.from_config(config, readonly=readonly)
    else:
        hub = Hub(path, source="eventhub/cli", readonly=readonly)
    ctx.call_on_close(hub.close)
    return hub


def _may_write(path: Path) -> bool:
    """Whether this process may write the database file and make files beside it
    (its write-ahead log and index, when they are not there yet)."""
    folder = path.absolute().parent
    return os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)


def _db_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is not None and not value.strip():
        raise click.BadParameter("the path is empty", ctx=ctx, param=param)
    return value


def _dump(obj: Any) -> None:
    click.echo(orjson.dumps(obj, default=str).decode())


class _Commands(click.Group):
    """The ``eventhub`` group: the built-in commands, then those plugins add."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:  # not built in: perhaps a plugin's
            command = _plugin_commands(ctx).get(cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        if _plugins_may_add_commands(ctx):
            names.update(_plugin_commands(ctx))
        return sorted(names)


def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
    """The commands that plugins add (``register_commands``), from the plugin
    manager the config describes; asked once per invocation. A plugin's command
    never replaces a built-in one."""
    from .config import load_config
    from .plugins import config_plugins, make_plugin_manager

    root = ctx.find_root()
    commands: dict[str, click.Command] | None = root.meta.get(_PLUGIN_COMMANDS)
    if commands is None:
        path = _config_path(root)
        extra = config_plugins(load_config(path)) if path else []
        added = click.Group()
        make_plugin_manager(extra).hook.register_commands(cli=added)
        commands = root.meta[_PLUGIN_COMMANDS] = dict(added.commands)
    return commands


_PLUGIN_COMMANDS = "eventhub.plugin_commands"


def _plugins_may_add_commands(ctx: click.Context) -> bool:
    """Whether a plugin other than the built-ins may be loaded: one the config
    names, or an installed entry point. The built-in plugins add no commands
    (tests/test_cli.py holds them to that), so listing the commands imports them
    only when there is another plugin to ask."""
    from .config import load_config
    from .plugins import entrypoint_plugins_installed

    path = _config_path(ctx.find_root())
    if path:
        try:
            if load_config(path).plugins:
                return True
        except EventHubError:
            pass  # a command that reads the config will say what is wrong
    return entrypoint_plugins_installed()


def _config_path(root: click.Context) -> str | None:
    """The ``--config`` given (or ``EVENTHUB_CONFIG``), also while the options are
    still being read (``--help`` is shown before later options are)."""
    if root.params.get("config_path"):
        return str(root.params["config_path"])
    return os.environ.get("EVENTHUB_CONFIG") or None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eventhub")
@click.option(
    "--config",
    "config_path",
    envvar="EVENTHUB_CONFIG",
    type=click.Path(dir_okay=False),
    is_eager=True,  # read before --help, which lists the config's plugins' commands
    help="Config file (env EVENTHUB_CONFIG); its db and workflows are used.",
)
@click.option(
    "--db",
    envvar="EVENTHUB_DB",
    type=click.Path(dir_okay=False),
    callback=_db_option,
    help=f"State database (env EVENTHUB_DB; default: the config's, or {DEFAULT_DB}).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db: str | None) -> None:
    """eventhub: an embeddable event bus and integration orchestrator."""
    from . import log as eventhub_log

    # Log lines go to standard error, so that --json output stays parseable.
    eventhub_log.configure(
        level=os.environ.get("EVENTHUB_LOG_LEVEL", "WARNING"), stream=sys.stderr
    )
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    ctx.obj["config"] = config_path


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
    data = None if data_text is None else _read_json_option(ctx, data_text)
    hub = _open_hub(ctx, must_exist=False)
    event = hub.bus.publish(type, data, source=source, subject=subject)
    _dump(event.to_dict())


@cli.command()
@click.option(
    "--type", "type_pattern", help="Type pattern, e.g. 'user.*' or 'order.**'."
)
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=1, max=_MAX_LIMIT),
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON array of CloudEvents."
)
@click.pass_context
def history(
    ctx: click.Context, type_pattern: str | None, limit: int, as_json: bool
) -> None:
    """Show stored events, oldest first (the latest LIMIT).

    A stored event that cannot be decoded (a damaged row) is left out with a
    warning on standard error, and the exit status is 1.
    """
    hub = _open_hub(ctx, must_exist=True, reading=True)
    skipped: list[UndecodableEvent] = []
    events = hub.bus.history(type_pattern, limit, on_undecodable=skipped.append)
    if as_json:
        _dump([e.to_dict() for e in events])
    else:
        for event in events:
            click.echo(_event_line(event))
    for problem in skipped:
        click.echo(f"warning: left out {problem}", err=True)
    if skipped:
        ctx.exit(1)


def _read_json_option(ctx: click.Context, text: str) -> Any:
    """The JSON value of ``--data``: inline, ``@FILE`` or ``-`` (stdin). A file or
    stdin is read up to the bus's data limit and no further: more is refused."""
    limit = _max_data_bytes(ctx)
    raw: str | bytes
    if text == "-" or text.startswith("@"):
        name = "standard input" if text == "-" else text[1:]
        try:
            if text == "-":
                raw = sys.stdin.buffer.read(limit + 1)
            else:
                with open(text[1:], "rb") as file:
                    raw = file.read(limit + 1)
        except OSError as exc:
            raise UserError(f"--data: cannot read {name}: {exc.strerror}") from None
        if len(raw) > limit:
            raise UserError(
                f"--data: {name} is over the limit of {limit} bytes"
                " (the [bus] max_data_bytes setting)"
            )
    else:
        raw = text
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"--data is not valid JSON: {exc}") from None


def _max_data_bytes(ctx: click.Context) -> int:
    from .events import DEFAULT_MAX_DATA_BYTES

    config = _config(ctx)
    return int(config.max_data_bytes) if config else DEFAULT_MAX_DATA_BYTES


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
    hub = _open_hub(ctx, must_exist=True, reading=True)
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
@click.argument("ids", nargs=-1, type=click.IntRange(min=1, max=_MAX_ID))
@click.option("--all", "redrive_all", is_flag=True, help="Redrive every dead letter.")
@click.pass_context
def dlq_redrive(ctx: click.Context, ids: Sequence[int], redrive_all: bool) -> None:
    """Put dead letters (by ID, or --all) back for delivery."""
    if bool(ids) == redrive_all:
        raise click.UsageError("give dead-letter IDs or --all (not both)")
    hub = _open_hub(ctx, must_exist=True)
    count = hub.bus.redrive(all=True) if redrive_all else hub.bus.redrive(list(ids))
    click.echo(f"redrove {count} dead letter{'s' if count != 1 else ''}")


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (overrides the global --config).",
)
@click.option("--check", is_flag=True, help="Validate config and workflows, then exit.")
@click.pass_context
def run(ctx: click.Context, config_path: str | None, check: bool) -> None:
    """Run the daemon: workflows, schedules and durable subscriptions."""
    from . import daemon

    if config_path:
        ctx.find_root().obj.update(config=config_path)
        ctx.find_root().obj.pop("loaded", None)
    config = _config(ctx)
    if config is None:
        raise click.UsageError("eventhub run needs --config FILE (or EVENTHUB_CONFIG)")
    try:
        if check:
            click.echo(daemon.check(config))
            return
        code = daemon.run(config)
    except ConfigProblems as exc:  # one line each
        for problem in exc.problems:
            click.echo(f"Error: {exc.path}: {problem}", err=True)
        sys.exit(EXIT_USER_ERROR)
    # Everything is stopped and closed. Without this, the interpreter's exit
    # collects garbage over every object still alive - with the embedding model
    # loaded (torch, transformers: millions of objects) that takes seconds.
    gc.freeze()
    sys.exit(code)


@cli.group()
def workflows() -> None:
    """Workflows: list them, run one by hand."""


@workflows.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def workflows_list(ctx: click.Context, as_json: bool) -> None:
    """List the workflows of the config (and of plugins)."""
    hub = _open_hub(ctx, must_exist=False, full=True, reading=True)
    flows = hub.workflows()
    next_fires = hub.orchestrator.next_fire_times()
    rows = [
        {
            "name": flow.name,
            "triggers": flow.triggers,
            "on": list(flow.on),
            "schedule": flow.schedule.text if flow.schedule else None,
            "next_fire": format_time(next_fires[flow.name])
            if next_fires.get(flow.name)
            else None,
            "timeout": flow.timeout,
            "max_instances": flow.max_instances,
            "description": flow.description,
            "origin": flow.origin,
        }
        for flow in sorted(flows.values(), key=lambda f: f.name)
    ]
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo("no workflows")
    for row in rows:
        nxt = f"  next {row['next_fire']}" if row["next_fire"] else ""
        click.echo(f"{row['name']}  [{' | '.join(row['triggers'])}]{nxt}")


@workflows.command("run")
@click.argument("name")
@click.option("--data", "data_text", help="Run data as JSON; @FILE reads a file.")
@click.pass_context
def workflows_run(ctx: click.Context, name: str, data_text: str | None) -> None:
    """Run workflow NAME now, in this process; prints the run record as JSON."""
    data = None if data_text is None else _read_json_option(ctx, data_text)
    hub = _open_hub(ctx, must_exist=False, full=True)
    result = hub.orchestrator.trigger_workflow(name, data)
    _dump(result.to_dict())
    if result.status != "succeeded":
        ctx.exit(1)


@cli.command()
@click.option("--workflow", "workflow_name", help="Only this workflow's runs.")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1, max=_MAX_LIMIT),
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def runs(
    ctx: click.Context, workflow_name: str | None, limit: int, as_json: bool
) -> None:
    """Show workflow runs, newest first."""
    hub = _open_hub(ctx, must_exist=True, reading=True)
    found = hub.orchestrator.runs.list(workflow_name, limit)
    if workflow_name is not None and not found:
        # No runs: a workflow that exists has none yet; any other name is a typo.
        # Known: the config's (and plugins') workflows, and those runs name.
        known = {name for name, _status in hub.orchestrator.runs.counts()}
        known.update(
            _open_hub(ctx, must_exist=True, full=True, reading=True).workflows()
        )
        if workflow_name not in known:
            raise WorkflowNotFound(workflow_name, sorted(known))
    if as_json:
        _dump([r.to_dict() for r in found])
        return
    if not found:
        click.echo("no runs")
    for r in found:
        took = f"{r.duration:.3f}s" if r.duration is not None else "-"
        error = f"  {r.error}" if r.error else ""
        click.echo(
            f"{format_time(r.started)}  {r.workflow}  {r.trigger}  {r.status}  "
            f"{took}{error}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--check-integrity",
    "full_check",
    is_flag=True,
    help="Run SQLite's full integrity_check (slower) instead of its quick_check.",
)
@click.pass_context
def status(ctx: click.Context, as_json: bool, full_check: bool) -> None:
    """The state of the hub: log, subscriptions, workflows, recent runs.

    First, SQLite checks every page of the state database (quick_check, or
    integrity_check with --check-integrity): a damaged database is an error
    saying how to recover it, exit status 1.
    """
    hub = _open_hub(ctx, must_exist=True, full=True, reading=True)
    check = "integrity_check" if full_check else "quick_check"
    hub.db.check_integrity(full=full_check)
    last = hub.log.last_sequence()
    subscriptions = [
        {
            "name": s.name,
            "pattern": s.pattern,
            "cursor": s.cursor,
            "lag": max(0, last - s.cursor),
            "pending": s.pending,
            "dead_letters": s.dead_letters,
            "undecodable": s.undecodable,
        }
        for s in hub.bus.durable_status()
    ]
    undecodable = [
        {
            "sequence": u.sequence,
            "problem": u.problem,
            "subscriptions": list(u.subscriptions),
        }
        for u in hub.log.undecodable_events()
    ]
    next_fires = hub.orchestrator.next_fire_times()
    recent = hub.orchestrator.runs.list(limit=200)
    report = {
        "version": __version__,
        "db": hub.path,
        "last_sequence": last,
        "subscriptions": subscriptions,
        "workflows": [
            {
                "name": name,
                "triggers": flow.triggers,
                "next_fire": format_time(next_fires[name])
                if next_fires.get(name)
                else None,
            }
            for name, flow in sorted(hub.workflows().items())
        ],
        "recent_runs": {
            s: sum(1 for r in recent if r.status == s)
            for s in ("running", "succeeded", "failed")
        },
        "dead_letters": sum(s["dead_letters"] for s in subscriptions),
        "undecodable_events": undecodable,
        "integrity": {"check": check, "ok": True},
    }
    if as_json:
        _dump(report)
        return
    click.echo(f"eventhub {report['version']}  {report['db']}")
    click.echo(f"integrity: ok ({check})")
    click.echo(f"log: {last} events")
    for sub in subscriptions:
        damaged = f" ({sub['undecodable']} undecodable)" if sub["undecodable"] else ""
        click.echo(
            f"  subscription {sub['name']} [{sub['pattern']}]: cursor {sub['cursor']},"
            f" lag {sub['lag']}, {sub['pending']} pending,"
            f" {sub['dead_letters']} dead letters{damaged}"
        )
    if undecodable:
        click.echo(
            f"damaged: {len(undecodable)} stored event"
            f"{'s' if len(undecodable) != 1 else ''} cannot be decoded"
            " (dead-lettered; see eventhub dlq list):"
        )
        for item in undecodable:
            click.echo(f"  event {item['sequence']}: {item['problem']}")
    for flow in report["workflows"]:
        nxt = f", next {flow['next_fire']}" if flow["next_fire"] else ""
        click.echo(f"  workflow {flow['name']} [{' | '.join(flow['triggers'])}]{nxt}")
    counts = report["recent_runs"]
    click.echo(
        f"recent runs: {counts['succeeded']} succeeded, {counts['failed']} failed,"
        f" {counts['running']} running"
    )


@cli.command()
@click.argument("source")
@click.option("--full", is_flag=True, help="Look at every document, not only changes.")
@click.option(
    "--dry-run", is_flag=True, help="Count what would change; change nothing."
)
@click.option(
    "--force", is_flag=True, help="Allow deleting more than the guard allows."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def sync(
    ctx: click.Context,
    source: str,
    full: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Sync the document SOURCE into the search index."""
    hub = _open_hub(ctx, must_exist=False, full=True)
    documents = hub.documents
    documents.source(source)  # an unknown name fails before any work
    _tell_when_the_model_loads(documents.embedder, "there is text to embed")
    show_bar = not as_json and sys.stderr.isatty()
    with _progress(show_bar) as progress:
        report = documents.sync(
            source, full=full, dry_run=dry_run, force=force, progress=progress
        )
    if as_json:
        _dump(report.to_dict())
        return
    what = "would change" if dry_run else "synced"
    click.echo(
        f"{source} {what}: {report.added} added, {report.updated} updated,"
        f" {report.unchanged} unchanged, {report.deleted} deleted,"
        f" {report.failed} failed,"
        f" {report.skipped} skipped; {report.embedded} chunks embedded"
        f" ({report.duration:.1f}s)"
    )
    for skip in report.skipped_documents:
        click.echo(f"  skipped {skip['document_id']}: {skip['reason']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def sources(ctx: click.Context, as_json: bool) -> None:
    """The document sources: kind, documents, last sync and prune, failures,
    skips. No source is contacted and no secret read."""
    hub = _open_hub(ctx, must_exist=False, full=True, reading=True)
    found = hub.documents.status()
    if as_json:
        _dump(found)
        return
    if not found:
        click.echo("no document sources (configure [sources.NAME])")
    for item in found:
        kind = item["kind"] if item["configured"] else "not configured"
        click.echo(
            f"{item['name']} ({kind}): {item['documents']} documents;"
            f" last sync {item['last_sync'] or 'never'},"
            f" last prune {item['last_prune'] or 'never'};"
            f" {item['failures']} failed, {item['skipped']} skipped"
        )


@cli.group()
def documents() -> None:
    """The indexed documents."""


@documents.command("list")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def documents_list(ctx: click.Context, source: str, as_json: bool) -> None:
    """The indexed documents of SOURCE: id, title, url, last change."""
    hub = _open_hub(ctx, must_exist=False, full=True, reading=True)
    found = hub.documents.documents(source)
    if as_json:
        _dump(found)
        return
    for doc in found:
        where = f"  {doc['url']}" if doc["url"] else ""
        click.echo(f"{doc['id']}  {doc['title']}  {doc['updated_at'] or '-'}{where}")


class _progress:
    """A progress bar on standard error while a sync runs (terminals only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        return self.update

    def update(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = click.progressbar(
                length=total or 0, label="syncing", file=sys.stderr, show_pos=True
            )
            self.bar.__enter__()
        self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@cli.command()
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--source", help="Only documents of this source.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.pass_context
def search(
    ctx: click.Context, query: str, k: int, source: str | None, as_json: bool
) -> None:
    """Search the indexed documents; best first.

    A running daemon of the same state database answers at once, from its loaded
    model (through its local socket); without one, the model is loaded here.
    """
    if not query.strip():
        raise click.UsageError("the query is empty")
    hits = _search_through_daemon(ctx, query, k, source)
    if hits is None:
        hub = _open_hub(ctx, must_exist=True, full=True, reading=True)
        documents = hub.documents
        _tell_when_the_model_loads(documents.embedder, "no daemon is running")
        hits = [h.to_dict() for h in documents.search(query, k, source=source)]
    if as_json:
        _dump(hits)
        return
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, 1):
        click.echo(
            f"{rank:>2}. {hit['score']:.3f}  {hit['title']}"
            f"  [{hit['source']}: {hit['document_id']}]"
        )
        click.echo(f"    {hit['snippet'][:160]}")


# The daemon's API answers at most this many hits per search.
_DAEMON_MAX_K = 100


def _search_through_daemon(
    ctx: click.Context, query: str, k: int, source: str | None
) -> list[dict[str, Any]] | None:
    """The hits from the daemon of this state database, or None when no daemon
    of it answers (the search is then done here)."""
    from ._localapi import ask_daemon

    if k > _DAEMON_MAX_K:
        return None
    path = Path(_db_path(ctx))
    if not path.exists():
        return None
    answer = ask_daemon(path, "/search", {"q": query, "k": k, "source": source})
    if answer is None or answer.status >= 500:
        return None
    if answer.status != 200 or not isinstance(answer.body, list):
        raise UserError(answer.error)
    return answer.body


def _db_path(ctx: click.Context) -> str:
    obj = ctx.find_root().obj
    config = _config(ctx)
    return str(obj["db"] or (config.db if config else DEFAULT_DB))


def _tell_when_the_model_loads(embedder: Any, why: str) -> None:
    """On a terminal, say so when the embedding model loads (seconds of waiting)."""
    if not sys.stderr.isatty() or not hasattr(embedder, "on_load"):
        return

    def tell(model: str) -> None:
        click.echo(f"loading the embedding model {model} ({why})...", err=True)

    embedder.on_load = tell


@cli.group()
def index() -> None:
    """The search index: stats, verify, rebuild."""


@index.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def index_stats(ctx: click.Context, as_json: bool) -> None:
    """Documents, chunks, the model and the FAISS structure of the index, with
    its bytes on disk and in memory."""
    hub = _open_hub(ctx, must_exist=True, full=True, reading=True)
    stats = hub.documents.index.stats()
    if as_json:
        _dump(stats)
        return
    click.echo(
        f"{stats['documents']} documents, {stats['chunks']} chunks,"
        f" {stats['vectors']} vectors searched ({stats['kind']}"
        + (
            f", configured {stats['configured_kind']}"
            if stats["configured_kind"] != stats["kind"]
            else ""
        )
        + f"); model {stats['model']} ({stats['dimension']} dimensions)"
    )
    click.echo(
        f"cache {stats['cache_file']}: {_size(stats['bytes_on_disk'])} on disk,"
        f" about {_size(stats['bytes_in_memory'])} in memory"
        + (
            f"; {stats['unsaved_changes']} changes since it was written"
            if stats["unsaved_changes"]
            else ""
        )
    )
    for name, counts in sorted(stats["sources"].items()):
        click.echo(
            f"  {name}: {counts['documents']} documents,"
            f" {counts.get('chunks', 0)} chunks"
        )


def _size(count: int) -> str:
    """Bytes for a person: 512 bytes, 14.8 MiB, 1.4 GiB."""
    if count < 1024:
        return f"{count} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@index.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def index_verify(ctx: click.Context, as_json: bool) -> None:
    """Compare the FAISS cache file with the stored vectors; a difference is
    repaired by a rebuild, and exits 1."""
    hub = _open_hub(ctx, must_exist=True, full=True)
    report = hub.documents.index.verify()
    if as_json:
        _dump(report.to_dict())
    else:
        verdict = "clean" if report.ok else "NOT clean"
        click.echo(
            f"index {verdict}: {report.chunks} chunks, {report.cached} cached,"
            f" {len(report.missing)} missing, {len(report.extra)} extra,"
            f" {len(report.mismatched)} mismatched"
            + ("" if report.checksum_ok else ", checksum differs")
        )
        if report.repaired:
            click.echo("repaired: the cache was rebuilt from the stored vectors")
    if not report.ok:
        ctx.exit(1)


@index.command("rebuild")
@click.pass_context
def index_rebuild(ctx: click.Context) -> None:
    """Rebuild the FAISS cache from the stored vectors."""
    hub = _open_hub(ctx, must_exist=True, full=True)
    count = hub.documents.index.rebuild()
    click.echo(f"rebuilt the cache: {count} vectors")


@cli.group()
def tokens() -> None:
    """API tokens for the daemon's HTTP API."""


def _token_store(ctx: click.Context, *, must_exist: bool, reading: bool = False) -> Any:
    from .auth.apitokens import APITokenStore

    return APITokenStore(_open_hub(ctx, must_exist=must_exist, reading=reading).db)


@tokens.command("create")
@click.argument("name")
@click.option(
    "--read-only", is_flag=True, help="Only GET routes: history, runs, search."
)
@click.pass_context
def tokens_create(ctx: click.Context, name: str, read_only: bool) -> None:
    """Create a token called NAME and print it (it is shown only this once)."""
    scope = "read" if read_only else "write"
    token = _token_store(ctx, must_exist=False).create(name, scope=scope)
    click.echo(token)
    click.echo(
        f"token {name!r} created; it is stored hashed and cannot be shown again",
        err=True,
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens: name, first characters, created, last used."""
    found = _token_store(ctx, must_exist=True, reading=True).list()
    if as_json:
        _dump([t.to_dict() for t in found])
        return
    if not found:
        click.echo("no tokens")
    for t in found:
        used = format_time(t.last_used) if t.last_used else "never used"
        click.echo(
            f"{t.name}  {t.hint}...  {t.scope}  created {format_time(t.created)}"
            f"  {used}"
        )


@tokens.command("revoke")
@click.argument("name")
@click.pass_context
def tokens_revoke(ctx: click.Context, name: str) -> None:
    """Revoke the token called NAME; requests carrying it are refused at once."""
    _token_store(ctx, must_exist=True).revoke(name)
    click.echo(f"revoked token {name!r}")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``eventhub`` script."""
    try:
        code = cli.main(args=argv, prog_name="eventhub", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.ClickException as exc:
        _fail(exc.format_message().splitlines()[0], EXIT_USER_ERROR)
    except EventHubError as exc:  # a user mistake exits 2, anything else 1
        _fail(str(exc).splitlines()[0], exc.exit_code)
    except sqlite3.Error as exc:  # not a storage fault eventhub knows (a bug)
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        _fail(f"state database error: {exc} ({name})", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
