"""Definitions the log keeps (views, macros, materialized views) name only user objects.

A query may read its own database's internal tables (docs/security.md says why the plan
cannot tell), but a definition is stored in the log and bound again in every state built
from it: a clone, a rebuild, a state at a past time. There asof's internal tables are laid
out differently (history tables, merged views over checkpoints) or missing, so a view over
`_asof.h1` that worked live would stop the log from replaying. So a definition is read as
DuckDB parses it (quoting and case resolved) and refused when a table it reads is in asof's
schema or in another catalog, including tables named inside `query()` and `query_table()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb

from asof.projections.naming import STORAGE_SCHEMA, first_row
from asof.queryapi.errors import NotSupportedError
from asof.queryapi.sql.guard import nodes, parse_tree
from asof.queryapi.sql.statements import Token, depth_zero, tokenize, unquote

_QUERY_FUNCTIONS = frozenset({"query", "query_table"})


def body_after_as(sql: str, tokens: tuple[Token, ...], start: int) -> str | None:
    """The text after the first top-level AS from token `start` on (a view's query, a
    macro's body), or None."""
    for i, t in depth_zero(tokens, start):
        if t.upper == "AS" and i + 1 < len(tokens):
            return sql[tokens[i + 1].start :]
    return None


def refuse_internal_references(cur: duckdb.DuckDBPyConnection, body: str, what: str) -> None:
    """Raise NotSupportedError when `body` (a query, or a macro's body: an expression or
    `TABLE query`) reads a table outside the user's own schemas."""
    text = body.strip().rstrip(";").strip()
    if text[:5].upper() == "TABLE" and not text[5:6].isalnum():
        text = text[5:]
    tree = parse_tree(cur, text)
    if tree is None:
        tree = parse_tree(cur, f"SELECT {text}")
    if tree is None:  # DuckDB took it, yet cannot describe it: read its words instead
        if any(unquote(t.text).lower().startswith(STORAGE_SCHEMA) for t in tokenize(text)):
            raise NotSupportedError(f"a {what} may not name asof's internal objects")
        return
    for catalog, schema, table in _tables(cur, tree, depth=0):
        if catalog:
            raise NotSupportedError(
                f"a {what} reads only its own database; name {table!r} without a database qualifier"
            )
        if schema.lower().startswith(STORAGE_SCHEMA):
            raise NotSupportedError(
                f"a {what} may not read {schema}.{table}: asof's internal tables are laid out "
                "differently in clones and in states rebuilt from the log; read the user's "
                "tables instead"
            )
        if schema.lower() not in ("", "main") and not _own_schema(cur, schema):
            raise NotSupportedError(
                f"a {what} reads only its own database's schemas, not {schema}.{table}"
            )


def _own_schema(cur: duckdb.DuckDBPyConnection, schema: str) -> bool:
    """A schema of the user's own database that no attached database's name shadows."""
    row = first_row(
        cur,
        "SELECT (SELECT count(*) FROM duckdb_schemas() WHERE database_name = "
        "current_database() AND lower(schema_name) = lower($1)), (SELECT count(*) FROM "
        "duckdb_databases() WHERE lower(database_name) = lower($1))",
        [schema],
    )
    return row is not None and row[0] > 0 and row[1] == 0


def _tables(
    cur: duckdb.DuckDBPyConnection, tree: Any, depth: int
) -> Iterator[tuple[str, str, str]]:
    """(catalog, schema, table) of each table a parse tree names."""
    if depth > 8:
        raise NotSupportedError("query() nested this deep is refused in a definition")
    for node in nodes(tree):
        if node.get("type") == "BASE_TABLE":
            yield (
                str(node.get("catalog_name") or ""),
                str(node.get("schema_name") or ""),
                str(node.get("table_name") or ""),
            )
        elif node.get("type") == "TABLE_FUNCTION":
            yield from _named_inside(cur, node.get("function") or {}, depth)


def _named_inside(
    cur: duckdb.DuckDBPyConnection, function: dict[str, Any], depth: int
) -> Iterator[tuple[str, str, str]]:
    name = str(function.get("function_name") or "").lower()
    if name not in _QUERY_FUNCTIONS:
        return
    args = function.get("arguments") or []
    literal = args[0].get("expression", {}).get("literal", {}) if args else {}
    if literal.get("kind") != "STRING":
        raise NotSupportedError(f"{name}() in a definition takes its argument as a constant")
    text = str(literal.get("text"))
    if name == "query":
        inner = parse_tree(cur, text)
        if inner is None:
            raise NotSupportedError("query() in a definition takes a query DuckDB can parse")
        yield from _tables(cur, inner, depth + 1)
    else:
        parts = [unquote(p) for p in text.split(".")]
        yield (
            parts[-3] if len(parts) > 2 else "",
            parts[-2] if len(parts) > 1 else "",
            parts[-1],
        )
