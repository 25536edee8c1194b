"""What makes a CHECK constraint give the same answer every time it runs.

A CHECK runs when a row is written and again whenever the row is replayed from the log (a
rebuild, a clone, a state at a past time). A CHECK that moved a sequence would move it again
on each replay; one that read a random number, the moment, the session or a variable could
reject on replay a row the live database kept, and the log would no longer rebuild. So a
CHECK may call only functions that give the same result for the same arguments.

Two views of an expression are needed, because DuckDB's binder folds some calls away: the
bound plan (macros expanded, every function resolved) names the volatile functions, and the
parse tree, followed through the user's macros, names `getvariable`, which the binder
replaces with the variable's value.
"""

from __future__ import annotations

import duckdb

from asof.queryapi.sql.guard import bound_plan, nodes, parse_tree

#: Functions whose result differs when a statement runs again later, in a clone or in a
#: rebuild from the log, besides those DuckDB marks VOLATILE: the moment, the session, the
#: catalog's name. A CHECK constraint runs again on every replay of the rows it guards.
UNREPEATABLE = frozenset(
    {
        "now",
        "today",
        "current_date",
        "current_localtime",
        "current_localtimestamp",
        "get_current_time",
        "get_current_timestamp",
        "transaction_timestamp",
        "current_database",
        "current_schema",
        "current_schemas",
        "in_search_path",
        "txid_current",
        "getvariable",
        "current_setting",
    }
)
#: VOLATILE in DuckDB, yet the same on every run: it only fails the statement.
_REPEATABLE_VOLATILE = frozenset({"error"})


def unrepeatable_calls(cur: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The functions `sql` calls (as DuckDB binds it: macros expanded) whose results may
    differ when it runs again: DuckDB's VOLATILE functions (nextval, random, uuid, ...)
    and UNREPEATABLE ones."""
    names = set()
    for node in nodes(bound_plan(cur, sql)):
        qname = node.get("qname")
        if node.get("expression_class") == "BOUND_FUNCTION" and isinstance(qname, dict):
            names.add(str((qname.get("path") or [""])[-1]).lower())
    return sorted(names & _unrepeatable(cur))


_UNREPEATABLE_CACHE: dict[str, frozenset[str]] = {}


def _unrepeatable(cur: duckdb.DuckDBPyConnection) -> frozenset[str]:
    found = _UNREPEATABLE_CACHE.get(duckdb.__version__)
    if found is None:
        rows = cur.execute(
            "SELECT DISTINCT lower(function_name) FROM system.main.duckdb_functions() "
            "WHERE database_name = 'system' AND stability = 'VOLATILE'"
        ).fetchall()
        found = (frozenset(r[0] for r in rows) - _REPEATABLE_VOLATILE) | UNREPEATABLE
        _UNREPEATABLE_CACHE[duckdb.__version__] = found
    return found


def reads_variables(cur: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """`sql` calls getvariable(), itself or through a user macro, in any spelling."""
    return "getvariable" in _parsed_calls(cur, sql, set())


def _parsed_calls(cur: duckdb.DuckDBPyConnection, sql: str, seen: set[str]) -> set[str]:
    tree = parse_tree(cur, sql)
    names = {
        str(n["function_name"]).lower()
        for n in nodes(tree or {})
        if n.get("class") == "FUNCTION" and "function_name" in n
    }
    for name in sorted(names - seen):
        seen.add(name)
        for (body,) in cur.execute(
            "SELECT macro_definition FROM system.main.duckdb_functions() "
            "WHERE database_name = system.main.current_database() AND function_type = 'macro' "
            "AND lower(function_name) = ? AND macro_definition IS NOT NULL",
            [name],
        ).fetchall():
            names |= _parsed_calls(cur, f"SELECT {body}", seen)
    return names
