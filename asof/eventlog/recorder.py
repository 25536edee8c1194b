"""The storage roles of the event log, as protocols; backends are sibling modules.

`Store` owns every database's log in one cluster (one directory, or memory); `Recorder` is
one database's log. Callers depend on these protocols only, so a new backend (object storage,
say) slots in without touching them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import attrs
import pyarrow as pa

from asof.eventlog.errors import CorruptionError
from asof.eventlog.events import Event, Transaction, TransactionInfo
from asof.eventlog.hlc import Timestamp


@attrs.frozen
class CheckpointRef:
    """An immutable file holding a database's whole state at one transaction.

    The file's format belongs to the layer that wrote it; the log only keeps it alive while
    some manifest refers to it and checks its checksum.
    """

    path: str  # relative to the store's root
    txn_id: int
    ts: Timestamp
    size: int
    checksum: int  # zlib.crc32 of the whole file


@attrs.frozen
class CompactionReport:
    """What one compaction did to a log's own files (a memory log has no files: zeros).

    rows_dropped counts the row images the log no longer names: its own rows at or before
    the fold, and those of inherited segments the fold made unnecessary.
    """

    segments_before: int
    segments_after: int
    bytes_before: int
    bytes_after: int
    rows_dropped: int


@attrs.frozen
class Lineage:
    """Where a forked log's history comes from: its source's history up to `until` (µs)."""

    source_id: str
    until: int


class Recorder(Protocol):
    """The append-only log of one database (including history inherited from its source)."""

    @property
    def log_id(self) -> str: ...

    @property
    def lineage(self) -> tuple[Lineage, ...]:
        """Nearest first: the source this log was forked from, then that source's source."""
        ...

    def head(self) -> TransactionInfo | None:
        """The newest committed transaction, inherited ones included; None when empty."""
        ...

    def history_start(self) -> TransactionInfo | None:
        """The transaction compaction folded the history into (a checkpoint holds the state
        at it); reads see only later transactions. None when nothing was folded."""
        ...

    def prepare(self, event: Event) -> Event:
        """`event`, with the log's encoding of its rows started ahead of `append` when that
        pays (large rows, a backend that encodes): the caller can go on meanwhile."""
        ...

    def append(
        self, events: Sequence[Event], *, ts: Timestamp, sql: str | None = None
    ) -> Transaction:
        """Record one transaction durably (fsync'd) before returning.

        Its txn_id is head().txn_id + 1. On any failure raise LogIOError and record nothing:
        a later append must succeed once the fault clears.
        """
        ...

    def transactions(
        self, *, after_txn: int = 0, until: int | None = None, with_rows: bool = True
    ) -> Iterator[Transaction]:
        """Committed transactions with txn_id > after_txn and ts.physical <= until, in order."""
        ...

    def last_at(self, until: int) -> int:
        """The id of the last transaction in the log with ts.physical <= until (0: none).

        A search, not a walk: AS OF asks it for every handle."""
        ...

    def rows(
        self, table_id: int, version: int, *, after_txn: int = 0, until: int | None = None
    ) -> pa.Table | None:
        """Every row image of one table version in range, meta columns first.

        Columns: _txn int64, _ts int64 (physical µs), _seq int32 (the event's position in its
        transaction), _op int8, _rid int64, then the table's columns; ordered by (_txn, _seq).
        None when there are none.
        """
        ...

    def seal(self) -> None:
        """Move committed WAL contents into immutable segments (no-op for memory)."""
        ...

    def add_checkpoint(self, ref: CheckpointRef) -> None:
        """Register a checkpoint file (already written and fsync'd) in this log's manifest."""
        ...

    def checkpoints(self, *, until: int | None = None) -> list[CheckpointRef]:
        """Checkpoints visible to this log (inherited ones included) with ts.physical <= until,
        oldest first."""
        ...

    def require(self, txn_id: int, witness: str) -> None:
        """Raise CorruptionError unless the log holds transaction `txn_id`, which `witness`
        (another durable record: a projection, a fork) shows was committed; the log then
        refuses appends, which would reuse the lost txn ids."""
        ...

    def refuse(self, reason: str) -> CorruptionError:
        """Record that this log lost committed transactions (`reason`: how that is known)
        and return the error it raises from now on, naming its file."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """Every log of one cluster, and the shared files they refer to."""

    @property
    def root(self) -> Path:
        """A directory for files the upper layers keep beside the logs (projections)."""
        ...

    def create(self, log_id: str, *, marked: bool = False) -> Recorder:
        """A new, empty log; `marked`: keep a commit mark, a second durable record of the
        last commit, for a log whose commits are rare and all matter (the catalog)."""
        ...

    def open(self, log_id: str, *, marked: bool = False) -> Recorder: ...

    def exists(self, log_id: str) -> bool: ...

    def fork(self, source_id: str, target_id: str, *, until: int) -> Recorder:
        """A new log whose history is the source's up to `until` (µs), sharing its files.

        Writes only metadata: its cost does not grow with the source's size.
        """
        ...

    def compact(
        self, log_id: str, *, fold_txn: int = 0, fold_ts: Timestamp | None = None
    ) -> CompactionReport:
        """Merge the log's own sealed files into few; with fold_txn, also forget its history
        up to that txn, whose state a registered checkpoint (txn_id == fold_txn) holds.

        Reads of later transactions are unchanged; forks keep what they had. Old files stay
        until `gc` finds no manifest naming them.
        """
        ...

    def drop(self, log_id: str) -> None:
        """Forget a log. Files other logs still refer to stay until `gc`."""
        ...

    def new_file_path(self, kind: str, suffix: str) -> Path:
        """A fresh, uniquely named path for a shared immutable file (checkpoints)."""
        ...

    def resolve(self, relative: str) -> Path:
        """The absolute path of a file named in a manifest."""
        ...

    def relative(self, path: Path) -> str: ...

    def close(self) -> None: ...
