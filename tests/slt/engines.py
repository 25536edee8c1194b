"""The two engines a file runs on: plain DuckDB, and asof through its public API.

Both give an `Outcome` per statement: ok or the error's text, and for queries the rows as
DuckDB's sqllogictest runner prints them (each value cast to VARCHAR by DuckDB, NULL as
`NULL`, the empty string as `(empty)`). DuckDB's values are cast inside DuckDB itself; asof's
come from its `Result` (Arrow) and are cast by a helper DuckDB connection, so whatever
`Result` loses on the way to a user shows up as a difference.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import attrs
import duckdb
import pyarrow as pa

import asof
from asof import Cluster
from asof.projections.live import DatabaseRuntime

DATABASE = "slt"
CLONE = "slt_final_clone"

#: How long an asof writer waits for another connection's write lock. DuckDB lets
#: connections of one script interleave their transactions; asof serialises writers, so in a
#: single-threaded script the second writer can only wait for a lock nobody will release.
#: 30 s (the product's default) per such statement would make the corpus take hours.
SCRIPT_LOCK_TIMEOUT = 0.3


class HarnessError(RuntimeError):
    """The runner cannot do what the file asks (not an engine's outcome)."""


@attrs.frozen
class Outcome:
    ok: bool
    #: queries: the values row by row, as strings; None for statements
    rows: tuple[tuple[str, ...], ...] | None = None
    #: per result column: "int", "float", "decimal", "bool" or "other" (for lenient compares)
    kinds: tuple[str, ...] = ()
    error: str = ""
    error_class: str = ""
    #: asof: the error is not an asof.AsofError (a user must never see one of those)
    foreign_error: bool = False


def _display(v: str | None) -> str:
    if v is None:
        return "NULL"
    if v == "":
        return "(empty)"
    return v.replace("\0", "\\0")


def duckdb_kind(type_name: str) -> str:
    t = type_name.upper()
    if t in ("FLOAT", "DOUBLE", "REAL"):
        return "float"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t == "BOOLEAN":
        return "bool"
    if t in (
        "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
        "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    ):  # fmt: skip
        return "int"
    return "other"


def arrow_kind(t: pa.DataType) -> str:
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    return "other"


_helper = threading.local()


def _helper_con() -> duckdb.DuckDBPyConnection:
    con = getattr(_helper, "con", None)
    if con is None:
        con = duckdb.connect(":memory:", config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
        _helper.con = con
    return con


def format_arrow(table: pa.Table) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """Rows of an Arrow table as DuckDB's runner prints them, and each column's kind."""
    kinds = tuple(arrow_kind(f.type) for f in table.schema)
    if table.num_columns == 0:
        return (), ()
    table = table.rename_columns([f"c{i}" for i in range(table.num_columns)])
    con = _helper_con()
    con.register("__slt_result", table)
    try:
        raw = con.execute("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM __slt_result").fetchall()
    finally:
        con.unregister("__slt_result")
    return tuple(tuple(_display(v) for v in row) for row in raw), kinds


class Engine(Protocol):
    name: str
    #: the system names `skipif`/`onlyif` match for this engine
    systems: frozenset[str]

    def execute(self, connection: str | None, sql: str, query: bool) -> Outcome: ...

    def close_connection(self, connection: str) -> None: ...

    def restart(self) -> None: ...

    def reconnect(self) -> None: ...

    def load(self, path: str | None) -> None: ...

    def state(self) -> dict[str, tuple]: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ state digests
DIGEST_SQL = (
    "SELECT count(*)::BIGINT, sum(hash(__slt_row))::HUGEINT::VARCHAR "
    "FROM (SELECT * FROM {name}) __slt_row"
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_digests(
    tables: dict[str, str], run: Callable[[str], pa.Table]
) -> dict[str, tuple[Any, ...]]:
    """Per user table (label -> quoted name): its columns and types, row count and an
    order-independent hash, computed by plain SELECTs so that any engine and any handle can
    be compared."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, ident in sorted(tables.items()):
        try:
            schema = run(f"SELECT * FROM {ident} LIMIT 0").schema
            counted = run(DIGEST_SQL.format(name=ident))
        except Exception as exc:  # an unreadable table is part of the state, and compared
            out[name] = ("unreadable", f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        out[name] = (
            tuple((f.name, str(f.type)) for f in schema),
            counted.column(0)[0].as_py(),
            counted.column(1)[0].as_py(),
        )
    return out


# ------------------------------------------------------------------ DuckDB
class DuckDBEngine:
    """One DuckDB database (in memory, or a file after `load`); a connection per name."""

    name = "duckdb"
    systems = frozenset({"duckdb"})

    def __init__(self, workdir: Path, *, persistent: bool = False) -> None:
        self.workdir = workdir
        self.path: str | None = None
        if persistent:
            workdir.mkdir(parents=True, exist_ok=True)
            self.path = str(workdir / "duckdb.db")
        self.db = duckdb.connect(self.path or ":memory:")
        self.cons: dict[str, duckdb.DuckDBPyConnection] = {}

    def _con(self, name: str | None) -> duckdb.DuckDBPyConnection:
        if not name:
            return self.db
        con = self.cons.get(name)
        if con is None:
            con = self.cons[name] = self.db.cursor()
        return con

    def execute(self, connection: str | None, sql: str, query: bool) -> Outcome:
        con = self._con(connection)
        try:
            if not query:
                con.execute(sql)
                return Outcome(True)
            rel = con.sql(sql)
            if rel is None:
                return Outcome(True, rows=())
            kinds = tuple(duckdb_kind(str(t)) for t in rel.types)
            raw = rel.query(
                "__slt_result", "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM __slt_result"
            ).fetchall()
            rows = tuple(tuple(_display(v) for v in row) for row in raw)
            return Outcome(True, rows=rows, kinds=kinds)
        except duckdb.Error as exc:
            return Outcome(False, error=str(exc), error_class=type(exc).__name__)

    def close_connection(self, connection: str) -> None:
        con = self.cons.pop(connection, None)
        if con is not None:
            con.close()

    def _close_all(self) -> None:
        for name in list(self.cons):
            self.close_connection(name)
        self.db.close()

    def restart(self) -> None:
        if self.path is None:
            raise HarnessError("cannot restart an in-memory DuckDB database (no `load` first)")
        self._close_all()
        self.db = duckdb.connect(self.path)

    def reconnect(self) -> None:
        for name in list(self.cons):
            self.close_connection(name)

    def load(self, path: str | None) -> None:
        self._close_all()
        if path:
            p = Path(path)
            for f in (p, p.with_name(p.name + ".wal")):
                if f.exists():
                    f.unlink()
        self.path = path or None
        self.db = duckdb.connect(path or ":memory:")

    def state(self) -> dict[str, tuple]:
        con = self.db.cursor()
        try:
            tables = {
                name if schema == "main" else f"{schema}.{name}": ".".join(
                    quote_ident(p) for p in (database, schema, name)
                )
                for database, schema, name in con.execute(
                    "SELECT database_name, schema_name, table_name FROM duckdb_tables() "
                    "WHERE NOT temporary AND NOT internal "
                    "AND database_name = current_database()"
                ).fetchall()
            }
            return table_digests(tables, lambda q: con.sql(q).to_arrow_table())
        finally:
            con.close()

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self._close_all()


# ------------------------------------------------------------------ asof
@contextlib.contextmanager
def lock_timeout(seconds: float) -> Iterator[None]:
    """Shorten the write-lock wait of every database runtime (see SCRIPT_LOCK_TIMEOUT)."""
    old = DatabaseRuntime.lock_timeout
    DatabaseRuntime.lock_timeout = seconds
    try:
        yield
    finally:
        DatabaseRuntime.lock_timeout = old


class AsofEngine:
    """One asof cluster on disk with one database; a `cluster.database` handle (a session
    of its own) per connection name. A name `con@other` is a handle on database `other` of
    the same cluster (for asof's own files, which clone)."""

    name = "asof"
    systems = frozenset({"duckdb", "asof"})

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.generation = 0
        self.dir = workdir / "asof-0"
        self.cluster = Cluster.open(self.dir)
        self.cluster.sql(f"CREATE DATABASE {DATABASE}")
        self.handles: dict[str, asof.Database] = {}
        self._mutex = threading.Lock()

    def _handle(self, name: str | None) -> asof.Database:
        key = name or ""
        with self._mutex:
            h = self.handles.get(key)
            if h is None:
                database = key.split("@", 1)[1] if "@" in key else DATABASE
                h = self.handles[key] = self.cluster.database(database)
            return h

    def execute(self, connection: str | None, sql: str, query: bool) -> Outcome:
        try:
            result = self._handle(connection).sql(sql)
            if not query:
                return Outcome(True)
            rows, kinds = format_arrow(result.arrow())
            return Outcome(True, rows=rows, kinds=kinds)
        except Exception as exc:  # every one is an outcome; foreign ones are findings
            return Outcome(
                False,
                error=str(exc),
                error_class=type(exc).__name__,
                foreign_error=not isinstance(exc, asof.AsofError),
            )

    def close_connection(self, connection: str) -> None:
        with self._mutex:
            h = self.handles.pop(connection, None)
        if h is not None:
            h.close()

    def _close_handles(self) -> None:
        for name in list(self.handles):
            with contextlib.suppress(Exception):
                self.close_connection(name)

    def restart(self) -> None:
        """Reopen the cluster from disk: every later statement reads what the log kept."""
        self._close_handles()
        self.cluster.close()
        self.cluster = Cluster.open(self.dir)

    def reconnect(self) -> None:
        self._close_handles()

    def load(self, path: str | None) -> None:
        """A fresh database, as DuckDB's `load` of a new file (asof is always on disk)."""
        self._close_handles()
        self.cluster.close()
        self.generation += 1
        self.dir = self.workdir / f"asof-{self.generation}"
        self.cluster = Cluster.open(self.dir)
        self.cluster.sql(f"CREATE DATABASE {DATABASE}")

    def state(self) -> dict[str, tuple]:
        self._close_handles()
        return handle_digests(self.cluster.database(DATABASE))

    def close(self) -> None:
        self._close_handles()
        with contextlib.suppress(Exception):
            self.cluster.close()

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def handle_digests(handle: Any) -> dict[str, tuple]:
    """Digests of every user table of an asof handle (live, AS OF or a clone's)."""
    return table_digests(
        {t: ".".join(quote_ident(p) for p in t.split(".", 1)) for t in handle.tables()},
        lambda q: handle.sql(q).arrow(),
    )
