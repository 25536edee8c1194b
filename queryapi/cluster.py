"""The cluster: every database in one data directory (or in memory), and the catalog."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any

from clone.catalog import CATALOG_LOG_ID, Catalog, DatabaseRecord
from eventlog.errors import LogError
from eventlog.hlc import HybridClock, wall_clock_micros
from eventlog.recorder import Store
from queryapi.cluster_sql import ClusterStatement, parse_cluster_sql
from queryapi.database import Database
from queryapi.errors import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
)
from queryapi.result import Result
from queryapi.runtime import DatabaseRuntime
from queryapi.timeref import format_micros
from queryapi.translate import translate

MAX_NAME_LENGTH = 128


def validate_name(name: object, what: str = "database") -> str:
    if not isinstance(name, str) or not name:
        raise ProgrammingError(f"a {what} name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ProgrammingError(f"{what} name is longer than {MAX_NAME_LENGTH} characters; shorten it")
    if any(ord(c) < 32 for c in name):
        raise ProgrammingError(f"{what} name {name!r} contains control characters; remove them")
    return name


class _ClusterLock:
    """One writing process per data directory; the lock file names the holder's pid."""

    def __init__(self, root: Path) -> None:
        self.path = root / "LOCK"
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            raise OperationalError(
                f"the cluster at {root} is open for writing by process {holder}; close it there "
                "or open with read_only=True"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()

    def release(self) -> None:
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()


class Cluster:
    """A set of databases sharing one clock, one catalog and one store."""

    def __init__(
        self,
        store: Store,
        *,
        allow_external_access: bool = False,
        read_only: bool = False,
        wall=wall_clock_micros,
        lock: _ClusterLock | None = None,
    ) -> None:
        self.store = store
        self.allow_external_access = allow_external_access
        self.read_only = read_only
        self.clock = HybridClock(wall)
        self._lock = lock
        self._closed = False
        self._mutex = threading.RLock()
        self._runtimes: dict[str, DatabaseRuntime] = {}
        if store.exists(CATALOG_LOG_ID):
            catalog_log = store.open(CATALOG_LOG_ID)
        else:
            catalog_log = store.create(CATALOG_LOG_ID)
        self.catalog = Catalog(catalog_log, self.clock)
        self.catalog.load()
        self._seed_clock()

    # ------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        allow_external_access: bool = False,
        read_only: bool = False,
    ) -> Cluster:
        """Open (creating if missing) the cluster in `path`; in memory when path is None."""
        if path is None:
            from eventlog.memory import MemoryStore

            return cls(MemoryStore(), allow_external_access=allow_external_access)
        from eventlog.ipc import IpcStore

        root = Path(path)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OperationalError(f"cannot create the data directory {root}: {exc}") from None
        lock = None if read_only else _ClusterLock(root)
        try:
            store = IpcStore(root)
            return cls(store, allow_external_access=allow_external_access, read_only=read_only,
                       lock=lock)
        except BaseException as exc:
            if lock is not None:
                lock.release()
            raise translate(exc) from None

    def _seed_clock(self) -> None:
        heads = [self.catalog.recorder.head()]
        for rec in self.catalog.live():
            heads.append(self._runtime(rec).recorder.head())
        for head in heads:
            if head is not None:
                self.clock.observe(head.ts)

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the cluster is closed; open it again with Cluster.open()")

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            for rt in self._runtimes.values():
                try:
                    rt.recorder.seal()
                except (LogError, OSError):
                    pass
                rt.close()
            self._runtimes.clear()
            self.catalog.recorder.close()
            self.store.close()
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- databases
    def _runtime(self, rec: DatabaseRecord) -> DatabaseRuntime:
        with self._mutex:
            rt = self._runtimes.get(rec.db_id)
            if rt is None:
                rt = DatabaseRuntime(
                    rec,
                    self.store,
                    self.store.open(rec.db_id),
                    self.clock,
                    allow_external_access=self.allow_external_access,
                    read_only=self.read_only,
                )
                self._runtimes[rec.db_id] = rt
            return rt

    def _record(self, name: str) -> DatabaseRecord:
        validate_name(name)
        rec = self.catalog.get(name)
        if rec is None:
            known = ", ".join(r.name for r in self.catalog.live()) or "none"
            raise ProgrammingError(
                f"database {name!r} does not exist (databases: {known}); create it with "
                f"CREATE DATABASE"
            )
        return rec

    def database(self, name: str) -> Database:
        """A new read-write handle (its own session) on the database called `name`."""
        self._check_open()
        return Database(self, self._runtime(self._record(name)))

    def databases(self) -> list[str]:
        self._check_open()
        return [r.name for r in self.catalog.live()]

    def create_database(self, name: str) -> Database:
        self._check_writable()
        validate_name(name)
        with self._mutex:
            if self.catalog.get(name) is not None:
                raise ProgrammingError(f"database {name!r} already exists; choose another name")
            db_id = self.catalog.new_id()
            self.store.create(db_id)
            try:
                self.catalog.append([self.catalog.create_event(name, db_id)],
                                    sql=f"CREATE DATABASE {name}")
            except BaseException as exc:
                self.store.drop(db_id)
                raise translate(exc) from None
        return self.database(name)

    def drop_database(self, name: str, *, if_exists: bool = False) -> None:
        self._check_writable()
        with self._mutex:
            rec = self.catalog.get(validate_name(name))
            if rec is None:
                if if_exists:
                    return
                self._record(name)
            rt = self._runtimes.pop(rec.db_id, None)
            if rt is not None:
                if not rt.write_lock.acquire(timeout=rt.lock_timeout):
                    self._runtimes[rec.db_id] = rt
                    raise OperationalError(
                        f"database {name!r} has an open write transaction; retry later"
                    )
                rt.close()
                rt.write_lock.release()
            self.catalog.append([self.catalog.drop_event(rec)], sql=f"DROP DATABASE {name}")
            self._discard(rec)

    def _discard(self, rec: DatabaseRecord) -> None:
        """Remove a dropped database's own files; files its clones share stay."""
        path = self.store.root / "projections" / f"{rec.db_id}.duckdb"
        for p in (path, path.with_suffix(".duckdb.wal")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        self.store.drop(rec.db_id)

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError("the cluster was opened read-only; reopen it without read_only=True")

    # ------------------------------------------------------------------ SQL
    def sql(self, query: str) -> Result:
        """Run cluster statements: CREATE DATABASE, DROP DATABASE (TEMPLATE ... AS OF too)."""
        self._check_open()
        result = Result.empty()
        for stmt in parse_cluster_sql(query):
            result = self._run(stmt)
        return result

    def _run(self, stmt: ClusterStatement) -> Result:
        if stmt.verb == "create":
            if stmt.template is None:
                self.create_database(stmt.name)
            else:
                self.clone(stmt.template, stmt.name, as_of=stmt.as_of)
        elif stmt.verb == "drop":
            self.drop_database(stmt.name, if_exists=stmt.if_exists)
        return Result.empty()

    # ---------------------------------------------------------- time window
    def _check_window(self, rt: DatabaseRuntime, micros: int) -> None:
        earliest, latest = self.window(rt.name)
        if micros < earliest or micros > latest:
            where = "before" if micros < earliest else "after"
            raise ProgrammingError(
                f"AS OF {micros} ({format_micros(micros)} UTC) is {where} the window of "
                f"database {rt.name!r}: choose a time from {earliest} ({format_micros(earliest)}) "
                f"to {latest} ({format_micros(latest)}) UTC"
            )

    def window(self, name: str) -> tuple[int, int]:
        """The earliest and latest times (µs) that AS OF can read for a database."""
        rec = self._record(name)
        return self._earliest(rec), self.clock.peek_physical()

    def _earliest(self, rec: DatabaseRecord) -> int:
        return rec.created.physical

    def clone(self, source: str, target: str, *, as_of: Any = None):
        raise ProgrammingError("cloning is not available yet")

    def __repr__(self) -> str:
        return f"<Cluster {self.store.root} databases={len(self.catalog.live())}>"
