"""The cluster: every database in one data directory (or in memory), and the catalog."""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from pathlib import Path
from typing import Any

from asof.clone import retention
from asof.clone.catalog import CATALOG_LOG_ID, Catalog, DatabaseRecord
from asof.clone.cloner import clone_database, recover_interrupted
from asof.clone.operations import CloneRecord
from asof.clone.settings import (
    CREATE_SCHEDULE,
    DELETE_SCHEDULE,
    SET_FLAG,
    SnapshotSchedule,
    parse_flag,
)
from asof.eventlog.errors import CorruptionError as LogCorruption
from asof.eventlog.errors import LogError
from asof.eventlog.events import Event
from asof.eventlog.hlc import HybridClock, wall_clock_micros
from asof.eventlog.recorder import CheckpointRef, CompactionReport, Store
from asof.projections.checkpoint import nearest_checkpoint, write_checkpoint
from asof.projections.host import StateHost
from asof.projections.live import DatabaseRuntime
from asof.projections.projection import connect
from asof.projections.snapshots import StateCache
from asof.queryapi.context import ClusterContext
from asof.queryapi.database import AsOf, Database
from asof.queryapi.errors import (
    AsofError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
)
from asof.queryapi.forensics.checks import CheckTarget, check_databases
from asof.queryapi.forensics.diff import Diff, diff
from asof.queryapi.forensics.restore import RestoreResult, restore_table, undrop_table
from asof.queryapi.forensics.source import Source, as_source
from asof.queryapi.result import Result
from asof.queryapi.sql.cluster_sql import ClusterStatement, parse_cluster_sql
from asof.queryapi.timeref import to_micros
from asof.queryapi.translate import translate, translating

MAX_NAME_LENGTH = 128


