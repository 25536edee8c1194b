"""The core commands: the SQL shell, clones, schedules, flags, checks and maintenance."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from typing import Any

import click

from asof.queryapi.cli.group import main, open_cluster
from asof.queryapi.cli.script import ScriptRunner
from asof.queryapi.cli.textformat import FORMATS
from asof.queryapi.cluster import Cluster


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the walkthrough: recover a dropped table with a point-in-time clone.

    Example: asof demo
    """
    from asof.queryapi.cli.demo import run_demo

    click.echo(f"asof demo in {os.path.abspath(ctx.obj['data'])}")
    with open_cluster(ctx, create=True) as cluster:
        run_demo(cluster, click.echo)


@main.command()
@click.argument("database", required=False)
@click.option("-c", "--command", "commands", multiple=True, help="Run this SQL (repeatable).")
@click.option(
    "-f", "--file", "files", multiple=True, type=click.File("r"), help="Run the SQL in FILE."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="aligned",
    show_default=True,
    help="How results print.",
)
@click.option("--csv", "fmt", flag_value="csv", help="Same as --format csv.")
@click.option("--json", "fmt", flag_value="json", help="Same as --format json.")
@click.option("--markdown", "fmt", flag_value="markdown", help="Same as --format markdown.")
@click.option("-x", "--expanded", is_flag=True, help="One line per column (psql's \\x).")
@click.option(
    "--bail",
    "-v",
    "bail",
    is_flag=False,
    flag_value="ON_ERROR_STOP=1",
    default=None,
    metavar="ON_ERROR_STOP=1",
    help="Stop at the first error (as psql's -v ON_ERROR_STOP=1).",
)
@click.pass_context
def sql(
    ctx: click.Context,
    database: str | None,
    commands: tuple[str, ...],
    files: tuple[Any, ...],
    fmt: str,
    expanded: bool,
    bail: str | None,
) -> None:
    """Run SQL in DATABASE, or open an interactive shell when neither -c nor -f is given.

    DATABASE may be NAME@TIME (Unix µs or an ISO time with a zone) for a read-only view of
    the past. Without DATABASE only CREATE/DROP DATABASE run (and \\c in the shell).

    Example: asof sql clone_db -c "SELECT * FROM t1 ORDER BY k"

    Exit status, as psql's: 1 when a -c statement fails, 3 when a file stopped at an error
    with --bail, 0 otherwise.
    """
    stop = bail is not None and bail.replace(" ", "").upper() in (
        "ON_ERROR_STOP=1",
        "ON_ERROR_STOP=ON",
    )
    interactive = not commands and not files and sys.stdin.isatty()
    if interactive:
        # Ctrl-C must reach the thread reading the line. A signal goes to any thread that
        # does not block it, so the threads DuckDB starts while the cluster and the
        # database open are made to block it; the shell's own thread unblocks it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with open_cluster(ctx, create=True) as cluster:
            handle = _handle(cluster, database)
            if not commands and not files:
                if interactive and database is not None and hasattr(handle, "session"):
                    _ = handle.session  # open the projection (and its threads) now
                if interactive:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                _shell(cluster, database, handle, fmt, stop)
                return
            runner = ScriptRunner(
                click.echo, _err, fmt=fmt, expand=expanded, bail=stop or bool(commands)
            )
            for text in commands:
                if not runner.run(handle, text):
                    ctx.exit(1)
            for fh in files:
                if not runner.run(handle, fh.read()):
                    ctx.exit(3)
    finally:
        if interactive:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _err(text: str) -> None:
    click.echo(text, err=True)


def _handle(cluster: Cluster, database: str | None) -> Any:
    if database is None:
        return cluster
    name, at, when = database.partition("@")
    db = cluster.database(name)
    if not at:
        return db
    return db.as_of(parse_time(when))


