"""`asof serve` and `asof user …`, registered on the `asof` click group.

This module is the `asof` entry point: it imports the group from asof.queryapi.cli (every
other command registers there) and adds the server's commands, so imports still point down.
"""

from __future__ import annotations

import os
import signal
import ssl
import sys

import click

from asof.pgwire import auth
from asof.queryapi.cli import main
from asof.queryapi.cli.group import open_cluster
from asof.queryapi.cluster import Cluster
from asof.queryapi.errors import AsofError


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5432, show_default=True, type=int, help="TCP port (0: any).")
@click.option("--socket-dir", default=None, help="Also listen on DIR/.s.PGSQL.<port>.")
@click.option("--max-connections", default=100, show_default=True, type=int)
@click.option(
    "--statement-timeout", default=0, show_default=True, type=int, help="Milliseconds; 0: none."
)
@click.option("--trust-local", is_flag=True, help="Unix-socket logins need no password.")
@click.option("--tls-cert", default=None, help="PEM certificate: offer TLS to clients.")
@click.option("--tls-key", default=None, help="PEM private key for --tls-cert.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    socket_dir: str | None,
    max_connections: int,
    statement_timeout: int,
    trust_local: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve the cluster over the PostgreSQL protocol (psql, psycopg, JDBC, …).

    Example: asof --data ./data serve --port 5432 && psql -h 127.0.0.1 -U alice production_db
    """
    from asof.pgwire.server import Server

    tls = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise click.ClickException("--tls-cert and --tls-key go together")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(tls_cert, tls_key)
    with open_cluster(ctx, create=True) as cluster:
        if "postgres" not in cluster.databases():
            cluster.create_database("postgres")  # as after initdb: psql's default database
        server = Server(
            cluster,
            host=host,
            port=port,
            socket_dir=socket_dir,
            max_connections=max_connections,
            trust_local=trust_local,
            statement_timeout_ms=statement_timeout,
            tls=tls,
        )
        try:
            server.bind()
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
        signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
        signal.signal(signal.SIGINT, lambda *_: server.shutdown())
        where = f"{host}:{server.port}"
        if server.socket_path is not None:
            where += f" and {server.socket_path}"
        if not cluster.catalog.users.names():
            click.echo(
                "no users yet: TCP logins are refused until one is added with "
                f"`asof --data {ctx.obj['data']} user add NAME`",
                err=True,
            )
        click.echo(f"asof serving {os.path.abspath(ctx.obj['data'])} on {where}", err=True)
        server.serve()
        click.echo("asof server stopped", err=True)


@main.group()
def user() -> None:
    """Login roles for `asof serve` (SCRAM-SHA-256; the catalog keeps only a verifier).

    Example: ASOF_PASSWORD=secret asof --data ./data user add alice
    """


@user.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_add(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Add the login role NAME (password from a prompt, --password-stdin or ASOF_PASSWORD).

    Example: asof --data ./data user add alice
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get("ASOF_PASSWORD"):
        password = os.environ["ASOF_PASSWORD"]
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_cluster(ctx, create=True) as cluster:
        _run(lambda: auth.add_user(cluster, name, password))
    click.echo(f"user {name} added")


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """List the login roles.

    Example: asof --data ./data user list
    """
    with open_cluster(ctx, read_only=True) as cluster:
        for name in auth.list_users(cluster):
            click.echo(name)


@user.command("drop")
@click.argument("name")
@click.pass_context
def user_drop(ctx: click.Context, name: str) -> None:
    """Remove the login role NAME.

    Example: asof --data ./data user drop alice
    """
    with open_cluster(ctx) as cluster:
        _run(lambda: auth.drop_user(cluster, name))
    click.echo(f"user {name} dropped")


def _run(fn) -> None:
    try:
        fn()
    except AsofError as exc:
        raise click.ClickException(str(exc)) from None


__all__ = ["main", "Cluster"]
