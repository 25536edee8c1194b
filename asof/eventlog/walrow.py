"""WAL payload format 3: transactions whose rows are RowValues (single-row commits).

    payload = b"AWP3" | u64 txn_id | u32 meta length | meta JSON | IPC schema message per event

The meta JSON is format 1's, plus each event's row as a JSON list `values` (`_op`, `_rid`,
then the columns); `rows` is the length of the event's schema message, from which a reader
rebuilds the one-row table. Nothing is compressed: a row of a few values would not shrink,
and building and serialising a one-row Arrow table, then compressing it, cost three times
the rest of a commit's Python. JSON keeps every value the fast path lets through exactly:
integers of any size, floats by their shortest repr (NaN and the infinities included),
booleans, NULLs and strings (escaped to ASCII).

Format 1 starts with zstd's magic number and format 2 with b"AWP2", so a reader tells the
three apart by the first 4 bytes; an older reader fails on format 3 loudly, as corruption.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Sequence
from typing import Any

import attrs
import pyarrow as pa

from asof.eventlog.events import Event, RowValues

TAG = b"AWP3"
_HEAD = struct.Struct("<4sQ")
_META_LEN = struct.Struct("<I")


@attrs.frozen
class RowBody:
    """A format 3 transaction without its txn_id (known only once the commit is ordered)."""

    body: bytes

    def payload(self, txn_id: int) -> bytes:
        return _HEAD.pack(TAG, txn_id) + self.body


def applies(events: Sequence[Event]) -> bool:
    """Whether format 3 can hold `events`: row events of RowValues and nothing else."""
    return bool(events) and all(
        isinstance(e.rows, RowValues) and not e.data and e.prepared is None for e in events
    )


def encode_body(
    events: Sequence[Event], ts_physical: int, ts_logical: int, sql: str | None
) -> RowBody:
    # The meta JSON spelled out by hand: json.dumps of the whole dict cost as much as the
    # rest of this function, on every single-row commit. json.loads reads it like any other.
    items: list[bytes] = []
    schemas: list[bytes] = []
    for event in events:
        rows = event.rows
        assert isinstance(rows, RowValues)
        schemas.append(rows.schema_bytes)
        items.append(
            b'{"kind":%s,"table_id":%s,"version":%d,"data":"{}","rows":%d,"values":%s}'
            % (
                _json(event.kind),
                b"null" if event.table_id is None else b"%d" % event.table_id,
                event.version,
                len(rows.schema_bytes),
                json.dumps(rows.values).encode(),
            )
        )
    meta = b'{"ts":[%d,%d],"sql":%s,"events":[%s]}' % (
        ts_physical,
        ts_logical,
        _json(sql),
        b",".join(items),
    )
    return RowBody(b"".join([_META_LEN.pack(len(meta)), meta, *schemas]))


@functools.lru_cache(maxsize=256)
def _json(text: str | None) -> bytes:
    """A JSON string (or null), cached: the same statement text commits again and again."""
    return json.dumps(text).encode()


def is_payload(payload: bytes) -> bool:
    return payload[:4] == TAG


def split_payload(payload: bytes) -> tuple[int, bytes, int]:
    """txn_id, the meta JSON, and where the schema messages start."""
    _, txn_id = _HEAD.unpack_from(payload, 0)
    (meta_len,) = _META_LEN.unpack_from(payload, _HEAD.size)
    start = _HEAD.size + _META_LEN.size
    if start + meta_len > len(payload):
        raise ValueError("format 3 meta past the end of the payload")
    return txn_id, payload[start : start + meta_len], start + meta_len


def row_values(schema_message: pa.Buffer, values: list[Any]) -> RowValues:
    """An event's row as read back from a format 3 payload."""
    schema = pa.ipc.read_schema(schema_message)
    if len(values) != len(schema):
        raise ValueError(f"{len(values)} values for {len(schema)} columns")
    return RowValues(schema, schema_message.to_pybytes(), tuple(values))
