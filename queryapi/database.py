"""Handles on one database: live (read-write) and AS OF (read-only, a new object each time)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from eventlog.events import Transaction
from projections.lazy import build_at
from projections.projection import connect
from queryapi import history as hist
from queryapi.cluster_sql import is_cluster_statement
from queryapi.errors import AsofError, InterfaceError
from queryapi.history import table_history
from queryapi.result import Result
from queryapi.session import ReadOnlySession, Session
from queryapi.sqlrewrite import time_travel
from queryapi.timeref import format_micros, to_micros
from queryapi.translate import translate, translating

if TYPE_CHECKING:
    from queryapi.cluster import Cluster
    from queryapi.runtime import DatabaseRuntime


TABLE_NAMES_SQL = "SELECT name FROM _asof.tables WHERE kind = 'table' ORDER BY name"


class Database:
    """A read-write handle. Each handle is one session: its own transaction state."""

    def __init__(self, cluster: Cluster, runtime: DatabaseRuntime) -> None:
        self._cluster = cluster
        self._rt = runtime
        self._session: Session | None = None

    @property
    def name(self) -> str:
        return self._rt.name

    @property
    def id(self) -> str:
        return self._rt.db_id

    def _live(self) -> Session:
        self._cluster._check_open()
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
            return self._cluster.sql(query)
        return self._live().execute(query, params)

    execute = sql

    def as_of(self, ts: Any) -> AsOf:
        """A read-only handle on this database as it was at `ts` (Unix µs)."""
        micros = to_micros(ts)
        self._cluster._check_window(self._rt, micros)
        self._cluster.pin(self._rt, micros)
        return AsOf(self._cluster, self._rt, micros)

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
        from queryapi.replay import replay

        return replay(self, since, until, step, progress=progress)

    @translating
    def timeline(self, table: str | None = None, out: Any = None) -> Any:
        """A matplotlib Figure of row events and DDL over time; saved as PNG to `out`."""
        from queryapi.timeline import timeline

        return timeline(self._cluster, self, table=table, out=out)

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
    """The state of a database at one past microsecond, for reading only."""

    def __init__(self, cluster: Cluster, runtime: DatabaseRuntime, ts: int) -> None:
        self._cluster = cluster
        self._rt = runtime
        self.ts = ts
        con = connect(None, runtime.store, allow_external_access=False)
        try:
            build_at(con, runtime.store, runtime.recorder, ts)
        except BaseException as exc:
            con.close()
            raise translate(exc) from None
        self._con = con
        self._session = ReadOnlySession(
            con.cursor(),
            f"{runtime.name!r} AS OF {ts} ({format_micros(ts)} UTC) is read-only; "
            "clone it to write",
            runtime.store,
            runtime.recorder,
        )

    @property
    def name(self) -> str:
        return self._rt.name

    def sql(self, query: str, params: Any = None) -> Result:
        if self._con is None:
            raise InterfaceError("this AS OF handle is closed; call db.as_of(ts) again")
        return self._session.execute(query, params)

    execute = sql

    @translating
    def tables(self) -> list[str]:
        """The names of the user's tables (materialized views excluded)."""
        return [r[0] for r in self.sql(TABLE_NAMES_SQL).fetchall()]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> AsOf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AsOf {self.name!r} at {self.ts} ({format_micros(self.ts)} UTC)>"
