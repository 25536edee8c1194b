"""Copy a table's rows from a clone or an AS OF handle back into a live database.

Everything goes through `into.sql(...)` inside one explicit transaction, so the restore is
ordinary events in the target's log (visible in its history, undoable the same way) and the
database's write lock serialises it against other writers.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import duckdb
import pyarrow as pa

from asof.projections import kinds
from asof.projections.naming import (
    DISPLAY_NAME_SQL,
    HIDDEN_COLUMNS,
    ROW_ID,
    STORAGE_SCHEMA,
    TABLES_TABLE,
    VERSION_FROM,
    display_name,
    quote_ident,
    storage_table,
    user_view,
)
from asof.projections.versions import TXN_VARIABLE
from asof.queryapi.errors import AsofError, ProgrammingError
from asof.queryapi.forensics.source import Recoverable, Source, Target
from asof.queryapi.progress import track
from asof.queryapi.sql.schemas import split_display
from asof.queryapi.sql.session import Session
from asof.queryapi.translate import translate

MODES = ("create", "append", "replace", "upsert")
BATCH_ROWS = 100_000
_names = (f"_asof_restore_{i}" for i in itertools.count())
# The hidden columns as DuckDB prints them: with the built-ins qualified (tables made since
# asof qualifies them) or not (older tables).
_RID_DDL = tuple(
    f", {ROW_ID} BIGINT DEFAULT({q}nextval('{STORAGE_SCHEMA}.rid'))" for q in ('"system".main.', "")
)
_FROM_DDL = tuple(
    f", {VERSION_FROM} BIGINT DEFAULT({q}getvariable('{TXN_VARIABLE}'))"
    for q in ('"system".main.', "")
)


@attrs.frozen
class RestoreResult:
    """What a restore did, in rows, and the source it read."""

    table: str
    source: str
    into: str
    mode: str
    created: bool
    inserted: int
    updated: int
    deleted: int

    def __str__(self) -> str:
        made = "created, " if self.created else ""
        return (
            f"{self.table} restored from {self.source} into {self.into} ({self.mode}): {made}"
            f"{self.inserted} inserted, {self.updated} updated, {self.deleted} deleted"
        )


def _table_id(cur: duckdb.DuckDBPyConnection, table: str, where: str) -> tuple[int, str]:
    rows = cur.execute(
        f"SELECT table_id, {DISPLAY_NAME_SQL} FROM {TABLES_TABLE} "
        f"WHERE lower({DISPLAY_NAME_SQL}) = lower(?) AND kind = 'table'",
        [table],
    ).fetchall()
    if not rows:
        raise ProgrammingError(f"table {table!r} does not exist in {where}; list tables first")
    return rows[0]


def _columns(cur: duckdb.DuckDBPyConnection, table_id: int) -> list[tuple[str, str, bool]]:
    """(name, type, generated) of the storage table, lazy (checkpoint) tables included."""
    from asof.projections.lazy import lazy_alias

    db = lazy_alias(cur, table_id)
    if db is None:
        db = cur.execute("SELECT current_database()").fetchall()[0][0]
    rows = cur.execute(
        "SELECT column_name, data_type, is_generated FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [db, STORAGE_SCHEMA, f"t{table_id}"],
    ).fetchall()
    return [(n, t, bool(g)) for n, t, g in rows if n not in HIDDEN_COLUMNS]


def table_ddl(cur: duckdb.DuckDBPyConnection, table_id: int, name: str) -> str:
    """CREATE TABLE for `name` with the source's columns, defaults and constraints."""
    from asof.projections.lazy import lazy_alias

    db = lazy_alias(cur, table_id)
    if db is None:
        db = cur.execute("SELECT current_database()").fetchall()[0][0]
    row = cur.execute(
        "SELECT sql FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ?",
        [db, STORAGE_SCHEMA, f"t{table_id}"],
    ).fetchall()
    prefix = f"CREATE TABLE {STORAGE_SCHEMA}.t{table_id}("
    ddl = row[0][0] if row else ""
    rid = next((r for r in _RID_DDL if r in ddl), None)
    if ddl.startswith(prefix) and rid is not None:
        body = ddl[len(prefix) :].replace(rid, "", 1)
        for hidden in _FROM_DDL:
            body = body.replace(hidden, "", 1)
        return f"CREATE TABLE {_qualified(name)}(" + body
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t, _ in _columns(cur, table_id))
    return f"CREATE TABLE {_qualified(name)} ({cols})"  # constraints unreadable: columns only


def _qualified(name: str) -> str:
    schema, table = split_display(name)
    return user_view(table, schema)


