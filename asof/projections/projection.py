"""The live projection of one database: its current state in a DuckDB file.

It remembers the last transaction it applied; on open it catches up from the log only as far
as needed, and if its file is gone or damaged (it is a cache) it is rebuilt from the nearest
checkpoint plus the log. A projection ahead of its log proves that the log lost committed
transactions: that is reported, never caught up backwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from asof.eventlog.events import TransactionInfo
from asof.eventlog.recorder import Recorder, Store
from asof.projections import versions
from asof.projections.apply import applied
from asof.projections.build import build_at
from asof.projections.host import HostedState
from asof.projections.lazy import attach_bases
from asof.projections.naming import STORAGE_SCHEMA, UNCONFIRMED_TABLE, quote_literal
from asof.projections.replay import replay

COMPLETE_MARK = f"{STORAGE_SCHEMA}.complete"

log = logging.getLogger(__name__)


def connect(
    path: Path | None,
    store: Store,
    *,
    allow_external_access: bool = False,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can reach only the cluster's own checkpoint files, unless
    external access was allowed when the cluster was opened."""
    # The log is the source of truth and a projection can always be rebuilt from it, so the
    # projection's own file need not be fsync'd: one fsync per commit (the log's) is enough.
    config: dict[str, str | bool | int | float | list[str]] = {
        "python_enable_replacements": False,
        "fsync_mode": "none",
        # Which errors fail a transaction is each session's own choice, made in the SQL
        # front (queryapi/sql/settings.py); DuckDB's own transaction must survive the
        # errors a session lets through.
        "default_transaction_invalidation_policy": "SYNTACTIC_ERRORS_DO_NOT_INVALIDATE",
    }
    con = duckdb.connect(str(path) if path else ":memory:", read_only=read_only, config=config)
    if not allow_external_access:
        checkpoints = store.root / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET allowed_directories = [{quote_literal(str(checkpoints))}]")
        # Once off, DuckDB refuses to turn external access back on or to widen the allowed
        # directories while the instance runs. The configuration is not locked beyond that:
        # sessions may change their own session-scoped settings, and every SET a user sends
        # passes asof's allowlist first (queryapi/sql/settings.py).
        con.execute("SET enable_external_access = false")
    return con


class Projection:
    """A database's current state, kept in step with its log."""

    def __init__(
        self,
        path: Path | None,
        store: Store,
        recorder: Recorder,
        *,
        allow_external_access: bool = False,
    ) -> None:
        self.path = path
        self.store = store
        self.recorder = recorder
        if path is None:  # a private in-memory copy (read-only clusters in other processes)
            self.con = connect(None, store, allow_external_access=allow_external_access)
            build_at(self.con, store, recorder, None)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._external = allow_external_access
        fresh = not path.exists()
        try:
            self.con = connect(path, store, allow_external_access=allow_external_access)
            sound = not fresh and self._complete()
        except duckdb.Error as exc:  # a damaged file: the projection is a cache, rebuild it
            log.warning("projection %s is damaged (%s); rebuilding it from the log", path, exc)
            remove_projection(path)
            self.con = connect(path, store, allow_external_access=allow_external_access)
            sound = fresh = False
        try:
            if sound and self._ahead():
                log.warning(
                    "projection %s holds a commit its log never took (the process stopped "
                    "between the two); rebuilding it from the log",
                    path,
                )
                sound = False
            if sound:
                try:
                    attach_bases(self.con, store)
                    versions.mark_since(self.con)  # files from before the catalog copy existed
                    self.catch_up()
                    return
                except duckdb.Error as exc:  # damaged inside: rebuild it, as below
                    log.warning("projection %s is damaged (%s); rebuilding it", path, exc)
                    fresh = False
            if not fresh:  # a build cut short, a damaged file, an unlogged commit: rebuild
                self.con.close()
                remove_projection(path)
                self.con = connect(path, store, allow_external_access=allow_external_access)
            build_at(self.con, store, recorder, None)
            self.con.execute(
                f"CREATE TABLE {COMPLETE_MARK} (built_at TIMESTAMP);\n"
                f"INSERT INTO {COMPLETE_MARK} VALUES (now())"
            )
        except BaseException:
            self.con.close()
            raise

    def _complete(self) -> bool:
        """Whether this file holds a whole projection (the mark is its build's last step) in
        the current layout (older files lack the row version columns: rebuilt)."""
        try:
            row = self.con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                f"AND schema_name = '{STORAGE_SCHEMA}' AND table_name = 'complete'"
            ).fetchall()
            return bool(row[0][0]) and versions.current_layout(self.con)
        except duckdb.Error:
            return False

    def _ahead(self) -> bool:
        """Whether this file holds a transaction the log does not because the process
        stopped between the two steps of a commit that reached DuckDB first (DDL,
        session.py): that commit marked itself unconfirmed in the same DuckDB transaction
        and clears the mark once the log has it. A projection ahead of its log without
        that mark proves the log lost commits: `catch_up` reports it as damage."""
        return ahead_unconfirmed(self.con, self.recorder)

    def applied(self) -> TransactionInfo | None:
        return applied(self.con.cursor())

    def catch_up(self) -> TransactionInfo | None:
        """Apply whatever the log holds beyond what this projection has applied; raise
        CorruptionError when the projection holds more than the log (the log lost
        committed transactions: never "catch up" backwards)."""
        cur = self.con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            info = applied(cur)
            if info is not None:  # a projection ahead of its log proves the log lost commits
                self.recorder.require(info.txn_id, f"the projection {self.path}")
            head = self.recorder.head()
            if head is not None and (info is None or head.txn_id > info.txn_id):
                replay(cur, self.recorder, after_txn=info.txn_id if info else 0)
            cur.execute("COMMIT")
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT ended it; the error that matters is the first one
            raise
        finally:
            cur.close()
        return self.applied()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()

    def close(self) -> None:
        self.con.close()


