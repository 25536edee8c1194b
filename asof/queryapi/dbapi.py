"""PEP 249 (DB-API 2.0) on top of the handles: `asof.connect()`, connections and cursors.

Tools written for any DB-API driver (pandas' `read_sql`, SQL runners, ORMs' raw layers)
take a connection and cursors and expect `commit()`/`rollback()` to end an implicit
transaction. asof's own handles autocommit by default, as DuckDB's do; a `Connection`
is a `Database` handle in the DB-API's manner: each statement after a commit opens a
transaction that `commit()` ends, unless `autocommit` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from asof.queryapi.cluster import Cluster
from asof.queryapi.database import Database
from asof.queryapi.errors import AsofError, InterfaceError, ProgrammingError
from asof.queryapi.result import Result

apilevel = "2.0"
#: Threads may share the module and connections (handles are thread-safe), not cursors.
threadsafety = 2
paramstyle = "qmark"

Error = AsofError


class Warning(Exception):  # noqa: A001 - the name PEP 249 gives it
    """PEP 249's Warning; asof raises none today, so there is nothing to catch yet."""


def connect(
    path: str | os.PathLike[str] | None = None,
    database: str | None = None,
    *,
    autocommit: bool = False,
    create: bool = False,
    allow_external_access: bool = False,
) -> Connection:
    """Open the cluster at `path` (in memory when None) and connect to `database`.

    `create=True` makes the database when it does not exist. Without `database`, a cluster
    with exactly one database connects to it.
    """
    cluster = Cluster.open(path, allow_external_access=allow_external_access)
    try:
        name = database
        if name is None:
            names = cluster.databases()
            if len(names) != 1:
                raise ProgrammingError(
                    f"say which database to connect to (databases: {', '.join(names) or 'none'})"
                )
            name = names[0]
        if create and name not in cluster.databases():
            handle = cluster.create_database(name)
        else:
            handle = cluster.database(name)
    except BaseException:
        cluster.close()
        raise
    return Connection(handle, cluster=cluster, autocommit=autocommit)


class Connection:
    """A DB-API connection: one `Database` handle (one session), and the cluster it owns
    when `connect()` opened one."""

    def __init__(
        self, handle: Database, *, cluster: Cluster | None = None, autocommit: bool = False
    ) -> None:
        self.handle = handle
        self._cluster = cluster
        self.autocommit = autocommit
        self._closed = False

    def _check(self) -> Database:
        if self._closed:
            raise InterfaceError("the connection is closed")
        return self.handle

    def _begin_implicitly(self) -> None:
        handle = self._check()
        if not self.autocommit and not handle.in_transaction:
            handle.sql("BEGIN")

    def cursor(self) -> Cursor:
        self._check()
        return Cursor(self)

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        """A shortcut DuckDB and sqlite3 users know: a new cursor that ran `operation`."""
        return self.cursor().execute(operation, parameters)

    def commit(self) -> None:
        handle = self._check()
        if handle.in_transaction:
            handle.sql("COMMIT")

    def rollback(self) -> None:
        handle = self._check()
        if handle.in_transaction:
            handle.sql("ROLLBACK")

    def close(self) -> None:
        """Close; an open transaction is rolled back, as PEP 249 asks."""
        if self._closed:
            return
        try:
            if self.handle.in_transaction:
                self.handle.sql("ROLLBACK")
        except AsofError:
            pass
        self._closed = True
        self.handle.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        self.close()


class Cursor:
    """A DB-API cursor: runs statements on its connection's handle and holds one result."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self._result: Result | None = None
        self._closed = False

    def _handle(self) -> Database:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        return self.connection._check()

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        self._handle()
        if not _controls_transactions(operation):
            self.connection._begin_implicitly()
        self._result = self.connection.handle.sql(operation, parameters)
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        handle = self._handle()
        self.connection._begin_implicitly()
        self._result = handle.executemany(operation, seq_of_parameters)
        return self

    def _rows(self) -> Result:
        if self._result is None:
            raise ProgrammingError("no statement was executed on this cursor")
        return self._result

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        result = self._result
        if result is None or not result.columns or _is_count(result):
            return None
        return result.description

    @property
    def rowcount(self) -> int:
        result = self._result
        return result.rowcount if result is not None and _is_count(result) else -1

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows().fetchone()

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        return self._rows().fetchmany(self.arraysize if size is None else size)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows().fetchall()

    def setinputsizes(self, sizes: Sequence[Any]) -> None:
        """Accepted and ignored, as PEP 249 allows."""

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """Accepted and ignored, as PEP 249 allows."""

    def close(self) -> None:
        self._closed = True
        self._result = None

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_count(result: Result) -> bool:
    return result.columns == ["Count"] and result.rowcount >= 0


def _controls_transactions(sql: str) -> bool:
    word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return word in ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT")
