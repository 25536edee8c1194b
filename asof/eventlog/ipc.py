"""The durable Store: a WAL per log, shared immutable Arrow IPC segments, JSON manifests.

A log is its manifest plus its WAL, so a fork is a new manifest naming the source's segments
with a time cap: no data is copied. Shared files are deleted only by `gc`, once no manifest
refers to them. One process at a time may open a store directory for writing.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pyarrow as pa

from asof.eventlog import manifest as mf
from asof.eventlog import walbulk, walseg
from asof.eventlog.compact import compact_manifest, fold_point, rebase
from asof.eventlog.errors import CorruptionError, LogError, LogIOError, UnknownLogError
from asof.eventlog.events import Event, Transaction, TransactionInfo, materialize
from asof.eventlog.fsutil import fsync_dir, remove_tree, try_lock, unlock
from asof.eventlog.groupcommit import GroupCommit
from asof.eventlog.hlc import Timestamp
from asof.eventlog.holds import ReadHolds
from asof.eventlog.layout import MANIFEST_FILE, MARK_FILE, SEGMENTS, WAL_FILE, Layout, check_name
from asof.eventlog.maintenance import collect_garbage, verify
from asof.eventlog.manifest import Manifest
from asof.eventlog.mark import CommitMark
from asof.eventlog.mark import read as read_mark
from asof.eventlog.reader import LogView, decode_tail, last_txn_id, sealed_head
from asof.eventlog.recorder import CheckpointRef, CompactionReport, Lineage
from asof.eventlog.seal import plan, write_segments
from asof.eventlog.segment import SegmentCache
from asof.eventlog.wal import Wal, encode_body, encode_payload
from asof.eventlog.walrow import RowBody

log = logging.getLogger(__name__)


class IpcRecorder:
    """One log: the sealed segments its manifest lists plus the decoded WAL tail in memory.

    Appends are group-committed (see groupcommit.py); seals, checkpoint registration and
    close take an exclusive turn between commits, so the manifest and WAL change together.

    Opening only reads (a torn WAL tail is skipped, and cut by the first write). The first
    write takes an exclusive flock on the log directory, held until close, and catches up
    with the disk if another writer changed it meanwhile; so read-only users of a store
    (another process, say) never damage the writer, and a second writer fails with
    LogIOError instead of corrupting the log. Once a lost commit is proven (`require`),
    the log refuses every append: its next txn id would reuse a committed one.
    """

    def __init__(
        self, store: IpcStore, log_id: str, directory: Path, *, marked: bool = False
    ) -> None:
        self._store = store
        self._log_id = log_id
        self._dir = directory
        self._manifest_path = directory / MANIFEST_FILE
        self._writer_fd: int | None = None
        self._deferred_from: int | None = None  # tail index of the first RowValues commit
        self._damage: CorruptionError | None = None  # set once a lost commit is proven
        # Opening only reads: a torn tail is cut before the first append (see `_claim`),
        # after whatever else proves commits (`require`) had its say.
        self._manifest, self._wal, self._tail = self._load()
        self._head_cache: tuple[Manifest, TransactionInfo | None] | None = None
        self._lock = threading.Lock()  # guards swapping _manifest / _tail for readers
        self._group: GroupCommit[_Pending, Transaction] = GroupCommit(self._commit)
        self._compacting = threading.Lock()
        self._closed = False
        self._dir_synced = True  # False: a rotation's rename awaits its directory fsync
        self._mark: CommitMark | None = None
        if marked:
            self._mark = CommitMark(directory / MARK_FILE)
            try:
                marked_txn = read_mark(self._mark.path)
            except CorruptionError as exc:  # the mark only ever proves more: go on without
                log.warning("%s; it proves nothing until the next commit rewrites it", exc)
                marked_txn = None
            if marked_txn is not None:
                try:
                    self.require(marked_txn, f"its commit mark {self._mark.path}")
                except CorruptionError:
                    self.close()
                    raise

    def _load(self) -> tuple[Manifest, Wal, list[Transaction]]:
        """Read manifest and WAL; retry if a writer elsewhere sealed in between."""
        for attempt in range(5):
            manifest = mf.read(self._manifest_path)
            wal, payloads = Wal.open(
                self._dir / WAL_FILE, repair=False, read_only=self._store.read_only
            )
            try:
                return manifest, wal, decode_tail(payloads, manifest, wal.path)
            except CorruptionError:
                wal.close()
                if attempt == 4 or mf.read(self._manifest_path) == manifest:
                    raise
        raise AssertionError("unreachable")

    @property
    def wal_path(self) -> Path:
        return self._wal.path

    @property
    def damage(self) -> CorruptionError | None:
        """Why this log refuses appends (a lost commit was proven), or None."""
        return self._damage

    def refuse(self, reason: str) -> CorruptionError:
        """Record that this log lost committed transactions (`reason` says how that is
        known): from now on it refuses appends, which would reuse their txn ids."""
        if self._damage is None:
            self._damage = CorruptionError(
                f"WAL {self._wal.path} lost committed transactions: {reason}",
                str(self._wal.path),
            )
        return self._damage

    def require(self, txn_id: int, witness: str) -> None:
        """Raise CorruptionError (and refuse appends) unless the log holds transaction
        `txn_id`, which `witness` (another durable record) shows was committed."""
        head = self.head()
        last = head.txn_id if head is not None else 0
        if last < txn_id:
            raise self.refuse(
                f"it ends at transaction {last}, but {witness} shows transaction {txn_id} was committed"
            )
        if self._damage is not None:
            raise self._damage

    def _claim(self) -> None:
        """Become the log's only writer, first catching up with what is on disk."""
        if self._damage is not None:
            raise self._damage
        if self._writer_fd is not None:
            return
        if self._store.read_only:
            raise LogIOError(f"log {self._log_id} was opened read-only")
        fd = try_lock(self._dir, wait=0.5)
        if fd is None:
            raise LogIOError(
                f"log {self._log_id} is being written by another process or store object"
            )
        try:
            walseg.remove_leftovers(self._wal.path)
            manifest = mf.read(self._manifest_path)
            if manifest != self._manifest or self._wal.changed_on_disk():
                tail = decode_tail(self._wal.reload(), manifest, self._wal.path)
                with self._lock:
                    self._manifest, self._tail = manifest, tail
                    self._deferred_from = None
        except BaseException:
            unlock(fd)
            raise
        self._writer_fd = fd

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def lineage(self) -> tuple[Lineage, ...]:
        return self._manifest.lineage

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def closed(self) -> bool:
        return self._closed

    def _view(self) -> LogView:
        with self._lock:
            view = LogView(self._manifest, self._settle()[:], self._store.cache)
        self._store.holds.hold(view)
        return view

    def head(self) -> TransactionInfo | None:
        view = self._view()
        if view.tail:
            return view.tail[-1].info
        cached = self._head_cache
        if cached is not None and cached[0] is view.manifest:
            return cached[1]
        info = sealed_head(view.manifest, self._store.cache)
        self._head_cache = (view.manifest, info)
        return info

    def history_start(self) -> TransactionInfo | None:
        return self._manifest.folded

    # Writing

    def prepare(self, event: Event) -> Event:
        """See Recorder.prepare: large rows start encoding in a worker thread now."""
        return walbulk.prepare(event)

    def append(
        self, events: Sequence[Event], *, ts: Timestamp, sql: str | None = None
    ) -> Transaction:
        """Durable on return. Event data reads back (and is returned) as its JSON value."""
        if self._closed:
            raise LogIOError(f"log {self._log_id} is closed")
        body, normalized = encode_body(events, ts, sql)
        txn = self._group.submit(_Pending(body, normalized, ts, sql))
        # Seal on size, and on count: many small transactions in the WAL tail make every
        # read decode them one by one, where a sealed segment is read column-wise.
        if self._wal.size > self._store.seal_bytes or len(self._tail) > self._store.seal_txns:
            try:
                self.seal()
            except Exception:  # the append is durable in the WAL; sealing can wait
                log.exception("automatic seal of log %s failed", self._log_id)
        return txn

    def _commit(self, batch: list[_Pending]) -> list[Transaction]:
        """Write and fsync one group of transactions (GroupCommit's leader calls this)."""
        if self._closed:
            raise LogIOError(f"log {self._log_id} is closed")
        self._claim()
        if not self._dir_synced:  # the WAL's own name must be durable before its frames
            try:
                fsync_dir(self._dir)
            except OSError as exc:
                raise LogIOError(f"cannot fsync log {self._log_id}: {exc}") from exc
            self._dir_synced = True
        last = self._tail[-1].txn_id if self._tail else self._manifest.last_sealed_txn
        ids = range(last + 1, last + 1 + len(batch))
        self._wal.append([encode_payload(i, p.body) for i, p in zip(ids, batch, strict=True)])
        if self._mark is not None:
            try:
                self._mark.write(ids[-1])
            except OSError as exc:  # the commit is durable; the mark just proves less
                log.warning("cannot write the commit mark of log %s: %s", self._log_id, exc)
        txns = [Transaction(i, p.ts, p.events, p.sql) for i, p in zip(ids, batch, strict=True)]
        with self._lock:
            if self._deferred_from is None and any(isinstance(p.body, RowBody) for p in batch):
                self._deferred_from = len(self._tail)
            self._tail.extend(txns)
        return txns

    def _settle(self) -> list[Transaction]:
        """The tail, with the rows of single-row commits (RowValues) built into Arrow, all
        at once, before anything reads them; the caller holds self._lock."""
        start = self._deferred_from
        if start is not None:
            self._tail[start:] = materialize(self._tail[start:])
            self._deferred_from = None
        return self._tail

    def seal(self) -> None:
        with self._group.exclusive():
            if self._closed or (not self._tail and self._writer_fd is None):
                return  # nothing to seal: no need to become the writer
            self._claim()
            self._seal()

    def _seal(self) -> None:
        with self._lock:
            tail = self._settle()
        if not tail:
            return
        store = self._store
        runs, located = plan(tail, store._new_segment)
        txns_path = store._new_segment()
        paths = [r.path for r in runs] + [txns_path]
        try:
            refs = write_segments(tail, runs, located, txns_path, store.resolve)
            new = attrs.evolve(
                self._manifest,
                segments=(*self._manifest.segments, *refs),
                last_sealed_txn=tail[-1].txn_id,
            )
            mf.write(self._manifest_path, new)
        except OSError as exc:
            # The WAL stays: whichever manifest is on disk, reopening finds each txn once.
            raise LogIOError(f"cannot seal log {self._log_id}: {exc}") from exc
        finally:
            store._unpend(paths)
        with self._lock:
            self._manifest = new
            self._tail = []
            self._deferred_from = None
            self._head_cache = (new, tail[-1].info)
        try:
            self._wal.reset()
        except LogIOError as exc:  # sealed frames left in the WAL are skipped on open
            log.warning("%s", exc)

    def rotate(self) -> None:
        """Make the unsealed transactions part of the manifest without rewriting them: the
        WAL file becomes a shared segment file (walseg.py). A fork does this instead of a
        seal, so its cost does not grow with the tail. Seals when the WAL cannot be trusted
        as it is (after an I/O error) or the file system has no hard links."""
        with self._group.exclusive():
            if self._closed or not self._tail:
                return
            self._claim()
            with self._lock:
                tail = self._settle()
            if not tail:
                return
            if not self._wal.trusted:
                self._seal()
                return
            store = self._store
            file = walseg.new_path()
            store._pend([file])
            try:
                done = walseg.rotate(
                    self._wal, tail, self._manifest, self._manifest_path, file, store.resolve
                )
            except walseg.CannotLink as exc:
                log.info("log %s: %s; sealing its WAL instead of rotating it", self._log_id, exc)
                self._seal()
                return
            except OSError as exc:  # the old manifest and WAL stand
                raise LogIOError(f"cannot rotate the WAL of log {self._log_id}: {exc}") from exc
            finally:
                store._unpend([file])
            store.wal_files.put(file, done.manifest.segments[-1].size, tail)
            old = self._wal
            with self._lock:
                self._manifest = done.manifest
                self._tail = []
                self._deferred_from = None
                self._wal = done.wal
                self._dir_synced = done.dir_synced
                self._head_cache = (done.manifest, tail[-1].info)
            if done.wal is not old:
                old.close()  # never reset: the file is shared now

    def compact(self, *, fold_txn: int = 0, fold_ts: Timestamp | None = None) -> CompactionReport:
        """See Store.compact. Seals first; appends wait only while the manifest is swapped,
        not while the new files are written (seals meanwhile are kept, see `rebase`)."""
        with self._compacting:
            with self._group.exclusive():
                if self._closed:
                    raise LogIOError(f"log {self._log_id} is closed")
                self._claim()
                self._seal()
                snapshot = self._manifest
            store = self._store
            written: list[str] = []

            def new_path() -> str:
                written.append(store._new_segment())
                return written[-1]

            try:
                fold = fold_point(snapshot, fold_txn, fold_ts, store.cache)
                done = compact_manifest(snapshot, fold, store.cache, store.resolve, new_path)
                if done.manifest != snapshot:
                    with self._group.exclusive():
                        if self._closed:
                            raise LogIOError(f"log {self._log_id} is closed")
                        new = rebase(done.manifest, snapshot, self._manifest)
                        mf.write(self._manifest_path, new)
                        with self._lock:
                            self._manifest = new
            except OSError as exc:  # the old manifest stands; gc removes what was written
                raise LogIOError(f"cannot compact log {self._log_id}: {exc}") from exc
            finally:
                store._unpend(written)
            return done.report

    def add_checkpoint(self, ref: CheckpointRef) -> None:
        with self._group.exclusive():
            if self._closed:
                raise LogIOError(f"log {self._log_id} is closed")
            self._claim()
            new = attrs.evolve(self._manifest, checkpoints=(*self._manifest.checkpoints, ref))
            try:
                mf.write(self._manifest_path, new)
            except OSError as exc:
                raise LogIOError(f"cannot register checkpoint {ref.path}: {exc}") from exc
            with self._lock:
                self._manifest = new
        self._store._unpend([ref.path])

    def checkpoints(self, *, until: int | None = None) -> list[CheckpointRef]:
        refs = self._manifest.checkpoints
        return [c for c in refs if until is None or c.ts.physical <= until]

    def close(self) -> None:
        with self._group.exclusive():
            if self._closed:
                return
            self._closed = True
            self._wal.close()
            if self._mark is not None:
                self._mark.close()
            if self._writer_fd is not None:
                unlock(self._writer_fd)
                self._writer_fd = None
        self._store._forget(self)

    # Reading

    def transactions(
        self, *, after_txn: int = 0, until: int | None = None, with_rows: bool = True
    ) -> Iterator[Transaction]:
        """Sealed transactions, then the WAL tail. Without rows, events carry rows=None."""
        return self._view().transactions(after_txn, until, with_rows)

    def last_at(self, until: int) -> int:
        return self._view().last_at(until)

    def rows(
        self, table_id: int, version: int, *, after_txn: int = 0, until: int | None = None
    ) -> pa.Table | None:
        return self._view().rows(table_id, version, after_txn, until)


