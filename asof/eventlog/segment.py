"""Sealed segments: immutable Arrow IPC files holding committed transactions.

A seal writes one "rows" segment per table version (per run of identical row schemas, in
the rare case a version's schema differs between events), holding `_txn, _ts, _seq, _op,
_rid` and the table's columns ordered by (_txn, _seq), and one "txns" segment holding every
transaction's header and its events minus their rows. Segments are never modified, so any
number of logs (forks) can refer to the same file; the manifest records each file's size
and crc32, checked on every read.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.errors import CorruptionError, LogIOError
from asof.eventlog.events import Transaction
from asof.eventlog.fsutil import file_crc32
from asof.eventlog.hlc import Timestamp
from asof.eventlog.layout import FRAGMENT
from asof.eventlog.rows import concat_images

ROWS = "rows"
TXNS = "txns"
#: Rows per record batch in a rows segment.
BATCH_ROWS = 64 * 1024


@attrs.frozen
class SegmentRef:
    """A manifest entry for one segment file.

    until: a fork's cap (µs): only transactions with ts.physical <= until are visible
    through this reference, whatever else the shared file holds.
    A path `file#part` is virtual: a part of a rotated WAL file (walseg.py), for which size
    is the length of the file's frames region and crc32 is 0 (its frames check themselves).
    """

    path: str  # relative to the store root
    kind: str  # ROWS or TXNS
    table_id: int | None
    version: int
    min_txn: int
    max_txn: int
    min_ts: int
    max_ts: int
    row_count: int  # rows for ROWS, transactions for TXNS
    size: int
    crc32: int
    until: int | None = None

    def cap(self, until: int | None) -> int | None:
        """The effective upper bound on ts.physical when reading up to `until`."""
        if self.until is None:
            return until
        return self.until if until is None else min(self.until, until)

    def skip(self, after_txn: int, until: int | None) -> bool:
        """True when nothing in this segment can be in (after_txn, until]."""
        cap = self.cap(until)
        return self.max_txn <= after_txn or (cap is not None and self.min_ts > cap)

    def visible_at(self, until: int) -> bool:
        """Whether a fork at `until` sees anything of this segment."""
        cap = self.cap(until)
        return cap is None or self.min_ts <= cap

    def capped(self, until: int) -> SegmentRef:
        """This reference as a fork at `until` inherits it."""
        if self.max_ts <= until:
            return self
        return attrs.evolve(self, until=until if self.until is None else min(self.until, until))

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SegmentRef:
        return cls(**data)


@attrs.frozen
class EventRecord:
    """An event as a txns segment keeps it; its rows live in `rows_segment`."""

    seq: int
    kind: str
    table_id: int | None
    version: int
    data: dict[str, Any]
    row_count: int | None  # None: the event has no rows at all
    rows_segment: str | None


@attrs.frozen
class TxnRecord:
    txn_id: int
    ts: Timestamp
    sql: str | None
    events: tuple[EventRecord, ...]


_EVENT_TYPE = pa.struct(
    [
        ("seq", pa.int32()),
        ("kind", pa.string()),
        ("table_id", pa.int64()),
        ("version", pa.int64()),
        ("data", pa.string()),
        ("row_count", pa.int64()),
        ("rows_segment", pa.string()),
    ]
)
TXN_SCHEMA = pa.schema(
    [
        pa.field("txn_id", pa.int64(), nullable=False),
        pa.field("ts_physical", pa.int64(), nullable=False),
        pa.field("ts_logical", pa.int64(), nullable=False),
        ("sql", pa.string()),
        ("events", pa.list_(_EVENT_TYPE)),
    ]
)


def txn_table(
    txns: Sequence[Transaction], rows_segments: Mapping[tuple[int, int], str]
) -> pa.Table:
    """The txns segment content for `txns`; rows_segments maps (txn_id, seq) to a path."""
    events = [
        [
            {
                "seq": seq,
                "kind": e.kind,
                "table_id": e.table_id,
                "version": e.version,
                "data": json.dumps(dict(e.data)),
                "row_count": None if e.rows is None else e.rows.num_rows,
                "rows_segment": rows_segments.get((t.txn_id, seq)),
            }
            for seq, e in enumerate(t.events)
        ]
        for t in txns
    ]
    columns = {
        "txn_id": [t.txn_id for t in txns],
        "ts_physical": [t.ts.physical for t in txns],
        "ts_logical": [t.ts.logical for t in txns],
        "sql": [t.sql for t in txns],
        "events": events,
    }
    return pa.table(columns, schema=TXN_SCHEMA)


def txn_records(table: pa.Table) -> list[TxnRecord]:
    """Decode a txns segment's content."""
    records: list[TxnRecord] = []
    for row in table.to_pylist():
        events = tuple(
            EventRecord(
                e["seq"],
                e["kind"],
                e["table_id"],
                e["version"],
                json.loads(e["data"]),
                e["row_count"],
                e["rows_segment"],
            )
            for e in row["events"]
        )
        ts = Timestamp(row["ts_physical"], row["ts_logical"])
        records.append(TxnRecord(row["txn_id"], ts, row["sql"], events))
    return records


