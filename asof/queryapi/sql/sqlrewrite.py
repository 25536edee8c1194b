"""Time travel inside SQL: `t AT (TIMESTAMP => ...)` and `asof_history('t')`.

DuckDB parses both, but our tables cannot serve them, so before a SELECT runs we replace each
clause with an Arrow table registered on the session's cursor for that statement only: the
table's rows AS OF that time, or the table's history. Everything else passes through untouched.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa

from asof.projections.naming import quote_ident
from asof.queryapi.errors import NotSupportedError, ProgrammingError
from asof.queryapi.sql.statements import (
    Statement,
    Token,
    matching_paren,
    read_name,
    tokenize,
    unquote,
)
from asof.queryapi.timeref import to_micros

if TYPE_CHECKING:
    from asof.queryapi.result import Result
    from asof.queryapi.sql.session import Session


class PastState(Protocol):
    """An AS OF handle, as far as the rewrite reads it."""

    def sql(self, query: str, params: Any = None) -> Result: ...

    def close(self) -> None: ...


class Traveller(Protocol):
    """What the rewrite needs of the database it runs in: its past states and its history."""

    def as_of(self, ts: int) -> PastState: ...

    def history(self, table: str, where: str | None = None) -> pa.Table: ...


_names = (f"_asof_rel_{i}" for i in itertools.count())
_RELATION_START = {"FROM", "JOIN", ","}
_HISTORY_FN = "ASOF_HISTORY"


def _is_at_clause(tokens: tuple[Token, ...], i: int) -> bool:
    return (
        tokens[i].upper == "AT"
        and i + 3 < len(tokens)
        and tokens[i + 1].text == "("
        and tokens[i + 2].upper == "TIMESTAMP"
        and tokens[i + 3].text == "=>"
    )


def _is_history_call(tokens: tuple[Token, ...], i: int) -> bool:
    return tokens[i].upper == _HISTORY_FN and i + 1 < len(tokens) and tokens[i + 1].text == "("


def mentions_time_travel(st: Statement) -> bool:
    toks = st.tokens
    return any(_is_at_clause(toks, i) or _is_history_call(toks, i) for i in range(len(toks)))


@contextmanager
def time_travel(db: Traveller, session: Session, st: Statement) -> Iterator[Statement]:
    """Yield `st` with AT clauses and asof_history calls replaced by registered tables."""
    if not mentions_time_travel(st):
        yield st
        return
    if st.type not in ("SELECT", "EXPLAIN"):
        raise NotSupportedError(
            "AT (TIMESTAMP => ...) and asof_history() work in read-only statements only; "
            "to write past rows into a table use cluster.restore_table(...) or "
            "INSERT INTO t SELECT ... from a clone"
        )
    registered: list[str] = []
    handles: dict[int, PastState] = {}
    try:
        sql = _rewrite(db, session, st, registered, handles)
        yield Statement(sql, st.type, tokenize(sql), st.named_parameters)
    finally:
        for name in registered:
            try:
                session.cur.unregister(name)
            except duckdb.Error:
                pass
        for handle in handles.values():
            handle.close()


def _rewrite(
    db: Traveller,
    session: Session,
    st: Statement,
    registered: list[str],
    handles: dict[int, PastState],
) -> str:
    toks = st.tokens
    edits: list[tuple[int, int, str]] = []
    i = 0
    while i < len(toks):
        if _is_history_call(toks, i):
            close = matching_paren(toks, i + 1)
            args = _string_args(toks[i + 2 : close])
            table = db.history(args[0], where=args[1] if len(args) > 1 else None)
            name = _register(session, table, registered)
            edits.append((toks[i].start, toks[close].end, name))
            i = close + 1
            continue
        if _is_at_clause(toks, i):
            close = matching_paren(toks, i + 1)
            micros = _evaluate_time(st.sql[toks[i + 3].end : toks[close].start])
            first, table, alias = _relation_before(toks, i)
            handle = handles.get(micros)
            if handle is None:
                handle = handles[micros] = db.as_of(micros)
            rows = handle.sql(f"SELECT * FROM {quote_ident(table)}").arrow()
            name = _register(session, rows, registered)
            edits.append((toks[first].start, toks[close].end, f"{name} AS {quote_ident(alias)}"))
            i = close + 1
            continue
        i += 1
    sql = st.sql
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql


def _register(session: Session, table: pa.Table, registered: list[str]) -> str:
    name = next(_names)
    session.cur.register(name, table)
    registered.append(name)
    return name


def _relation_before(toks: tuple[Token, ...], at: int) -> tuple[int, str, str]:
    """(index of the table name's first token, table name, alias) for `t [AS a] AT (...)`."""
    j = at - 1
    depth = 0
    while j >= 0:
        t = toks[j]
        if t.text == ")":
            depth += 1
        elif t.text == "(":
            depth -= 1
        elif depth == 0 and t.upper in _RELATION_START:
            break
        j -= 1
    if j < 0 or toks[j + 1].text == "(":
        raise ProgrammingError(
            "AT (TIMESTAMP => ...) must follow a table name, as in "
            "SELECT * FROM t1 AT (TIMESTAMP => 1723243720285350)"
        )
    name, k = read_name(toks, j + 1)
    alias = name.name
    if k < at and toks[k].upper == "AS":
        k += 1
    if k < at:
        alias = unquote(toks[k].text)
        k += 1
    if k != at:
        raise ProgrammingError("could not read the table before AT (TIMESTAMP => ...)")
    return j + 1, name.name, alias


def _string_args(toks: tuple[Token, ...]) -> list[str]:
    args = [t for t in toks if t.text != ","]
    if not 1 <= len(args) <= 2 or any(t.kind != "string_const" for t in args):
        raise ProgrammingError(
            "asof_history takes a table name and optionally a predicate, as string literals: "
            "asof_history('t1') or asof_history('t1', 'k = 3')"
        )
    return [t.text[1:-1].replace("''", "'") for t in args]


def _evaluate_time(expr: str) -> int:
    """A Unix µs number, or any constant time expression (TIMESTAMP '...' is read as UTC)."""
    text = expr.strip()
    if text.isdigit():
        return to_micros(int(text))
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        value: Any = con.execute(f"SELECT ({text})").fetchall()[0][0]
    except duckdb.Error as exc:
        raise ProgrammingError(
            f"cannot evaluate the time {text!r} in AT (TIMESTAMP => ...): "
            f"{str(exc).splitlines()[0]}; give Unix µs or TIMESTAMP '2024-08-09 21:42:16'"
        ) from None
    finally:
        con.close()
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # SQL's zone-less TIMESTAMP is UTC here
    if isinstance(value, dt.datetime | int | Decimal):
        return to_micros(value)
    if isinstance(value, float) and value.is_integer():
        return to_micros(int(value))
    raise ProgrammingError(
        f"AT (TIMESTAMP => {text}) is not a time; give Unix µs or a TIMESTAMP literal"
    )
