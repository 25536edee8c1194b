"""Rotated WAL files: a fork shares its source's unsealed transactions without copying them.

Sealing the WAL tail when a log is forked would rewrite everything committed since the last
seal (after a bulk load, all of it). Instead `rotate` gives the WAL file a second name,
`segments/<uuid>.wal` (a hard link: no byte is copied), lets the log carry on in a fresh
empty WAL, and lists the rotated transactions in the manifest through virtual segment
references: exactly the references a seal would have written (one per run of a table
version's rows, one for the transactions, same txn and time ranges and row counts), each
with its own path `segments/<uuid>.wal#<first>-<last>.<part>`, where first..last are the
rotated transactions (frames before `first` were sealed before and belong to no reference).
Readers decode the file's frames once (`WalFiles`) and build in memory the table a seal
would have written for a reference.

For these references `size` is the length of the frames region (the file's first `size`
bytes, the WAL's length when it was rotated) and `crc32` is 0: the frames are self-checking
(each has a CRC of its header and of its payload), and every read checks them all.

Crash safety of `rotate`, step by step (the WAL and manifest stand until the manifest write):
1. the link is created and its directory fsync'd: a crash leaves an unreferenced file, which
   `gc` deletes, and the old WAL, unchanged;
2. a fresh empty WAL is written under a temporary name and fsync'd (a leftover one is removed
   by the next rotation);
3. the manifest naming the virtual segments, with last_sealed_txn = last, replaces the old
   one atomically: from here the rotation has happened. A crash before step 4 leaves the old
   WAL in place, whose frames (all <= last_sealed_txn) reopening skips;
4. the fresh WAL is renamed over the old one, and the log directory fsync'd.
A rotated file is never truncated: the log's `Wal` on it is closed, and `Wal.reset` replaces
a file that has another name instead of cutting it (after a crash between steps 3 and 4 the
log appends to the shared file past `size`, which no reference reads).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import pyarrow as pa

from asof.eventlog import manifest as mf
from asof.eventlog.errors import CorruptionError, LogIOError
from asof.eventlog.events import Transaction
from asof.eventlog.fsutil import TMP_PREFIX, fsync_dir, tmp_name
from asof.eventlog.layout import FRAGMENT, SEGMENTS, file_of
from asof.eventlog.manifest import Manifest
from asof.eventlog.seal import plan, txns_ref
from asof.eventlog.segment import TXNS, SegmentRef, txn_table
from asof.eventlog.wal import Wal, decode_payloads, scan

log = logging.getLogger(__name__)

SUFFIX = ".wal"
#: os.link failing with these means the file system has no hard links here: seal instead.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class CannotLink(Exception):
    """The WAL cannot get a second name; nothing was changed."""


def is_virtual(path: str) -> bool:
    return FRAGMENT in path


def new_path() -> str:
    """A fresh store-relative name for a rotated WAL file."""
    return f"{SEGMENTS}/{uuid.uuid4().hex}{SUFFIX}"


def _split(path: str) -> tuple[str, int, int, str]:
    """(file, first, last, base) of a virtual path `file#first-last.part`; base omits part."""
    try:
        file, fragment = path.split(FRAGMENT, 1)
        span, _ = fragment.split(".", 1)
        first, last = (int(x) for x in span.split("-"))
    except ValueError:
        raise CorruptionError(f"segment {path}: not a rotated WAL reference", path) from None
    return file, first, last, f"{file}{FRAGMENT}{span}"


def _plan(txns: Sequence[Transaction], base: str) -> tuple[list, dict[tuple[int, int], str]]:
    """`seal.plan` with paths into one file, named only by the transactions (so the same on
    every decode): `<base>.rows-<table_id>-<version>-<n>`."""
    numbers = itertools.count()
    runs, located = plan(txns, lambda: f"{base}.rows-{next(numbers)}")
    names: dict[str, str] = {}
    for run in runs:
        table_id, version = run.key
        name = f"{base}.rows-{'x' if table_id is None else table_id}-{version}-{len(names)}"
        names[run.path] = name
        run.path = name
    return runs, {k: names[v] for k, v in located.items()}


def virtual_refs(txns: Sequence[Transaction], file: str, size: int) -> list[SegmentRef]:
    """The references a seal of `txns` would produce, pointing into the rotated `file`."""
    base = f"{file}{FRAGMENT}{txns[0].txn_id}-{txns[-1].txn_id}"
    runs, _ = _plan(txns, base)
    refs = [run.ref(sum(p.num_rows for p in run.parts), size, 0) for run in runs]
    refs.append(txns_ref(txns, f"{base}.txns", size, 0))
    return refs


def build(ref: SegmentRef, txns: Sequence[Transaction]) -> pa.Table:
    """The table a seal of `txns` (the reference's first..last) would have written for it."""
    _, _, _, base = _split(ref.path)
    runs, located = _plan(txns, base)
    if ref.kind == TXNS:
        return txn_table(txns, located)
    for run in runs:
        if run.path == ref.path:
            return run.table()
    raise CorruptionError(f"segment {ref.path} is not in its file", file_of(ref.path))


def decode_file(path: Path, size: int, name: str) -> list[Transaction]:
    """Every transaction in the first `size` bytes of a rotated WAL, after checking each
    frame; CorruptionError naming the file when any check fails."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(size)
    except FileNotFoundError:
        raise CorruptionError(f"segment {name} is missing", str(path)) from None
    except OSError as exc:
        raise LogIOError(f"segment {name} cannot be read: {exc}") from exc
    if len(data) < size:
        raise CorruptionError(f"segment {name} has {len(data)} bytes, expected {size}", str(path))
    found = scan(data)
    if found.good_end != size:
        raise CorruptionError(
            f"segment {name} fails its checksum: bad WAL frame at offset {found.good_end}",
            str(path),
        )
    return decode_payloads([f.payload for f in found.frames], Path(name))


def select(txns: Sequence[Transaction], path: str) -> list[Transaction]:
    """The transactions a virtual reference's file holds for it: first..last, all of them."""
    file, first, last, _ = _split(path)
    chosen = [t for t in txns if first <= t.txn_id <= last]
    if [t.txn_id for t in chosen] != list(range(first, last + 1)):
        raise CorruptionError(f"segment {file} lacks transactions {first}..{last}", file)
    return chosen


class WalFiles:
    """Decoded rotated WAL files, the newest few (each holds its transactions' rows);
    shared by every log of a store, like the segment cache. Thread-safe."""

    def __init__(
        self, resolve: Callable[[str], Path], *, max_files: int = 64, max_bytes: int = 256 << 20
    ) -> None:
        self._resolve = resolve
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._files: OrderedDict[tuple[str, int], list[Transaction]] = OrderedDict()
        self._bytes: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def put(self, file: str, size: int, txns: Sequence[Transaction]) -> None:
        """Remember a file's transactions (the rotating log has them decoded already)."""
        key = (file, size)
        held = sum(
            e.rows.get_total_buffer_size()
            for t in txns
            for e in t.events
            if isinstance(e.rows, pa.Table)
        )
        with self._lock:
            self._files[key] = list(txns)
            self._files.move_to_end(key)
            self._bytes[key] = held
            while len(self._files) > 1 and (
                len(self._files) > self._max_files or sum(self._bytes.values()) > self._max_bytes
            ):
                old, _ = self._files.popitem(last=False)
                del self._bytes[old]

    def transactions(self, ref: SegmentRef) -> list[Transaction]:
        key = (file_of(ref.path), ref.size)
        with self._lock:
            txns = self._files.get(key)
            if txns is not None:
                self._files.move_to_end(key)
        if txns is None:
            txns = decode_file(self._resolve(key[0]), ref.size, key[0])
            self.put(*key, txns)
        return select(txns, ref.path)

    def table(self, ref: SegmentRef) -> pa.Table:
        """The content of a virtual segment (the segment cache's reader for them)."""
        return build(ref, self.transactions(ref))

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._bytes.clear()


def check(path: Path, name: str, refs: Sequence[SegmentRef]) -> str | None:
    """What is wrong with a rotated WAL file and the references into it, or None."""
    try:
        txns = decode_file(path, max(r.size for r in refs), name)
        for ref in refs:
            chosen = select(txns, ref.path)
            if ref.kind == TXNS and len(chosen) != ref.row_count:
                return f"segment {ref.path} holds {len(chosen)} transactions, not {ref.row_count}"
    except (CorruptionError, LogIOError) as exc:
        return str(exc)
    return None


def remove_leftovers(wal_path: Path) -> None:
    """Delete fresh WAL files a crash left unrenamed (only the log's writer calls this)."""
    try:
        for leftover in wal_path.parent.glob(f"{TMP_PREFIX}*-{wal_path.name}"):
            leftover.unlink(missing_ok=True)
    except OSError as exc:  # only disk space is at stake: try again next time
        log.warning("cannot remove a leftover WAL in %s: %s", wal_path.parent, exc)


@attrs.frozen
class Rotation:
    """What `rotate` did: the new manifest, the WAL to go on with, and whether the log
    directory still needs an fsync before the next append can be durable."""

    manifest: Manifest
    wal: Wal
    dir_synced: bool


def rotate(
    wal: Wal,
    tail: Sequence[Transaction],
    manifest: Manifest,
    manifest_path: Path,
    file: str,
    resolve: Callable[[str], Path],
) -> Rotation:
    """Rotate `wal` (holding `tail`, unsealed, as its last frames) out to `file`.

    Raises CannotLink (nothing changed) when the file system has no hard links, OSError
    when a step before the manifest write fails (the old manifest and WAL stand; an orphan
    link is left to `gc` if the manifest write itself failed). The caller closes `wal` if
    the returned one is another.
    """
    link = resolve(file)
    directory = wal.path.parent
    remove_leftovers(wal.path)
    wal.trim()
    size = wal.size
    try:
        os.link(wal.path, link)
    except OSError as exc:
        if exc.errno in _NO_LINKS:
            raise CannotLink(str(exc)) from exc
        raise
    fresh = tmp_name(wal.path)
    fd: int | None = None
    written = False
    try:
        fsync_dir(link.parent)
        fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.fsync(fd)
        new = attrs.evolve(
            manifest,
            segments=(*manifest.segments, *virtual_refs(tail, file, size)),
            last_sealed_txn=tail[-1].txn_id,
        )
        written = True
        mf.write(manifest_path, new)
    except OSError:
        if fd is not None:
            os.close(fd)
        fresh.unlink(missing_ok=True)
        if not written:
            link.unlink(missing_ok=True)
        raise
    assert fd is not None
    try:
        os.replace(fresh, wal.path)
    except OSError as exc:  # the old file stays the WAL: appends go past `size`, harmless
        log.warning("rotated WAL %s stays in use: %s", wal.path, exc)
        os.close(fd)
        fresh.unlink(missing_ok=True)
        return Rotation(new, wal, True)
    try:
        fsync_dir(directory)
        synced = True
    except OSError as exc:
        log.warning("cannot fsync %s after rotating its WAL: %s", directory, exc)
        synced = False
    return Rotation(new, Wal(wal.path, fd, 0, 0), synced)