def parse_time(text: str) -> int | dt.datetime:
    """A time given on the command line: Unix µs, or an ISO 8601 time with a zone."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither Unix microseconds nor an ISO time like 2026-12-03T16:00:00+00:00"
        ) from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no time zone; add one, e.g. {text}+00:00")
    return when


def _shell(cluster: Cluster, name: str | None, handle: Any, fmt: str, bail: bool) -> None:
    from asof.queryapi.cli.shell import Shell

    shell = Shell(cluster, None, click.echo, _err, fmt=fmt, bail=bail)
    shell.db = handle if name else None
    try:
        ok = shell.loop(sys.stdin)
    finally:
        shell.close()
    if not ok:
        raise SystemExit(3)


@main.command("clone_namespace")
@click.argument("source")
@click.argument("target")
@click.argument("as_of", required=False)
@click.pass_context
def clone_namespace(ctx: click.Context, source: str, target: str, as_of: str | None) -> None:
    """Clone SOURCE into a new database TARGET, as of AS_OF (Unix µs) or now.

    Example: asof clone_namespace production_db clone_db 1723243720285350
    """
    with open_cluster(ctx) as cluster:
        record = cluster.clone(source, target, as_of=as_of)
        click.echo(json.dumps(record.to_dict(), indent=4))


@main.command("list_clones")
@click.argument("source")
@click.argument("seq_no", required=False, type=int)
@click.pass_context
def list_clones(ctx: click.Context, source: str, seq_no: int | None) -> None:
    """List the clone operations of SOURCE (a database name or id), as JSON.

    Example: asof list_clones production_db 2
    """
    with open_cluster(ctx, read_only=True) as cluster:
        records = cluster.list_clones(source, seq_no)
        click.echo(json.dumps([r.to_dict() for r in records], indent=4))


@main.command("create_snapshot_schedule")
@click.argument("interval_minutes", type=int)
@click.argument("retention_minutes", type=int)
@click.argument("database")
@click.pass_context
def create_snapshot_schedule(
    ctx: click.Context, interval_minutes: int, retention_minutes: int, database: str
) -> None:
    """Checkpoint DATABASE every INTERVAL_MINUTES and keep RETENTION_MINUTES of history.

    Example: asof create_snapshot_schedule 1440 4320 production_db
    """
    with open_cluster(ctx) as cluster:
        schedule = cluster.create_snapshot_schedule(database, interval_minutes, retention_minutes)
        click.echo(json.dumps(schedule.to_dict(), indent=4))


@main.command("list_snapshot_schedules")
@click.pass_context
def list_snapshot_schedules(ctx: click.Context) -> None:
    """List snapshot schedules as JSON.

    Example: asof list_snapshot_schedules
    """
    with open_cluster(ctx, read_only=True) as cluster:
        out = [s.to_dict() for s in cluster.list_snapshot_schedules()]
        click.echo(json.dumps(out, indent=4))


@main.command("delete_snapshot_schedule")
@click.argument("schedule_id")
@click.pass_context
def delete_snapshot_schedule(ctx: click.Context, schedule_id: str) -> None:
    """Delete the snapshot schedule SCHEDULE_ID.

    Example: asof delete_snapshot_schedule 6f1c0e3a9b2d4c8e8f0a1b2c3d4e5f60
    """
    with open_cluster(ctx) as cluster:
        cluster.delete_snapshot_schedule(schedule_id)
        click.echo(f"deleted snapshot schedule {schedule_id}")


@main.command("set_flag")
@click.argument("name")
@click.argument("value")
@click.pass_context
def set_flag(ctx: click.Context, name: str, value: str) -> None:
    """Set the cluster flag NAME to VALUE (persisted).

    Example: asof set_flag enable_db_clone false
    """
    with open_cluster(ctx) as cluster:
        cluster.set_flag(name, value)
        click.echo(f"{name} = {json.dumps(cluster.flags[name])}")


@main.command()
@click.argument("database", required=False)
@click.option(
    "--deep", is_flag=True, help="Also compare each projection with a rebuild from the log."
)
@click.pass_context
def check(ctx: click.Context, database: str | None, deep: bool) -> None:
    """Verify checksums, manifests and projections; exit 1 if anything is wrong.

    Example: asof check production_db --deep
    """
    with open_cluster(ctx) as cluster:
        problems = cluster.check(database, deep=deep)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(1)
    click.echo("ok: no problems found")


@main.command()
@click.argument("database", required=False)
@click.pass_context
def compact(ctx: click.Context, database: str | None) -> None:
    """Merge small log segments and fold history older than the retention window.

    Example: asof compact production_db
    """
    with open_cluster(ctx) as cluster:
        reports = cluster.compact(database)
    for name, r in reports.items():
        click.echo(
            f"{name}: segments {r.segments_before} -> {r.segments_after}, bytes "
            f"{r.bytes_before} -> {r.bytes_after}, rows folded {r.rows_dropped}"
        )


@main.command()
@click.pass_context
def gc(ctx: click.Context) -> None:
    """Delete shared files that nothing needs any more (after drops and compaction).

    Example: asof gc
    """
    with open_cluster(ctx) as cluster:
        removed = cluster.gc()
    click.echo(f"removed {len(removed)} files")
