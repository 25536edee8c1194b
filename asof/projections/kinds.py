"""The event kinds the projections write and fold, with small constructors.

Values, never statements, for anything that touches rows: `rows` events carry full row
images. DDL events carry the SQL that recreates the object (already rewritten to storage
names) and, for tables, the resulting schema, so replay is exact.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from asof.eventlog.events import Event, RowOp
from asof.projections.naming import ROW_ID

ROWS = "rows"
TRUNCATE = "truncate"
CREATE_TABLE = "create_table"
DROP_TABLE = "drop_table"
RENAME_TABLE = "rename_table"
ALTER_TABLE = "alter_table"
DDL = "ddl"  # views, sequences, indexes, macros: data = {"object", "name", "action", "sql"}
SEQUENCE_VALUE = "sequence_value"  # data = {"name", "last_value"}
MATVIEW_REFRESH = "matview_refresh"  # data = {"name"}; rows of its backing table follow

#: Kinds that change no rows and no schema of any table (replay may apply them in any
#: order relative to row events of tables).
TABLE_BARRIERS = frozenset({TRUNCATE, CREATE_TABLE, DROP_TABLE, RENAME_TABLE, ALTER_TABLE})


def event_rows(rows: pa.Table, ops: RowOp | pa.Array | None = None) -> pa.Table:
    """Storage-layout rows (the table's columns and `_rid`) in event layout: `_op`, `_rid`,
    then the table's columns. `ops` is one operation for every row, or one per row."""
    n = rows.num_rows
    ops = RowOp.INSERT if ops is None else ops
    op_col = pa.repeat(pa.scalar(int(ops), pa.int8()), n) if isinstance(ops, RowOp) else ops
    cols = [c for c in rows.column_names if c != ROW_ID]
    arrays = [op_col, rows.column(ROW_ID), *(rows.column(c) for c in cols)]
    return pa.Table.from_arrays(arrays, names=["_op", ROW_ID, *cols])


def rows_event(table_id: int, version: int, rows: pa.Table) -> Event:
    return Event(ROWS, table_id, version, {}, rows)


def create_table(
    table_id: int,
    name: str,
    ddl: str,
    *,
    table_kind: str = "table",
    definition: str | None = None,
    hidden: bool = False,
    schema: str | None = None,
) -> Event:
    data = {"name": name, "ddl": ddl, "table_kind": table_kind, "hidden": hidden}
    if definition is not None:
        data["definition"] = definition
    return Event(CREATE_TABLE, table_id, 1, _in_schema(data, schema))


def drop_table(table_id: int, name: str, schema: str | None = None) -> Event:
    return Event(DROP_TABLE, table_id, 0, _in_schema({"name": name}, schema))


def rename_table(table_id: int, old: str, new: str, schema: str | None = None) -> Event:
    return Event(RENAME_TABLE, table_id, 0, _in_schema({"old": old, "new": new}, schema))


def _in_schema(data: dict[str, Any], schema: str | None) -> dict[str, Any]:
    """A table outside `main` carries its schema; one in `main` is logged as it always was."""
    if schema is not None and schema.lower() != "main":
        data["schema"] = schema
    return data


def alter_table(table_id: int, version: int, sql: str, ddl: str) -> Event:
    return Event(ALTER_TABLE, table_id, version, {"sql": sql, "ddl": ddl})


def truncate(table_id: int, version: int) -> Event:
    return Event(TRUNCATE, table_id, version, {})


def ddl(obj: str, name: str, action: str, sql: str, *, table_id: int | None = None) -> Event:
    """`table_id` is set for objects that live on a table (indexes)."""
    return Event(DDL, table_id, 0, {"object": obj, "name": name, "action": action, "sql": sql})


def matview_refresh(table_id: int, version: int, name: str) -> Event:
    return Event(MATVIEW_REFRESH, table_id, version, {"name": name})


def sequence_value(name: str, last_value: int) -> Event:
    return Event(SEQUENCE_VALUE, None, 0, {"name": name, "last_value": int(last_value)})
