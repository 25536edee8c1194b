"""PREPARE, EXECUTE and DEALLOCATE, kept by the session.

DuckDB's own prepared statement would run its body on DuckDB directly, past asof's rewrite
of writes onto the log and past the guard. So the session keeps the body's text under its
name and EXECUTE runs it as if the user had sent it with the arguments as parameters: every
write is logged, every read is checked, and a body is bound again at each EXECUTE (after a
DDL it sees the new catalog, as DuckDB's rebinding does).
"""

from __future__ import annotations

import attrs

from asof.queryapi.errors import NotSupportedError, ProgrammingError
from asof.queryapi.sql.statements import Statement, Token, matching_paren, split, unquote


@attrs.frozen
class Prepare:
    name: str
    body: Statement


@attrs.frozen
class Execute:
    name: str
    #: The arguments as SQL expressions, comma separated ("" when there are none).
    args_sql: str


def parse_prepare(st: Statement) -> Prepare:
    toks = _tokens(st)
    if len(toks) < 4 or toks[2].upper != "AS":
        raise ProgrammingError("PREPARE takes a name and a statement: PREPARE name AS SELECT ...")
    body = split(st.sql[toks[3].start :])
    if len(body) != 1:
        raise ProgrammingError("PREPARE takes exactly one statement")
    if body[0].type in ("PREPARE", "EXECUTE") or body[0].verb == "DEALLOCATE":
        raise NotSupportedError(f"a prepared statement cannot itself be a {body[0].verb}")
    return Prepare(unquote(toks[1].text).lower(), body[0])


def parse_execute(st: Statement) -> Execute:
    toks = _tokens(st)
    if len(toks) < 2:
        raise ProgrammingError("EXECUTE takes the name of a prepared statement")
    name = unquote(toks[1].text).lower()
    if len(toks) == 2:
        return Execute(name, "")
    if toks[2].text != "(":
        raise ProgrammingError("EXECUTE name takes its arguments in parentheses: EXECUTE v(1, 2)")
    close = matching_paren(st.tokens, st.tokens.index(toks[2]))
    return Execute(name, st.sql[toks[2].end : st.tokens[close].start].strip())


def parse_deallocate(st: Statement) -> str | None:
    """The name DEALLOCATE [PREPARE] names, or None for DEALLOCATE ALL."""
    toks = _tokens(st)
    i = 2 if len(toks) > 1 and toks[1].upper == "PREPARE" else 1
    if i >= len(toks):
        raise ProgrammingError("DEALLOCATE takes the name of a prepared statement")
    if toks[i].upper == "ALL":
        return None
    return unquote(toks[i].text).lower()


def _tokens(st: Statement) -> list[Token]:
    return [t for t in st.tokens if t.kind != "comment" and t.text != ";"]
