"""The write-ahead log of one database: committed transactions not yet sealed into segments.

The file is a sequence of frames, one per transaction:

    header = magic b"AWL2" | u64 payload length | u32 crc32(payload) | u32 crc32(previous 16)
    frame  = header | payload | header again (the trailer)
    payload = zstd( u64 txn_id | u32 meta length | meta JSON | Arrow IPC stream per row event )

Frames of WAL format 1 (magic b"AWL1") have no trailer; they are still read, never written.
That payload is payload format 1. Transactions with large rows (bulk loads) use payload
format 2, whose row streams are compressed by Arrow per buffer and which starts with b"AWP2"
(see walbulk.py); single-row commits use format 3, the row's values as JSON, which starts
with b"AWP3" (see walrow.py).

Checksums are zlib.crc32: in the standard library, hardware-assisted and fast enough that a
frame costs far less to check than to fsync; it guards against torn and flipped bytes, not
against an adversary. The header has its own checksum so a damaged length field is never
trusted to skip over, or cut off, good frames.

Torn tail or damage. A crash in the middle of an append leaves a prefix of what was being
written, or after a power loss some of its 512-byte blocks unwritten (zeros); it never
leaves a byte other than the one written, and nothing past the frame. Bytes after the last
good frame that fit that picture are a torn tail: the append never returned, so it is
skipped, and cut off before the next append. Anything else is damage, reported with the
file's name and never repaired: a bad frame followed by a good one, a frame whose trailer
is in place and which has no unwritten block yet fails its checksum (the trailer is what
tells "written whole, then damaged" from "cut short"), a trailer that differs from its
header, bytes after a bad frame, a damaged header with data after it (`_after_frames`).
A torn tail whose transaction some other durable record has seen (a projection, a commit
mark, a fork) is damage too; the recorder checks that (`IpcRecorder.require`).

The file grows ahead of its frames in zero-filled steps (PREALLOCATE), so that a commit's
fdatasync writes only data: an append that changes the file's size makes the file system
journal its metadata too, which costs about as much again. Zeros after the last frame are
room to grow into, not damage.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import attrs
import pyarrow as pa
import zstandard

from asof.eventlog import walbulk, walrow
from asof.eventlog.errors import CorruptionError, LogIOError
from asof.eventlog.events import Event, RowValues, Transaction, materialize, rows_table
from asof.eventlog.fsutil import atomic_write
from asof.eventlog.hlc import Timestamp

MAGIC_V1 = b"AWL1"  # format 1 frames: no trailer (read, never written)
MAGIC = b"AWL2"
_HEADER = struct.Struct("<4sQI")
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _HEADER_CRC.size
_TXN = struct.Struct("<QI")
#: zstd level for WAL payloads: level 1 keeps compression well below the cost of an fsync.
ZSTD_LEVEL = 1
#: The unit a power loss may leave unwritten: a disk sector.
BLOCK = 512
#: How far the file grows ahead of its frames.
PREALLOCATE = 4 << 20


# File operations go through these module functions so tests can inject ENOSPC / EIO.


def _write(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _fsync(fd: int) -> None:
    # fdatasync also writes the metadata reading the data back needs (the file's size).
    (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)


def _allocate(fd: int, offset: int, length: int) -> None:
    """Extend the file with zeros from `offset` (blocks reserved, not just a hole)."""
    try:
        os.posix_fallocate(fd, offset, length)
        return
    except AttributeError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    _write(fd, bytes(length), offset)


def _truncate(fd: int, length: int) -> None:
    os.ftruncate(fd, length)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts: list[bytes] = []
    offset = 0
    while offset < size:
        block = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not block:
            break
        parts.append(block)
        offset += len(block)
    return b"".join(parts)


# Frames


def encode_frame(payload: bytes) -> bytes:
    """A format 2 frame: header, payload, and the header again as a trailer (see below)."""
    head = _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload))
    header = head + _HEADER_CRC.pack(zlib.crc32(head))
    return header + payload + header


@attrs.frozen
class Frame:
    offset: int
    end: int
    payload: bytes = attrs.field(repr=False)


@attrs.frozen
class WalScan:
    """What a WAL file holds: its good frames and, if any, what follows them.

    After the good frames there is nothing, zeros (room to grow into), a torn tail (what an
    interrupted append can leave, see `_after_frames`), or damage (`damage` says why).
    """

    frames: tuple[Frame, ...]
    good_end: int
    size: int
    damage: str | None = None
    zero_tail: bool = False  # only zeros (room to grow into) after the last good frame

    @property
    def corrupt(self) -> bool:
        return self.damage is not None

    @property
    def torn(self) -> bool:
        return not self.corrupt and not self.zero_tail and self.good_end < self.size

    def problem(self, path: Path) -> str | None:
        if self.damage is not None:
            return f"WAL {path}: {self.damage}"
        if self.torn:
            return f"WAL {path}: torn tail of {self.size - self.good_end} bytes at offset {self.good_end}"
        return None


def _header_at(data: bytes, offset: int) -> tuple[bytes, int, int, int] | None:
    """(magic, payload length, payload crc, frame end) of a header that checks, or None."""
    if len(data) - offset < HEADER_SIZE:
        return None
    head = data[offset : offset + _HEADER.size]
    magic, length, crc = _HEADER.unpack(head)
    (head_crc,) = _HEADER_CRC.unpack_from(data, offset + _HEADER.size)
    if magic not in (MAGIC, MAGIC_V1) or head_crc != zlib.crc32(head):
        return None
    trailer = HEADER_SIZE if magic == MAGIC else 0
    return magic, length, crc, offset + HEADER_SIZE + length + trailer


def _frame_at(data: bytes, offset: int) -> Frame | None:
    """The valid frame starting at `offset`, or None: header, payload and (format 2)
    trailer all check."""
    header = _header_at(data, offset)
    if header is None:
        return None
    magic, length, crc, end = header
    if end > len(data):
        return None
    start = offset + HEADER_SIZE
    payload = data[start : start + length]
    if zlib.crc32(payload) != crc:
        return None
    if magic == MAGIC and data[end - HEADER_SIZE : end] != data[offset:start]:
        return None
    return Frame(offset, end, payload)


def _zero(data: bytes, start: int, end: int) -> bool:
    return data.count(0, start, end) == max(0, min(end, len(data)) - start)


def _block_of(offset: int) -> int:
    return offset // BLOCK * BLOCK


def _has_hole(data: bytes, start: int, end: int) -> bool:
    """Whether a whole aligned BLOCK of zeros lies in data[start:end] (a block a crash left
    unwritten)."""
    zeros = bytes(BLOCK)
    at = start
    while True:
        found = data.find(zeros, at, end)
        if found < 0:
            return False
        aligned = -(-found // BLOCK) * BLOCK
        if aligned + BLOCK > end:
            return False
        if _zero(data, aligned, aligned + BLOCK):
            return True
        at = max(aligned, found + 1)


def _after_frames(data: bytes, offset: int) -> str | None:
    """Why the non-zero bytes from `offset` (where no good frame starts) cannot be an
    interrupted append, or None when they can.

    An append that a crash cut short leaves a prefix of its bytes, or (after a power loss)
    some of its BLOCK-sized blocks unwritten, which read as zeros: it never leaves a byte
    different from the one written, and nothing after the frame it was writing. So the
    bytes are damage when a good frame follows; when the frame's header checks and the
    frame is complete (its trailer, a copy of the header, is in place, or format 1 frames
    fit in the file), no block of it is unwritten and it still fails its checksum; when
    its trailer has a byte that is neither the header's nor zero; when bytes follow the
    frame; or when a header that does not check is followed by bytes in a later block.
    """
    probe = offset
    for magic in (MAGIC, MAGIC_V1):
        probe = data.find(magic, offset + 1)
        while probe != -1:
            if _frame_at(data, probe) is not None:
                return f"bad frame at offset {offset} followed by good frames (at {probe})"
            probe = data.find(magic, probe + 1)
    header = _header_at(data, offset)
    if header is None:
        first = offset + next(i for i, b in enumerate(data[offset:]) if b)
        head_end = offset + HEADER_SIZE
        if first >= head_end:  # the header is zeros: its block is unwritten if nothing else is
            if _block_of(first) > _block_of(offset):
                return None
        elif _zero(data, head_end, len(data)):
            return None  # an append cut short inside the header
        else:
            last = _block_of(head_end - 1)  # a header across two blocks, the second unwritten
            if last > _block_of(first) and _zero(data, last, last + BLOCK):
                return None
        return f"damaged frame header at offset {offset} with data after it"
    magic, length, _, end = header
    if end > len(data):
        return None  # the file ends inside the frame: an append cut short
    if not _zero(data, end, len(data)):
        return f"frame at offset {offset} fails its checksum and is followed by more bytes"
    start = offset + HEADER_SIZE
    hole = _has_hole(data, start, start + length)
    if magic == MAGIC:
        expected, trailer = data[offset:start], data[end - HEADER_SIZE : end]
        if any(t not in (0, e) for t, e in zip(trailer, expected, strict=True)):
            return f"frame at offset {offset} has a trailer that does not match its header"
        if trailer != expected:
            return None  # the trailer was never (wholly) written
    if not hole:
        return f"complete frame at offset {offset} fails its checksum"
    return None


def scan(data: bytes) -> WalScan:
    """Split WAL bytes into good frames; tell a torn tail from damage."""
    frames: list[Frame] = []
    offset = 0
    while offset < len(data):
        frame = _frame_at(data, offset)
        if frame is None:
            break
        frames.append(frame)
        offset = frame.end
    if offset < len(data) and _zero(data, offset, len(data)):
        return WalScan(tuple(frames), offset, len(data), zero_tail=True)
    damage = _after_frames(data, offset) if offset < len(data) else None
    return WalScan(tuple(frames), offset, len(data), damage)


def scan_file(path: Path) -> WalScan:
    return scan(path.read_bytes())


class Wal:
    """An open WAL file. Not thread-safe: the recorder lets one leader at a time append.

    Every append is written and fsync'd before it returns. A failed write or fsync is rolled
    back (the file truncated to its length before the append) and raises LogIOError. After
    any failure the page cache is not trusted (an fsync error may have dropped dirty pages
    while marking them clean): the next append first reopens the file and re-reads and
    re-verifies it from disk.
    """

    def __init__(self, path: Path, fd: int, end: int, allocated: int | None = None) -> None:
        self.path = path
        self._fd: int | None = fd  # None after a failed reopen, until the next attempt
        self._end: int | None = end  # None: unknown after a failed reset
        self._allocated = end if allocated is None else allocated  # the file's size
        self._suspect = False
        self._closed = False
        self._torn = False  # a torn tail was skipped but is still on disk

    @classmethod
    def open(
        cls, path: Path, *, create: bool = False, repair: bool = True, read_only: bool = False
    ) -> tuple[Wal, list[bytes]]:
        """Open and recover: return the payloads of its good frames.

        A missing file is corruption (a log's WAL is created with it) unless `create`.
        With repair=False a torn tail is skipped but left in place (and cut before the first
        append): the caller may not be the writer, the "torn" bytes may be an append in
        progress elsewhere, and until the caller has checked what other records prove was
        committed, the bytes are evidence. `read_only` never opens the file for writing.
        """
        flags = os.O_RDONLY if read_only else os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            raise CorruptionError(f"WAL {path} is missing", str(path)) from None
        except OSError as exc:
            raise LogIOError(f"cannot open WAL {path}: {exc}") from exc
        try:
            found = cls._recover_fd(path, fd, expected_end=None, repair=repair)
        except BaseException:
            os.close(fd)
            raise
        wal = cls(path, fd, found.good_end, found.size)
        wal._torn = found.torn
        return wal, [f.payload for f in found.frames]

    def changed_on_disk(self) -> bool:
        """Whether another writer appended, cut or reset the file since this object last
        wrote or read it."""
        if self._fd is None or self._end is None or self._torn:
            return True
        try:
            stat = os.fstat(self._fd)
            if os.stat(self.path).st_ino != stat.st_ino:
                return True  # the file was replaced (a fork rotated it out, see walseg.py)
            size = stat.st_size
            if size <= self._end:
                return size != self._end
            return any(os.pread(self._fd, HEADER_SIZE, self._end))
        except OSError:
            return True

    def reload(self) -> list[bytes]:
        """Reopen and re-read the file from disk, cutting a torn tail; return its payloads."""
        if self._closed:
            raise LogIOError(f"WAL {self.path} is closed")
        self._end = None
        self._reopen(verify=False)
        assert self._fd is not None
        found = self._recover_fd(self.path, self._fd, expected_end=None)
        self._end, self._allocated = found.good_end, found.size
        self._suspect = self._torn = False
        return [f.payload for f in found.frames]

    @staticmethod
    def _recover_fd(
        path: Path, fd: int, expected_end: int | None, *, repair: bool = True
    ) -> WalScan:
        try:
            found = scan(_read_all(fd))
        except OSError as exc:
            raise LogIOError(f"cannot read WAL {path}: {exc}") from exc
        if found.corrupt and (expected_end is None or found.good_end < expected_end):
            raise CorruptionError(found.problem(path) or "", str(path))
        # (bad bytes at or past expected_end are this object's own append that failed)
        if expected_end is not None and found.good_end < expected_end:
            raise CorruptionError(
                f"WAL {path} lost committed frames: good up to {found.good_end}, "
                f"committed up to {expected_end}",
                str(path),
            )
        end = found.good_end if expected_end is None else expected_end
        needs_cut = found.torn or found.corrupt or end != found.good_end
        if not repair or not needs_cut:
            return attrs.evolve(found, good_end=end)
        try:
            _truncate(fd, end)
            _fsync(fd)
        except OSError as exc:
            raise LogIOError(f"cannot truncate WAL {path}: {exc}") from exc
        return attrs.evolve(found, good_end=end, size=end, zero_tail=False, damage=None)

    @property
    def size(self) -> int:
        return self._end or 0

    @property
    def trusted(self) -> bool:
        """Whether the file is known to hold exactly `size` bytes of good frames."""
        return not self._closed and not self._suspect and None not in (self._fd, self._end)

    def trim(self) -> None:
        """Cut the zero-filled room to grow (only zeros go), before the file is shared."""
        assert self._fd is not None and self._end is not None
        _truncate(self._fd, self._end)
        self._allocated = self._end

    def append(self, payloads: Sequence[bytes]) -> None:
        """Append one frame per payload and fsync them all, or raise LogIOError."""
        if self._closed:
            raise LogIOError(f"WAL {self.path} is closed")
        if self._suspect or self._fd is None:
            self._reopen(verify=True)
        assert self._fd is not None and self._end is not None
        data = b"".join(encode_frame(p) for p in payloads)
        start = self._end
        end = start + len(data)
        try:
            if end > self._allocated and len(data) < PREALLOCATE:
                grow_to = (end // PREALLOCATE + 1) * PREALLOCATE
                base = max(self._allocated, start)  # never over frames already written
                _allocate(self._fd, base, grow_to - base)
                self._allocated = grow_to
            _write(self._fd, data, start)
            _fsync(self._fd)
        except OSError as exc:
            self._suspect = True
            try:
                _truncate(self._fd, start)
                _fsync(self._fd)
                self._allocated = start
            except OSError:
                pass  # _reopen retries before the next append
            raise LogIOError(f"cannot append to WAL {self.path}: {exc}") from exc
        self._end = end
        self._allocated = max(self._allocated, end)

    def reset(self) -> None:
        """Empty the file once its contents are sealed elsewhere.

        What the file held no longer matters, so after a failure this reopens it without
        verifying it; a truncation fsync'd on a fresh descriptor makes it trustworthy again.
        """
        if self._closed:
            raise LogIOError(f"WAL {self.path} is closed")
        try:
            if self._suspect or self._fd is None:
                self._reopen(verify=False)
            assert self._fd is not None
            if os.fstat(self._fd).st_nlink > 1:
                # A rotated WAL shares this file (walseg.py): replace it, never cut it.
                atomic_write(self.path, b"")
                self._reopen(verify=False)
            else:
                _truncate(self._fd, 0)
                _fsync(self._fd)
            self._allocated = 0
        except (OSError, LogIOError) as exc:
            self._suspect = True
            self._end = None  # stale frames may remain; they are sealed and skipped on open
            raise LogIOError(f"cannot reset WAL {self.path}: {exc}") from exc
        self._end = 0
        self._suspect = False

    def _reopen(self, *, verify: bool) -> None:
        """Reopen the file (and re-read and re-verify it from disk) after a failure."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        try:
            self._fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise LogIOError(f"cannot reopen WAL {self.path}: {exc}") from exc
        if verify:
            found = self._recover_fd(self.path, self._fd, self._end)
            self._end, self._allocated = found.good_end, found.size
            self._suspect = False
        else:
            try:
                self._allocated = os.fstat(self._fd).st_size
            except OSError:
                self._allocated = 0  # appends then allocate from their own start

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# Payloads

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_local, "cctx"):
        _local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        _local.dctx = zstandard.ZstdDecompressor()
    return _local.cctx


