"""The interactive shell behind `asof sql DB`, in the manner of psql and ysqlsh.

Lines gather into a statement until a `;` that ends one (not one inside a string); a
backslash command at the start of a line runs at once. On a terminal the shell edits lines
and keeps a history with readline, and Ctrl-C clears the line instead of leaving.
"""

from __future__ import annotations

import os
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from asof.queryapi.cli.script import ScriptRunner, complete
from asof.queryapi.cli.textformat import FORMATS, aligned
from asof.queryapi.cluster import Cluster
from asof.queryapi.errors import AsofError, ProgrammingError

HELP = """\
General
  \\q                  quit
  \\? or help          this help
Connection
  \\c [DB]             connect to database DB (or say which one this is)
  \\conninfo           the database and data directory in use
Informational
  \\l                  list databases, with the source and restore time of clones
  \\d                  list tables
  \\d NAME             describe table or view NAME
  \\dt                 list tables
Formatting
  \\x [on|off]         expanded display, one line per column
  \\pset format FMT    aligned, csv, json or markdown
  \\timing [on|off]    print how long each statement took
Input/Output
  \\i FILE             run the statements in FILE
  \\o [FILE]           send results to FILE (or back to the screen)
  \\echo TEXT          print TEXT"""


_CANCEL = "\x1f"


def _input_with_ctrl_c_as_a_key(stream: TextIO, prompt: str) -> str:
    """input(), with the terminal's SIGINT key turned off while the line is read.

    A signal goes to any thread of the process, and DuckDB's threads do not block it; one
    that lands elsewhere leaves the reading thread waiting. Read as a key, Ctrl-C always
    reaches readline. The terminal gets its own settings back before the statement runs.
    """
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):
        return input(prompt)
    quiet = list(saved)
    quiet[3] &= ~termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        return input(prompt)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _toggle(arg: str, current: bool) -> bool:
    word = arg.strip().lower()
    if word in ("on", "true", "1"):
        return True
    if word in ("off", "false", "0"):
        return False
    return not current


