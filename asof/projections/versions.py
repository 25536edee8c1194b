"""Row versions kept beside the live tables, so a state in the past is two scans.

Every storage table carries `_asof_from`, the transaction that wrote the row's current
version. When a transaction updates or deletes a row, the version it replaces goes to
`_asof.h<id>` with `[_asof_from, _asof_to)`. The state at transaction N is then

    SELECT ... FROM t WHERE _asof_from <= N
    UNION ALL SELECT ... FROM h WHERE _asof_from <= N AND _asof_to > N

with no join and no fold of the log. When a transaction updates a batch of rows of a table,
they are moved (deleted and inserted again) rather than left in place, so the live table
stays in commit order and `_asof_from <= N` skips whole row groups by their min/max; `h` is
appended in commit order, so `_asof_to > N` does too. A few rows are stamped in place.

Coverage is one number, `_asof.state.since_txn`. The views above give the state at N
only when every transaction after N changed rows through a session (which keeps the
versions it replaces) and nothing else. A transaction with any other event (DDL, TRUNCATE,
a sequence move), a catch-up from the log, or a clone table's first write moves `since_txn`
to itself; AS OF before it builds the state from checkpoint + log instead. Such a
transaction skips the bookkeeping below, since nothing before it will be read this way.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from asof.projections.naming import (
    ROW_ID,
    STATE_TABLE,
    STORAGE_SCHEMA,
    TABLES_TABLE,
    VERSION_FROM,
    VERSION_TO,
    history_table,
    one_value,
    quote_ident,
    storage_table,
)

TXN_VARIABLE = "asof_txn"

_names = (f"_asof_versions_{i}" for i in itertools.count())
_MOVING = "temp.main._asof_moving"


def add_from_column_sql(table_id: int) -> str:
    """The hidden column a new storage table gets: the writing transaction, which the
    session sets on its cursor (`writing_sql`) before the first statement runs."""
    return (
        f"ALTER TABLE {storage_table(table_id)} ADD COLUMN {VERSION_FROM} BIGINT "
        f"DEFAULT system.main.getvariable('{TXN_VARIABLE}')"
    )


def writing_sql(txn_id: int) -> str:
    return f"SET VARIABLE {TXN_VARIABLE} = {int(txn_id)}"


def restart_sql(txn_id: int) -> str:
    """Versions are complete only from `txn_id` on (integers only: safe to inline)."""
    return f"UPDATE {STATE_TABLE} SET since_txn = {int(txn_id)};\n{since_marker_sql(txn_id)}"


#: A macro that returns `since_txn`: the catalog copy of the coverage number, which a query
#: reads while DuckDB binds it, without a table scan. Its one parameter is named after the
#: value (`since_<txn>`), so a pooled AS OF view that passes it by name fails to bind once
#: coverage moved (`state_views_sql`). Every write of `since_txn` writes it too.
SINCE_MACRO = f"{STORAGE_SCHEMA}.versions_since"


def since_marker_sql(txn_id: int) -> str:
    n = int(txn_id)
    return f"CREATE OR REPLACE MACRO {SINCE_MACRO}(since_{n} := NULL) AS CAST({n} AS BIGINT)"


def since_txn(con: duckdb.DuckDBPyConnection) -> int | None:
    """Coverage as the state table holds it."""
    return con.execute(f"SELECT since_txn FROM {STATE_TABLE}").fetchall()[0][0]


def marked_since(con: duckdb.DuckDBPyConnection) -> int | None:
    """Coverage as the catalog's macro holds it (None: no macro)."""
    try:
        return con.execute(f"SELECT {SINCE_MACRO}()").fetchall()[0][0]
    except duckdb.Error:
        return None


def mark_since(con: duckdb.DuckDBPyConnection) -> None:
    """Write the macro from the state table where it is missing or differs (a projection
    made before the macro existed)."""
    since = since_txn(con)
    if since is not None and marked_since(con) != since:
        con.execute(since_marker_sql(since))


def create_history_sql(table_id: int) -> str:
    """The history table of a storage table: its columns (computed ones stored) and the end
    of each version. Made with the table, so AS OF views can always name it."""
    return (
        f"CREATE TABLE IF NOT EXISTS {history_table(table_id)} AS SELECT *, "
        f"CAST(0 AS BIGINT) AS {VERSION_TO} FROM {storage_table(table_id)} LIMIT 0"
    )


