"""The views users query: each storage table without its hidden columns."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from asof.projections.naming import (
    ROW_ID,
    STORAGE_SCHEMA,
    VERSION_FROM,
    quote_ident,
    storage_table,
    user_view,
)


def create_user_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    table_id: int,
    *,
    replace: bool = False,
    schema: str | None = None,
) -> None:
    """The view users query: the storage table without its hidden columns (a table still
    read from a checkpoint written before row versions has no `_asof_from`)."""
    hidden = ROW_ID
    if stored_columns(con, table_id).get(VERSION_FROM) is not None:
        hidden += f", {VERSION_FROM}"
    con.execute(
        f"CREATE {'OR REPLACE ' if replace else ''}VIEW {user_view(name, schema)} AS "
        f"SELECT * EXCLUDE ({hidden}) FROM {storage_table(table_id)}"
    )


def stored_columns(con: duckdb.DuckDBPyConnection, table_id: int) -> dict[str, bool]:
    """The storage table's columns (or a merge view's), each with whether it is computed."""
    return dict(
        con.execute(
            "SELECT column_name, is_generated FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
            [STORAGE_SCHEMA, f"t{int(table_id)}"],
        ).fetchall()
    )


def drop_user_view(con: duckdb.DuckDBPyConnection, name: str, schema: str | None = None) -> None:
    con.execute(f"DROP VIEW IF EXISTS {user_view(name, schema)}")


#: Types whose values Arrow cannot carry whole, by how the log carries them instead.
#: TIME WITH TIME ZONE becomes Arrow's time64 without its offset, and BIT a binary of
#: DuckDB's own layout that reads back as other bits: the log takes their text.
#: INTERVAL becomes month-day-nanosecond, whose nanoseconds overflow past about 292 years
#: in the time part: such values are refused (the SQL front checks the rows it logs).
TEXT_LOGGED = frozenset({"TIME WITH TIME ZONE", "BIT"})
CHECKED = "INTERVAL"


def logged_types(con: duckdb.DuckDBPyConnection, table_id: int) -> dict[str, str]:
    """The storage table's columns of the types above, by name."""
    return dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "AND list_contains(?, data_type)",
            [STORAGE_SCHEMA, f"t{int(table_id)}", [*sorted(TEXT_LOGGED), CHECKED]],
        ).fetchall()
    )


def captured_column(name: str, as_text: bool, prefix: str = "") -> str:
    """A column as a capture selects it for the log: its text when Arrow would lose it."""
    ident = f"{prefix}{quote_ident(name)}"
    return f"CAST({ident} AS VARCHAR)" if as_text else ident


def capture_list(columns: Iterable[str], text: Iterable[str], prefix: str = "") -> str:
    """Every column (the row id last) as the log takes it, each under its own name."""
    texts = set(text)
    return ", ".join(
        f"{captured_column(c, c in texts, prefix)} AS {quote_ident(c)}" for c in (*columns, ROW_ID)
    )
