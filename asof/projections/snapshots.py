"""Where an AS OF handle reads from: the live projection, its row versions, a cached state,
or a new one.

* T at or after the last transaction the live projection applied (nothing committed after
  T): the state at T is the live state, so the handle reads it through its own cursor inside
  a read transaction. DuckDB's MVCC keeps that snapshot stable while later commits land.
* T in the past, within the live projection's row versions (projections/versions.py: only
  row changes since T): the same read transaction, with a temporary view per table that
  picks the versions current at T.
* T further back: the state never changes (history is immutable), so built states are kept
  in a small LRU keyed by (database, last transaction <= T) and shared by handles through
  reference counts. A state is built into the cluster's state host (projections/host.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs
import duckdb

from asof.eventlog.events import TransactionInfo
from asof.eventlog.hlc import Timestamp
from asof.eventlog.recorder import Recorder
from asof.projections import versions
from asof.projections.apply import applied
from asof.projections.checkpoint import nearest_checkpoint
from asof.projections.host import HostedState, StateHost
from asof.projections.live import DatabaseRuntime
from asof.projections.naming import STATE_TABLE
from asof.projections.viewcursors import close_cursor as _close


class LiveSnapshot:
    """A read transaction on the live projection, pinned at the transaction it holds."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, info: TransactionInfo | None) -> None:
        self.cur = cur
        self.info = info

    @staticmethod
    def covers(rt: DatabaseRuntime, info: TransactionInfo | None, micros: int) -> bool:
        """Whether a projection that applied `info` holds the state at `micros`."""
        head = rt.recorder.head()
        same = (info is None and head is None) or (
            info is not None and head is not None and head.txn_id == info.txn_id
        )
        return same and (info is None or info.ts.physical <= micros)

    #: What its statements bind against, for the guard's shared verdicts.
    scope: object = "live"

    def session_cursor(self) -> duckdb.DuckDBPyConnection:
        return self.cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the snapshot for diff and restore; closing it keeps the snapshot."""
        return _Borrowed(self.cur)  # type: ignore[return-value]

    def repair(self) -> bool:
        """After a failed statement (DuckDB aborts the transaction): start a new read
        transaction; True when it still sees the same state, False when a commit came in."""
        if _intact(self.cur):
            return True
        try:
            self.cur.execute("BEGIN TRANSACTION")
            info = applied(self.cur)
        except duckdb.Error:
            return False
        return (info is None and self.info is None) or (
            info is not None and self.info is not None and info.txn_id == self.info.txn_id
        )

    def close(self) -> None:
        _end(self.cur)


def _intact(cur: duckdb.DuckDBPyConnection) -> bool:
    """Whether a failed statement left `cur`'s read transaction intact (refused before
    DuckDB ran it); if not, it is rolled back for the caller to begin another."""
    try:
        cur.execute(f"SELECT 1 FROM {STATE_TABLE} LIMIT 0").fetchall()
        return True
    except duckdb.Error:
        pass
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass
    return False


@attrs.frozen
class _ReadState:
    """What a new read transaction on the live projection sees."""

    info: TransactionInfo | None
    since: int | None  # where its row versions start (None: it keeps none)


_STATE_SQL = f"SELECT applied_txn, applied_ts, applied_logical, since_txn FROM {STATE_TABLE}"


def _read_transaction(rt: DatabaseRuntime) -> tuple[duckdb.DuckDBPyConnection, _ReadState]:
    """A cursor on the live projection in a new read transaction, and what it holds (one
    round trip: it runs for every AS OF handle)."""
    cur = rt.cursor()  # rows committed but not yet applied go in first
    try:
        return cur, _begin_read(cur)
    except BaseException:
        _end(cur)
        raise


def _begin_read(cur: duckdb.DuckDBPyConnection) -> _ReadState:
    try:
        row = cur.execute(f"BEGIN TRANSACTION; {_STATE_SQL}").fetchall()[0]
    except duckdb.Error:  # a state from a checkpoint older than row versions
        cur.execute("ROLLBACK; BEGIN TRANSACTION")
        return _ReadState(applied(cur), None)
    txn, ts, logical, since = row
    info = None if txn == 0 else TransactionInfo(txn, Timestamp(ts, logical))
    return _ReadState(info, since)


class HostedSnapshot:
    """A handle's share of a built state."""

    def __init__(self, state: HostedState) -> None:
        self.state = state
        self.cur = state.cursor()
        self.scope = ("hosted", state.name)

    def session_cursor(self) -> duckdb.DuckDBPyConnection:
        return self.cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.state.cursor()

    def repair(self) -> bool:
        return True  # statements run in autocommit: a failure leaves nothing behind

    def close(self) -> None:
        try:
            self.cur.close()
        except duckdb.Error:
            pass  # the cluster closed the host first
        finally:
            self.state.release()


