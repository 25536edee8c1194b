"""The views users query: each storage table without its hidden columns."""

from __future__ import annotations

import duckdb

from asof.projections.naming import ROW_ID, STORAGE_SCHEMA, VERSION_FROM, storage_table, user_view


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
