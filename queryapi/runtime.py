"""What one open database needs at run time, shared by every handle on it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventlog.events import Transaction
from eventlog.hlc import HybridClock
from eventlog.recorder import Recorder, Store
from projections.checkpoint import nearest_checkpoint
from projections.host import StateHost
from projections.projection import HostedProjection, Projection
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
        host: Callable[[], StateHost] | None = None,
    ) -> None:
        self.record = record
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.allow_external_access = allow_external_access
        self.read_only = read_only
        self.write_lock = threading.Lock()
        self.catalog_cache = CatalogCache()
        self._projection: Projection | HostedProjection | None = None
        self._retired: list[HostedProjection] = []
        self._host = host
        self._open_lock = threading.Lock()
        self.commit_hooks: list = []
        #: Bumped when the projection is replaced; sessions move their cursor when it changes.
        self.generation = 0

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
    def projection(self) -> Projection | HostedProjection:
        with self._open_lock:
            if self._projection is None:
                self._projection = self._open_projection()
            return self._projection

    def _open_projection(self) -> Projection | HostedProjection:
        if self._hostable():
            assert self._host is not None
            return HostedProjection(self._host().build(self.store, self.recorder, None))
        return self._file_projection()

    def _file_projection(self) -> Projection:
        return Projection(
            None if self.read_only else self.projection_path,
            self.store,
            self.recorder,
            allow_external_access=self.allow_external_access,
        )

    def _hostable(self) -> bool:
        """A clone with no projection file yet, whose state is mostly a shared checkpoint."""
        return (
            self._host is not None
            and not self.read_only
            and not self.allow_external_access  # the host refuses files outside the cluster
            and bool(self.recorder.lineage)
            and not self.projection_path.exists()
            and nearest_checkpoint(self.recorder, None) is not None
        )

    @property
    def hosted(self) -> bool:
        return isinstance(self._projection, HostedProjection)

    def promote(self) -> None:
        """Give a hosted projection its DuckDB file (before the first write or a checkpoint).

        The hosted state stays attached until the runtime closes: sessions and AS OF
        handles may still be reading it, and move to the file at their next statement.
        """
        with self._open_lock:
            current = self._projection
            if not isinstance(current, HostedProjection):
                return
            self._projection = self._file_projection()
            self._retired.append(current)
            self.generation += 1

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
            for retired in self._retired:
                retired.close()
            self._retired.clear()
        self.recorder.close()