_THREADED_ABOVE = 4 << 20


def _bulk_compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_local, "bulk"):
        _local.bulk = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
    return _local.bulk


def _decompressor() -> zstandard.ZstdDecompressor:
    _compressor()
    return _local.dctx


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _stream_bytes(rows: pa.Table) -> bytes:
    """An Arrow IPC stream: it keeps the exact schema (metadata too) and every type."""
    if 0 < rows.num_rows <= 64 and not any(_has_dictionary(t) for t in rows.schema.types):
        # A few rows (a single-row commit): the same bytes as a stream writer's, faster.
        batches = rows.to_batches() if rows.num_rows == 1 else rows.combine_chunks().to_batches()
        return b"".join(
            [rows.schema.serialize().to_pybytes(), *(b.serialize().to_pybytes() for b in batches)]
            + [_END_OF_STREAM]
        )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        # Many small batches (a bulk INSERT's result) serialise far slower than one.
        writer.write(
            rows.combine_chunks() if rows.num_columns and len(rows.column(0).chunks) > 1 else rows
        )
    return sink.getvalue().to_pybytes()


def _has_dictionary(type_: pa.DataType) -> bool:
    """A dictionary anywhere in a type (an ENUM, or a list or struct of them): its values
    travel in dictionary batches that only a stream writer emits."""
    if pa.types.is_dictionary(type_):
        return True
    return any(_has_dictionary(type_.field(i).type) for i in range(type_.num_fields))


