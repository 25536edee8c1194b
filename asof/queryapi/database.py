"""Handles on one database: live (read-write) and AS OF (read-only, a new object each time)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from asof.eventlog.events import Transaction
from asof.projections.errors import ProjectionError
from asof.projections.live import DatabaseRuntime
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

TABLE_NAMES_SQL = "SELECT name FROM _asof.tables WHERE kind = 'table' ORDER BY name"


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

    def source(self) -> Source:
        """The live state and a new cursor on it, for diff and restore (close the cursor)."""
        self._ctx.check_open()
        try:
            return Source(self.name, self._rt, None, self._rt.cursor())
        except Exception as exc:
            raise translate(exc) from None

    def _live(self) -> Session | ReadOnlySession:
        self._ctx.check_open()
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

    def as_of(self, ts: Any, *, rebuild: bool = False) -> AsOf:
        """A read-only handle on this database as it was at `ts` (Unix µs).

        `rebuild=True` builds the state from the checkpoint and the log even when the live
        projection or a cached state holds it (to verify one against the other).
        """
        self._ctx.check_open()
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
        return table_history(self._rt, table, where=where, since=since, until=until)

    @translating
    def transactions(
        self, since: Any = None, until: Any = None, table: str | None = None
    ) -> Iterator[Transaction]:
        """Committed transactions with since <= ts.physical <= until, oldest first."""
        return hist.transactions(self._rt, since=since, until=until, table=table)

    @translating
    def transaction_log(
        self, since: Any = None, until: Any = None, table: str | None = None
    ) -> pa.Table:
        """One row per committed transaction (tables, row counts, DDL, SQL), oldest first."""
        return hist.transaction_log(self._rt, since=since, until=until, table=table)

    @translating
    def replay(
        self, since: Any, until: Any, step: Any = None, *, progress: bool | None = None
    ) -> Iterator[tuple[int, AsOf]]:
        """(ts, AS OF handle) pairs walking forward per transaction, or per `step`."""
        return replay(
            self.name, self._rt.recorder, self.as_of, since, until, step, progress=progress
        )

    @translating
    def timeline(self, table: str | None = None, out: Any = None) -> Any:
        """A matplotlib Figure of row events and DDL over time; saved as PNG to `out`."""
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
        except AsofError:
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