class VersionedSnapshot:
    """The live projection's row versions at one past transaction, read through temporary
    views. diff and restore read storage tables by their internal names, which the views
    do not cover: they get a built state.

    The first handle reads in a read transaction (`attach`). Later ones take a pooled
    cursor whose views check coverage as each query binds (`try_fast`): they run in
    autocommit, since the versions of a past state never change while coverage holds, and
    a query that finds it moved fails to bind and is run again on a state built from
    checkpoint + log (`moved`).
    """

    def __init__(
        self,
        cur: duckdb.DuckDBPyConnection,
        txn_id: int,
        views: str,
        build: Callable[[], HostedState],
    ) -> None:
        self.cur = cur
        self.txn_id = txn_id
        self._views = views
        self._build = build
        self._hosted: HostedSnapshot | None = None
        self._pool: tuple[DatabaseRuntime, tuple[int, int]] | None = None  # where `cur` goes
        self.moved = False
        self.scope = "versions"

    @classmethod
    def attach(
        cls,
        rt: DatabaseRuntime,
        cur: duckdb.DuckDBPyConnection,
        state: _ReadState,
        txn_id: int,
        build: Callable[[], HostedState],
    ) -> VersionedSnapshot | None:
        """Turn `cur`'s read transaction into the state at `txn_id`, if the row versions
        reach back that far (None leaves the transaction to the caller)."""
        views = _views_at(rt, cur, state, txn_id)
        if views is None:
            return None
        return cls(cur, txn_id, views, build)

    @classmethod
    def try_fast(
        cls, rt: DatabaseRuntime, txn_id: int, build: Callable[[], HostedState]
    ) -> VersionedSnapshot | None:
        """The common case, with no read transaction: when an earlier handle found the
        tables and coverage reaches `txn_id` (the caller knows a later transaction was
        applied), take a pooled cursor and point its views at `txn_id`."""
        cached = rt.version_tables
        if cached is None or cached[0] > txn_id:
            return None
        rt.sync()  # rows committed at or before `txn_id` but not yet applied go in first
        projection = rt.projection
        key = (id(projection), cached[0])
        taken = rt.view_cursors.take(key, txn_id)
        cur, at = taken if taken is not None else (None, None)
        try:
            if cur is None:
                cur = projection.cursor()
                cur.execute(versions.state_views_sql(cached[1], None, since=cached[0]))
            if at != txn_id:
                cur.execute(f"SET VARIABLE {versions.AT_VARIABLE} = {int(txn_id)}")
        except duckdb.Error:
            if cur is not None:
                _close(cur)
            return None  # a table the cached list names is gone: the careful path sorts it out
        snapshot = cls(cur, txn_id, "", build)
        snapshot._pool = (rt, key)
        return snapshot

    def session_cursor(self) -> duckdb.DuckDBPyConnection:
        return self.cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        if self._hosted is None:
            self._hosted = HostedSnapshot(self._build())
        return self._hosted.cursor()

    def repair(self) -> bool:
        """After a failed statement: False when the versions no longer hold the state (the
        handle moves to a built one), True when the statement itself was at fault."""
        if self._pool is not None:
            rt, key = self._pool
            if versions.marked_since(self.cur) == key[1] and id(rt.projection) == key[0]:
                return True
            self.moved = True
            if rt.version_tables is not None and rt.version_tables[0] == key[1]:
                rt.version_tables = None  # the next handle looks at the tables again
            return False
        if _intact(self.cur):
            return True
        try:
            state = _begin_read(self.cur)
            return self._views == _views_at(None, self.cur, state, self.txn_id)
        except duckdb.Error:
            return False

    def close(self) -> None:
        if self._pool is not None and not self.moved:
            rt, key = self._pool
            rt.view_cursors.give(key, self.cur, self.txn_id)
        else:
            _end(self.cur)
        if self._hosted is not None:
            self._hosted.close()