class Shell:
    def __init__(
        self,
        cluster: Cluster,
        name: str | None,
        echo: Callable[[str], None],
        error: Callable[[str], None] | None = None,
        *,
        fmt: str = "aligned",
        bail: bool = False,
    ) -> None:
        self.cluster = cluster
        self._screen = echo
        self._error = error or echo
        self.db: Any = cluster.database(name) if name else None
        self.runner = ScriptRunner(self.echo, self._error, fmt=fmt, bail=bail)
        self.timing = False
        self._out: TextIO | None = None

    # ------------------------------------------------------------- output
    def echo(self, text: str) -> None:
        if self._out is not None:
            self._out.write(text + "\n")
        else:
            self._screen(text)

    @property
    def name(self) -> str:
        return self.db.name if self.db is not None else "asof"

    def prompt(self, continuing: bool) -> str:
        """psql's prompt: `=` ready, `-` inside a statement, then `*` inside a transaction
        and `!` inside a failed one."""
        state = "-" if continuing else "="
        if not continuing:
            state += {"in transaction": "*", "failed": "!"}.get(self._transaction_status(), "")
        return f"{self.name}{state}# "

    def _transaction_status(self) -> str:
        if self.db is None:
            return "idle"
        try:
            return str(getattr(self.db, "transaction_status", "idle"))
        except AsofError:
            return "idle"

    # ------------------------------------------------------------ the loop
    def loop(self, stream: TextIO) -> bool:
        """Read and run until end of input or \\q; False when an error stopped it."""
        interactive = stream.isatty()
        if interactive:
            self._readline()
            self._screen('asof shell. Type "help" or \\? for help, \\q to quit.')
        buffer: list[str] = []
        while True:
            try:
                line = self._read(stream, self.prompt(bool(buffer)), interactive)
            except KeyboardInterrupt:
                buffer = []  # as psql: Ctrl-C drops the statement being typed
                self._screen("")
                continue
            if line is None:
                break
            text = line.strip()
            if not buffer and text.lower() in ("help", "\\?"):
                self.echo(HELP)
                continue
            if not buffer and text.startswith("\\"):
                go_on = self.meta(text)
                if go_on is None:
                    break
                if not go_on:
                    return False
                continue
            if text or buffer:
                buffer.append(line.rstrip("\n"))
            if buffer and complete("\n".join(buffer)):
                statement, buffer = "\n".join(buffer), []
                if not self.run(statement):
                    return False
        if buffer and "\n".join(buffer).strip():
            return self.run("\n".join(buffer))
        return True

    def _read(self, stream: TextIO, prompt: str, interactive: bool) -> str | None:
        if interactive:
            try:
                line = _input_with_ctrl_c_as_a_key(stream, prompt)
            except EOFError:
                self._screen("")
                return None
            if _CANCEL in line:
                raise KeyboardInterrupt
            return line
        line = stream.readline()
        return line if line else None

    def _readline(self) -> None:
        try:
            import readline
        except ImportError:  # pragma: no cover - not on every platform
            return
        # Ctrl-C at the prompt clears the line and the statement being typed, as in psql:
        # readline sees it as a key (see _input_with_ctrl_c_as_a_key) and answers with a
        # line holding only _CANCEL.
        readline.parse_and_bind(r'"\C-c": "\C-e\C-u\x1f\C-m"')
        history = Path(os.environ.get("ASOF_HISTORY", Path.home() / ".asof_history"))
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        import atexit

        atexit.register(self._save_history, readline, history)

    @staticmethod
    def _save_history(readline: Any, history: Path) -> None:
        try:
            readline.set_history_length(1000)
            readline.write_history_file(history)
        except OSError:
            pass

    def run(self, sql: str) -> bool:
        if self.db is None:
            return self._run_on_cluster(sql)
        started = time.perf_counter()
        try:
            ok = self.runner.run(self.db, sql)
        except KeyboardInterrupt:
            self._error("ERROR:  canceling statement due to user request")
            return not self.runner.bail
        if self.timing:
            self.echo(f"Time: {(time.perf_counter() - started) * 1000:.3f} ms")
        return ok

    def _run_on_cluster(self, sql: str) -> bool:
        """Without a database only cluster statements run (CREATE/DROP DATABASE)."""
        return self.runner.run(self.cluster, sql)

    # -------------------------------------------------- backslash commands
    def meta(self, text: str) -> bool | None:
        """Run a backslash command: None means quit, False that an error stopped the
        script (\\i with bail)."""
        cmd, _, arg = text.partition(" ")
        arg = arg.strip()
        if cmd == "\\q":
            return None
        handler = self._COMMANDS.get(cmd)
        if handler is None:
            self._error(f"invalid command {cmd}; try \\? for help")
            return True
        try:
            return handler(self, arg)
        except AsofError as exc:
            self._error(f"ERROR:  {exc}")
            return not self.runner.bail

    def _connect(self, arg: str) -> bool:
        if not arg:
            self.echo(f'You are connected to database "{self.name}".')
            return True
        self.db = self.cluster.database(arg)
        self.echo(f'You are now connected to database "{self.db.name}".')
        return True

    def _conninfo(self, arg: str) -> bool:
        self.echo(f'You are connected to database "{self.name}" in "{self.cluster.store.root}".')
        return True

    def _list(self, arg: str) -> bool:
        rows = []
        for name in self.cluster.databases():
            clones = {}
            for source in self.cluster.databases():
                for rec in self.cluster.list_clones(source):
                    clones[rec.target_name] = (source, rec.to_dict()["restore_time"])
            source, restored = clones.get(name, (None, None))
            rows.append((name, source, restored))
        self.echo(aligned(["Name", "Template", "Restore time"], rows))
        return True

    def _describe(self, arg: str) -> bool:
        db = self._need_db()
        if not arg:
            return self._tables(arg)
        result = db.sql(
            "SELECT column_name, column_type, CASE WHEN \"null\" = 'NO' THEN 'not null' "
            f"ELSE '' END, coalesce(\"default\", '') FROM (DESCRIBE {_quote(arg)})"
        )
        self.echo(f'Table "{arg}"')
        self.echo(
            aligned(["Column", "Type", "Nullable", "Default"], result.fetchall(), footer=False)
        )
        return True

    def _tables(self, arg: str) -> bool:
        db = self._need_db()
        rows = [("main", name, "table") for name in db.tables()]
        if not rows:
            self.echo("Did not find any relations.")
            return True
        self.echo("List of relations")
        self.echo(aligned(["Schema", "Name", "Type"], rows))
        return True

    def _expanded(self, arg: str) -> bool:
        self.runner.expand = _toggle(arg, self.runner.expand)
        self.echo(f"Expanded display is {'on' if self.runner.expand else 'off'}.")
        return True

    def _timing(self, arg: str) -> bool:
        self.timing = _toggle(arg, self.timing)
        self.echo(f"Timing is {'on' if self.timing else 'off'}.")
        return True

    def _pset(self, arg: str) -> bool:
        option, _, value = arg.partition(" ")
        value = value.strip().lower()
        if option != "format" or value not in FORMATS:
            self._error(f"\\pset: only format is supported, one of {', '.join(FORMATS)}")
            return True
        self.runner.fmt = value
        self.echo(f"Output format is {value}.")
        return True

    def _include(self, arg: str) -> bool:
        if not arg:
            self._error("\\i: missing required argument")
            return True
        try:
            with open(arg, encoding="utf-8") as fh:
                return self.loop(fh)
        except OSError as exc:
            self._error(f"{arg}: {exc.strerror}")
            return not self.runner.bail

    def _output(self, arg: str) -> bool:
        if self._out is not None:
            self._out.close()
            self._out = None
        if arg:
            try:
                self._out = open(arg, "w", encoding="utf-8")  # noqa: SIM115 - held until \o
            except OSError as exc:
                self._error(f"{arg}: {exc.strerror}")
        return True

    def _echo(self, arg: str) -> bool:
        self.echo(arg)
        return True

    def _need_db(self) -> Any:
        if self.db is None:
            raise ProgrammingError("not connected to a database; connect with \\c DB")
        return self.db

    _COMMANDS: dict[str, Callable[[Shell, str], bool]] = {
        "\\c": _connect,
        "\\connect": _connect,
        "\\conninfo": _conninfo,
        "\\l": _list,
        "\\d": _describe,
        "\\dt": _tables,
        "\\x": _expanded,
        "\\timing": _timing,
        "\\pset": _pset,
        "\\i": _include,
        "\\o": _output,
        "\\echo": _echo,
        "\\?": lambda self, arg: self._echo(HELP),
    }

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _quote(name: str) -> str:
    if name.startswith('"'):
        return name
    return '"' + name.replace('"', '""') + '"'
