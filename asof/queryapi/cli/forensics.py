"""Forensics and recovery commands, registered on the `asof` click group."""

from __future__ import annotations

import click

from asof.queryapi.cli.group import main, open_cluster
from asof.queryapi.cli.textformat import format_result
from asof.queryapi.cluster import Cluster
from asof.queryapi.errors import ProgrammingError
from asof.queryapi.result import Result
from asof.queryapi.timeref import to_micros


def _handle(cluster: Cluster, ref: str):
    """`db` is the live database, `db@<unix µs>` its state AS OF that time."""
    name, at, when = ref.rpartition("@") if "@" in ref else (ref, "", "")
    db = cluster.database(name)
    if not at:
        return db
    if not when.strip().isdigit():
        raise ProgrammingError(f"{ref!r}: write a past state as db@<unix µs>, e.g. prod@1723243720")
    return db.as_of(to_micros(when))


@main.command()
@click.argument("database")
@click.argument("table")
@click.option("--where", help='A SQL predicate over the row\'s columns, e.g. "k = 3".')
@click.option("--since", help="Only events at or after this time (Unix µs).")
@click.option("--until", help="Only events at or before this time (Unix µs).")
@click.pass_context
def history(
    ctx: click.Context,
    database: str,
    table: str,
    where: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Print every version of TABLE's rows in DATABASE (drops and truncates included).

    Example: asof history production_db t1 --where "k = 3"
    """
    with open_cluster(ctx, read_only=True) as cluster:
        db = cluster.database(database)
        table_ = db.history(table, where=where, since=since, until=until)
        click.echo(format_result(Result(table_)))


@main.command()
@click.argument("a")
@click.argument("b")
@click.option("--table", help="Compare only this table.")
@click.option("--rows", "show_rows", is_flag=True, help="Also print the differing rows.")
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, table: str | None, show_rows: bool) -> None:
    """Compare two states; A and B are DB (now) or DB@<unix µs>.

    Example: asof diff production_db@1723243720285350 production_db --table t1
    """
    with open_cluster(ctx, read_only=True) as cluster:
        result = cluster.diff(_handle(cluster, a), _handle(cluster, b), table)
        click.echo(result.summary())
        if show_rows:
            for name, t in sorted(result.tables.items()):
                for what in ("only_in_a", "only_in_b", "changed"):
                    rows = getattr(t, what)
                    if rows.num_rows:
                        click.echo(f"\n{name} {what}:")
                        click.echo(format_result(Result(rows)))


@main.command("restore_table")
@click.argument("source")
@click.argument("table")
@click.argument("into")
@click.option(
    "--mode",
    type=click.Choice(["create", "append", "replace", "upsert"]),
    default="create",
    show_default=True,
)
@click.option("--where", help="Restore only rows matching this SQL predicate.")
@click.option("--key", help="Key columns for --mode upsert, comma-separated.")
@click.pass_context
def restore_table(
    ctx: click.Context,
    source: str,
    table: str,
    into: str,
    mode: str,
    where: str | None,
    key: str | None,
) -> None:
    """Copy TABLE from SOURCE (DB or DB@<unix µs>) into the database INTO, as one transaction.

    Example: asof restore_table production_db@1723243720285350 t1 production_db --mode upsert --key k
    """
    keys = [k.strip() for k in key.split(",")] if key else None
    with open_cluster(ctx) as cluster:
        result = cluster.restore_table(
            _handle(cluster, source),
            table,
            cluster.database(into),
            mode=mode,
            where=where,
            key=keys,
        )
        click.echo(str(result))


@main.command("undrop_table")
@click.argument("database")
@click.argument("table")
@click.pass_context
def undrop_table(ctx: click.Context, database: str, table: str) -> None:
    """Recreate TABLE in DATABASE as it was just before its last DROP TABLE.

    Example: asof undrop_table production_db t1
    """
    with open_cluster(ctx) as cluster:
        click.echo(str(cluster.undrop_table(database, table)))


@main.command()
@click.argument("database")
@click.option("--table", help="Draw only this table (every table ever so named).")
@click.option(
    "--out",
    default="timeline.png",
    show_default=True,
    help="Where to write the PNG.",
)
@click.pass_context
def timeline(ctx: click.Context, database: str, table: str | None, out: str) -> None:
    """Draw DATABASE's row events, DDL, drops and clone points over time as a PNG.

    Example: asof timeline production_db --table t1 --out incident.png
    """
    with open_cluster(ctx, read_only=True) as cluster:
        cluster.database(database).timeline(table=table, out=out)
        click.echo(f"wrote {out}")