def encode_body(
    events: Sequence[Event], ts: Timestamp, sql: str | None
) -> tuple[bytes | walbulk.BulkBody | walrow.RowBody, tuple[Event, ...]]:
    """A transaction without its txn_id, and its events as they will read back.

    Runs in the appending thread, before the txn_id is known, so concurrent appends encode
    their rows in parallel. `data` goes through JSON, so it reads back as JSON values.
    Transactions with large rows get format 2 (walbulk.py), those of RowValues format 3
    (walrow.py), the others format 1.
    """
    if walrow.applies(events):
        return walrow.encode_body(events, ts.physical, ts.logical, sql), tuple(events)
    if any(isinstance(e.rows, RowValues) for e in events):
        events = materialize([Transaction(0, ts, tuple(events), sql)])[0].events
    bulk = walbulk.is_bulk(events)
    metas: list[dict[str, object]] = []
    blobs: list[bytes | pa.Buffer] = []
    normalized: list[Event] = []
    for event in events:
        if isinstance(event.rows, pa.RecordBatch):
            event = attrs.evolve(event, rows=pa.Table.from_batches([event.rows]))
        data_json = json.dumps(dict(event.data)) if event.data else "{}"
        blob: bytes | pa.Buffer | None = None
        first_id = None
        if bulk and event.rows is not None:
            blob, first_id = walbulk.stream_of(event, event.rows)
        elif event.rows is not None:
            blob = _stream_bytes(event.rows)
        if blob is not None:
            blobs.append(blob)
        item: dict[str, object] = {
            "kind": event.kind,
            "table_id": event.table_id,
            "version": event.version,
            "data": data_json,
            "rows": None if blob is None else len(blob),
        }
        if first_id is not None:
            item["rid_from"] = first_id
        metas.append(item)
        if event.data or type(event.data) is not dict or event.prepared is not None:
            event = attrs.evolve(event, data=json.loads(data_json), prepared=None)
        normalized.append(event)
    meta = json.dumps({"ts": [ts.physical, ts.logical], "sql": sql, "events": metas}).encode()
    if bulk:
        return walbulk.BulkBody(_compressor().compress(meta), tuple(blobs)), tuple(normalized)
    body = b"".join([struct.pack("<I", len(meta)), meta, *blobs])
    return body, tuple(normalized)