def new_history_sql(table_id: int) -> str:
    """A table whose columns change starts a new history (older versions are never read
    through it: the change itself moved `since_txn`)."""
    return f"DROP TABLE IF EXISTS {history_table(table_id)};\n{create_history_sql(table_id)}"


def drop_history_sql(table_id: int) -> str:
    return f"DROP TABLE IF EXISTS {history_table(table_id)}"


def history_tables(con: duckdb.DuckDBPyConnection, database: str | None = None) -> list[str]:
    """The history tables of `database` (default: the current one), schema-qualified."""
    where = "database_name = current_database()" if database is None else "database_name = ?"
    return [
        f"{STORAGE_SCHEMA}.{r[0]}"
        for r in con.execute(
            f"SELECT table_name FROM duckdb_tables() WHERE {where} AND schema_name = ? "
            "AND table_name SIMILAR TO 'h[0-9]+'",
            [STORAGE_SCHEMA] if database is None else [database, STORAGE_SCHEMA],
        ).fetchall()
    ]


def prune_history(con: duckdb.DuckDBPyConnection, horizon_txn: int) -> int:
    """Delete versions superseded at or before `horizon_txn` (outside the AS OF window).

    The states before `horizon_txn` lose versions, so coverage moves up to it: a handle
    still open on such a state moves to one built from checkpoint + log."""
    removed = sum(
        con.execute(f"DELETE FROM {table} WHERE {VERSION_TO} <= ?", [horizon_txn]).fetchall()[0][0]
        for table in history_tables(con)
    )
    since = since_txn(con)
    if removed and since is not None and since < horizon_txn:
        con.execute(restart_sql(horizon_txn))
    return removed


