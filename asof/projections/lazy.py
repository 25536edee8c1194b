"""Merge-on-read state: tables as views over a shared checkpoint plus a small delta.

A clone's projection, or an AS OF reader, starts from the nearest checkpoint at or before its
time. Copying the checkpoint's tables would make the first query pay for the whole database,
so instead each storage table `_asof.t<id>` is a view over the attached (read-only, shared)
checkpoint, anti-joined with `_asof.d<id>`: the latest image of every row the log changed
after the checkpoint (tombstones included). The first write to a table materializes it.
"""

from __future__ import annotations

import hashlib

import duckdb

from asof.eventlog.events import RowOp, TransactionInfo
from asof.eventlog.hlc import Timestamp
from asof.eventlog.recorder import Store
from asof.projections.filepins import pin_readonly
from asof.projections.naming import (
    ROW_ID,
    STATE_TABLE,
    STORAGE_SCHEMA,
    TABLES_TABLE,
    VERSION_FROM,
    first_row,
    one_value,
    quote_ident,
    quote_literal,
    storage_table,
)
from asof.projections.versions import TXN_VARIABLE, new_history_sql, since_marker_sql
from asof.projections.views import create_user_view

BASES_TABLE = f"{STORAGE_SCHEMA}.bases"
LAZY_TABLE = f"{STORAGE_SCHEMA}.lazy"


def delta_table(table_id: int) -> str:
    return f"{STORAGE_SCHEMA}.d{int(table_id)}"


def create_lazy_tables_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {BASES_TABLE} (alias VARCHAR, path VARCHAR);\n"
        f"CREATE TABLE IF NOT EXISTS {LAZY_TABLE} (table_id BIGINT, alias VARCHAR)"
    )


def create_lazy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(create_lazy_tables_sql())


def base_alias(relative_path: str) -> str:
    return "_asof_base_" + hashlib.sha1(relative_path.encode()).hexdigest()[:12]


