"""WAL payloads of large transactions (format 2): Arrow compresses the row buffers itself.

A bulk load logs hundreds of megabytes of rows. Format 1 (wal.py) serialises them into one
Arrow IPC stream, joins it with the header and zstd-compresses the whole payload: several
full copies of the rows before compression starts, and compression can start only once the
txn_id is known, inside the group commit. Format 2 writes the rows as Arrow IPC streams whose
buffers Arrow compresses with zstd (a fast level, on its own threads) straight from the table's
memory, and keeps the txn_id out of the compressed part, so the rows can be encoded ahead of
the commit (`prepare`), while DuckDB is still inserting them:

    payload = b"AWP2" | u64 txn_id | u32 n | zstd(meta JSON): n bytes | row streams

The meta JSON is format 1's: per event its kind, table, version, data and the length of its
row stream, plus `rid_from` when the stream leaves out row ids numbered from it. A format 1 payload is one zstd frame, so it starts with zstd's magic number
(28 b5 2f fd), never with b"AWP2": a reader tells the formats apart by the first 4 bytes.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import attrs
import numpy as np
import pyarrow as pa

from asof.eventlog.events import Event

TAG = b"AWP2"
_HEAD = struct.Struct("<4sQI")
#: Transactions whose rows hold more than this many bytes are written in format 2.
BULK_ABOVE = 4 << 20
#: zstd level of the row buffers. A "fast" level: on 10M rows of (BIGINT, BIGINT) it costs
#: 0.34 CPU-s for 28.7 MB where level 1 costs 0.5 CPU-s for 26.1 MB, and the CPU is shared
#: with DuckDB inserting the same rows.
ROWS_ZSTD_LEVEL = -5

_options = pa.ipc.IpcWriteOptions(
    compression=pa.Codec("zstd", compression_level=ROWS_ZSTD_LEVEL), use_threads=True
)
_ROW_ID_FIELD = pa.field("_rid", pa.int64())
_CHECK_BLOCK = 1 << 20
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def rows_nbytes(rows: pa.Table | pa.RecordBatch) -> int:
    # Whole buffers (a slice counted in full) bound nbytes from above at a 60th of its cost,
    # which matters on every single-row commit; only large ones need the exact size.
    total = rows.get_total_buffer_size()
    return total if total <= BULK_ABOVE else rows.nbytes


def is_bulk(events: Sequence[Event]) -> bool:
    """Whether a transaction's rows are large enough for format 2."""
    return sum(rows_nbytes(e.rows) for e in events if e.rows is not None) > BULK_ABOVE


def stream(rows: pa.Table) -> tuple[pa.Buffer, int | None]:
    """An Arrow IPC stream of `rows` with zstd-compressed buffers, in Arrow's own memory,
    and the first row id when the stream leaves the row ids out (see `_numbered_from`).

    Batches are written as they are (no combine_chunks): each buffer is compressed from
    where it lies, so the rows are never copied uncompressed.
    """
    first = _numbered_from(rows)
    if first is not None:
        rows = rows.remove_column(1)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema, options=_options) as writer:
        writer.write_table(rows)
    return sink.getvalue(), first


def _numbered_from(rows: pa.Table) -> int | None:
    """The first row id if `_rid` (second column, see events.ROW_META) counts up by one
    from it, as a bulk insert numbers its rows; else None.

    Such ids are left out of the stream and renumbered on reading: compressing them was
    about half the encoding's CPU for a table of two BIGINT columns.
    """
    if rows.num_columns < 2 or rows.num_rows == 0 or rows.schema.field(1) != _ROW_ID_FIELD:
        return None
    ids = rows.column(1)
    if ids.null_count:
        return None
    first = ids[0].as_py()
    expect = first
    for chunk in ids.chunks:
        values = chunk.to_numpy()
        for i in range(0, len(values), _CHECK_BLOCK):
            block = values[i : i + _CHECK_BLOCK]
            if block[0] != expect or np.any(np.diff(block) != 1):
                return None
            expect += len(block)
    return first


def with_row_ids(rows: pa.Table, first: int) -> pa.Table:
    """Put back the row ids a stream left out: first, first + 1, ..."""
    ids = pa.array(np.arange(first, first + rows.num_rows, dtype=np.int64))
    return rows.add_column(1, _ROW_ID_FIELD, ids)


def prepare(event: Event) -> Event:
    """`event`, its rows' stream being encoded in a worker thread if they are large.

    The worker runs while the caller goes on (DuckDB inserting the same rows, say); the
    commit then only waits for it. Small events are returned unchanged.
    """
    if event.rows is None or event.prepared is not None or rows_nbytes(event.rows) <= BULK_ABOVE:
        return event
    rows = event.rows if isinstance(event.rows, pa.Table) else pa.Table.from_batches([event.rows])
    return attrs.evolve(event, prepared=_workers().submit(stream, rows))


def _workers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # One worker: Arrow compresses a table's buffers on its own threads already.
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asof-wal-encode")
        return _pool


def stream_of(event: Event, rows: pa.Table) -> tuple[pa.Buffer, int | None]:
    """The event's `stream`: the prepared one when it was started, else encoded now."""
    future: Future[tuple[pa.Buffer, int | None]] | None = event.prepared
    if future is not None:
        return future.result()
    return stream(rows)


@attrs.frozen
class BulkBody:
    """A format 2 transaction without its txn_id: compressed meta and row streams."""

    meta: bytes  # zstd-compressed
    streams: tuple[pa.Buffer, ...] = attrs.field(repr=False)

    def payload(self, txn_id: int) -> bytes:
        head = _HEAD.pack(TAG, txn_id, len(self.meta))
        return b"".join([head, self.meta, *self.streams])


def is_bulk_payload(payload: bytes) -> bool:
    return payload[:4] == TAG


def split_payload(payload: bytes) -> tuple[int, bytes, int]:
    """txn_id, the compressed meta, and where the row streams start."""
    _, txn_id, meta_len = _HEAD.unpack_from(payload, 0)
    start = _HEAD.size
    if start + meta_len > len(payload):
        raise ValueError("meta length past the end of the payload")
    return txn_id, payload[start : start + meta_len], start + meta_len