class Superseded:
    """The row versions one transaction replaces, kept at its commit.

    The first UPDATE, DELETE or upsert opens a read transaction on another cursor: it sees
    the state before this transaction (the write lock keeps other writers out), which is
    where the replaced versions are read from at commit.
    """

    def __init__(self) -> None:
        self._snapshot: duckdb.DuckDBPyConnection | None = None
        self._updated: dict[int, list[pa.Array]] = {}
        self._deleted: dict[int, list[pa.Array]] = {}
        self._generated: dict[int, frozenset[str]] = {}
        self._unstamped: dict[int, list[pa.Array]] = {}

    def before_change(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Call before a statement that may update or delete rows."""
        if self._snapshot is None:
            snap = cur.cursor()
            snap.execute(f"BEGIN TRANSACTION; SELECT applied_txn FROM {STATE_TABLE}")
            snap.fetchall()
            self._snapshot = snap

    def record(
        self,
        table_id: int,
        row_ids: pa.ChunkedArray,
        updated: pa.Array | bool,
        generated: frozenset[str] = frozenset(),
        stamped: bool = False,
    ) -> None:
        """Rows a statement changed: `updated` is True (all updated), False (all deleted)
        or a boolean mask (an upsert: inserted rows are False and need nothing).
        `generated` names the table's computed columns (never inserted into); `stamped`:
        the statement set the updated rows' `_asof_from` itself."""
        ids = row_ids.combine_chunks() if isinstance(row_ids, pa.ChunkedArray) else row_ids
        self._generated[table_id] = generated
        if updated is False:
            self._deleted.setdefault(table_id, []).append(ids)
            return
        if updated is not True:
            ids = pc.filter(ids, updated)
        self._updated.setdefault(table_id, []).append(ids)
        if not stamped:
            self._unstamped.setdefault(table_id, []).append(ids)

    @property
    def pending(self) -> bool:
        return bool(self._updated or self._deleted)

    def keep(self, cur: duckdb.DuckDBPyConnection, txn_id: int) -> None:
        """Append the replaced versions to history and stamp (or move) the updated rows,
        inside the writer's transaction `cur`."""
        snap = self._snapshot
        for table_id in sorted({*self._updated, *self._deleted}):
            updated = _unique(self._updated.get(table_id, ()))
            deleted = _unique(self._deleted.get(table_id, ()))
            touched = pc.unique(pa.concat_arrays([updated, deleted]))
            old = None
            if snap is not None and len(touched):
                old = _old_versions(snap, table_id, touched)
            alive = pc.filter(updated, pc.invert(pc.is_in(updated, deleted)))
            if len(alive) < MOVE_AT_LEAST:  # stamped in place: only what is not yet
                unstamped = _unique(self._unstamped.get(table_id, ()))
                alive = pc.filter(unstamped, pc.invert(pc.is_in(unstamped, deleted)))
            _write_versions(cur, table_id, old, alive, txn_id, self._generated[table_id])

    def close(self) -> None:
        if self._snapshot is not None:
            snap, self._snapshot = self._snapshot, None
            try:
                snap.execute("ROLLBACK")
            except duckdb.Error:
                pass
            snap.close()
        self._updated.clear()
        self._deleted.clear()
        self._generated.clear()
        self._unstamped.clear()


def _unique(parts: Iterable[pa.Array]) -> pa.Array:
    arrays = list(parts)
    if not arrays:
        return pa.array([], pa.int64())
    return pc.unique(pa.concat_arrays([a.cast(pa.int64()) for a in arrays]))


def _row_ids(con: duckdb.DuckDBPyConnection, row_ids: pa.Array) -> tuple[str, str | None]:
    """A set of row ids as a SQL condition: one id inline (so DuckDB's min/max skip row
    groups), more through an Arrow table registered under the returned name."""
    if len(row_ids) == 1:
        return f"{ROW_ID} = {int(row_ids[0].as_py())}", None
    name = next(_names)
    con.register(name, pa.table({ROW_ID: row_ids}))
    return f"{ROW_ID} IN (SELECT {ROW_ID} FROM {name})", name


def _unregister(con: duckdb.DuckDBPyConnection, names: Iterable[str | None]) -> None:
    for name in names:
        if name is not None:
            try:
                con.unregister(name)
            except duckdb.Error:
                pass  # an aborted transaction took the name with it


def _old_versions(
    snap: duckdb.DuckDBPyConnection, table_id: int, row_ids: pa.Array
) -> pa.Table | None:
    """The versions of `row_ids` before this transaction, from its snapshot."""
    where, name = _row_ids(snap, row_ids)
    try:
        return snap.sql(f"SELECT * FROM {storage_table(table_id)} WHERE {where}").to_arrow_table()
    except duckdb.CatalogException:
        return None  # created by this transaction: nothing replaced
    finally:
        _unregister(snap, [name])


#: Updated rows of one table and transaction from which they are moved to the end of the
#: table rather than stamped in place: a move costs four statements, worth it for a batch.
MOVE_AT_LEAST = 64


def _write_versions(
    cur: duckdb.DuckDBPyConnection,
    table_id: int,
    old: pa.Table | None,
    updated: pa.Array,
    txn_id: int,
    generated: frozenset[str],
) -> None:
    """In one script: append the replaced versions to the history table, and stamp the
    `updated` rows with `txn_id` (those not stamped by their statement, when fewer than
    MOVE_AT_LEAST; else all the transaction updated). A batch of rows is moved (deleted and
    inserted again, through a temporary table so every value comes back exactly), which
    keeps the table in commit order for min/max pruning; a few rows are stamped in place,
    which leaves their row groups to be filtered row by row. (DuckDB would refuse the delete of a row a foreign key points
    at; asof tables cannot be referenced by foreign keys.)"""
    table = storage_table(table_id)
    n = int(txn_id)
    script: list[str] = []
    names: list[str | None] = []
    try:
        if old is not None and old.num_rows:
            old_name = next(_names)
            names.append(old_name)
            cur.register(old_name, old)
            script.append(
                f"INSERT INTO {history_table(table_id)} BY NAME SELECT *, "
                f"CAST({n} AS BIGINT) AS {VERSION_TO} FROM {names[-1]}"
            )
        if len(updated):
            where, name = _row_ids(cur, updated)
            names.append(name)
            if len(updated) < MOVE_AT_LEAST:
                script.append(f"UPDATE {table} SET {VERSION_FROM} = {n} WHERE {where}")
            else:
                skip = ", ".join(quote_ident(c) for c in sorted(generated))
                columns = f"* EXCLUDE ({skip})" if skip else "*"
                script += [
                    f"CREATE OR REPLACE TEMP TABLE {_MOVING} AS SELECT {columns} FROM {table} "
                    f"WHERE {where}",
                    f"DELETE FROM {table} WHERE {where}",
                    f"INSERT INTO {table} BY NAME SELECT * REPLACE (CAST({n} AS BIGINT) "
                    f"AS {VERSION_FROM}) FROM {_MOVING}",
                    f"DROP TABLE {_MOVING}",
                ]
        if script:
            cur.execute(";\n".join(script))
    finally:
        _unregister(cur, names)


Tables = tuple[tuple[int, str, tuple[str, ...]], ...]  # (table id, name, user columns)


def user_tables(con: duckdb.DuckDBPyConnection) -> Tables:
    """Every table's id, name and columns (the hidden ones left out), in one query."""
    rows = con.execute(
        f"SELECT t.table_id, t.name, list(c.column_name ORDER BY c.column_index) "
        f"FROM {TABLES_TABLE} AS t JOIN duckdb_columns() AS c "
        "ON c.database_name = current_database() AND c.schema_name = ? "
        "AND c.table_name = 't' || t.table_id AND NOT list_contains(?, c.column_name) "
        "GROUP BY ALL ORDER BY t.table_id",
        [STORAGE_SCHEMA, [ROW_ID, VERSION_FROM]],
    ).fetchall()
    return tuple((table_id, name, tuple(cols)) for table_id, name, cols in rows)


def has_user_schemas(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has schemas of its own besides `main`. The temporary views of a
    past state shadow only names DuckDB looks up in `main` (the temporary catalog has no
    other schema), so `s.t` would still read the live table: such states are built."""
    return bool(
        one_value(
            con,
            "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() "
            "AND schema_name NOT IN ('main', 'pg_catalog', 'information_schema', ?)",
            [STORAGE_SCHEMA],
        )
    )


AT_VARIABLE = "asof_at"


def state_views_sql(tables: Tables, txn_id: int | None, since: int | None = None) -> str:
    """Temporary views, one per user table, that show the state at `txn_id` under the
    table's own name (a connection's temporary objects come first in name lookup, for
    the user's views too).

    `txn_id` None: the views read it from the `asof_at` variable, so one cursor's views
    serve any transaction. With `since`, they need no read transaction: the versions of a
    past state never change while coverage stays at `since`, which each query checks as
    DuckDB binds it (`SINCE_MACRO` takes a parameter named after it: once coverage moved,
    the query fails to bind; else the check folds to true and costs nothing)."""
    n = f"system.main.getvariable('{AT_VARIABLE}')" if txn_id is None else str(int(txn_id))
    guard = ""
    if since is not None:
        guard = f" AND {SINCE_MACRO}(since_{int(since)} := NULL) = {int(since)}"
    script = []
    for table_id, name, columns in tables:
        cols = ", ".join(quote_ident(c) for c in columns)
        script.append(  # the smaller scan first: measured a little faster
            f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS "
            f"SELECT {cols} FROM {history_table(table_id)} "
            f"WHERE {VERSION_FROM} <= {n} AND {VERSION_TO} > {n}{guard} "
            f"UNION ALL SELECT {cols} FROM {storage_table(table_id)} "
            f"WHERE {VERSION_FROM} <= {n}{guard}"
        )
    return ";\n".join(script)


def current_layout(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a projection has row versions: `since_txn`, and `_asof_from` and a history
    table for every storage table (views over checkpoints aside). Older projections are
    rebuilt. Two catalog reads, checked here: correlated catalog queries are slow."""
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ?",
            [STORAGE_SCHEMA],
        ).fetchall()
    }
    stamped = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND (column_name = ? OR "
            "(table_name = 'state' AND column_name = 'since_txn') "
            "OR (table_name = 'tables' AND column_name = 'schema_name'))",
            [STORAGE_SCHEMA, VERSION_FROM],
        ).fetchall()
    }
    storage = {t for t in tables if t[:1] == "t" and t[1:].isdigit()}
    return (
        "state" in stamped
        and "tables" in stamped
        and storage <= stamped
        and all(f"h{t[1:]}" in tables for t in storage)
    )