class HostedProjection:
    """The current state of a clone nobody has written to, built in the state host.

    A fresh clone's state is its source's checkpoint plus a short log tail; serving it from
    an in-memory database of the shared host costs a few statements, where creating its
    DuckDB file costs a new instance and a file. The runtime swaps in a file `Projection`
    before the first write (`DatabaseRuntime.promote`). Nothing is lost in a crash: the
    state holds nothing the log and the checkpoint do not.
    """

    path = None

    def __init__(self, state: HostedState) -> None:
        self.state = state

    def applied(self) -> TransactionInfo | None:
        cur = self.state.cursor()
        try:
            return applied(cur)
        finally:
            cur.close()

    def catch_up(self) -> TransactionInfo | None:
        return self.applied()  # nothing is written here: writers promote first

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.state.cursor()

    def close(self) -> None:
        self.state.release()


def remove_projection(path: Path) -> None:
    """Delete a projection file and its DuckDB WAL (it is rebuilt from the log)."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def ahead_unconfirmed(con: duckdb.DuckDBPyConnection, recorder: Recorder) -> bool:
    """Whether `con`'s projection holds exactly one commit past the log, one that reached
    DuckDB first and whose log append never happened (see `Projection._ahead`)."""
    info = applied(con.cursor())
    if info is None or unconfirmed(con) != info.txn_id:
        return False
    head = recorder.head()
    return head is None or info.txn_id > head.txn_id or info.ts != head.ts


def unconfirmed(con: duckdb.DuckDBPyConnection) -> int | None:
    """The commit that reached DuckDB before the log and is not yet known to be logged."""
    schema, _, table = UNCONFIRMED_TABLE.partition(".")
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchall()[0][0]
    if not exists:  # looked up first: a missing table would send DuckDB to Python's names
        return None
    row = con.execute(f"SELECT max(txn_id) FROM {UNCONFIRMED_TABLE}").fetchall()
    return row[0][0] if row else None


def mark_unconfirmed_sql(txn_id: int) -> str:
    """Statements for the DuckDB transaction of a commit made before its log append."""
    return (
        f"CREATE TABLE IF NOT EXISTS {UNCONFIRMED_TABLE} (txn_id BIGINT);\n"
        f"DELETE FROM {UNCONFIRMED_TABLE};\n"
        f"INSERT INTO {UNCONFIRMED_TABLE} VALUES ({int(txn_id)})"
    )


CONFIRMED_SQL = f"DELETE FROM {UNCONFIRMED_TABLE}"
