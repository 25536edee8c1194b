"""INSERT ... <query> captured as Arrow: the rows are computed once, inserted and logged.

The general capture (dml.py) lets DuckDB run the INSERT, each row id drawn from the row id
sequence by the column's default, and then reads the new rows back for the log. For a bulk
load that per-row `nextval` makes DuckDB's insert about twice as slow. Here the query runs
first, cast to the table's column types; the row ids are numbered in Arrow and the sequence
moved past them once (`setval`); the very same Arrow table is inserted and logged, and the
log starts encoding it (Recorder.prepare) while DuckDB inserts it.

Taken only where the outcome is exactly DuckDB's own INSERT: the query fills every column
(no defaults), the table has no generated columns, there is no ON CONFLICT or RETURNING
(dml.py checks these), and every column type reads back from Arrow unchanged (the types
below). Anything else, or a query that does not bind, goes the general way, which then
reports DuckDB's own error.
"""

from __future__ import annotations

import itertools
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from asof.projections.naming import ROW_ID, ROW_ID_SEQUENCE, quote_ident, storage_table
from asof.queryapi.sql.dml import DmlPlan
from asof.queryapi.sql.logtypes import guarded

#: Column types whose values go to Arrow and back into DuckDB unchanged (DECIMAL(p,s) too).
EXACT_TYPES = frozenset(
    {
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
        "VARCHAR",
        "BLOB",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "TIMESTAMP_S",
        "TIMESTAMP_MS",
        "TIMESTAMP_NS",
        "TIMESTAMP WITH TIME ZONE",
        "INTERVAL",  # its values are checked on the way (logtypes.guarded)
        "UUID",
    }
)

_names = (f"__asof_bulk_{i}" for i in itertools.count())


def _exact(type_name: str) -> bool:
    return type_name in EXACT_TYPES or (
        type_name.startswith("DECIMAL(") and type_name.endswith(")")
    )


def select_rows(
    cur: duckdb.DuckDBPyConnection, plan: DmlPlan, params: Any, mark: int
) -> pa.Table | None:
    """The rows `plan` inserts, in storage layout with their row ids (mark + 1, ...), or
    None when this capture does not apply. Errors running the query propagate.

    Types come from DESCRIBE, which binds without running: the query runs exactly once, so
    a `nextval` in it advances its sequence once, as in DuckDB's own INSERT.
    """
    if plan.source is None:
        return None
    table = plan.table
    try:
        storage = cur.sql(f"FROM {storage_table(table.table_id)}")
        types = {c: str(t) for c, t in zip(storage.columns, storage.types, strict=True)}
        want = [types[c] for c in plan.targets]
        if not all(_exact(t) for t in want):
            return None
        sql = plan.source
        if _described(cur, sql, params) != want:
            sql = _cast_sql(plan, want)
            if _described(cur, sql, params) != want:
                return None
    except (duckdb.Error, KeyError):
        return None
    if "INTERVAL" in want:
        sql = _guarded_sql(sql, want, plan.targets)
    rows = cur.sql(sql, params=params).to_arrow_table()
    rows = rows.rename_columns(list(plan.targets)).select(list(table.columns))
    ids = np.arange(mark + 1, mark + 1 + rows.num_rows, dtype=np.int64)
    return rows.append_column(ROW_ID, pa.array(ids))


def _described(cur: duckdb.DuckDBPyConnection, sql: str, params: Any) -> list[str]:
    return [str(r[1]) for r in cur.sql(f"DESCRIBE {sql}", params=params).fetchall()]


def _cast_sql(plan: DmlPlan, want: list[str]) -> str:
    """The query with each output column cast to its target's type, as INSERT casts it."""
    inner = [f"__asof_c{i}" for i in range(len(want))]
    cols = ", ".join(
        f"CAST({c} AS {t}) AS {quote_ident(name)}"
        for c, t, name in zip(inner, want, plan.targets, strict=True)
    )
    return f"SELECT {cols} FROM ({plan.source}) AS __asof_q({', '.join(inner)})"


def _guarded_sql(sql: str, want: list[str], targets: tuple[str, ...]) -> str:
    """The query with each INTERVAL output checked against what the log can hold."""
    inner = [f"__asof_g{i}" for i in range(len(want))]
    cols = ", ".join(
        f"{guarded(c) if t == 'INTERVAL' else c} AS {quote_ident(name)}"
        for c, t, name in zip(inner, want, targets, strict=True)
    )
    return f"SELECT {cols} FROM ({sql}) AS __asof_g({', '.join(inner)})"


def insert_rows(cur: duckdb.DuckDBPyConnection, table_id: int, rows: pa.Table) -> None:
    """Insert rows from `select_rows` and move the row id sequence past their ids."""
    if rows.num_rows == 0:
        return
    top = int(rows.column(ROW_ID)[-1].as_py())
    cols = ", ".join(quote_ident(c) for c in rows.column_names)
    name = next(_names)
    cur.register(name, rows)
    try:
        cur.execute(
            f"INSERT INTO {storage_table(table_id)} ({cols}) SELECT {cols} FROM {name}; "
            f"SELECT setval('{ROW_ID_SEQUENCE}', {top})"
        ).fetchall()
    finally:
        try:
            cur.unregister(name)
        except duckdb.Error:
            pass  # a failed insert aborted the transaction, which takes the name with it
