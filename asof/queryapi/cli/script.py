"""Running SQL text the way psql does: statement by statement, each with its own result or
command tag, and a clear rule for what an error stops.

Splitting uses DuckDB's own tokenizer, so a `;` inside a string, a quoted name or a
dollar-quoted body never ends a statement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from asof.queryapi.cli.textformat import format_rows
from asof.queryapi.errors import AsofError
from asof.queryapi.result import Result
from asof.queryapi.sql.statements import Token, tokenize

#: Words after CREATE/DROP/ALTER that name the kind of object, for the command tag.
_OBJECTS = ("TABLE", "VIEW", "SEQUENCE", "INDEX", "DATABASE", "SCHEMA", "TYPE", "MACRO")
_DML = ("INSERT", "UPDATE", "DELETE")


class Runs(Protocol):
    def sql(self, query: str, params: Any = None) -> Result: ...


def split_script(text: str) -> list[str]:
    """The statements of `text`, without their `;`."""
    tokens = tokenize(text)
    out: list[str] = []
    start = 0
    for t in tokens:
        if t.kind == "operator" and t.text == ";":
            piece = text[start : t.start].strip()
            if piece:
                out.append(piece)
            start = t.end
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def complete(text: str) -> bool:
    """Whether `text` ends with a `;` that ends a statement (not one inside a string or an
    unfinished literal): what the shell waits for before it runs the buffer."""
    tokens = [t for t in tokenize(text) if t.text]
    if not tokens:
        return False
    last = tokens[-1]
    return last.kind == "operator" and last.text == ";" and not _open_literal(tokens)


def _open_literal(tokens: list[Token]) -> bool:
    for t in tokens:
        if t.kind == "string_const":
            q = t.text[0]
            if q == "$":
                tag = t.text[: t.text.index("$", 1) + 1] if "$" in t.text[1:] else "$"
                if len(t.text) < 2 * len(tag) or not t.text.endswith(tag):
                    return True
            elif len(t.text) < 2 or not t.text.endswith(q):
                return True
    return False


def _words(sql: str, n: int = 6) -> list[str]:
    return [t.upper for t in tokenize(sql)[:n] if t.kind in ("keyword", "identifier")]


def command_tag(sql: str, result: Result) -> str | None:
    """psql's command tag for a statement that returned no rows (`CREATE TABLE`,
    `INSERT 0 5`, `UPDATE 3`, `BEGIN`); None for one that returns rows."""
    words = _words(sql)
    if not words:
        return None
    first = words[0]
    counted = result.columns == ["Count"] and result.rowcount >= 0
    if first in _DML and counted:
        return f"INSERT 0 {result.rowcount}" if first == "INSERT" else f"{first} {result.rowcount}"
    if result.columns and not counted:
        return None  # rows to print (SELECT, RETURNING, SHOW, ...)
    if first in ("CREATE", "DROP", "ALTER"):
        rest = [w for w in words[1:] if w not in ("OR", "REPLACE", "TEMP", "TEMPORARY", "UNIQUE")]
        if rest[:2] == ["MATERIALIZED", "VIEW"]:
            return f"{first} MATERIALIZED VIEW"
        if rest and rest[0] in _OBJECTS:
            kind = "FUNCTION" if rest[0] == "MACRO" else rest[0]
            if first == "CREATE" and kind == "TABLE" and counted:
                return f"SELECT {result.rowcount}"  # CREATE TABLE … AS, as psql reports it
            return f"{first} {kind}"
        return first
    if first in ("BEGIN", "START"):
        return "BEGIN"
    if first in ("COMMIT", "END"):
        return "COMMIT"
    if first in ("ROLLBACK", "ABORT"):
        return "ROLLBACK"
    if first == "TRUNCATE":
        return "TRUNCATE TABLE"
    if first == "REFRESH":
        return "REFRESH MATERIALIZED VIEW"
    return first


class ScriptRunner:
    """Runs statements on a handle and prints what psql would print for each.

    `bail`: stop at the first error (psql's ON_ERROR_STOP). `errors` counts the statements
    that failed, so the command can choose its exit status.
    """

    def __init__(
        self,
        echo: Callable[[str], None],
        error: Callable[[str], None],
        *,
        fmt: str = "aligned",
        expand: bool = False,
        bail: bool = False,
        tags: bool = True,
    ) -> None:
        self.echo = echo
        self.error = error
        self.fmt = fmt
        self.expand = expand
        self.bail = bail
        self.tags = tags
        self.errors = 0

    def run(self, handle: Runs, text: str) -> bool:
        """Run every statement of `text`; False when an error stopped it (bail)."""
        try:
            statements = split_script(text)
        except AsofError as exc:
            return self._failed(exc)
        for sql in statements:
            try:
                result = handle.sql(sql)
                self.show(sql, result)
            except AsofError as exc:
                if not self._failed(exc):
                    return False
        return True

    def _failed(self, exc: AsofError) -> bool:
        self.errors += 1
        self.error(f"ERROR:  {exc}")
        return not self.bail

    def show(self, sql: str, result: Result) -> None:
        tag = command_tag(sql, result)
        if tag is not None:
            if self.tags and self.fmt == "aligned":
                self.echo(tag)
            return
        if result.columns:
            self.echo(format_rows(result.columns, result.fetchall(), self.fmt, expand=self.expand))