def validate_name(name: object, what: str = "database") -> str:
    if not isinstance(name, str) or not name:
        raise ProgrammingError(f"a {what} name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ProgrammingError(
            f"{what} name is longer than {MAX_NAME_LENGTH} characters; shorten it"
        )
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
        self._mutex = threading.RLock()
        self._runtimes: dict[str, DatabaseRuntime] = {}
        self._damaged: dict[str, AsofError] = {}
        self._states = StateCache(
            lambda: StateHost(connect(None, store, allow_external_access=False))
        )
        if store.exists(CATALOG_LOG_ID):
            catalog_log = store.open(CATALOG_LOG_ID, marked=True)
        elif read_only:
            raise OperationalError(f"{store.root} holds no cluster to open read-only")
        else:
            catalog_log = store.create(CATALOG_LOG_ID, marked=True)
        self.catalog = Catalog(catalog_log, self.clock)
        self.catalog.load()
        self.catalog.require_known_logs(store)
        self._ctx = ClusterContext(self.catalog, self.clock, self._states, self.sql)
        self._seed_clock()
        if not read_only:
            recover_interrupted(self.catalog, self.store, self._remove_projection)

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
            from asof.eventlog.memory import MemoryStore

            return cls(MemoryStore(), allow_external_access=allow_external_access)
        from asof.eventlog.ipc import IpcStore

        if not isinstance(path, (str, os.PathLike)) or (isinstance(path, str) and not path):
            raise ProgrammingError(f"a cluster path is a directory name or None, not {path!r}")
        try:
            root = Path(path)
            if read_only and not root.is_dir():
                raise OperationalError(f"no cluster to open read-only: {root} is not a directory")
            if not read_only:
                root.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError, TypeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise OperationalError(
                f"cannot create the data directory {os.fsdecode(path)}: {why}; make it "
                "writable (read_only=True opens an existing one for reading)"
            ) from None
        try:
            lock = None if read_only else _ClusterLock(root)
        except OSError as exc:
            raise OperationalError(
                f"cannot open the data directory {root} for writing ({exc.strerror or exc}); "
                "make it writable, or open it with read_only=True"
            ) from None
        try:
            store = IpcStore(root, read_only=read_only)
            return cls(
                store, allow_external_access=allow_external_access, read_only=read_only, lock=lock
            )
        except BaseException as exc:
            if lock is not None:
                lock.release()
            raise translate(exc) from None

    def _seed_clock(self) -> None:
        heads = [self.catalog.recorder.head()]
        for rec in self.catalog.live():
            try:
                if not self.store.exists(rec.db_id):
                    raise LogCorruption(
                        f"the log of database {rec.name!r} is missing: no directory "
                        f"{self.store.root / 'logs' / rec.db_id}"
                    )
                heads.append(self._runtime(rec).recorder.head())
            except (LogError, AsofError, OSError) as exc:
                # One damaged database must not take the others down: remember why, and
                # raise it whenever that database is used.
                self._damaged[rec.db_id] = translate(exc)
        for rec in self.catalog.live():
            self._check_lineage(rec)
        for head in heads:
            if head is not None:
                self.clock.observe(head.ts)

    def _check_lineage(self, rec: DatabaseRecord) -> None:
        """A clone proves its source committed every transaction the clone inherited: a
        source whose log now ends before that lost them (it is damaged, not the clone)."""
        if rec.source_id is None or rec.as_of is None or rec.db_id in self._damaged:
            return
        source = self._runtimes.get(rec.source_id)
        if source is None or rec.source_id in self._damaged:
            return
        try:
            clone = self._runtimes[rec.db_id].recorder
            if not clone.lineage or clone.lineage[0].source_id != rec.source_id:
                return
            head, clone_head = source.recorder.head(), clone.head()
            if clone_head is None or (head is not None and head.txn_id >= clone_head.txn_id):
                return  # the source holds at least as many transactions as the clone shows
            inherited = clone.last_at(clone.lineage[0].until)
            if head is None or head.txn_id < inherited:
                source.recorder.require(inherited, f"the lineage of its clone {rec.name!r}")
        except (LogError, AsofError, OSError) as exc:
            self._damaged[rec.source_id] = translate(exc)

    def _check_open(self) -> None:
        self._ctx.check_open()

    def close(self) -> None:
        with self._mutex:
            if self._ctx.closed:
                return
            self._ctx.closed = True
            self._states.close()
            for rt in self._runtimes.values():
                if not self.read_only:
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
            if rec.db_id in self._damaged:
                raise self._damaged[rec.db_id]
            rt = self._runtimes.get(rec.db_id)
            if rt is None:
                rt = DatabaseRuntime(
                    rec.name,
                    rec.db_id,
                    self.store,
                    self.store.open(rec.db_id),
                    self.clock,
                    allow_external_access=self.allow_external_access,
                    read_only=self.read_only,
                    host=functools.partial(self._states.host, rec.db_id),
                )
                rt.commit_hooks.append(self._scheduled_checkpoint)
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
        return Database(self._ctx, self._runtime(self._record(name)))

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
                self.catalog.append(
                    [self.catalog.create_event(name, db_id)], sql=f"CREATE DATABASE {name}"
                )
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
                rt.gone = (
                    f"database {name!r} was dropped; this handle no longer works (a database "
                    "created under the same name needs a new handle)"
                )
                rt.close()
                rt.write_lock.release()
            events = [self.catalog.drop_event(rec)]
            for schedule in self.catalog.settings.schedules_for(rec.db_id):
                events.append(
                    Event(DELETE_SCHEDULE, None, 0, {"schedule_id": schedule.schedule_id})
                )
            self.catalog.append(events, sql=f"DROP DATABASE {name}")
            self._states.discard(rec.db_id)
            self._discard(rec)

    def _discard(self, rec: DatabaseRecord) -> None:
        """Remove a dropped database's own files; files its clones share stay."""
        self._remove_projection(rec.db_id)
        self.store.drop(rec.db_id)

    def _remove_projection(self, db_id: str) -> None:
        path = self.store.root / "projections" / f"{db_id}.duckdb"
        for p in (path, path.with_name(path.name + ".wal")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(
                "the cluster was opened read-only; reopen it without read_only=True"
            )

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
    def window(self, name: str) -> tuple[int, int]:
        """The earliest and latest times (µs) that AS OF can read for a database."""
        w = self._ctx.window(self._runtime(self._record(name)))
        return w.earliest, w.latest

    # ------------------------------------------------------------- clones
    def clone(self, source: str, target: str, *, as_of: Any = None) -> CloneRecord:
        """Create `target` as a zero-copy clone of `source` as of `as_of` (µs; now if None)."""
        self._check_writable()
        validate_name(target)
        src = self._record(source)
        rt = self._runtime(src)
        if as_of is None:
            micros = self.clock.peek_physical()
        else:
            micros = to_micros(as_of)
            self._ctx.check_window(rt, micros)
        try:
            rt.settle(micros)
            return clone_database(
                self.catalog, self.store, src, target, micros, cleanup=self._remove_projection
            )
        except Exception as exc:
            raise translate(exc) from None

    @translating
    def list_clones(self, source: str, seq_no: int | None = None) -> list[CloneRecord]:
        """Clone operations of `source` (a name, or the id of a dropped database)."""
        self._check_open()
        rec = self.catalog.get(source) if isinstance(source, str) else None
        if rec is None:
            rec = self.catalog.by_id(source)
        if rec is None:
            self._record(source)
        return self.catalog.clones.list(rec.db_id, None if seq_no is None else int(seq_no))

    # ------------------------------------------------------ flags, schedules
    @property
    def flags(self) -> dict[str, Any]:
        return dict(self.catalog.settings.flags)

    def set_flag(self, name: str, value: Any) -> None:
        """Set a cluster flag (persisted); `enable_db_clone` turns cloning on or off."""
        self._check_writable()
        try:
            parsed = parse_flag(name, value)
        except (KeyError, TypeError):  # TypeError: a name that cannot be a key
            known = ", ".join(sorted(self.catalog.settings.flags))
            raise ProgrammingError(f"unknown flag {name!r}; flags are: {known}") from None
        except ValueError as exc:
            raise ProgrammingError(str(exc)) from None
        self.catalog.append(
            [Event(SET_FLAG, None, 0, {"name": name, "value": parsed})],
            sql=f"set_flag {name} {parsed}",
        )

    def create_snapshot_schedule(
        self, database: str, interval_minutes: int, retention_minutes: int
    ) -> SnapshotSchedule:
        """Checkpoint `database` every interval and keep `retention_minutes` of history."""
        self._check_writable()
        rec = self._record(database)
        for value, what in ((interval_minutes, "interval"), (retention_minutes, "retention")):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ProgrammingError(f"the {what} must be a positive number of minutes")
        if retention_minutes < interval_minutes:
            raise ProgrammingError("retention must be at least as long as the interval")
        schedule_id = self.catalog.new_id()
        self.catalog.append(
            [
                Event(
                    CREATE_SCHEDULE,
                    None,
                    0,
                    {
                        "schedule_id": schedule_id,
                        "db_id": rec.db_id,
                        "interval_minutes": interval_minutes,
                        "retention_minutes": retention_minutes,
                    },
                )
            ],
            sql=f"create_snapshot_schedule {interval_minutes} {retention_minutes} {rec.name}",
        )
        self.checkpoint(rec.name)
        return self.catalog.settings.schedules[schedule_id]

    def list_snapshot_schedules(self) -> list[SnapshotSchedule]:
        self._check_open()
        return sorted(self.catalog.settings.schedules.values(), key=lambda s: s.created)

    def delete_snapshot_schedule(self, schedule_id: str) -> None:
        self._check_writable()
        if not isinstance(schedule_id, str) or schedule_id not in self.catalog.settings.schedules:
            raise ProgrammingError(
                f"no snapshot schedule {schedule_id!r}; list them with list_snapshot_schedules()"
            )
        self.catalog.append([Event(DELETE_SCHEDULE, None, 0, {"schedule_id": schedule_id})])

    def checkpoint(self, database: str) -> CheckpointRef | None:
        """Write a checkpoint of `database` now (schedules do this every interval)."""
        self._check_writable()
        rt = self._runtime(self._record(database))
        try:
            rt.promote()  # a checkpoint is written from a projection file's own instance
            cur = rt.cursor()
            try:
                return write_checkpoint(cur, self.store, rt.recorder)
            finally:
                cur.close()
        except Exception as exc:
            raise translate(exc) from None

    def _scheduled_checkpoint(self, rt: DatabaseRuntime, txn: Any) -> None:
        schedules = self.catalog.settings.schedules_for(rt.db_id)
        if not schedules:
            return
        interval = min(s.interval_minutes for s in schedules) * 60_000_000
        refs = rt.recorder.checkpoints()
        last = refs[-1].ts.physical if refs else 0
        if txn.ts.physical - last >= interval:
            cur = rt.cursor()
            try:
                write_checkpoint(cur, self.store, rt.recorder)
            finally:
                cur.close()

    # ---------------------------------------------------------- maintenance
    @translating
    def check(self, database: str | None = None, *, deep: bool = False) -> list[str]:
        """Problems found in the cluster (or one database); empty when all is sound."""
        self._check_open()
        records = [self._record(database)] if database else self.catalog.live()
        targets = [
            CheckTarget(r.name, r.db_id, functools.partial(self._runtime, r)) for r in records
        ]
        return check_databases(self.store, targets, catalog=database is None, deep=deep)

    def compact(self, database: str | None = None) -> dict[str, CompactionReport]:
        """Merge small segments and fold history older than the retention window into its
        checkpoint. Files a clone, checkpoint or retained history needs are kept; `gc()`
        deletes what is left over."""
        self._check_writable()
        records = [self._record(database)] if database else self.catalog.live()
        self._states.discard()  # cached states may read files compaction stops naming
        reports = {}
        for rec in records:
            rt = self._runtime(rec)
            fold = nearest_checkpoint(rt.recorder, retention.horizon(self.catalog, self.clock, rec))
            try:
                reports[rec.name] = self.store.compact(
                    rec.db_id,
                    fold_txn=fold.txn_id if fold else 0,
                    fold_ts=fold.ts if fold else None,
                )
                if fold is not None:  # AS OF before the fold is refused from now on
                    rt.prune_versions(fold.txn_id)
            except BaseException as exc:
                raise translate(exc) from None
        return reports

    def gc(self) -> list[str]:
        """Delete shared files that no database, clone, checkpoint or history needs."""
        self._check_writable()
        collect = getattr(self.store, "gc", None)
        self._states.discard()
        try:
            return collect() if collect is not None else []
        except BaseException as exc:
            raise translate(exc) from None

    # ------------------------------------------------- forensics, recovery
    def _source(self, handle: Database | AsOf | str, what: str) -> Source:
        if isinstance(handle, str):
            handle = self.database(handle)
        return as_source(handle, what)

    @translating
    def diff(
        self, a: Database | AsOf | str, b: Database | AsOf | str, table: str | None = None
    ) -> Diff:
        """Rows only in a, only in b and changed, per table: handles, or database names for
        their live states."""
        self._check_open()
        sa = self._source(a, "diff")
        try:
            sb = self._source(b, "diff")
        except BaseException:
            sa.cursor.close()
            raise
        return diff(sa, sb, table)

    @translating
    def restore_table(
        self,
        source: Database | AsOf | str,
        table: str,
        into: Database | str,
        *,
        mode: str = "create",
        where: str | None = None,
        key: str | list[str] | tuple[str, ...] | None = None,
        progress: bool | None = None,
    ) -> RestoreResult:
        """Copy `table` from a clone or AS OF handle into `into` as one transaction.

        mode: "create" makes the table (it must not exist), "append" inserts, "replace"
        deletes the target's rows matching `where` first, "upsert" updates rows with equal
        `key` columns and inserts the rest.
        """
        self._check_open()
        target = self.database(into) if isinstance(into, str) else into
        if not isinstance(target, Database):
            raise ProgrammingError("restore writes into a live Database handle (cluster.database)")
        return restore_table(
            self._source(source, "restore_table"),
            table,
            target,
            mode=mode,
            where=where,
            key=key,
            progress=progress,
        )

    @translating
    def undrop_table(
        self, db: Database | str, table: str, *, progress: bool | None = None
    ) -> RestoreResult:
        """Recreate `table` in `db` as it was just before its last DROP TABLE."""
        self._check_open()
        return undrop_table(
            self.database(db) if isinstance(db, str) else db, table, progress=progress
        )

    def __repr__(self) -> str:
        return f"<Cluster {self.store.root} databases={len(self.catalog.live())}>"
