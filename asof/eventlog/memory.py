"""An in-memory Store: every log lives in process memory (tests, scratch clusters)."""

from __future__ import annotations

import bisect
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from asof.eventlog.errors import CorruptionError, LogError, UnknownLogError
from asof.eventlog.events import (
    Event,
    Transaction,
    TransactionInfo,
    materialize,
    without_rows,
)
from asof.eventlog.hlc import Timestamp
from asof.eventlog.recorder import CheckpointRef, CompactionReport, Lineage
from asof.eventlog.rows import log_rows


class MemoryRecorder:
    """One database's log in memory; a fork keeps a reference to its source, capped in time."""

    def __init__(
        self,
        log_id: str,
        parent: MemoryRecorder | None = None,
        until: int | None = None,
    ) -> None:
        self._log_id = log_id
        self._parent = parent
        self._until = until
        self._own: list[Transaction] = []
        self._checkpoints: list[CheckpointRef] = []
        self._folded: TransactionInfo | None = None
        self._lock = threading.Lock()
        if parent is not None and until is not None:
            folded = parent._folded
            if folded is not None and folded.ts.physical > until:
                raise LogError(
                    f"log {parent.log_id} has no history before {folded.ts.physical} µs: "
                    "compaction folded it"
                )
            self._folded = folded
            inherited = [t for t in parent._all() if t.ts.physical <= until]
            self._inherited = inherited
            self._inherited_checkpoints = [
                c for c in parent.checkpoints() if c.ts.physical <= until
            ]
        else:
            self._inherited = []
            self._inherited_checkpoints = []

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def lineage(self) -> tuple[Lineage, ...]:
        if self._parent is None or self._until is None:
            return ()
        return (Lineage(self._parent.log_id, self._until), *self._parent.lineage)

    def _all(self) -> list[Transaction]:
        with self._lock:
            return [*self._inherited, *self._own]

    def head(self) -> TransactionInfo | None:
        txns = self._all()
        return txns[-1].info if txns else self._folded

    def history_start(self) -> TransactionInfo | None:
        return self._folded

    def prepare(self, event: Event) -> Event:
        return event  # nothing to encode: rows stay in memory as they are

    def append(
        self, events: Sequence[Event], *, ts: Timestamp, sql: str | None = None
    ) -> Transaction:
        with self._lock:
            tail: Sequence[Transaction | TransactionInfo | None] = (
                self._own or self._inherited or [self._folded]
            )
            last = tail[-1]
            txn_id = 1 if last is None else last.txn_id + 1
            txn = materialize([Transaction(txn_id, ts, tuple(events), sql)])[0]
            self._own.append(txn)
            return txn

    def transactions(
        self, *, after_txn: int = 0, until: int | None = None, with_rows: bool = True
    ) -> Iterator[Transaction]:
        for txn in self._all():
            if txn.txn_id <= after_txn:
                continue
            if until is not None and txn.ts.physical > until:
                break
            yield txn if with_rows else without_rows(txn)

    def last_at(self, until: int) -> int:
        txns = self._all()
        i = bisect.bisect_right(txns, until, key=lambda t: t.ts.physical)
        return txns[i - 1].txn_id if i else 0

    def rows(
        self, table_id: int, version: int, *, after_txn: int = 0, until: int | None = None
    ) -> pa.Table | None:
        return log_rows(self.transactions(after_txn=after_txn, until=until), table_id, version)

    def seal(self) -> None:
        return None

    def compact(self, *, fold_txn: int = 0, fold_ts: Timestamp | None = None) -> CompactionReport:
        """Forget the transactions up to fold_txn and the checkpoints older than it (there
        are no files to merge); the same checks as the durable store."""
        with self._lock:
            current = 0 if self._folded is None else self._folded.txn_id
            if fold_txn <= current:
                return CompactionReport(0, 0, 0, 0, 0)
            checkpoints = [*self._inherited_checkpoints, *self._checkpoints]
            if not any(c.txn_id == fold_txn for c in checkpoints):
                raise LogError(f"log {self._log_id} has no checkpoint at txn {fold_txn}")
            txns = [*self._inherited, *self._own]
            fold = next((t for t in txns if t.txn_id == fold_txn), None)
            if fold is None:
                raise LogError(f"log {self._log_id} has no txn {fold_txn}")
            if fold_ts is not None and fold_ts != fold.ts:
                raise LogError(f"txn {fold_txn} has timestamp {fold.ts}, not {fold_ts}")
            dropped = sum(e.row_count for t in txns if t.txn_id <= fold_txn for e in t.events)
            self._inherited = [t for t in self._inherited if t.txn_id > fold_txn]
            self._own = [t for t in self._own if t.txn_id > fold_txn]
            self._inherited_checkpoints = [
                c for c in self._inherited_checkpoints if c.txn_id >= fold_txn
            ]
            self._checkpoints = [c for c in self._checkpoints if c.txn_id >= fold_txn]
            self._folded = fold.info
        return CompactionReport(0, 0, 0, 0, dropped)

    def add_checkpoint(self, ref: CheckpointRef) -> None:
        with self._lock:
            self._checkpoints.append(ref)

    def checkpoints(self, *, until: int | None = None) -> list[CheckpointRef]:
        with self._lock:
            refs = [*self._inherited_checkpoints, *self._checkpoints]
        return [c for c in refs if until is None or c.ts.physical <= until]

    def require(self, txn_id: int, witness: str) -> None:
        head = self.head()
        last = head.txn_id if head is not None else 0
        if last < txn_id:
            raise self.refuse(
                f"it ends at transaction {last}, but {witness} shows transaction {txn_id} "
                "was committed"
            )

    def refuse(self, reason: str) -> CorruptionError:
        return CorruptionError(f"log {self._log_id} lost committed transactions: {reason}")

    def close(self) -> None:
        return None


class MemoryStore:
    """A Store whose logs live in memory; shared files go to a temporary directory."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="asof-mem-")
        self._logs: dict[str, MemoryRecorder] = {}

    @property
    def root(self) -> Path:
        return Path(self._tmp.name)

    def create(self, log_id: str, *, marked: bool = False) -> MemoryRecorder:
        self._refuse_taken(log_id)
        rec = MemoryRecorder(log_id)
        self._logs[log_id] = rec
        return rec

    def open(self, log_id: str, *, marked: bool = False) -> MemoryRecorder:
        try:
            return self._logs[log_id]
        except KeyError:
            raise UnknownLogError(f"no log {log_id!r}") from None

    def exists(self, log_id: str) -> bool:
        return log_id in self._logs

    def _refuse_taken(self, log_id: str) -> None:
        if log_id in self._logs:
            raise LogError(f"log {log_id!r} already exists")

    def fork(self, source_id: str, target_id: str, *, until: int) -> MemoryRecorder:
        self._refuse_taken(target_id)
        rec = MemoryRecorder(target_id, self.open(source_id), until)
        self._logs[target_id] = rec
        return rec

    def compact(
        self, log_id: str, *, fold_txn: int = 0, fold_ts: Timestamp | None = None
    ) -> CompactionReport:
        return self.open(log_id).compact(fold_txn=fold_txn, fold_ts=fold_ts)

    def drop(self, log_id: str) -> None:
        self._logs.pop(log_id, None)

    def new_file_path(self, kind: str, suffix: str) -> Path:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{uuid.uuid4().hex}{suffix}"

    def resolve(self, relative: str) -> Path:
        return self.root / relative

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    def close(self) -> None:
        self._tmp.cleanup()
