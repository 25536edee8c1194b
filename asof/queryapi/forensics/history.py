"""Forensic reads of the log: every version of a table's rows, and one row per transaction.

Both read the event log directly rather than a projection, so they see what was dropped,
truncated or overwritten; nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.events import LOG_ROW_META, RowOp, Transaction
from asof.projections import kinds
from asof.projections.naming import display_name
from asof.queryapi.errors import ProgrammingError
from asof.queryapi.timeref import to_micros
from asof.queryapi.translate import translate

if TYPE_CHECKING:
    from asof.projections.live import DatabaseRuntime

_OP_NAMES = {int(RowOp.INSERT): "insert", int(RowOp.UPDATE): "update", int(RowOp.DELETE): "delete"}
_META_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("txn_id", pa.int64()),
        ("op", pa.string()),
        ("row_id", pa.int64()),
        ("table_id", pa.int64()),
    ]
)
_TABLE_OPS = {kinds.TRUNCATE: "truncate", kinds.DROP_TABLE: "drop"}


def _bounds(since: Any, until: Any) -> tuple[int | None, int | None]:
    return (
        None if since is None else to_micros(since),
        None if until is None else to_micros(until),
    )


class _Catalog:
    """Which table ids ever carried which names, and their schema versions, from the log."""

    def __init__(self) -> None:
        self.names: dict[int, set[str]] = {}  # every name a table id ever had (lower case)
        self.current: dict[int, str] = {}  # the latest name, as written
        self.versions: dict[int, set[int]] = {}

    def observe(self, txn: Transaction) -> None:
        for event in txn.events:
            tid = event.table_id
            schema = event.data.get("schema")
            if event.kind == kinds.CREATE_TABLE:
                self._name(tid, display_name(event.data["name"], schema))
                self.versions.setdefault(tid, set()).add(1)
            elif event.kind == kinds.RENAME_TABLE:
                self._name(tid, display_name(event.data["old"], schema))
                self._name(tid, display_name(event.data["new"], schema))
            elif event.kind in (kinds.ALTER_TABLE, kinds.ROWS) and tid is not None:
                self.versions.setdefault(tid, {1}).add(event.version)

    def _name(self, tid: int, name: str) -> None:
        self.names.setdefault(tid, set()).add(name.lower())
        self.current[tid] = name

    def ids_named(self, table: str) -> set[int]:
        return {tid for tid, names in self.names.items() if table.lower() in names}


def scan_catalog(rt: DatabaseRuntime, until: int | None = None) -> _Catalog:
    cat = _Catalog()
    for txn in rt.recorder.transactions(until=until, with_rows=False):
        cat.observe(txn)
    return cat


def table_ids(rt: DatabaseRuntime, table: str, until: int | None = None) -> set[int]:
    """Ids of every table ever called `table`, or ProgrammingError when there is none."""
    if not isinstance(table, str) or not table:
        raise ProgrammingError("a table name must be a non-empty string")
    wanted = scan_catalog(rt, until).ids_named(table)
    if not wanted:
        raise ProgrammingError(
            f"no table named {table!r} was ever in database {rt.name!r}; list tables with "
            "SHOW TABLES"
        )
    return wanted


def table_history(
    rt: DatabaseRuntime,
    table: str,
    *,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
) -> pa.Table:
    """Every version of every row of the tables named `table`, in commit order.

    Columns: ts, txn_id, op, row_id, table_id, then the row's values. TRUNCATE and DROP
    TABLE are one row each with null values; `where` filters row images only.
    """
    lo, hi = _bounds(since, until)
    cat = _Catalog()
    table_events: list[dict[str, Any]] = []
    for txn in rt.recorder.transactions(until=hi, with_rows=False):
        cat.observe(txn)
        for event in txn.events:
            if event.kind in _TABLE_OPS and (lo is None or txn.ts.physical >= lo):
                table_events.append(
                    {
                        "ts": txn.ts.physical,
                        "txn_id": txn.txn_id,
                        "op": _TABLE_OPS[event.kind],
                        "row_id": None,
                        "table_id": event.table_id,
                    }
                )
    if not isinstance(table, str) or not table:
        raise ProgrammingError("a table name must be a non-empty string")
    wanted = cat.ids_named(table)
    if not wanted:
        raise ProgrammingError(
            f"no table named {table!r} was ever in database {rt.name!r}; list tables with "
            "SHOW TABLES"
        )
    parts = [
        pa.Table.from_pylist([e for e in table_events if e["table_id"] in wanted], _META_SCHEMA)
    ]
    for tid in sorted(wanted):
        for version in sorted(cat.versions.get(tid, {1})):
            rows = rt.recorder.rows(tid, version, until=hi)
            if rows is None:
                continue
            if lo is not None:
                rows = rows.filter(pc.greater_equal(rows.column("_ts"), lo))
            ops = pa.array([_OP_NAMES[o] for o in rows.column("_op").to_pylist()], pa.string())
            meta = {
                "ts": rows.column("_ts"),
                "txn_id": rows.column("_txn"),
                "op": ops,
                "row_id": rows.column("_rid"),
                "table_id": pa.repeat(pa.scalar(tid, pa.int64()), rows.num_rows),
                "_seq": rows.column("_seq"),
            }
            values = {c: rows.column(c) for c in rows.column_names if c not in LOG_ROW_META}
            parts.append(pa.table({**meta, **values}))
    return _assemble(parts, where)


def _assemble(parts: list[pa.Table], where: str | None) -> pa.Table:
    """Union the parts by column name (DuckDB widens clashing types), in commit order, and
    keep table events plus the row images matching `where`."""
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise ProgrammingError("where must be a SQL predicate such as 'k = 3'")
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        names = []
        for i, part in enumerate(parts):
            if "_seq" not in part.column_names:
                part = part.append_column("_seq", pa.nulls(part.num_rows, pa.int32()))
            con.register(f"_asof_part_{i}", part)
            names.append(f"SELECT * FROM _asof_part_{i}")
        body = " UNION ALL BY NAME ".join(names)
        filt = ""
        if where is not None:
            filt = f"WHERE op IN ('truncate', 'drop') OR coalesce(({where}), false)"
        # Table events sort after the row events of their own transaction.
        return con.sql(
            f"SELECT * EXCLUDE (_seq) FROM ({body}) {filt} "
            "ORDER BY txn_id, coalesce(_seq, 2147483647)"
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise translate(exc) from None
    finally:
        con.close()


def transactions(
    rt: DatabaseRuntime,
    *,
    since: Any = None,
    until: Any = None,
    table: str | None = None,
    with_rows: bool = True,
) -> Iterator[Transaction]:
    """Committed transactions with since <= ts.physical <= until, oldest first."""
    lo, hi = _bounds(since, until)
    wanted = None if table is None else table_ids(rt, table, hi)
    for txn in rt.recorder.transactions(until=hi, with_rows=with_rows):
        if lo is not None and txn.ts.physical < lo:
            continue
        if wanted is not None and not any(e.table_id in wanted for e in txn.events):
            continue
        yield txn


_LOG_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("txn_id", pa.int64()),
        ("tables", pa.list_(pa.string())),
        ("inserted", pa.int64()),
        ("updated", pa.int64()),
        ("deleted", pa.int64()),
        ("ddl", pa.list_(pa.string())),
        ("sql", pa.string()),
    ]
)


def _ddl_kind(event: Any) -> str | None:
    if event.kind == kinds.DDL:
        return f"{event.data.get('action', '')} {event.data.get('object', '')}".strip()
    if event.kind in (kinds.ROWS, kinds.SEQUENCE_VALUE):
        return None
    return event.kind


def transaction_log(
    rt: DatabaseRuntime, *, since: Any = None, until: Any = None, table: str | None = None
) -> pa.Table:
    """One row per committed transaction: what it touched, how many rows, and its SQL."""
    lo, hi = _bounds(since, until)
    cat = scan_catalog(rt, hi)
    wanted = None if table is None else table_ids(rt, table, hi)
    out: list[dict[str, Any]] = []
    names = _Catalog()
    for txn in rt.recorder.transactions(until=hi, with_rows=True):
        names.observe(txn)
        if lo is not None and txn.ts.physical < lo:
            continue
        if wanted is not None and not any(e.table_id in wanted for e in txn.events):
            continue
        counts = {RowOp.INSERT: 0, RowOp.UPDATE: 0, RowOp.DELETE: 0}
        touched: list[str] = []
        ddl: list[str] = []
        for event in txn.events:
            tid = event.table_id
            if tid is not None and tid in cat.current:
                name = names.current.get(tid, cat.current[tid])
                if event.kind == kinds.RENAME_TABLE:
                    name = display_name(event.data["new"], event.data.get("schema"))
                if name not in touched:
                    touched.append(name)
            kind = _ddl_kind(event)
            if kind is not None:
                ddl.append(kind)
            if event.kind == kinds.ROWS and event.rows is not None:
                for value, n in _op_counts(event.rows).items():
                    counts[RowOp(value)] += n
        out.append(
            {
                "ts": txn.ts.physical,
                "txn_id": txn.txn_id,
                "tables": touched,
                "inserted": counts[RowOp.INSERT],
                "updated": counts[RowOp.UPDATE],
                "deleted": counts[RowOp.DELETE],
                "ddl": ddl,
                "sql": txn.sql,
            }
        )
    return pa.Table.from_pylist(out, _LOG_SCHEMA)


def _op_counts(rows: pa.Table) -> dict[int, int]:
    counted = pc.value_counts(rows.column("_op"))
    return {int(v["values"]): int(v["counts"]) for v in counted.to_pylist()}
