"""Temporary objects: the session's own, never logged.

`CREATE TEMP TABLE/VIEW/SEQUENCE/MACRO` makes an object in DuckDB's connection-local `temp`
catalog, as DuckDB does. The log never holds it, so no clone, AS OF state or rebuild sees it,
and it is gone when the handle closes. Statements on it run on DuckDB as written, after the
same check as any query (queryapi/sql/guard.py), on the write path: a user sequence one
moves is logged like any other move, and asof's row id sequence stays out of reach.

DuckDB looks a name up in `temp` before `main`, so an unqualified name that a temporary
object holds means the temporary object, in writes as in reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from asof.queryapi.errors import ProgrammingError
from asof.queryapi.sql.statements import Name, Statement, Token, find_kw, read_name, skip_words

_KINDS = ("TABLE", "VIEW", "SEQUENCE", "MACRO", "FUNCTION")


def creates_temporary(st: Statement) -> bool:
    toks = st.tokens
    if st.type != "CREATE" or len(toks) < 2:
        return False
    i = skip_words(toks, 1, "OR", "REPLACE")
    return i < len(toks) and toks[i].upper in ("TEMP", "TEMPORARY")


def created_kind(st: Statement) -> str:
    toks = st.tokens
    i = skip_words(toks, 1, "OR", "REPLACE") + 1
    return toks[i].upper if i < len(toks) else ""


def refuse_shadowing(cur: duckdb.DuckDBPyConnection, st: Statement) -> None:
    """A temporary macro named like a DuckDB function would take its place in asof's own
    SQL on the session's cursor (which calls nextval, current_database, ... by name)."""
    if created_kind(st) not in ("MACRO", "FUNCTION"):
        return
    toks = st.tokens
    i = skip_words(toks, skip_words(toks, 1, "OR", "REPLACE") + 2, "IF", "NOT", "EXISTS")
    name = read_name(toks, i)[0].name
    found = cur.execute(
        "SELECT count(*) FROM system.main.duckdb_functions() WHERE database_name = 'system' "
        "AND lower(function_name) = lower(?)",
        [name],
    ).fetchall()[0][0]
    if found:
        raise ProgrammingError(
            f"{name!r} is the name of a DuckDB function; give the macro another name"
        )


def targets_temporary(cur: duckdb.DuckDBPyConnection, st: Statement) -> bool:
    """`st` (a write or DDL) changes an object of the temporary catalog."""
    name = _target(st.tokens, st.type)
    if name is None:
        return False
    if len(name.parts) > 1:
        return name.parts[0].lower() == "temp"
    return bool(
        cur.execute(
            "SELECT count(*) FROM (SELECT table_name AS n FROM system.main.duckdb_tables() "
            "WHERE database_name = 'temp' UNION ALL SELECT view_name FROM "
            "system.main.duckdb_views() WHERE database_name = 'temp' AND NOT internal "
            "UNION ALL SELECT sequence_name FROM system.main.duckdb_sequences() "
            "WHERE database_name = 'temp' UNION ALL SELECT function_name FROM "
            "system.main.duckdb_functions() WHERE database_name = 'temp') WHERE lower(n) = ?",
            [name.name.lower()],
        ).fetchall()[0][0]
    )


def _target(toks: Sequence[Token], kind: str) -> Name | None:
    """The object an INSERT, UPDATE, DELETE, TRUNCATE, DROP, ALTER or CREATE INDEX names."""
    if not toks:
        return None
    first = toks[0].upper
    try:
        if first == "TRUNCATE":
            return read_name(toks, skip_words(toks, 1, "TABLE"))[0]
        if kind in ("INSERT", "UPDATE", "DELETE"):
            vi = find_kw(toks, {"INSERT", "UPDATE", "DELETE"})
            if vi is None:
                return None
            verb = toks[vi].upper
            if verb == "INSERT":
                i = vi + 1
                if i < len(toks) and toks[i].upper == "OR":
                    i += 2
                return read_name(toks, i + 1)[0]
            if verb == "UPDATE":
                return read_name(toks, vi + 1)[0]
            return read_name(toks, vi + 2)[0]
        if first in ("DROP", "ALTER") and len(toks) > 2 and toks[1].upper in _KINDS:
            return read_name(toks, skip_words(toks, 2, "IF", "EXISTS"))[0]
        if first == "CREATE":
            on = find_kw(toks, {"ON"})
            if on is not None and find_kw(toks, {"INDEX"}) is not None:
                return read_name(toks, on + 1)[0]
    except Exception:  # noqa: BLE001 - not a shape asof reads: DuckDB's own error follows
        return None
    return None
