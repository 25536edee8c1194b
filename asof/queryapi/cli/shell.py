"""The interactive shell behind `asof sql DB`, in the manner of ysqlsh."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from asof.queryapi.cli.textformat import format_result
from asof.queryapi.cluster import Cluster
from asof.queryapi.errors import AsofError

HELP = "\\c DB  switch database   \\l  list databases   \\d  list tables   \\q  quit"


class Shell:
    def __init__(self, cluster: Cluster, name: str, echo: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.echo = echo
        self.db = cluster.database(name)

    def prompt(self, continuing: bool) -> str:
        return f"{self.db.name}{'-' if continuing else '='}# "

    def loop(self, stream: TextIO) -> None:
        interactive = stream.isatty()
        buffer: list[str] = []
        while True:
            if interactive:
                self.echo_prompt(self.prompt(bool(buffer)))
            line = stream.readline()
            if not line:
                break
            text = line.strip()
            if not buffer and text.startswith("\\"):
                if not self.meta(text):
                    break
                continue
            if text:
                buffer.append(line.rstrip("\n"))
            if text.endswith(";"):
                self.run("\n".join(buffer))
                buffer = []
        if buffer:
            self.run("\n".join(buffer))

    def echo_prompt(self, text: str) -> None:
        import click

        click.echo(text, nl=False)

    def run(self, sql: str) -> None:
        try:
            out = format_result(self.db.sql(sql))
        except AsofError as exc:
            out = f"ERROR:  {exc}"
        if out:
            self.echo(out)

    def meta(self, text: str) -> bool:
        """Run a backslash command; False means quit."""
        cmd, _, arg = text.partition(" ")
        arg = arg.strip()
        if cmd == "\\q":
            return False
        if cmd == "\\c":
            if not arg:
                self.echo(f'You are connected to database "{self.db.name}".')
                return True
            try:
                self.db = self.cluster.database(arg)
                self.echo(f'You are now connected to database "{self.db.name}".')
            except AsofError as exc:
                self.echo(f"ERROR:  {exc}")
            return True
        if cmd == "\\l":
            for name in self.cluster.databases():
                self.echo(name)
            return True
        if cmd in ("\\d", "\\dt"):
            for name in self.db.tables():
                self.echo(name)
            return True
        self.echo(f"unknown command {cmd}; {HELP}")
        return True
