"""Handles on one database: live (read-write) and AS OF (read-only, a new object each time)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from asof.eventlog.events import Transaction
from asof.projections.errors import ProjectionError
from asof.projections.live import DatabaseRuntime
from asof.projections.naming import DISPLAY_NAME_SQL
from asof.projections.snapshots import HostedSnapshot, Snapshot, VersionedSnapshot
from asof.queryapi.context import ClusterContext
from asof.queryapi.errors import AsofError, InterfaceError, ProgrammingError
from asof.queryapi.forensics import history as hist
from asof.queryapi.forensics.history import table_history
from asof.queryapi.forensics.replay import replay
from asof.queryapi.forensics.source import Source
from asof.queryapi.forensics.timeline import timeline
from asof.queryapi.result import Result
from asof.queryapi.sql.cluster_sql import is_cluster_statement
from asof.queryapi.sql.guard import Guard
from asof.queryapi.sql.session import ReadOnlySession, Session
from asof.queryapi.sql.sqlrewrite import time_travel
from asof.queryapi.timeref import format_micros, to_micros
from asof.queryapi.translate import translate, translating

#: A table outside `main` is named `schema.name`.
TABLE_NAMES_SQL = (
    f"SELECT {DISPLAY_NAME_SQL} AS n FROM _asof.tables WHERE kind = 'table' ORDER BY n"
)


class Database:
    """A read-write handle. Each handle is one session: its own transaction state."""

    def __init__(self, context: ClusterContext, runtime: DatabaseRuntime) -> None:
        self._ctx = context
        self._rt = runtime
        self._session: Session | ReadOnlySession | None = None

    @property
    def name(self) -> str:
        return self._rt.name

    @property
    def id(self) -> str:
        return self._rt.db_id

    @property
    def session(self) -> Session | ReadOnlySession:
        """This handle's SQL session: its cursor and its transaction state. Restores write
        through it so that they take part in the handle's transactions."""
        return self._live()

    @property
    def in_transaction(self) -> bool:
        """Whether BEGIN opened a transaction that COMMIT or ROLLBACK has not ended yet
        (also when it failed: then only ROLLBACK ends it)."""
        return self._session is not None and self._session.in_transaction

    @property
    def transaction_status(self) -> str:
        """ "idle", "in transaction" or "failed" (a statement in the transaction failed:
        everything but ROLLBACK is refused), as a psql prompt or a wire server shows it."""
        return "idle" if self._session is None else self._session.transaction_status

    def _check(self) -> None:
        """The cluster is open and this database was not dropped under the handle."""
        self._ctx.check_open()
        if self._rt.gone is not None:
            raise ProgrammingError(self._rt.gone)

    def source(self) -> Source:
        """The live state and a new cursor on it, for diff and restore (close the cursor)."""
        self._check()
        try:
            return Source(self.name, self._rt, None, self._rt.cursor())
        except Exception as exc:
            raise translate(exc) from None

    def _live(self) -> Session | ReadOnlySession:
        self._check()
        if self._session is None:
            try:
                _ = self._rt.projection
            except AsofError:
                raise
            except Exception as exc:
                raise translate(exc) from None
            if self._rt.read_only:
                self._session = ReadOnlySession(
                    self._rt.projection.cursor(),
                    "the cluster was opened read-only",
                    self._rt.store,
                    self._rt.recorder,
                    guard=_guard(self._rt, "read-only"),
                )
            else:
                self._session = Session(self._rt)
                self._session.rewriter = functools.partial(time_travel, self)
        return self._session

    def sql(self, query: str, params: Any = None) -> Result:
        """Run SQL (several statements allowed); return the last statement's result.

        CREATE/DROP DATABASE go to the cluster, as they do from any database in ysqlsh.
        """
        if is_cluster_statement(query):
            return self._ctx.run_sql(query)
        return self._live().execute(query, params)

    execute = sql

    def executemany(self, query: str, params: Iterable[Any]) -> Result:
        """Run one statement once per parameter set, as one transaction (inside the open
        transaction, if there is one): all of them commit, or none does. Returns the total
        affected-row count for DML."""
        if is_cluster_statement(query):
            raise ProgrammingError("CREATE/DROP DATABASE take no parameters; use sql()")
        own = not self.in_transaction
        if own:
            self.sql("BEGIN")
        total, counted = 0, True
        try:
            for row in params:
                result = self.sql(query, row)
                if result.columns == ["Count"] and result.rowcount >= 0:
                    total += result.rowcount
                else:
                    counted = False
            if own:
                self.sql("COMMIT")
        except BaseException:
            if own and self.in_transaction:
                self.sql("ROLLBACK")
            raise
        return Result.count(total) if counted else Result.empty()

    def begin(self) -> None:
        """BEGIN: start a transaction on this handle's session."""
        self.sql("BEGIN")

    def commit(self) -> None:
        self.sql("COMMIT")

    def rollback(self) -> None:
        self.sql("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Database]:
        """`with db.transaction():` commits when the block ends, rolls back if it raises."""
        self.sql("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN")
        try:
            yield self
        except BaseException:
            if self.in_transaction:
                self.sql("ROLLBACK")
            raise
        self.sql("COMMIT")

    def as_of(self, ts: Any, *, rebuild: bool = False) -> AsOf:
        """A read-only handle on this database as it was at `ts` (Unix µs).

        `rebuild=True` builds the state from the checkpoint and the log even when the live
        projection or a cached state holds it (to verify one against the other).
        """
        self._check()
        micros = to_micros(ts)
        self._ctx.check_window(self._rt, micros)
        try:
            self._rt.settle(micros)
        except ProjectionError as exc:
            raise translate(exc) from None
        return AsOf(self._ctx, self._rt, micros, rebuild=rebuild)

    @translating
    def tables(self) -> list[str]:
        """The names of the user's tables (materialized views excluded)."""
        return [r[0] for r in self.sql(TABLE_NAMES_SQL).fetchall()]

    @translating
    def history(
        self,
        table: str,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
    ) -> pa.Table:
        """Every version of the rows of `table` (all tables ever so named), oldest first."""
        self._check()
        return table_history(self._rt, table, where=where, since=since, until=until)

    @translating
    def transactions(
        self, since: Any = None, until: Any = None, table: str | None = None
    ) -> Iterator[Transaction]:
        """Committed transactions with since <= ts.physical <= until, oldest first."""
        self._check()
        return hist.transactions(self._rt, since=since, until=until, table=table)

    @translating
    def transaction_log(
        self, since: Any = None, until: Any = None, table: str | None = None
    ) -> pa.Table:
        """One row per committed transaction (tables, row counts, DDL, SQL), oldest first."""
        self._check()
        return hist.transaction_log(self._rt, since=since, until=until, table=table)

    @translating
    def replay(
        self, since: Any, until: Any, step: Any = None, *, progress: bool | None = None
    ) -> Iterator[tuple[int, AsOf]]:
        """(ts, AS OF handle) pairs walking forward per transaction, or per `step`."""
        self._check()
        return replay(
            self.name, self._rt.recorder, self.as_of, since, until, step, progress=progress
        )

    @translating
    def timeline(self, table: str | None = None, out: Any = None) -> Any:
        """A matplotlib Figure of row events and DDL over time; saved as PNG to `out`."""
        self._check()
        return timeline(self._rt, self._ctx.clones_of(self.id), table=table, out=out)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Database {self.name!r} id={self.id}>"


class AsOf:
    """The state of a database at one past microsecond, for reading only.

    It reads the live projection inside a read transaction when nothing was committed after
    `ts`, else a built state shared through the cluster's cache (projections/snapshots.py).
    """

    def __init__(
        self, context: ClusterContext, runtime: DatabaseRuntime, ts: int, *, rebuild: bool = False
    ) -> None:
        self._ctx = context
        self._rt = runtime
        self.ts = ts
        try:
            self._source: Snapshot | None = context.states.open(runtime, ts, rebuild=rebuild)
        except AsofError:
            raise
        except BaseException as exc:
            raise translate(exc) from None
        self._session = self._new_session()

    def _new_session(self) -> ReadOnlySession:
        assert self._source is not None
        return ReadOnlySession(
            self._source.session_cursor(),
            f"{self._rt.name!r} AS OF {self.ts} ({format_micros(self.ts)} UTC) is read-only; "
            "clone it to write",
            self._rt.store,
            self._rt.recorder,
            guard=_guard(self._rt, self._source.scope),
        )

    @property
    def _con(self) -> Snapshot | None:
        """The snapshot behind this handle; None once closed."""
        return self._source

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor reading this handle's state (close it when done)."""
        if self._source is None:
            raise ProgrammingError("this AS OF handle is closed; call db.as_of(ts) again")
        return self._source.cursor()

    @property
    def name(self) -> str:
        return self._rt.name

    def source(self) -> Source:
        """This state and a cursor on it, for diff and restore (closing it keeps the state)."""
        return Source(f"{self.name}@{self.ts}", self._rt, self.ts, self._cursor())

    def sql(self, query: str, params: Any = None) -> Result:
        if self._source is None:
            raise InterfaceError("this AS OF handle is closed; call db.as_of(ts) again")
        try:
            return self._session.execute(query, params)
        except AsofError as err:
            # A state of its own still reads after a drop; one on the live projection not.
            if self._rt.gone is not None and "closed" in str(err).lower():
                raise ProgrammingError(f"{self._rt.gone}; AS OF handles on it too") from None
            if not self._repair():
                raise
        # The row versions it read moved on (a schema change since): the same state, built.
        return self._session.execute(query, params)

    def _repair(self) -> bool:
        """A failed statement aborts a live snapshot's read transaction: start another on the
        same state, or, when a commit came in since, move to a built state at `ts`. True
        when the statement failed only because its source no longer held the state."""
        source = self._source
        if source is None or source.repair():
            return False
        try:
            state = self._ctx.states.state(self._rt, self.ts)
        except BaseException as exc:
            raise translate(exc) from None
        moved = isinstance(source, VersionedSnapshot) and source.moved
        source.close()
        self._source = HostedSnapshot(state)
        self._session = self._new_session()
        return moved

    execute = sql

    @translating
    def tables(self) -> list[str]:
        """The names of the user's tables (materialized views excluded)."""
        return [r[0] for r in self.sql(TABLE_NAMES_SQL).fetchall()]

    def close(self) -> None:
        if self._source is not None:
            self._session.settle_result()  # its cursor may go back to a pool
            source, self._source = self._source, None
            source.close()

    def __enter__(self) -> AsOf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AsOf {self.name!r} at {self.ts} ({format_micros(self.ts)} UTC)>"


def _guard(rt: DatabaseRuntime, scope: object) -> Guard:
    """A read-only handle's guard: its verdicts are shared with the database's other handles
    on the same `scope` and last while the database's catalog does (an AS OF handle may read
    through the live projection's catalog)."""
    return Guard(
        external=rt.allow_external_access, epoch=rt.catalog_epoch, cache=rt.verdicts, scope=scope
    )