def _reaches(since: int | None, applied_txn: int, txn_id: int) -> bool:
    """Whether row versions kept from `since` on, in a projection that applied
    `applied_txn`, hold the state at the past transaction `txn_id`."""
    return since is not None and since <= txn_id < applied_txn


def _rolled_back(cur: duckdb.DuckDBPyConnection) -> bool:
    try:
        cur.execute("ROLLBACK")
        return True
    except duckdb.Error:
        return False


def _views_at(
    rt: DatabaseRuntime | None, cur: duckdb.DuckDBPyConnection, state: _ReadState, txn_id: int
) -> str | None:
    """Create the views of the state at `txn_id` in `cur`'s read transaction and return
    their script, or None when the row versions do not reach that far."""
    since, info = state.since, state.info
    if info is None or not _reaches(since, info.txn_id, txn_id):
        return None
    # The tables cannot change while the versions reach back (any DDL moves `since`).
    cached = rt.version_tables if rt is not None else None
    if cached is not None and cached[0] == since:
        tables = cached[1]
    else:
        if versions.has_user_schemas(cur):
            return None
        tables = versions.user_tables(cur)
    script = versions.state_views_sql(tables, txn_id)
    if script:
        try:
            cur.execute(script)
        except duckdb.Error:
            # A table still read from a checkpoint has no history table (none is needed:
            # nothing changed it since `since`), and one from a checkpoint older than row
            # versions has no `_asof_from`: build the state instead.
            return None
    # Later handles take try_fast's path, whose views check the catalog's copy of `since`.
    if rt is not None and since is not None and versions.marked_since(cur) == since:
        rt.version_tables = (since, tables)
    return script


Snapshot = LiveSnapshot | HostedSnapshot | VersionedSnapshot


