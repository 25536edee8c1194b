"""The core commands: the SQL shell, clones, schedules, flags, checks and maintenance."""

from __future__ import annotations

import json
import os
import sys

import click

from asof.queryapi.cli.group import main, open_cluster
from asof.queryapi.cli.textformat import format_result
from asof.queryapi.cluster import Cluster


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the walkthrough: recover a dropped table with a point-in-time clone.

    Example: asof demo
    """
    from asof.queryapi.cli.demo import run_demo

    click.echo(f"asof demo in {os.path.abspath(ctx.obj['data'])}")
    with open_cluster(ctx) as cluster:
        run_demo(cluster, click.echo)


@main.command()
@click.argument("database")
@click.option("-c", "--command", "command", help="Run this SQL and exit.")
@click.pass_context
def sql(ctx: click.Context, database: str, command: str | None) -> None:
    """Run SQL in DATABASE, or open an interactive shell when -c is not given.

    Example: asof sql clone_db -c "SELECT * FROM t1 ORDER BY k"

    In the shell: \\c DB switches database, \\l lists databases, \\d lists tables, \\q quits.
    """
    with open_cluster(ctx) as cluster:
        if command is not None:
            result = cluster.database(database).sql(command)
            text = format_result(result)
            if text:
                click.echo(text)
            return
        _shell(cluster, database)


def _shell(cluster: Cluster, name: str) -> None:
    from asof.queryapi.cli.shell import Shell

    Shell(cluster, name, click.echo).loop(sys.stdin)


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
