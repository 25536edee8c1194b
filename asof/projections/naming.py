"""How projection objects are named inside DuckDB.

User tables are views in `main` over storage tables `_asof.t<table id>` that carry hidden
columns: `_rid` (the row id) and `_asof_from` (the transaction that wrote the row's current
version, projections/versions.py); the storage name follows the stable table id, so renames
touch only the view.
"""

from __future__ import annotations

from typing import Any

import duckdb

STORAGE_SCHEMA = "_asof"
ROW_ID = "_rid"
VERSION_FROM = "_asof_from"
VERSION_TO = "_asof_to"
HIDDEN_COLUMNS = frozenset({ROW_ID, VERSION_FROM})
RESERVED_COLUMNS = frozenset({ROW_ID, VERSION_FROM, VERSION_TO})
ROW_ID_SEQUENCE = f"{STORAGE_SCHEMA}.rid"
STATE_TABLE = f"{STORAGE_SCHEMA}.state"
#: The commit that reached DuckDB before its log append, until the log has it.
UNCONFIRMED_TABLE = f"{STORAGE_SCHEMA}.unconfirmed"
TABLES_TABLE = f"{STORAGE_SCHEMA}.tables"


def quote_ident(name: str) -> str:
    """A DuckDB identifier literal for any name, quotes and all."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def storage_table(table_id: int) -> str:
    return f"{STORAGE_SCHEMA}.t{int(table_id)}"


# Every stored column but `_asof_from` (which tables read from older checkpoints lack).
STORED_COLUMNS = f"COLUMNS(lambda c: c <> '{VERSION_FROM}')"


def history_table(table_id: int) -> str:
    """Superseded row versions of a storage table (projections/versions.py)."""
    return f"{STORAGE_SCHEMA}.h{int(table_id)}"


#: The schema users' objects live in unless they name another.
MAIN_SCHEMA = "main"


def user_view(name: str, schema: str | None = None) -> str:
    return f"{quote_ident(schema or MAIN_SCHEMA)}.{quote_ident(name)}"


#: `_asof.tables`' column of the name asof reports (display_name, in SQL).
DISPLAY_NAME_SQL = (
    "CASE WHEN coalesce(schema_name, 'main') = 'main' THEN name ELSE schema_name || '.' || name END"
)


def display_name(name: str, schema: str | None = None) -> str:
    """A table's name as asof reports it: plain in `main`, `schema.name` elsewhere."""
    if schema is None or schema.lower() == MAIN_SCHEMA:
        return name
    return f"{schema}.{name}"


def first_row(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: object = None
) -> tuple[Any, ...] | None:
    """The first row of a query, consuming the whole result (DuckDB wants results finished)."""
    rows = (
        cursor.execute(sql, params).fetchall()
        if params is not None
        else cursor.execute(sql).fetchall()
    )
    return rows[0] if rows else None


def one_value(cursor: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> Any:
    """The first column of a query's first row, for queries that always return one (an
    aggregate, a lookup of something known to exist); a missing row is an internal error."""
    row = first_row(cursor, sql, params)
    if row is None:
        raise RuntimeError(f"expected a row from: {sql[:120]}")
    return row[0]