class StateCache:
    """Built states of past times, most recently used last.

    Bounded in entries and in rows held (deltas, and the tables copied when a state is asked
    for a second time); one state may use at most half the row budget.
    """

    def __init__(
        self,
        host_factory: Callable[[], StateHost],
        *,
        capacity: int = 4,
        max_rows: int = 4_000_000,
    ) -> None:
        self._factory = host_factory
        self._hosts: dict[str, StateHost] = {}
        self._host_lock = threading.Lock()
        self._spare: Future[StateHost] | None = None
        self._starter: ThreadPoolExecutor | None = None
        self._closed = False
        self.capacity = capacity
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], HostedState] = OrderedDict()

    def host(self, db_id: str) -> StateHost:
        """The state host of one database: each database has its own DuckDB instance, so
        that nothing a query can name (catalogs, `duckdb_tables()`, attached files) belongs
        to another database. It lives until the cluster closes.

        Starting an instance costs ~10 ms, more than the first query of a fresh clone, so
        one spare is kept started in the background: a database's first built state takes
        it, and the next spare starts."""
        with self._host_lock:
            host = self._hosts.get(db_id)
            if host is not None:
                return host
            spare, self._spare = self._spare, None
            host = spare.result() if spare is not None else self._factory()
            self._hosts[db_id] = host
            if not self._closed:
                if self._starter is None:
                    self._starter = ThreadPoolExecutor(1, thread_name_prefix="asof-state-host")
                self._spare = self._starter.submit(self._factory)
            return host

    def open(self, rt: DatabaseRuntime, micros: int, *, rebuild: bool = False) -> Snapshot:
        """What a new AS OF handle at `micros` reads from (`rebuild`: a new state, built
        from the log and not shared)."""
        if rebuild:
            return HostedSnapshot(self.host(rt.db_id).build(rt.store, rt.recorder, micros))
        head = rt.recorder.head()
        txn_id = last_txn_at(rt.recorder, micros)
        build = lambda: self.state(rt, micros, txn_id)  # noqa: E731
        if head is not None and txn_id < head.txn_id:
            versioned = VersionedSnapshot.try_fast(rt, txn_id, build)
            if versioned is not None:
                return versioned
        cur, state = _read_transaction(rt)
        try:
            if LiveSnapshot.covers(rt, state.info, micros):
                return LiveSnapshot(cur, state.info)
            versioned = VersionedSnapshot.attach(rt, cur, state, txn_id, build)
            if versioned is not None:
                return versioned
        except BaseException:
            _end(cur)
            raise
        _end(cur)
        return HostedSnapshot(build())

    def state(self, rt: DatabaseRuntime, micros: int, txn_id: int | None = None) -> HostedState:
        """The state at `micros` with one reference held for the caller (`txn_id`: the last
        transaction at or before `micros`, when the caller knows it)."""
        if txn_id is None:
            txn_id = last_txn_at(rt.recorder, micros)
        key = (rt.db_id, txn_id)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                cached.hits += 1
                cached.acquire()
        if cached is not None:
            if cached.hits == 1:  # asked for again: worth a copy that reads at scan speed
                cached.materialize(self.max_rows // 2)
                self._evict()
            return cached
        state = self.host(rt.db_id).build(rt.store, rt.recorder, micros)
        if state.rows > self.max_rows // 2:
            return state  # too big to keep: the handle holds the only reference
        with self._lock:
            previous = self._entries.pop(key, None)  # built twice concurrently
            self._entries[key] = state.acquire()
        if previous is not None:
            previous.release()
        self._evict()
        return state

    def _evict(self) -> None:
        """Drop the least recently used states beyond the entry and row budgets."""
        evicted: list[HostedState] = []
        with self._lock:
            while len(self._entries) > 1 and (
                len(self._entries) > self.capacity
                or sum(s.rows for s in self._entries.values()) > self.max_rows
            ):
                evicted.append(self._entries.popitem(last=False)[1])
        for old in evicted:
            old.release()

    def discard(self, db_id: str | None = None) -> None:
        """Forget cached states (of one database, or all): after DROP DATABASE, and before
        compaction or gc may remove files they read. Handles keep theirs until closed."""
        with self._lock:
            keys = [k for k in self._entries if db_id is None or k[0] == db_id]
            dropped = [self._entries.pop(k) for k in keys]
        for state in dropped:
            state.release()

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        self.discard()
        with self._host_lock:
            self._closed = True
            hosts, self._hosts = list(self._hosts.values()), {}
            spare, self._spare = self._spare, None
            starter, self._starter = self._starter, None
        if spare is not None:
            try:
                hosts.append(spare.result())
            except Exception:  # a spare that failed to start holds nothing
                pass
        if starter is not None:
            starter.shutdown(wait=True)
        for host in hosts:
            host.close()


def last_txn_at(recorder: Recorder, micros: int) -> int:
    """The id of the last transaction with ts.physical <= micros (0: none)."""
    head = recorder.head()
    if head is None:
        return 0
    if head.ts.physical <= micros:
        return head.txn_id
    ref = nearest_checkpoint(recorder, micros)  # folded history lives on in its checkpoint
    return max(ref.txn_id if ref is not None else 0, recorder.last_at(micros))


class _Borrowed:
    """A cursor lent out without its close: the snapshot it reads belongs to the handle."""

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self._cur = cur

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def _end(cur: duckdb.DuckDBPyConnection) -> None:
    _rolled_back(cur)
    _close(cur)
