"""A pool of cursors that already hold the AS OF views of one live projection."""

from __future__ import annotations

import threading

import duckdb


class ViewCursors:
    """Cursors on a live projection that already hold the AS OF views, kept between handles
    as a connection pool keeps connections: creating the views costs as much as the rest
    of a handle. Keyed by (projection, `since_txn`): the views are valid while both hold.
    Each remembers the transaction its views point at."""

    def __init__(self, limit: int = 4) -> None:
        self._lock = threading.Lock()
        self._free: list[tuple[tuple[int, int], duckdb.DuckDBPyConnection, int]] = []
        self.limit = limit

    def take(
        self, key: tuple[int, int], want: int | None = None
    ) -> tuple[duckdb.DuckDBPyConnection, int] | None:
        with self._lock:
            stale = [c for k, c, _ in self._free if k != key]
            mine = sorted(
                ((c, at) for k, c, at in self._free if k == key), key=lambda m: m[1] == want
            )  # one already at `want` last, so it needs no SET
            found = mine.pop() if mine else None
            self._free = [(key, c, at) for c, at in mine]
        for cur in stale:
            close_cursor(cur)
        return found

    def give(self, key: tuple[int, int], cur: duckdb.DuckDBPyConnection, at: int) -> None:
        with self._lock:
            if len(self._free) < self.limit:
                self._free.append((key, cur, at))
                return
        close_cursor(cur)

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for _, cur, _ in free:
            close_cursor(cur)


def close_cursor(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.close()
    except duckdb.Error:
        pass  # its connection closed first
