"""What one open database needs at run time, shared by every handle on it."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from asof.eventlog.events import RowValues, Transaction, TransactionInfo, rows_table
from asof.eventlog.hlc import HybridClock, Timestamp
from asof.eventlog.recorder import Recorder, Store
from asof.projections.apply import advance_sequence, apply_rows, set_applied_sql
from asof.projections.checkpoint import nearest_checkpoint
from asof.projections.errors import ProjectionBehind, ReadOnlyProjection, WriteLockTimeout
from asof.projections.host import StateHost
from asof.projections.keys import KeyTracker
from asof.projections.naming import ROW_ID_SEQUENCE, STATE_TABLE, VERSION_FROM
from asof.projections.projection import (
    HostedProjection,
    Projection,
    ahead_unconfirmed,
    remove_projection,
)
from asof.projections.versions import prune_history
from asof.projections.viewcursors import ViewCursors

log = logging.getLogger(__name__)


class CatalogCache:
    """What writers look up on every statement, kept until the next DDL or rollback.

    Only writers (holding the database's write lock) read or change it.
    """

    def __init__(self) -> None:
        self.tables: dict[str, Any] = {}
        self.has_sequences: bool | None = None
        self.lazy: set[int] | None = None
        self.fast: dict[int, Any] = {}  # table id -> FastTable, or None when not eligible
        #: Counts the clears: what was decided against the catalog holds while it stands.
        self.epoch = 0

    def clear(self) -> None:
        self.epoch += 1
        self.tables.clear()
        self.has_sequences = None
        self.lazy = None
        self.fast.clear()


class DatabaseRuntime:
    """The log, the live projection and the write lock of one database."""

    lock_timeout = 30.0
    #: Rows committed by the fast insert path that may wait, at most, for the projection.
    pending_limit = 4096

    def __init__(
        self,
        name: str,
        db_id: str,
        store: Store,
        recorder: Recorder,
        clock: HybridClock,
        *,
        allow_external_access: bool,
        read_only: bool,
        host: Callable[[], StateHost] | None = None,
    ) -> None:
        self._name = name
        self._db_id = db_id
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.allow_external_access = allow_external_access
        self.read_only = read_only
        self.write_lock = threading.Lock()
        #: Held from a commit's timestamp until it is applied (never while a transaction
        #: waits for its client): what `settle` waits for, instead of the write lock.
        self.commit_lock = threading.RLock()
        self._deferred: list[Transaction] | None = None  # commits whose hooks wait for it
        self._committer: int | None = None
        #: Why handles on this runtime no longer work (set when the database is dropped).
        self.gone: str | None = None
        self.catalog_cache = CatalogCache()
        #: What user statements reach, as queryapi/sql/guard.py found it, shared by the
        #: database's handles and kept per catalog epoch.
        self.verdicts: dict[Any, Any] = {}
        # (since_txn, tables) for AS OF views over row versions (projections/snapshots.py)
        self.version_tables: tuple[int, Any] | None = None
        self.view_cursors = ViewCursors()
        self._projection: Projection | HostedProjection | None = None
        self._retired: list[HostedProjection] = []
        self._host = host
        self._open_lock = threading.Lock()
        self.commit_hooks: list = []
        # Committed and durable, not yet in the projection (see queryapi/sql/fastinsert.py).
        self.pending: list[tuple[int, RowValues, int]] = []  # (table, row, txn id)
        self.pending_last: TransactionInfo | None = None
        self.keys = KeyTracker()  # the pending rows' unique keys, and key bounds
        self.next_row_id: int | None = None  # valid while only the fast path writes
        self._flush_cursor: duckdb.DuckDBPyConnection | None = None
        #: Why the projection may lack transactions the log committed (an apply failed);
        #: None when it holds them all. Set, everything first catches up (`bring_up_to_date`).
        self.stale: BaseException | None = None
        #: True while DuckDB holds a commit the log has not yet taken (a DDL transaction
        #: commits in DuckDB first, see queryapi/sql/session.py): readers wait for the log.
        self.unlogged = False
        #: A rolled-back transaction's sequence moves could not be logged: log them next.
        self.sequences_unlogged = False
        #: Bumped when the projection is replaced; sessions move their cursor when it changes.
        self.generation = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def db_id(self) -> str:
        return self._db_id

    @property
    def projection_path(self) -> Path:
        return self.store.root / "projections" / f"{self.db_id}.duckdb"

    @property
    def projection(self) -> Projection | HostedProjection:
        with self._open_lock:
            if self._projection is None:
                self._projection = self._open_projection()
            return self._projection

    def catalog_epoch(self) -> tuple[int, int]:
        """Changes whenever the catalog may have: a DDL, a rollback, a new projection."""
        return (self.catalog_cache.epoch, self.generation)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the live projection, with every committed transaction applied."""
        projection = self.projection
        self.sync()
        return projection.cursor()

    def stored_high_water(self) -> int | None:
        """The last transaction the projection applied, as stored, before any catch-up
        (None: no projection file yet, or one that opening will rebuild because it holds a
        commit the process stopped before logging)."""
        if self._projection is not None:
            info = self._projection.applied()
            return info.txn_id if info else 0
        if not self.projection_path.exists():
            return None
        con = duckdb.connect(str(self.projection_path), read_only=True)
        try:
            if ahead_unconfirmed(con, self.recorder):
                return None
            return con.execute(f"SELECT applied_txn FROM {STATE_TABLE}").fetchall()[0][0]
        finally:
            con.close()

    def settle(self, micros: int) -> None:
        """Make `micros` a settled past: no commit in flight at or before it, none later.

        A commit holds the commit lock from taking its timestamp until it is in the log and
        the projection, so taking that lock once and moving the clock past `micros` leaves
        nothing that could still land there. An open write transaction holds only the write
        lock while it waits for its client, so this never waits for one.
        """
        if micros < self.clock.last.physical:
            return
        if not self.commit_lock.acquire(timeout=self.lock_timeout):
            raise WriteLockTimeout(
                f"database {self.name!r} has a commit in progress for more than "
                f"{self.lock_timeout:g} s; retry later"
            )
        try:
            self.clock.observe(Timestamp(micros + 1, 0))
        finally:
            self.commit_lock.release()

    def acquire_write_lock(self) -> None:
        """Take the write lock, or raise WriteLockTimeout after `lock_timeout`."""
        if not self.write_lock.acquire(timeout=self.lock_timeout):
            raise WriteLockTimeout(
                f"database {self.name!r} is locked by another write transaction for more "
                f"than {self.lock_timeout:g} s; retry later"
            )

    def prune_versions(self, horizon_txn: int) -> int:
        """Delete the row versions no AS OF inside the window reads (superseded at or
        before `horizon_txn`); returns how many went."""
        if self.read_only or self.hosted:
            return 0
        self.acquire_write_lock()
        try:
            cur = self.writer_cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                removed = prune_history(cur, horizon_txn)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return removed
        finally:
            self.write_lock.release()

    def sync(self) -> None:
        """Apply rows the fast insert path committed, and anything else the log committed
        that the projection lacks, before anything reads the projection."""
        if not self.pending and self.stale is None and not self.unlogged:
            return
        self.acquire_write_lock()
        try:
            self.bring_up_to_date()
        finally:
            self.write_lock.release()

    def bring_up_to_date(self) -> None:
        """Make the projection hold every committed transaction, or raise ProjectionBehind;
        the caller holds the write lock."""
        self.flush()
        if self.stale is not None:
            self._recover(self.stale)

    def flush(self) -> None:
        """Apply the pending rows in one DuckDB transaction; the caller holds the write lock.

        They are already in the log, so if applying them fails the projection catches up
        from the log instead. If that fails too, the rows stay pending (and the high-water
        mark where it was) and ProjectionBehind is raised: nothing may read the projection
        as if it held them.
        """
        if not self.pending:
            return
        # The list empties only once the rows are in: a reader that finds it non-empty
        # waits on the write lock for this flush instead of reading without them.
        pending, last = self.pending, self.pending_last
        assert last is not None
        by_table: dict[tuple[int, bytes], list[tuple[RowValues, int]]] = {}
        for table_id, row, txn_id in pending:
            by_table.setdefault((table_id, row.schema_bytes), []).append((row, txn_id))
        assert self.next_row_id is not None  # the fast path set it before adding rows
        top = self.next_row_id - 1
        cur = None
        try:
            cur = self.writer_cursor()
            cur.execute("BEGIN TRANSACTION")
            for (table_id, _), rows in by_table.items():
                table = rows_table(rows[0][0].schema, [r.values for r, _ in rows])
                txns = pa.array([t for _, t in rows], pa.int64())
                apply_rows(cur, table_id, table.append_column(VERSION_FROM, txns))
            advance_sequence(cur, ROW_ID_SEQUENCE, top)
            cur.execute(f"{set_applied_sql(last)}; COMMIT")
        except Exception as exc:  # DuckDB's errors, or Arrow's should a value not convert
            log.warning("applying committed rows to %s failed (%s); catching up", self.name, exc)
            if cur is not None:
                _rollback(cur)
            self._recover(exc)
            return
        self._pending_applied()

    def _pending_applied(self) -> None:
        self.pending, self.pending_last = [], None
        self.keys.applied()

    def mark_stale(self, cause: BaseException) -> None:
        """A committed transaction did not reach the projection: catch up now if possible,
        else before anything next reads it. Never raises (the commit stands); the caller
        holds the write lock."""
        self.stale = cause
        try:
            self._recover(cause)
        except ProjectionBehind as exc:
            log.warning("%s", exc)

    def _recover(self, cause: BaseException) -> None:
        """Catch the projection up with the log (reopening its DuckDB instance if a failed
        write of its own invalidated it); raise ProjectionBehind if that fails too."""
        try:
            try:
                self.projection.catch_up()
            except duckdb.FatalException:
                self.reopen()  # opening catches up with the log
        except Exception as exc:
            self.stale = exc
            raise ProjectionBehind(
                f"database {self.name!r} could not apply committed transactions to its "
                f"projection ({_first_line(exc)}); they are safe in the log, and reads and "
                "writes resume once the projection catches up (free space or fix the disk)"
            ) from exc
        self.stale = None
        if self.pending:  # the catch-up applied them from the log
            self._pending_applied()
            self.next_row_id = None  # the replay moved the row id sequence past them

    def reopen(self, *, rebuild: bool = False) -> None:
        """Close the projection's DuckDB instance and open it again (`rebuild`: from the log,
        removing its file first). Sessions move to the new one at their next statement;
        cursors on the old one (AS OF handles) fail. The caller holds the write lock."""
        with self._open_lock:
            self.view_cursors.close()
            if self._flush_cursor is not None:
                _close(self._flush_cursor)
                self._flush_cursor = None
            if self._projection is not None:
                old, self._projection = self._projection, None
                try:
                    old.close()
                except Exception as exc:  # its own WAL holds what it could not write
                    log.warning("closing the projection of %s failed: %s", self.name, exc)
            self.generation += 1
            self.version_tables = None
            self.catalog_cache.clear()
            self.keys.forget_bounds()
            if rebuild:
                remove_projection(self.projection_path)
        _ = self.projection  # on failure it stays closed and the next access tries again

    def writer_cursor(self) -> duckdb.DuckDBPyConnection:
        """The fast insert path's own cursor on the live projection file; the caller holds
        the write lock."""
        if self._flush_cursor is None:
            self._flush_cursor = self.projection.cursor()
        return self._flush_cursor

    def _open_projection(self) -> Projection | HostedProjection:
        if self._hostable():
            assert self._host is not None
            return HostedProjection(self._host().build(self.store, self.recorder, None))
        return self._file_projection()

    def _file_projection(self) -> Projection:
        return Projection(
            None if self.read_only else self.projection_path,
            self.store,
            self.recorder,
            allow_external_access=self.allow_external_access,
        )

    def _hostable(self) -> bool:
        """A clone with no projection file yet, whose state is mostly a shared checkpoint."""
        return (
            self._host is not None
            and not self.read_only
            and not self.allow_external_access  # the host refuses files outside the cluster
            and bool(self.recorder.lineage)
            and not self.projection_path.exists()
            and nearest_checkpoint(self.recorder, None) is not None
        )

    @property
    def hosted(self) -> bool:
        return isinstance(self._projection, HostedProjection)

    def promote(self) -> None:
        """Give a hosted projection its DuckDB file (before the first write or a checkpoint).

        The hosted state stays attached until the runtime closes: sessions and AS OF
        handles may still be reading it, and move to the file at their next statement.
        """
        with self._open_lock:
            current = self._projection
            if not isinstance(current, HostedProjection):
                return
            self._projection = self._file_projection()
            if self._flush_cursor is not None:  # only fast inserts made since use it
                self._flush_cursor.close()
                self._flush_cursor = None
            self._retired.append(current)
            self.generation += 1

    def check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyProjection(
                f"database {self.name!r} was opened read-only; open the cluster without "
                "read_only=True to write"
            )

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """Hold the commit lock around a commit; its hooks (a scheduled checkpoint, which
        reads the projection) run after the lock is released, so they never hold up
        `settle` or wait for the write lock while holding it."""
        with self.commit_lock:
            outer = self._deferred is None
            if outer:
                self._deferred, self._committer = [], threading.get_ident()
            try:
                yield
            finally:
                if outer:
                    done, self._deferred, self._committer = self._deferred or [], None, None
        if outer:
            for txn in done:
                self.after_commit(txn)

    def after_commit(self, txn: Transaction) -> None:
        """Run the commit hooks (scheduled checkpoints); the commit stands whatever they do.
        Inside a commit (which holds the commit lock) they wait until it is released."""
        if self._deferred is not None and self._committer == threading.get_ident():
            self._deferred.append(txn)
            return
        for hook in self.commit_hooks:
            try:
                hook(self, txn)
            except Exception:
                log.exception("a commit hook of %s failed", self.name)

    def close(self) -> None:
        if self.pending and self.write_lock.acquire(timeout=self.lock_timeout):
            try:  # not needed (reopening catches up from the log) but cheaper now
                self.flush()
            except Exception:
                log.exception("applying committed rows to %s on close failed", self.name)
            finally:
                self.write_lock.release()
        self.view_cursors.close()
        if self._flush_cursor is not None:
            self._flush_cursor.close()
            self._flush_cursor = None
        with self._open_lock:
            if self._projection is not None:
                try:
                    self._projection.close()
                except Exception:  # the log holds everything; the next open catches up
                    log.exception("closing the projection of %s failed", self.name)
                self._projection = None
            for retired in self._retired:
                retired.close()
            self._retired.clear()
        self.recorder.close()


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass  # DuckDB ended the transaction itself (a failed COMMIT does)


def _close(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.close()
    except duckdb.Error:
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
