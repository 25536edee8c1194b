"""One in-memory DuckDB instance that hosts many built states, each its own attached database.

Starting a DuckDB instance costs ~10 ms here, far more than building a merge-on-read state
(attach the checkpoint, copy its schema, views over it). So states that need no file (AS OF
readers, clones not yet written to) live as `ATTACH ':memory:'` databases of one shared
instance: a new state costs one ATTACH, checkpoints are attached once for all of them, and
DETACH frees a state's memory when the last handle using it lets go.
"""

from __future__ import annotations

import itertools
import threading

import duckdb

from asof.eventlog.events import TransactionInfo
from asof.eventlog.recorder import CheckpointRef, Recorder, Store
from asof.projections.build import build_at
from asof.projections.checkpoint import nearest_checkpoint
from asof.projections.filepins import pin_readonly
from asof.projections.lazy import LAZY_TABLE, base_alias, materialize
from asof.projections.naming import STORAGE_SCHEMA, quote_ident, quote_literal


class HostedState:
    """A state built into the host; shared by handles through a reference count."""

    def __init__(
        self, host: StateHost, name: str, info: TransactionInfo | None, *, owned: bool = True
    ) -> None:
        self.host = host
        self.name = name
        self.info = info
        #: False for a checkpoint read in place: it stays attached (other states share it).
        self.owned = owned
        self.rows = 0  # rows held in the state's own tables (deltas, materialized tables)
        self.hits = 0
        self.materialized = not owned
        self._refs = 1
        self._mutex = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection whose default database is this state."""
        return self.host.cursor(self.name)

    def acquire(self) -> HostedState:
        with self.host.lock:
            if self._refs <= 0:
                raise RuntimeError(f"state {self.name} was already released")
            self._refs += 1
        return self

    def materialize(self, max_rows: int) -> None:
        """Copy the tables that merge a checkpoint with a delta into real tables, so reads
        run at scan speed instead of an anti-join per query. One transaction: handles
        reading the state meanwhile see it before or after, never half-way. Skipped when
        the copies would make the state hold more than `max_rows` rows."""
        with self._mutex:
            if self.materialized:
                return
            self.materialized = True
            cur = self.cursor()
            try:
                merged = cur.execute(
                    f"SELECT l.table_id, b.estimated_size FROM {LAZY_TABLE} AS l "
                    "JOIN duckdb_tables() AS d ON d.database_name = current_database() "
                    f"AND d.schema_name = '{STORAGE_SCHEMA}' AND d.table_name = 'd' || l.table_id "
                    "JOIN duckdb_tables() AS b ON b.database_name = l.alias "
                    f"AND b.schema_name = '{STORAGE_SCHEMA}' AND b.table_name = 't' || l.table_id"
                ).fetchall()
                added = sum(int(n or 0) for _, n in merged)
                if not merged or self.rows + added > max_rows:
                    return
                cur.execute("BEGIN TRANSACTION")
                try:
                    for table_id, _ in merged:
                        materialize(cur, table_id)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                self.rows += added
            finally:
                cur.close()

    def release(self) -> None:
        with self.host.lock:
            self._refs -= 1
            if self._refs == 0 and self.owned:
                self.host.detach(self.name)


class StateHost:
    """The shared instance; `connect` is projections.projection.connect (containment)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.lock = threading.RLock()
        self._names = (f"_asof_state_{i}" for i in itertools.count(1))
        self._closed = False

    def cursor(self, database: str) -> duckdb.DuckDBPyConnection:
        cur = self.con.cursor()
        cur.execute(f"USE {quote_ident(database)}")
        return cur

    def new_database(self) -> str:
        with self.lock:
            name = next(self._names)
            self.con.execute(f"ATTACH ':memory:' AS {quote_ident(name)}")
            return name

    def detach(self, name: str) -> None:
        with self.lock:
            if not self._closed:
                try:
                    self.con.execute(f"DETACH DATABASE IF EXISTS {quote_ident(name)}")
                except duckdb.Error:
                    pass

    def build(self, store: Store, recorder: Recorder, until: int | None) -> HostedState:
        """A new state at `until` (None: the log's head), holding one reference.

        When no transaction follows the nearest checkpoint up to `until`, the checkpoint is
        that state: it is read in place (attached read-only), with nothing to build.
        """
        ref = nearest_checkpoint(recorder, until)
        if ref is not None and _nothing_after(recorder, ref.txn_id, until):
            return self._checkpoint_state(store, ref)
        name = self.new_database()
        cur = self.cursor(name)
        try:
            # Autocommit, as in every build: one transaction over a replay that deletes and
            # re-inserts indexed keys trips DuckDB's constraint check at commit. A failed
            # build is detached whole, so no partial state is ever seen.
            info = build_at(cur, store, recorder, until)
            rows = cur.execute(
                "SELECT coalesce(sum(estimated_size), 0) FROM duckdb_tables() "
                "WHERE database_name = current_database()"
            ).fetchall()[0][0]
        except BaseException:
            cur.close()
            self.detach(name)
            raise
        cur.close()
        state = HostedState(self, name, info)
        state.rows = int(rows)
        return state

    def _checkpoint_state(self, store: Store, ref: CheckpointRef) -> HostedState:
        alias = base_alias(ref.path)
        path = store.resolve(ref.path)
        pin_readonly(path)
        with self.lock:
            self.con.execute(
                f"ATTACH IF NOT EXISTS {quote_literal(str(path))} AS {alias} (READ_ONLY)"
            )
        return HostedState(self, alias, TransactionInfo(ref.txn_id, ref.ts), owned=False)

    def close(self) -> None:
        with self.lock:
            if not self._closed:
                self._closed = True
                self.con.close()


def _nothing_after(recorder: Recorder, txn_id: int, until: int | None) -> bool:
    """Whether the log holds no transaction after `txn_id` up to `until`."""
    head = recorder.head()
    if head is None or head.txn_id == txn_id:
        return True
    if until is None:
        return False
    later = recorder.transactions(after_txn=txn_id, until=until, with_rows=False)
    return next(iter(later), None) is None
