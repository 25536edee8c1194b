"""Apply events to a DuckDB projection: the one place that knows what each kind means."""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa

from asof.eventlog.events import LOG_ROW_META, ROW_META, Event, RowOp, TransactionInfo
from asof.projections import kinds, lazy, versions
from asof.projections.naming import (
    ROW_ID,
    ROW_ID_SEQUENCE,
    STATE_TABLE,
    STORAGE_SCHEMA,
    TABLES_TABLE,
    VERSION_FROM,
    first_row,
    quote_ident,
    quote_literal,
    storage_table,
)
from asof.projections.views import create_user_view, drop_user_view, stored_columns

_META = frozenset(LOG_ROW_META) | frozenset(ROW_META)
_batch_names = (f"_asof_batch_{i}" for i in itertools.count())


def bootstrap_sql(*, seed: bool = True) -> str:
    """The script that creates the internal schema of an empty projection: one round trip
    instead of one per object. `seed` adds the first state row when the table is empty."""
    parts = [
        f"CREATE SCHEMA IF NOT EXISTS {STORAGE_SCHEMA}",
        f"CREATE SEQUENCE IF NOT EXISTS {ROW_ID_SEQUENCE}",
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (applied_txn BIGINT, applied_ts BIGINT, "
        "applied_logical BIGINT, next_table_id BIGINT, since_txn BIGINT)",
        f"CREATE TABLE IF NOT EXISTS {TABLES_TABLE} (table_id BIGINT, name VARCHAR, "
        "version INTEGER, kind VARCHAR, definition VARCHAR, schema_name VARCHAR)",
        lazy.create_lazy_tables_sql(),
    ]
    if seed:  # row versions cover an empty projection from the start
        parts.append(
            f"INSERT INTO {STATE_TABLE} SELECT 0, 0, 0, 1, 0 "
            f"WHERE NOT EXISTS (SELECT 1 FROM {STATE_TABLE})"
        )
        parts.append(versions.since_marker_sql(0))
    return ";\n".join(parts)


def bootstrap(con: duckdb.DuckDBPyConnection) -> None:
    """Create the internal schema of an empty projection."""
    con.execute(bootstrap_sql())


def applied(con: duckdb.DuckDBPyConnection) -> TransactionInfo | None:
    """The last transaction this projection holds, or None for an empty one."""
    from asof.eventlog.hlc import Timestamp

    row = first_row(con, f"SELECT applied_txn, applied_ts, applied_logical FROM {STATE_TABLE}")
    if row is None:
        raise ValueError(f"{STATE_TABLE} is empty: the projection was not bootstrapped")
    txn, ts, logical = row
    return None if txn == 0 else TransactionInfo(txn, Timestamp(ts, logical))


def set_applied_sql(info: TransactionInfo) -> str:
    """The statement that records `info` as applied (integers only: safe to inline), so a
    commit can send it together with COMMIT in one round trip."""
    return (
        f"UPDATE {STATE_TABLE} SET applied_txn = {int(info.txn_id)}, "
        f"applied_ts = {int(info.ts.physical)}, applied_logical = {int(info.ts.logical)}"
    )


def set_applied(con: duckdb.DuckDBPyConnection, info: TransactionInfo) -> None:
    con.execute(
        f"UPDATE {STATE_TABLE} SET applied_txn = ?, applied_ts = ?, applied_logical = ?",
        [info.txn_id, info.ts.physical, info.ts.logical],
    )


def next_table_id(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT next_table_id FROM {STATE_TABLE}").fetchall()[0][0]


def table_of(event: Event) -> int:
    """The table a table event is about; such an event without one is damage, not data."""
    if event.table_id is None:
        raise ValueError(f"a {event.kind!r} event carries no table id")
    return event.table_id


def apply_event(con: duckdb.DuckDBPyConnection, event: Event) -> None:
    """Apply one event; the caller owns the surrounding DuckDB transaction.

    An event logged while its session looked names up through a search path (`SET
    schema`) carries that path, and its SQL runs under it again: a view's or a default's
    unqualified names must resolve to the same objects as when it was written."""
    path = event.data.get("search_path") if event.data else None
    if not path:
        _apply(con, event)
        return
    before = con.execute("SELECT current_setting('search_path')").fetchall()[0][0]
    con.execute(f"SET search_path = {quote_literal(path)}")
    try:
        _apply(con, event)
    finally:
        con.execute(f"SET search_path = {quote_literal(before)}")


def _apply(con: duckdb.DuckDBPyConnection, event: Event) -> None:
    kind = event.kind
    data = event.data
    if kind == kinds.DDL:
        if event.table_id is not None:
            lazy.materialize(con, event.table_id)
        con.execute(data["sql"])
        return
    if kind == kinds.SEQUENCE_VALUE:
        set_sequence(con, data["name"], data["last_value"])
        return
    tid = table_of(event)
    if kind == kinds.ROWS:
        if event.rows is not None:
            apply_rows(con, tid, event.rows)
    elif kind in (kinds.TRUNCATE, kinds.MATVIEW_REFRESH):
        if lazy.lazy_alias(con, tid) is not None:
            lazy.materialize(con, tid, empty=True)
        else:
            con.execute(f"DELETE FROM {storage_table(tid)}")
    elif kind == kinds.CREATE_TABLE:
        _create_table(con, event)
    elif kind == kinds.DROP_TABLE:
        drop_user_view(con, data["name"], data.get("schema"))
        if lazy.lazy_alias(con, tid) is not None:
            lazy.drop_lazy(con, tid)
        else:
            con.execute(f"DROP TABLE IF EXISTS {storage_table(tid)}")
        con.execute(versions.drop_history_sql(tid))
        con.execute(f"DELETE FROM {TABLES_TABLE} WHERE table_id = ?", [tid])
    elif kind == kinds.RENAME_TABLE:
        drop_user_view(con, data["old"], data.get("schema"))
        create_user_view(con, data["new"], tid, schema=data.get("schema"))
        con.execute(f"UPDATE {TABLES_TABLE} SET name = ? WHERE table_id = ?", [data["new"], tid])
    elif kind == kinds.ALTER_TABLE:
        lazy.materialize(con, tid)
        con.execute(data["sql"])
        con.execute(versions.new_history_sql(tid))
        set_table_version(con, tid, event.version)
    else:
        raise ValueError(f"unknown event kind {kind!r}")


def _create_table(con: duckdb.DuckDBPyConnection, event: Event) -> None:
    tid = table_of(event)
    con.execute(event.data["ddl"])
    if VERSION_FROM not in stored_columns(con, tid):  # logged before versions
        con.execute(versions.add_from_column_sql(tid))
    con.execute(versions.create_history_sql(tid))
    register_table(con, event)


def register_table(con: duckdb.DuckDBPyConnection, event: Event) -> None:
    """Record a storage table that already exists and give it its user-facing view."""
    data = event.data
    tid = table_of(event)
    con.execute(
        f"INSERT INTO {TABLES_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
        [
            tid,
            data["name"],
            event.version,
            data.get("table_kind", "table"),
            data.get("definition"),
            data.get("schema"),
        ],
    )
    con.execute(
        f"UPDATE {STATE_TABLE} SET next_table_id = greatest(next_table_id, ?)",
        [tid + 1],
    )
    if not data.get("hidden"):
        create_user_view(con, data["name"], tid, schema=data.get("schema"))


def set_table_version(con: duckdb.DuckDBPyConnection, table_id: int, version: int) -> None:
    con.execute(f"UPDATE {TABLES_TABLE} SET version = ? WHERE table_id = ?", [version, table_id])


def apply_rows(con: duckdb.DuckDBPyConnection, table_id: int, rows: pa.Table) -> None:
    """Apply row images in which each row id appears at most once. Images read from the log
    carry their transaction (`_txn`), which becomes the rows' `_asof_from`."""
    if rows.num_rows == 0:
        return
    target = storage_table(table_id)
    stored = stored_columns(con, table_id)
    columns = [c for c in rows.column_names if c not in _META and not stored.get(c, False)]
    if VERSION_FROM in stored and VERSION_FROM not in columns and "_txn" in rows.column_names:
        rows = rows.append_column(VERSION_FROM, rows.column("_txn"))
        columns.append(VERSION_FROM)
    col_list = ", ".join(quote_ident(c) for c in [*columns, ROW_ID])
    name = next(_batch_names)
    if max((c.num_chunks for c in rows.columns), default=0) > 64:  # DuckDB scans per chunk
        rows = rows.combine_chunks()
    con.register(name, rows)
    try:
        alias = lazy.lazy_alias(con, table_id)
        if alias is not None:
            lazy.apply_lazy_rows(con, table_id, alias, name, columns)
            return
        ops = rows.column("_op")
        if _has_non_insert(ops):
            con.execute(
                f"DELETE FROM {target} WHERE {ROW_ID} IN "
                f"(SELECT _rid FROM {name} WHERE _op <> {RowOp.INSERT})"
            )
        con.execute(
            f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {name} "
            f"WHERE _op <> {RowOp.DELETE}"
        )
    finally:
        con.unregister(name)


def _has_non_insert(ops: pa.ChunkedArray) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(pc.not_equal(ops, RowOp.INSERT)).as_py())


def _sequence_row(con: duckdb.DuckDBPyConnection, name: str) -> tuple | None:
    return first_row(
        con,
        "SELECT last_value, start_value, increment_by FROM system.main.duckdb_sequences() "
        "WHERE database_name = system.main.current_database() "
        "AND lower(schema_name) = lower(?) AND lower(sequence_name) = lower(?)",
        _split_name(name),
    )


def set_sequence(con: duckdb.DuckDBPyConnection, name: str, last_value: int) -> None:
    """Put a user sequence where the log says it stood (`setval` may have moved it back)."""
    row = _sequence_row(con, name)
    if row is not None and row[0] != last_value:
        con.execute(f"SELECT system.main.setval({quote_literal(name)}, ?)", [last_value]).fetchall()


def advance_sequence(con: duckdb.DuckDBPyConnection, name: str, last_value: int) -> None:
    """Move a sequence forward until its last value is at least `last_value` (the row id
    sequence only goes up)."""
    row = _sequence_row(con, name)
    if row is None:
        return
    current = row[0]
    if current is None or current < last_value:
        con.execute(f"SELECT system.main.setval({quote_literal(name)}, ?)", [last_value]).fetchall()


def _split_name(name: str) -> list[str]:
    schema, _, seq = name.rpartition(".")
    return [schema or "main", seq]


def advance_row_ids(con: duckdb.DuckDBPyConnection, seen: int = 0) -> None:
    """After replaying explicit row ids, make the row id sequence continue past every id
    ever handed out (`seen`, from the replayed events), so no row id is reused."""
    ids = [r[0] for r in con.execute(f"SELECT table_id FROM {TABLES_TABLE}").fetchall()]
    try:
        shared = dict(con.execute(f"SELECT table_id, alias FROM {lazy.LAZY_TABLE}").fetchall())
    except duckdb.CatalogException:
        shared = {}
    deltas = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            f"AND schema_name = '{STORAGE_SCHEMA}'"
        ).fetchall()
    }
    top = seen
    parts = []
    for i in ids:
        if i in shared:  # a merge view: its base and delta bound it, without the anti-join
            parts.append(f"SELECT max({ROW_ID}) AS m FROM {shared[i]}.{storage_table(i)}")
            if f"d{i}" in deltas:
                parts.append(f"SELECT max({ROW_ID}) AS m FROM {lazy.delta_table(i)}")
        else:
            parts.append(f"SELECT max({ROW_ID}) AS m FROM {storage_table(i)}")
    if parts:
        query = f"SELECT max(m) FROM ({' UNION ALL '.join(parts)})"
        top = max(top, con.execute(query).fetchall()[0][0] or 0)
    if top:
        advance_sequence(con, ROW_ID_SEQUENCE, top)


def sequence_values(con: duckdb.DuckDBPyConnection) -> dict[str, int | None]:
    """Last values of the user's sequences (the row id sequence is derived, not logged)."""
    rows = con.execute(
        "SELECT CASE WHEN schema_name = 'main' THEN sequence_name "
        "ELSE schema_name || '.' || sequence_name END, last_value FROM duckdb_sequences() "
        "WHERE schema_name <> ? AND database_name = current_database()",
        [STORAGE_SCHEMA],
    ).fetchall()
    return dict(rows)