def attach_bases(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """Attach the checkpoints lazy tables read from (ATTACH does not persist)."""
    exists = first_row(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        f"AND schema_name = '{STORAGE_SCHEMA}' AND table_name = 'bases'",
    )
    if not exists or not exists[0]:
        return
    attached = {
        r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    for alias, rel in con.execute(f"SELECT alias, path FROM {BASES_TABLE}").fetchall():
        if alias not in attached:
            path = store.resolve(rel)
            pin_readonly(path)
            con.execute(f"ATTACH {quote_literal(str(path))} AS {alias} (READ_ONLY)")


def load_lazy_base(
    con: duckdb.DuckDBPyConnection, store: Store, relative_path: str
) -> TransactionInfo | None:
    """Make `con`'s empty database the checkpoint's state, sharing its table data.

    Three round trips (each statement costs one): attach, list the tables, and one script
    that copies the schema and turns every storage table into a view over the checkpoint.
    The checkpoint may already be attached (connections that host several states share it).
    """
    alias = base_alias(relative_path)
    path = store.resolve(relative_path)
    pin_readonly(path)
    con.execute(f"ATTACH IF NOT EXISTS {quote_literal(str(path))} AS {alias} (READ_ONLY)")
    rows = con.execute(
        f"SELECT current_database(), table_id FROM (SELECT 1) "
        f"LEFT JOIN {alias}.{TABLES_TABLE} ON true ORDER BY table_id"
    ).fetchall()
    target = rows[0][0]
    table_ids = [r[1] for r in rows if r[1] is not None]
    script = [
        f"COPY FROM DATABASE {alias} TO {quote_ident(target)} (SCHEMA)",
        create_lazy_tables_sql(),  # the rest of the internal schema came with the copy
        # Row versions start at the checkpoint (it keeps none).
        f"ALTER TABLE {STATE_TABLE} ADD COLUMN IF NOT EXISTS since_txn BIGINT",
        f"INSERT INTO {STATE_TABLE} BY NAME SELECT * REPLACE (applied_txn AS since_txn) "
        f"FROM {alias}.{STATE_TABLE}",
        # Checkpoints written before schemas keep every table in main.
        f"ALTER TABLE {TABLES_TABLE} ADD COLUMN IF NOT EXISTS schema_name VARCHAR",
        f"INSERT INTO {TABLES_TABLE} BY NAME SELECT * FROM {alias}.{TABLES_TABLE}",
        f"INSERT INTO {BASES_TABLE} VALUES ({quote_literal(alias)}, "
        f"{quote_literal(relative_path)})",
    ]
    for table_id in table_ids:
        script.append(f"DROP TABLE {storage_table(table_id)}")
        script.append(
            f"CREATE VIEW {storage_table(table_id)} AS "
            f"SELECT * FROM {alias}.{storage_table(table_id)}"
        )
    script.append(
        f"INSERT INTO {LAZY_TABLE} SELECT table_id, {quote_literal(alias)} FROM {TABLES_TABLE}"
    )
    script.append(f"SELECT applied_txn, applied_ts, applied_logical FROM {STATE_TABLE}")
    txn, ts, logical = con.execute(";\n".join(script)).fetchall()[0]
    con.execute(since_marker_sql(txn))
    return None if txn == 0 else TransactionInfo(txn, Timestamp(ts, logical))


def lazy_alias(con: duckdb.DuckDBPyConnection, table_id: int) -> str | None:
    """The checkpoint a table still reads from, or None when it is a real table."""
    try:
        row = first_row(con, f"SELECT alias FROM {LAZY_TABLE} WHERE table_id = ?", [table_id])
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def lazy_ids(con: duckdb.DuckDBPyConnection) -> set[int]:
    try:
        return {r[0] for r in con.execute(f"SELECT table_id FROM {LAZY_TABLE}").fetchall()}
    except duckdb.CatalogException:
        return set()


def apply_lazy_rows(
    con: duckdb.DuckDBPyConnection, table_id: int, alias: str, batch: str, columns: list[str]
) -> None:
    """Fold row images (registered as `batch`, one per row id) into the table's delta."""
    delta = delta_table(table_id)
    base = f"{alias}.{storage_table(table_id)}"
    exists = one_value(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        f"AND schema_name = '{STORAGE_SCHEMA}' AND table_name = ?",
        [f"d{table_id}"],
    )
    if not exists:
        con.execute(
            f"CREATE TABLE {delta} AS SELECT CAST(0 AS TINYINT) AS _op, * FROM {base} LIMIT 0"
        )
        con.execute(
            f"CREATE OR REPLACE VIEW {storage_table(table_id)} AS "
            f"SELECT b.* FROM {base} AS b ANTI JOIN {delta} AS d ON b.{ROW_ID} = d.{ROW_ID} "
            f"UNION ALL SELECT * EXCLUDE (_op) FROM {delta} WHERE _op <> {int(RowOp.DELETE)}"
        )
    cols = ", ".join(quote_ident(c) for c in ["_op", *columns, ROW_ID])
    con.execute(f"DELETE FROM {delta} WHERE {ROW_ID} IN (SELECT _rid FROM {batch})")
    con.execute(f"INSERT INTO {delta} ({cols}) SELECT {cols} FROM {batch}")


def base_ddl(
    con: duckdb.DuckDBPyConnection,
    alias: str,
    table_id: int,
    name: str,
    qualifier: str = STORAGE_SCHEMA,
) -> list[str]:
    """SQL that recreates a base table as `qualifier.name`, then its indexes."""
    table = f"t{table_id}"
    ddl = one_value(
        con,
        "SELECT sql FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ?",
        [alias, STORAGE_SCHEMA, table],
    )
    prefix = f"CREATE TABLE {STORAGE_SCHEMA}.{table}("
    if not ddl.startswith(prefix):
        raise RuntimeError(f"unexpected storage DDL for {table}: {ddl[:80]}")
    out = [f"CREATE TABLE {qualifier}.{name}(" + ddl[len(prefix) :]]
    for (sql,) in con.execute(
        "SELECT sql FROM duckdb_indexes() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ?",
        [alias, STORAGE_SCHEMA, table],
    ).fetchall():
        if sql:
            out.append(sql.replace(f" ON {STORAGE_SCHEMA}.{table}", f" ON {qualifier}.{name}", 1))
    return out


def materialize(con: duckdb.DuckDBPyConnection, table_id: int, *, empty: bool = False) -> None:
    """Turn a lazy table into a real one (copying its rows unless `empty`)."""
    alias = lazy_alias(con, table_id)
    if alias is None:
        return
    staging = f"m{table_id}"
    con.execute(base_ddl(con, alias, table_id, staging)[0])
    older = _add_from_column(con, f"{STORAGE_SCHEMA}.{staging}")
    if not empty:
        con.execute(
            f"INSERT INTO {STORAGE_SCHEMA}.{staging} BY NAME "
            f"SELECT * FROM {storage_table(table_id)}"
        )
    con.execute(f"DROP VIEW {storage_table(table_id)}")
    con.execute(f"ALTER TABLE {STORAGE_SCHEMA}.{staging} RENAME TO t{table_id}")
    for sql in base_ddl(con, alias, table_id, f"t{table_id}")[1:]:  # its indexes
        con.execute(sql)
    if older:  # its user view was written for a table without the column
        name = first_row(
            con, f"SELECT name, schema_name FROM {TABLES_TABLE} WHERE table_id = ?", [table_id]
        )
        if name is not None:
            create_user_view(con, name[0], table_id, replace=True, schema=name[1])
    con.execute(f"DROP TABLE IF EXISTS {delta_table(table_id)}")
    con.execute(f"DELETE FROM {LAZY_TABLE} WHERE table_id = ?", [table_id])
    con.execute(new_history_sql(table_id))


def _add_from_column(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Give a table copied from a checkpoint written before row versions existed its
    `_asof_from` column (0: older than anything the versions cover); True if it lacked it."""
    schema, name = table.split(".")
    has = one_value(
        con,
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? AND column_name = ?",
        [schema, name, VERSION_FROM],
    )
    if has:
        return False
    con.execute(
        f"ALTER TABLE {table} ADD COLUMN {VERSION_FROM} BIGINT DEFAULT 0;\n"
        f"ALTER TABLE {table} ALTER COLUMN {VERSION_FROM} SET DEFAULT system.main.getvariable('{TXN_VARIABLE}')"
    )
    return True


def drop_lazy(con: duckdb.DuckDBPyConnection, table_id: int) -> None:
    con.execute(f"DROP VIEW IF EXISTS {storage_table(table_id)}")
    con.execute(f"DROP TABLE IF EXISTS {delta_table(table_id)}")
    con.execute(f"DELETE FROM {LAZY_TABLE} WHERE table_id = ?", [table_id])
