"""Handles on one database: live (read-write) and AS OF (read-only, a new object each time)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from eventlog.events import LOG_ROW_META, RowOp, Transaction
from projections import kinds
from projections.lazy import build_at
from projections.projection import connect
from queryapi.cluster_sql import is_cluster_statement
from queryapi.errors import InterfaceError, ProgrammingError
from queryapi.result import Result
from queryapi.session import ReadOnlySession, Session
from queryapi.timeref import format_micros, to_micros
from queryapi.translate import translate

if TYPE_CHECKING:
    from queryapi.cluster import Cluster
    from queryapi.runtime import DatabaseRuntime

_OP_NAMES = {int(RowOp.INSERT): "insert", int(RowOp.UPDATE): "update", int(RowOp.DELETE): "delete"}


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
            if self._rt.read_only:
                self._rt.projection.catch_up()
                self._session = ReadOnlySession(
                    self._rt.projection.cursor(), "the cluster was opened read-only"
                )
            else:
                self._session = Session(self._rt)
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

    def tables(self) -> list[str]:
        return [
            r[0]
            for r in self.sql(
                "SELECT name FROM _asof.tables WHERE kind = 'table' ORDER BY name"
            ).fetchall()
        ]

    def history(
        self,
        table: str,
        *,
        since: Any = None,
        until: Any = None,
    ) -> pa.Table:
        """Every row event of `table` (all tables ever so named), oldest first."""
        return table_history(self._rt, table, since=since, until=until)

    def transactions(self, since: Any = None, until: Any = None) -> Iterator[Transaction]:
        """Committed transactions with since <= ts.physical <= until, oldest first."""
        lo = None if since is None else to_micros(since)
        hi = None if until is None else to_micros(until)
        for txn in self._rt.recorder.transactions(until=hi):
            if lo is None or txn.ts.physical >= lo:
                yield txn

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
        )

    @property
    def name(self) -> str:
        return self._rt.name

    def sql(self, query: str, params: Any = None) -> Result:
        if self._con is None:
            raise InterfaceError("this AS OF handle is closed; call db.as_of(ts) again")
        return self._session.execute(query, params)

    execute = sql

    def tables(self) -> list[str]:
        return [
            r[0]
            for r in self.sql(
                "SELECT name FROM _asof.tables WHERE kind = 'table' ORDER BY name"
            ).fetchall()
        ]

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


def table_history(
    rt: DatabaseRuntime, table: str, *, since: Any = None, until: Any = None
) -> pa.Table:
    """Every version of every row of the tables named `table`, in commit order."""
    lo = None if since is None else to_micros(since)
    hi = None if until is None else to_micros(until)
    versions: dict[int, set[int]] = {}
    names: dict[int, str] = {}
    for txn in rt.recorder.transactions(until=hi, with_rows=False):
        for event in txn.events:
            if event.kind == kinds.CREATE_TABLE:
                names[event.table_id] = event.data["name"]
                versions.setdefault(event.table_id, {1})
            elif event.kind == kinds.RENAME_TABLE:
                names[event.table_id] = event.data["new"]
                if event.data["old"].lower() == table.lower():
                    versions.setdefault(event.table_id, set())
            elif event.kind in (kinds.ALTER_TABLE, kinds.ROWS) and event.table_id in versions:
                versions[event.table_id].add(event.version)
    wanted = {tid for tid in versions if names.get(tid, "").lower() == table.lower()} | {
        tid for tid, n in names.items() if n.lower() == table.lower()
    }
    if not wanted:
        raise ProgrammingError(
            f"no table named {table!r} was ever in database {rt.name!r}; list tables with "
            "SHOW TABLES"
        )
    parts = []
    for tid in sorted(wanted):
        for version in sorted(versions.get(tid, {1})):
            rows = rt.recorder.rows(tid, version, until=hi)
            if rows is None:
                continue
            if lo is not None:
                import pyarrow.compute as pc

                rows = rows.filter(pc.greater_equal(rows.column("_ts"), lo))
            ops = pa.array([_OP_NAMES[o] for o in rows.column("_op").to_pylist()], pa.string())
            meta = {
                "ts": rows.column("_ts"),
                "txn_id": rows.column("_txn"),
                "op": ops,
                "row_id": rows.column("_rid"),
                "table_id": pa.repeat(pa.scalar(tid, pa.int64()), rows.num_rows),
            }
            values = {c: rows.column(c) for c in rows.column_names if c not in LOG_ROW_META}
            parts.append(pa.table({**meta, **values}))
    if not parts:
        return pa.table(
            {
                "ts": pa.array([], pa.int64()),
                "txn_id": pa.array([], pa.int64()),
                "op": pa.array([], pa.string()),
                "row_id": pa.array([], pa.int64()),
                "table_id": pa.array([], pa.int64()),
            }
        )
    out = pa.concat_tables(parts, promote_options="permissive")
    return out.sort_by([("txn_id", "ascending")])
