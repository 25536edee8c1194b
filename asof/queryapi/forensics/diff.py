"""Compare two states of databases (live handles or AS OF handles, clones included).

Rows are matched by row id when the two states share history (two times of one database, or
a clone and its source) and the row existed before they parted; every other row is matched by
full-row equality, so `diff(a, b)` applied to `a` always gives `b`.
"""

from __future__ import annotations

import attrs
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.events import RowOp
from asof.projections import kinds
from asof.projections.naming import (
    DISPLAY_NAME_SQL,
    HIDDEN_COLUMNS,
    ROW_ID,
    STORAGE_SCHEMA,
    STORED_COLUMNS,
    TABLES_TABLE,
    quote_ident,
    storage_table,
)
from asof.queryapi.errors import ProgrammingError
from asof.queryapi.forensics.source import Source
from asof.queryapi.translate import translate


@attrs.frozen
class SchemaChange:
    """One schema difference: kind is table_only_in_a/b, column_added/removed, type_changed."""

    table: str
    kind: str
    column: str | None = None
    a_type: str | None = None
    b_type: str | None = None

    def __str__(self) -> str:
        if self.kind.startswith("table_only_in_"):
            return f"table {self.table} exists only in {self.kind[-1]}"
        if self.kind == "type_changed":
            return f"{self.table}.{self.column}: type {self.a_type} -> {self.b_type}"
        verb = "added in b" if self.kind == "column_added" else "removed in b"
        return f"{self.table}.{self.column} ({self.a_type or self.b_type}) {verb}"