@attrs.frozen
class _Pending:
    """An encoded transaction waiting for its txn_id and a group commit."""

    body: bytes | walbulk.BulkBody | RowBody
    events: tuple[Event, ...]
    ts: Timestamp
    sql: str | None


class IpcStore:
    """Every log of one cluster in a directory (layout: see layout.py).

    One process at a time may open a store directory; within it, one IpcRecorder per log
    (open() returns the same object until it is closed).
    """

    def __init__(
        self,
        root: Path,
        *,
        seal_bytes: int = 64 << 20,
        seal_txns: int = 4096,
        read_only: bool = False,
    ) -> None:
        self._layout = Layout(root)
        self.read_only = read_only  # never opens a file for writing (read-only media)
        if not read_only:
            self._layout.ensure()
        self.seal_bytes = seal_bytes
        self.seal_txns = seal_txns
        self.wal_files = walseg.WalFiles(self.resolve)
        self.cache = SegmentCache(self.resolve, virtual=self.wal_files.table)
        self._lock = threading.RLock()
        self._open: dict[str, IpcRecorder] = {}
        self._pending: set[str] = set()  # shared files written but not yet in a manifest
        self._pending_lock = threading.Lock()
        self.holds = ReadHolds()  # files reads in progress still need: gc keeps them

    @property
    def root(self) -> Path:
        return self._layout.root

    def exists(self, log_id: str) -> bool:
        """Whether the log's directory exists (opening a log whose manifest is missing
        raises CorruptionError naming it)."""
        return self._layout.log_dir(log_id).is_dir()

    def log_ids(self) -> list[str]:
        return self._layout.log_ids()

    def create(self, log_id: str, *, marked: bool = False) -> IpcRecorder:
        with self._lock:
            self._make_log(Manifest(check_name(log_id)))
            return self.open(log_id, marked=marked)

    def open(self, log_id: str, *, marked: bool = False) -> IpcRecorder:
        """The log's recorder; `marked` keeps a commit mark (mark.py) for it."""
        with self._lock:
            rec = self._open.get(check_name(log_id))
            if rec is not None and not rec.closed:
                return rec
            if not self.exists(log_id):
                raise UnknownLogError(
                    f"no log {log_id!r} (no directory {self._layout.log_dir(log_id)})"
                )
            rec = IpcRecorder(self, log_id, self._layout.log_dir(log_id), marked=marked)
            self._open[log_id] = rec
            return rec

    def _forget(self, rec: IpcRecorder) -> None:
        with self._lock:
            if self._open.get(rec.log_id) is rec:
                del self._open[rec.log_id]

    def _make_log(self, manifest: Manifest) -> None:
        try:
            self._layout.create_log(manifest.log_id, mf.encode(manifest))
        except FileExistsError:
            raise LogError(f"log {manifest.log_id!r} already exists") from None
        except OSError as exc:
            raise LogIOError(f"cannot create log {manifest.log_id!r}: {exc}") from exc

    def fork(self, source_id: str, target_id: str, *, until: int) -> IpcRecorder:
        """Rotate the source's WAL (walseg.py), then write a manifest naming its segments
        capped at `until`.

        Reads at most the one txns segment that straddles `until` (to find the last
        inherited txn); copies nothing.
        """
        check_name(target_id)
        with self._lock:
            if self.exists(target_id):
                raise LogError(f"log {target_id!r} already exists")
            source = self.open(source_id)
            source.rotate()
            fork = source.manifest.forked(target_id, until)
            last = max(last_txn_id(fork, self.cache), fork.folded_txn)
            fork = attrs.evolve(fork, last_sealed_txn=last, inherited_txn=last)
            self._make_log(fork)
            return self.open(target_id)

    def compact(
        self, log_id: str, *, fold_txn: int = 0, fold_ts: Timestamp | None = None
    ) -> CompactionReport:
        """Merge a log's own segments (and fold its history at fold_txn); see compact.py."""
        return self.open(log_id).compact(fold_txn=fold_txn, fold_ts=fold_ts)

    def drop(self, log_id: str) -> None:
        """Close and delete the log's directory; shared files stay until `gc`."""
        with self._lock:
            rec = self._open.pop(check_name(log_id), None)
            if rec is not None:
                rec.close()
            directory = self._layout.log_dir(log_id)
            if not directory.exists():
                return
            try:
                remove_tree(directory)
            except OSError as exc:
                raise LogIOError(f"cannot drop log {log_id!r}: {exc}") from exc

    # Shared files

    def new_file_path(self, kind: str, suffix: str) -> Path:
        """A fresh path; `gc` spares it (in this process) until a manifest names it."""
        if "/" in suffix or "\\" in suffix:
            raise ValueError(f"invalid file suffix {suffix!r}")
        path = self._layout.shared_dir(kind) / f"{uuid.uuid4().hex}{suffix}"
        self._pend([self.relative(path)])
        return path

    def _new_segment(self) -> str:
        rel = f"{SEGMENTS}/{uuid.uuid4().hex}.arrow"
        self._pend([rel])
        return rel

    def _pend(self, paths: Sequence[str]) -> None:
        with self._pending_lock:
            self._pending.update(paths)

    def _unpend(self, paths: Sequence[str]) -> None:
        with self._pending_lock:
            self._pending.difference_update(paths)

    def _in_use(self) -> tuple[str, ...]:
        """Files being written, and files of manifests that reads still use."""
        with self._pending_lock:
            pending = tuple(self._pending)
        return pending + tuple(self.holds.files())

    def resolve(self, relative: str) -> Path:
        return self._layout.resolve(relative)

    def relative(self, path: Path) -> str:
        return self._layout.relative(path)

    def gc(self) -> list[str]:
        """Delete shared files no manifest refers to, and leftovers of interrupted creates
        and drops; return their store-relative paths.

        Safe against seals, checkpoints and reads in progress in this process, not against
        writers or readers in other processes. Raises CorruptionError, deleting nothing, if any
        manifest cannot be read.
        """
        with self._lock:
            return collect_garbage(self._layout, self._in_use)

    def verify(self, log_id: str | None = None) -> list[str]:
        """Human-readable problems of one log or all; never raises for damaged files."""
        return verify(self._layout, [log_id] if log_id is not None else self.log_ids())

    def close(self) -> None:
        with self._lock:
            for rec in list(self._open.values()):
                rec.close()
            self._open.clear()
            self.cache.clear()
            self.wal_files.clear()