def concat_rows(parts: Iterable[pa.Table]) -> pa.Table:
    """One table from row parts of identical schema, fit for the IPC file format."""
    table = concat_images(list(parts))
    chunks = max((c.num_chunks for c in table.columns), default=0)
    if chunks > 1 and table.num_rows < chunks * (BATCH_ROWS // 4):
        # Thousands of one-row events would become thousands of tiny compressed batches.
        table = table.combine_chunks()
    if any(pa.types.is_dictionary(f.type) for f in table.schema):
        table = table.unify_dictionaries()  # the file format allows one dictionary per field
    return table


class _CrcSink:
    """A file-like wrapper that checksums bytes on their way to disk."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.crc = 0
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.crc = zlib.crc32(view, self.crc)
        self.size += view.nbytes
        self._fh.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self.closed = True


def write_segment(path: Path, table: pa.Table) -> tuple[int, int]:
    """Write `table` as a zstd-compressed Arrow IPC file, fsync it; return (size, crc32).

    The directory is not fsync'd here: a seal does it once for all its segments.
    """
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with open(path, "xb") as fh:
        sink = _CrcSink(fh)
        stream = pa.PythonFile(sink, mode="w")
        with pa.ipc.new_file(stream, table.schema, options=options) as writer:
            writer.write_table(table, max_chunksize=BATCH_ROWS)
        fh.flush()
        os.fsync(fh.fileno())
    return sink.size, sink.crc


def read_segment(path: Path, ref: SegmentRef) -> pa.Table:
    """The content of a segment file, after checking its size and checksum."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptionError(f"segment {path} is missing", str(path)) from None
    except OSError as exc:
        raise LogIOError(f"segment {path} cannot be read: {exc}") from exc
    if len(data) != ref.size or zlib.crc32(data) != ref.crc32:
        raise CorruptionError(f"segment {path} fails its checksum", str(path))
    try:
        return pa.ipc.open_file(pa.py_buffer(data)).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise CorruptionError(f"segment {path} does not decode: {exc}", str(path)) from exc


def check_file(path: Path, size: int, crc: int, what: str, name: str) -> str | None:
    """A description of what is wrong with a referenced file, or None when it is intact."""
    try:
        actual_size, actual_crc = file_crc32(path)
    except FileNotFoundError:
        return f"{what} {name} is missing"
    except OSError as exc:
        return f"{what} {name} cannot be read: {exc}"
    if actual_size != size:
        return f"{what} {name} has {actual_size} bytes, expected {size}"
    if actual_crc != crc:
        return f"{what} {name} fails its checksum"
    return None


@attrs.define
class _Entry:
    table: pa.Table
    records: list[TxnRecord] | None = None
    index: dict[tuple[int, int], tuple[int, int]] | None = None
    nbytes: int = 0


class SegmentCache:
    """Decoded segments, least recently used first out; shared by every log of a store
    because forks share segment files. Thread-safe."""

    def __init__(
        self,
        resolve: Callable[[str], Path],
        *,
        virtual: Callable[[SegmentRef], pa.Table] | None = None,
        max_entries: int = 1024,  # many small segments (forks, small seals): bytes bound it
        max_bytes: int = 256 << 20,
    ) -> None:
        self._resolve = resolve
        self._virtual = virtual  # reads `file#part` references (rotated WALs, walseg.py)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0  # of the entries held (Table.nbytes is too slow to sum per read)
        self._lock = threading.Lock()

    def _entry(self, ref: SegmentRef) -> _Entry:
        key = f"{ref.path}:{ref.crc32}"
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        table = self._load(ref)
        entry = _Entry(table, nbytes=table.get_total_buffer_size())
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self._bytes -= replaced.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while len(self._entries) > 1 and (
                len(self._entries) > self._max_entries or self._bytes > self._max_bytes
            ):
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.nbytes
        return entry

    def _load(self, ref: SegmentRef) -> pa.Table:
        if self._virtual is not None and FRAGMENT in ref.path:
            return self._virtual(ref)
        return read_segment(self._resolve(ref.path), ref)

    def table(self, ref: SegmentRef) -> pa.Table:
        return self._entry(ref).table

    def read(self, ref: SegmentRef) -> pa.Table:
        """A segment's content, not kept (compaction reads each file once)."""
        with self._lock:
            entry = self._entries.get(f"{ref.path}:{ref.crc32}")
        return entry.table if entry is not None else self._load(ref)

    def records(self, ref: SegmentRef) -> list[TxnRecord]:
        """The transactions of a txns segment, in txn order."""
        entry = self._entry(ref)
        if entry.records is None:
            entry.records = txn_records(entry.table)
        return entry.records

    def event_rows(self, ref: SegmentRef, txn_id: int, seq: int) -> pa.Table:
        """The rows of one event from a rows segment, without the log meta columns."""
        entry = self._entry(ref)
        if entry.index is None:
            entry.index = _run_index(entry.table)
        start, length = entry.index.get((txn_id, seq), (0, 0))
        return entry.table.slice(start, length).drop_columns(list(LOG_ONLY))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


#: Columns a rows segment has that an event's rows do not.
LOG_ONLY = ("_txn", "_ts", "_seq")


def _run_index(table: pa.Table) -> dict[tuple[int, int], tuple[int, int]]:
    """(txn, seq) -> (first row, row count), for a table ordered by (_txn, _seq)."""
    if table.num_rows == 0:
        return {}
    txn = table.column("_txn").combine_chunks()
    seq = table.column("_seq").combine_chunks().cast(pa.int64())
    runs = pc.run_end_encode(pc.add(pc.multiply(txn, 1 << 32), seq))
    index: dict[tuple[int, int], tuple[int, int]] = {}
    start = 0
    for key, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        index[(key >> 32, key & 0xFFFFFFFF)] = (start, end - start)
        start = end
    return index