@attrs.frozen
class TableDiff:
    """One table's row differences; `changed` has row_id, old_<col>..., new_<col>..."""

    name: str
    only_in_a: pa.Table
    only_in_b: pa.Table
    changed: pa.Table
    matched_by: str  # "row_id" or "value"
    schema_changes: tuple[SchemaChange, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (
            self.only_in_a.num_rows
            or self.only_in_b.num_rows
            or self.changed.num_rows
            or self.schema_changes
        )


@attrs.frozen
class Diff:
    """Per-table differences between state a and state b (tables that differ only)."""

    a: str
    b: str
    tables: dict[str, TableDiff]

    @property
    def schema_changes(self) -> tuple[SchemaChange, ...]:
        return tuple(c for t in self.tables.values() for c in t.schema_changes)

    @property
    def is_empty(self) -> bool:
        return not self.tables

    def summary(self) -> str:
        lines = [f"diff {self.a} -> {self.b}"]
        if not self.tables:
            lines.append("  no differences")
        for name, t in sorted(self.tables.items()):
            lines.append(
                f"  {name}: {t.only_in_a.num_rows} only in a, {t.only_in_b.num_rows} only in b, "
                f"{t.changed.num_rows} changed (matched by {t.matched_by})"
            )
            lines.extend(f"    schema: {c}" for c in t.schema_changes)
        return "\n".join(lines)


def _tables(cur: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    rows = cur.execute(
        f"SELECT table_id, {DISPLAY_NAME_SQL} FROM {TABLES_TABLE} WHERE kind = 'table'"
    ).fetchall()
    return {name.lower(): (tid, name) for tid, name in rows}


def _columns(cur: duckdb.DuckDBPyConnection, table_id: int) -> dict[str, str]:
    rows = cur.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
        "ORDER BY column_index",
        [STORAGE_SCHEMA, f"t{table_id}"],
    ).fetchall()
    if not rows:  # lazy tables are views over a checkpoint
        rel = cur.sql(f"SELECT {STORED_COLUMNS} FROM {storage_table(table_id)} LIMIT 0")
        rows = list(zip(rel.columns, [str(t) for t in rel.types], strict=True))
    return {c: t for c, t in rows if c not in HIDDEN_COLUMNS}


def _fork_point(a: Source, b: Source) -> tuple[bool, int | None]:
    """(share history?, the last µs both histories hold; None = both are one live state)."""

    def chain(side: Source) -> dict[str, int | None]:
        out: dict[str, int | None] = {side.runtime.db_id: side.ts}
        bound = side.ts
        for lin in side.runtime.recorder.lineage:
            bound = lin.until if bound is None else min(bound, lin.until)
            out[lin.source_id] = bound
        return out

    ca, cb = chain(a), chain(b)
    for log_id, bound in ca.items():
        if log_id in cb:
            other = cb[log_id]
            if bound is None:
                return True, other
            return True, bound if other is None else min(bound, other)
    return False, None


def _fresh_row_ids(side: Source, fork: int) -> dict[int, set[int]]:
    """Row ids each table gained by INSERT after `fork` on this side (not shared identity)."""
    out: dict[int, set[int]] = {}
    after = 0
    for txn in side.runtime.recorder.transactions(until=side.ts, with_rows=False):
        if txn.ts.physical > fork:
            break
        after = txn.txn_id
    for txn in side.runtime.recorder.transactions(after_txn=after, until=side.ts):
        for event in txn.events:
            if event.kind == kinds.ROWS and event.rows is not None:
                rows = event.rows
                ins = rows.filter(pc.equal(rows.column("_op"), int(RowOp.INSERT)))
                out.setdefault(event.table_id, set()).update(ins.column(ROW_ID).to_pylist())
    return out


def diff(sa: Source, sb: Source, table: str | None = None) -> Diff:
    """Rows only in a, only in b, and changed, per table; plus schema differences. Closes
    both sources' cursors."""
    try:
        return _diff(sa, sb, table)
    except duckdb.Error as exc:
        raise translate(exc) from None
    finally:
        sa.cursor.close()
        sb.cursor.close()


def _diff(sa: Source, sb: Source, table: str | None) -> Diff:
    ta, tb = _tables(sa.cursor), _tables(sb.cursor)
    names = sorted(set(ta) | set(tb))
    if table is not None:
        if table.lower() not in names:
            raise ProgrammingError(
                f"table {table!r} is in neither {sa.label} nor {sb.label}; "
                "list tables with SHOW TABLES"
            )
        names = [table.lower()]
    shared, fork = _fork_point(sa, sb)
    fresh: dict[int, set[int]] = {}
    if shared and fork is not None:
        for side in (sa, sb):
            for tid, rids in _fresh_row_ids(side, fork).items():
                fresh.setdefault(tid, set()).update(rids)
    work = duckdb.connect(":memory:", config={"enable_external_access": False})
    out: dict[str, TableDiff] = {}
    try:
        for key in names:
            td = _table_diff(work, sa, sb, ta.get(key), tb.get(key), shared, fresh)
            if not td.is_empty:
                out[td.name] = td
    finally:
        work.close()
    return Diff(sa.label, sb.label, out)


def _rows(side: Source, tid: int) -> pa.Table:
    return side.cursor.sql(f"SELECT {STORED_COLUMNS} FROM {storage_table(tid)}").to_arrow_table()


def _table_diff(
    work: duckdb.DuckDBPyConnection,
    sa: Source,
    sb: Source,
    ea: tuple[int, str] | None,
    eb: tuple[int, str] | None,
    shared: bool,
    fresh: dict[int, set[int]],
) -> TableDiff:
    name = (ea or eb)[1]
    empty = pa.table({})
    if ea is None or eb is None:
        side, entry, which = (sb, eb, "b") if ea is None else (sa, ea, "a")
        rows = _with_row_id_first(_rows(side, entry[0]))
        change = (SchemaChange(name, f"table_only_in_{which}"),)
        if which == "a":
            return TableDiff(name, rows, empty, empty, "value", change)
        return TableDiff(name, empty, rows, empty, "value", change)
    cols_a, cols_b = _columns(sa.cursor, ea[0]), _columns(sb.cursor, eb[0])
    changes = _schema_changes(name, cols_a, cols_b)
    common = [c for c in cols_a if c in cols_b]
    by_rid = shared and ea[0] == eb[0]
    work.register("a", _rows(sa, ea[0]))
    work.register("b", _rows(sb, eb[0]))
    rid_list = sorted(fresh.get(ea[0], set())) if by_rid else []
    work.register("fresh", pa.table({"rid": pa.array(rid_list, pa.int64())}))
    try:
        return _compare(work, name, cols_a, cols_b, common, by_rid, changes)
    finally:
        for view in ("a", "b", "fresh"):
            work.unregister(view)


def _schema_changes(name: str, ca: dict[str, str], cb: dict[str, str]) -> tuple[SchemaChange, ...]:
    out = [SchemaChange(name, "column_removed", c, t, None) for c, t in ca.items() if c not in cb]
    out += [SchemaChange(name, "column_added", c, None, t) for c, t in cb.items() if c not in ca]
    out += [
        SchemaChange(name, "type_changed", c, t, cb[c])
        for c, t in ca.items()
        if c in cb and cb[c] != t
    ]
    return tuple(out)


def _compare(
    work: duckdb.DuckDBPyConnection,
    name: str,
    cols_a: dict[str, str],
    cols_b: dict[str, str],
    common: list[str],
    by_rid: bool,
    changes: tuple[SchemaChange, ...],
) -> TableDiff:
    q = quote_ident

    def val(alias: str, c: str) -> str:
        ref = f"{alias}.{q(c)}"
        return f"CAST({ref} AS VARCHAR)" if cols_a[c] != cols_b[c] else ref

    same = " AND ".join(f"{val('x', c)} IS NOT DISTINCT FROM {val('y', c)}" for c in common)
    differs = " OR ".join(f"{val('a', c)} IS DISTINCT FROM {val('b', c)}" for c in common)
    rid = q(ROW_ID)
    reshaped = len(common) != len(cols_a) or len(common) != len(cols_b)
    if by_rid:
        work.execute(
            f"CREATE OR REPLACE TEMP TABLE pairs AS SELECT a.{rid} FROM a JOIN b "
            f"ON a.{rid} = b.{rid} WHERE a.{rid} NOT IN (SELECT rid FROM fresh)"
        )
        olds = ", ".join(f"a.{q(c)} AS {q('old_' + c)}" for c in cols_a)
        news = ", ".join(f"b.{q(c)} AS {q('new_' + c)}" for c in cols_b)
        changed = work.sql(
            f"SELECT a.{rid} AS row_id, {olds}, {news} FROM a JOIN b ON a.{rid} = b.{rid} "
            f"WHERE a.{rid} IN (SELECT {rid} FROM pairs) "
            f"AND ({differs or 'false'} OR {str(reshaped).lower()}) "
            "ORDER BY row_id"
        ).to_arrow_table()
        rest = f"WHERE {rid} NOT IN (SELECT {rid} FROM pairs)"
    else:
        work.execute(f"CREATE OR REPLACE TEMP TABLE pairs AS SELECT CAST(NULL AS BIGINT) AS {rid}")
        changed = pa.table({})
        rest = ""

    def numbered(src: str) -> str:
        part = ", ".join(val(src, c) for c in common) or "1"
        return (
            f"(SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY {rid}) AS _n "
            f"FROM {src} {rest})"
        )

    def only(src: str, other: str, cols: dict[str, str]) -> pa.Table:
        match = f"{same} AND x._n = y._n" if common else "false"
        sel = ", ".join(f"x.{q(c)}" for c in cols)
        return work.sql(
            f"SELECT x.{rid} AS row_id, {sel} FROM {numbered(src)} AS x "
            f"WHERE NOT EXISTS (SELECT 1 FROM {numbered(other)} AS y WHERE {match}) "
            "ORDER BY row_id"
        ).to_arrow_table()

    only_a, only_b = only("a", "b", cols_a), only("b", "a", cols_b)
    return TableDiff(name, only_a, only_b, changed, "row_id" if by_rid else "value", changes)


def _with_row_id_first(rows: pa.Table) -> pa.Table:
    rid = rows.column(ROW_ID)
    rest = rows.drop_columns([ROW_ID])
    return rest.add_column(0, "row_id", rid)