def encode_payload(txn_id: int, body: bytes | walbulk.BulkBody | walrow.RowBody) -> bytes:
    if isinstance(body, walbulk.BulkBody | walrow.RowBody):
        return body.payload(txn_id)
    raw = struct.pack("<Q", txn_id) + body
    if len(raw) > _THREADED_ABOVE:  # a large transaction without large rows (long SQL)
        return _bulk_compressor().compress(raw)
    return _compressor().compress(raw)


def decode_payload(payload: bytes, path: Path, *, deferred: bool = False) -> Transaction:
    """The transaction in a frame's payload (any format); CorruptionError if it does not
    decode. `deferred` leaves format 3 rows as RowValues, for the caller to build many at
    once (`events.materialize`)."""
    try:
        if walbulk.is_bulk_payload(payload):
            txn_id, zmeta, offset = walbulk.split_payload(payload)
            meta = json.loads(_decompressor().decompress(zmeta))
            buf = pa.py_buffer(payload)
        elif walrow.is_payload(payload):
            txn_id, raw_meta, offset = walrow.split_payload(payload)
            meta = json.loads(raw_meta)
            buf = pa.py_buffer(payload)
        else:
            raw = _decompressor().decompress(payload)
            txn_id, meta_len = _TXN.unpack_from(raw, 0)
            start = _TXN.size
            meta = json.loads(raw[start : start + meta_len])
            buf = pa.py_buffer(raw)
            offset = start + meta_len
        events: list[Event] = []
        for item in meta["events"]:
            rows = None
            if item["rows"] is not None:
                length = item["rows"]
                if offset + length > buf.size:
                    raise ValueError("row stream past the end of the payload")
                if "values" in item:
                    rows = walrow.row_values(buf.slice(offset, length), item["values"])
                    if not deferred:
                        rows = rows_table(rows.schema, [rows.values])
                else:
                    rows = pa.ipc.open_stream(buf.slice(offset, length)).read_all()
                offset += length
                if item.get("rid_from") is not None:
                    rows = walbulk.with_row_ids(rows, int(item["rid_from"]))
            data = json.loads(item["data"])
            events.append(Event(item["kind"], item["table_id"], item["version"], data, rows))
        physical, logical = meta["ts"]
        return Transaction(txn_id, Timestamp(physical, logical), tuple(events), meta["sql"])
    except (
        zstandard.ZstdError,
        pa.ArrowException,
        ValueError,
        KeyError,
        TypeError,
        struct.error,
    ) as exc:
        raise CorruptionError(f"WAL {path}: undecodable frame: {exc}", str(path)) from exc


def decode_payloads(payloads: Sequence[bytes], path: Path) -> list[Transaction]:
    """decode_payload for many frames, with single-row transactions' tables built at once."""
    txns = [decode_payload(p, path, deferred=True) for p in payloads]
    try:
        return materialize(txns)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
        raise CorruptionError(f"WAL {path}: undecodable row values: {exc}", str(path)) from exc
