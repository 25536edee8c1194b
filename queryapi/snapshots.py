"""Where an AS OF handle reads from: the live projection, a cached state, or a new one.

* T at or after the last transaction the live projection applied (nothing committed after
  T): the state at T is the live state, so the handle reads it through its own cursor inside
  a read transaction. DuckDB's MVCC keeps that snapshot stable while later commits land.
* T in the past: the state never changes (history is immutable), so built states are kept
  in a small LRU keyed by (database, last transaction <= T) and shared by handles through
  reference counts. A state is built into the cluster's state host (projections/host.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb

from eventlog.events import TransactionInfo
from eventlog.recorder import Recorder
from projections.apply import applied
from projections.checkpoint import nearest_checkpoint
from projections.host import HostedState, StateHost
from projections.naming import STATE_TABLE

if TYPE_CHECKING:
    from queryapi.runtime import DatabaseRuntime


class LiveSnapshot:
    """A read transaction on the live projection, pinned at the transaction it holds."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, info: TransactionInfo | None) -> None:
        self.cur = cur
        self.info = info

    @classmethod
    def open(cls, rt: DatabaseRuntime, micros: int) -> LiveSnapshot | None:
        """The snapshot when the live state is the state at `micros`, else None."""
        cur = rt.cursor()  # rows committed but not yet applied go in first
        try:
            cur.execute("BEGIN TRANSACTION")
            info = applied(cur)  # the first read fixes the snapshot
            head = rt.recorder.head()
        except BaseException:
            cur.close()
            raise
        same = (info is None and head is None) or (
            info is not None and head is not None and head.txn_id == info.txn_id
        )
        if not same or (info is not None and info.ts.physical > micros):
            _end(cur)
            return None
        return cls(cur, info)

    def session_cursor(self) -> duckdb.DuckDBPyConnection:
        return self.cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the snapshot for diff and restore; closing it keeps the snapshot."""
        return _Borrowed(self.cur)  # type: ignore[return-value]

    def repair(self) -> bool:
        """After a failed statement (DuckDB aborts the transaction): start a new read
        transaction; True when it still sees the same state, False when a commit came in."""
        try:
            self.cur.execute(f"SELECT 1 FROM {STATE_TABLE} LIMIT 0").fetchall()
            return True  # refused before DuckDB ran it: the transaction is intact
        except duckdb.Error:
            pass
        try:
            self.cur.execute("ROLLBACK")
        except duckdb.Error:
            pass
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


class HostedSnapshot:
    """A handle's share of a built state."""

    def __init__(self, state: HostedState) -> None:
        self.state = state
        self.cur = state.cursor()

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


Snapshot = LiveSnapshot | HostedSnapshot


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
        self._host: StateHost | None = None
        self.capacity = capacity
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], HostedState] = OrderedDict()

    @property
    def host(self) -> StateHost:
        with self._lock:
            if self._host is None:
                self._host = self._factory()
            return self._host

    def open(self, rt: DatabaseRuntime, micros: int, *, rebuild: bool = False) -> Snapshot:
        """What a new AS OF handle at `micros` reads from (`rebuild`: a new state, built
        from the log and not shared)."""
        if rebuild:
            return HostedSnapshot(self.host.build(rt.store, rt.recorder, micros))
        live = LiveSnapshot.open(rt, micros)
        if live is not None:
            return live
        return HostedSnapshot(self.state(rt, micros))

    def state(self, rt: DatabaseRuntime, micros: int) -> HostedState:
        """The state at `micros` with one reference held for the caller."""
        key = (rt.db_id, last_txn_at(rt.recorder, micros))
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
        state = self.host.build(rt.store, rt.recorder, micros)
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
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None


def last_txn_at(recorder: Recorder, micros: int) -> int:
    """The id of the last transaction with ts.physical <= micros (0: none)."""
    head = recorder.head()
    if head is None:
        return 0
    if head.ts.physical <= micros:
        return head.txn_id
    ref = nearest_checkpoint(recorder, micros)
    last = ref.txn_id if ref is not None else 0
    for txn in recorder.transactions(after_txn=last, until=micros, with_rows=False):
        last = txn.txn_id
    return last


class _Borrowed:
    """A cursor lent out without its close: the snapshot it reads belongs to the handle."""

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self._cur = cur

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def _end(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass
    try:
        cur.close()
    except duckdb.Error:
        pass