def restore_table(
    source: Source,
    table: str,
    into: Target,
    *,
    mode: str = "create",
    where: str | None = None,
    key: str | list[str] | tuple[str, ...] | None = None,
    progress: bool | None = None,
) -> RestoreResult:
    """Copy `table`'s rows (those matching `where`) from `source` into `into` in one
    transaction. create: make the table (it must not exist); append: insert; replace: delete
    the target's rows (those matching `where`) first; upsert: update rows with equal `key`
    columns and insert the rest. Closes the source's cursor."""
    if mode not in MODES:
        source.cursor.close()
        raise ProgrammingError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    keys = [key] if isinstance(key, str) else list(key or [])
    label, cur = source.label, source.cursor
    try:
        if mode == "upsert" and not keys:
            raise ProgrammingError("mode='upsert' needs key=[columns] to match rows on")
        tid, name = _table_id(cur, table, label)
        columns = [c for c, _, generated in _columns(cur, tid) if not generated]
        filt = f" WHERE ({where})" if where else ""
        try:
            rows = cur.sql(
                f"SELECT {', '.join(quote_ident(c) for c in columns)} "
                f"FROM {storage_table(tid)}{filt}"
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise translate(exc) from None
        ddl = table_ddl(cur, tid, name) if mode == "create" else None
    finally:
        cur.close()
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ProgrammingError(f"key columns {missing} are not columns of {name}: {columns}")
    return _write(into, label, name, rows, columns, mode, where, keys, ddl, progress)


def _write(
    into: Target,
    label: str,
    name: str,
    rows: pa.Table,
    columns: list[str],
    mode: str,
    where: str | None,
    keys: list[str],
    ddl: str | None,
    progress: bool | None,
) -> RestoreResult:
    session = into.session
    if session.in_transaction:
        raise ProgrammingError("COMMIT or ROLLBACK the open transaction on `into` first")
    tag = f"/* asof restore_table {name} from {label} ({mode}) */ "
    schema, table = split_display(name)
    target = user_view(table, schema)
    cols = ", ".join(quote_ident(c) for c in columns)
    counts = {"inserted": 0, "updated": 0, "deleted": 0}
    into.sql("BEGIN")
    try:
        session.write_now()  # the write lock first: the batches are registered on its cursor
        exists = session.find_table(table, schema) is not None
        if mode == "create":
            if exists:
                raise ProgrammingError(
                    f"table {name!r} already exists in {into.name!r}; use mode='append', "
                    "'replace' or 'upsert', or drop it first"
                )
            into.sql(tag + ddl)
        elif not exists:
            raise ProgrammingError(
                f"table {name!r} does not exist in {into.name!r}; use mode='create'"
            )
        else:
            _check_columns(session, table, schema, columns)
        if mode == "replace":
            filt = f" WHERE ({where})" if where else ""
            counts["deleted"] = _count(into.sql(f"{tag}DELETE FROM {target}{filt}"))
        batches = rows.to_batches(BATCH_ROWS) or []
        for batch in track(batches, total=len(batches), desc=f"restore {name}", progress=progress):
            rel = next(_names)
            session.cur.register(rel, pa.Table.from_batches([batch], rows.schema))
            try:
                if mode == "upsert":
                    on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
                    sets = ", ".join(
                        f"{quote_ident(c)} = s.{quote_ident(c)}" for c in columns if c not in keys
                    )
                    if sets:
                        counts["updated"] += _count(
                            into.sql(
                                f"{tag}UPDATE {target} AS t SET {sets} FROM {rel} AS s WHERE {on}"
                            )
                        )
                    counts["inserted"] += _count(
                        into.sql(
                            f"{tag}INSERT INTO {target} ({cols}) SELECT {cols} FROM {rel} AS s "
                            f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on})"
                        )
                    )
                else:
                    counts["inserted"] += _count(
                        into.sql(f"{tag}INSERT INTO {target} ({cols}) SELECT {cols} FROM {rel}")
                    )
            finally:
                session.cur.unregister(rel)
        into.sql("COMMIT")
    except BaseException as exc:
        if session.in_transaction:
            into.sql("ROLLBACK")
        raise exc if isinstance(exc, AsofError) else translate(exc) from None
    return RestoreResult(name, label, into.name, mode, mode == "create", **counts)


def _check_columns(session: Session, name: str, schema: str, columns: list[str]) -> None:
    info = session.find_table(name, schema)
    missing = [c for c in columns if c not in info.columns]
    if missing:
        raise ProgrammingError(
            f"{name!r} in the target lacks columns {missing}; add them (ALTER TABLE) or restore "
            "with mode='create' into another database"
        )


def _count(result: Any) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0


def undrop_table(db: Recoverable, table: str, *, progress: bool | None = None) -> RestoreResult:
    """Recreate `table` as it was just before its last DROP TABLE, from the log."""
    last = None
    for txn in db.transactions():
        for event in txn.events:
            if event.kind != kinds.DROP_TABLE:
                continue
            dropped = display_name(event.data["name"], event.data.get("schema"))
            if dropped.lower() == table.lower():
                last = txn
    if last is None:
        raise ProgrammingError(
            f"table {table!r} was never dropped in database {db.name!r}; see db.history()"
        )
    before = last.ts.physical - 1
    with db.as_of(before) as past:
        return restore_table(past.source(), table, db, mode="create", progress=progress)
