"""One process-wide read-only attachment of every checkpoint file a state reads from.

DuckDB registers attached files by path for the whole process. When the last DuckDB
instance holding a file detaches it (or closes) while something inside still pins the
database, the next instance to attach that path is handed the half-released database to
re-use, and in DuckDB 2.0 that hand-over can wait forever. A checkpoint is immutable and
only ever attached read-only, so asof keeps one quiet instance that attaches each checkpoint
before any state host does and detaches it only once the file is gone: the path is then
always attached somewhere, and every other attach takes DuckDB's ordinary shared read-only
route.
"""

from __future__ import annotations

import os
import threading

import duckdb

from asof.projections.naming import quote_literal

_lock = threading.Lock()
_holder: duckdb.DuckDBPyConnection | None = None
_pinned: dict[str, str] = {}
_serial = 0


def pin_readonly(path: str | os.PathLike[str]) -> None:
    """Attach `path` read-only in the holder instance, once per process.

    A file that cannot be attached is left alone: the caller's own ATTACH reports it.
    """
    global _holder, _serial
    key = os.fspath(path)
    with _lock:
        if key in _pinned:
            return
        _release_missing()
        if _holder is None:
            _holder = duckdb.connect(":memory:")
        _serial += 1
        alias = f"pin{_serial}"
        try:
            _holder.execute(f"ATTACH {quote_literal(key)} AS {alias} (READ_ONLY)")
        except duckdb.Error:
            return
        _pinned[key] = alias


def _release_missing() -> None:
    """Detach checkpoints whose file was collected, so their disk space comes back."""
    assert _holder is not None or not _pinned
    for key, alias in list(_pinned.items()):
        if not os.path.exists(key):
            try:
                _holder.execute(f"DETACH {alias}")  # type: ignore[union-attr]
            except duckdb.Error:
                continue
            del _pinned[key]
