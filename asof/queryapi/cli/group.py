"""The `asof` click group and what every command shares: the data directory, opening the
cluster, and turning asof's errors into click's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from asof.queryapi.cluster import Cluster
from asof.queryapi.errors import AsofError

DEFAULT_DATA = "./asof-data"


def is_cluster(root: Path) -> bool:
    """Whether `root` holds a cluster (its catalog's log)."""
    return (root / "logs" / "catalog").exists()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "data_dir",
    envvar="ASOF_DATA",
    default=DEFAULT_DATA,
    show_default=True,
    help="The cluster's data directory (or set ASOF_DATA).",
)
@click.pass_context
@click.version_option(package_name="asof", prog_name="asof")
def main(ctx: click.Context, data_dir: str) -> None:
    """asof: an event-sourced temporal database with instant point-in-time clones.

    Example: asof --data ./data sql production_db -c "SELECT 1"
    """
    ctx.obj = {"data": data_dir}


@contextmanager
def open_cluster(
    ctx: click.Context, *, read_only: bool = False, create: bool = False
) -> Iterator[Cluster]:
    """The cluster in --data. Only commands that may start a new cluster (`create`) open a
    directory that holds none: a typo in --data must not look like an empty cluster."""
    root = Path(ctx.obj["data"])
    if not create and not is_cluster(root):
        raise click.ClickException(
            f"there is no asof cluster in {root}: check --data (or ASOF_DATA); to start one, "
            'run asof sql -c "CREATE DATABASE name" there'
        )
    try:
        cluster = Cluster.open(root, read_only=read_only)
    except AsofError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield cluster
    except AsofError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        cluster.close()
