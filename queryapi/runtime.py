"""What one open database needs at run time, shared by every handle on it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventlog.events import Transaction
from eventlog.hlc import HybridClock
from eventlog.recorder import Recorder, Store
from projections.projection import Projection
from queryapi.errors import ReadOnlyError

if TYPE_CHECKING:
    from clone.catalog import DatabaseRecord


class CatalogCache:
    """What writers look up on every statement, kept until the next DDL or rollback.

    Only writers (holding the database's write lock) read or change it.
    """

    def __init__(self) -> None:
        self.tables: dict[str, Any] = {}
        self.has_sequences: bool | None = None
        self.lazy: set[int] | None = None

    def clear(self) -> None:
        self.tables.clear()
        self.has_sequences = None
        self.lazy = None


class DatabaseRuntime:
    """The log, the live projection and the write lock of one database."""

    lock_timeout = 30.0

    def __init__(
        self,
        record: DatabaseRecord,
        store: Store,
        recorder: Recorder,
        clock: HybridClock,
        *,
        allow_external_access: bool,
        read_only: bool,
    ) -> None:
        self.record = record
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.allow_external_access = allow_external_access
        self.read_only = read_only
        self.write_lock = threading.Lock()
        self.catalog_cache = CatalogCache()
        self._projection: Projection | None = None
        self._open_lock = threading.Lock()
        self.commit_hooks: list = []

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def db_id(self) -> str:
        return self.record.db_id

    @property
    def projection_path(self) -> Path:
        return self.store.root / "projections" / f"{self.db_id}.duckdb"

    @property
    def projection(self) -> Projection:
        with self._open_lock:
            if self._projection is None:
                self._projection = Projection(
                    None if self.read_only else self.projection_path,
                    self.store,
                    self.recorder,
                    allow_external_access=self.allow_external_access,
                )
            return self._projection

    def check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"database {self.name!r} was opened read-only; open the cluster without "
                "read_only=True to write"
            )

    def after_commit(self, txn: Transaction) -> None:
        for hook in self.commit_hooks:
            hook(self, txn)

    def close(self) -> None:
        with self._open_lock:
            if self._projection is not None:
                self._projection.close()
                self._projection = None
        self.recorder.close()
