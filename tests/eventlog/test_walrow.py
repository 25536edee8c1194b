"""WAL payload format 3: single-row commits logged as values, read back as Arrow tables."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pyarrow as pa
import pytest

from asof.eventlog import walrow
from asof.eventlog.errors import CorruptionError
from asof.eventlog.events import Event, RowValues, Transaction, materialize, rows_table
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcStore
from asof.eventlog.memory import MemoryStore
from asof.eventlog.wal import decode_payload, encode_body, encode_payload

SCHEMA = pa.schema(
    [
        pa.field("_op", pa.int8()),
        pa.field("_rid", pa.int64()),
        pa.field("i", pa.int64()),
        pa.field("t", pa.int8()),
        pa.field("u", pa.uint64()),
        pa.field("f", pa.float64()),
        pa.field("b", pa.bool_()),
        pa.field("s", pa.string()),
    ]
)
SCHEMA_BYTES = SCHEMA.serialize().to_pybytes()

VALUES = [
    (0, 1, 2**63 - 1, -128, 2**64 - 1, 0.1, True, "plain"),
    (0, 2, -(2**63), 127, 0, -0.0, False, 'quote " backslash \\ newline \n'),
    (0, 3, None, None, None, None, None, None),
    (0, 4, 0, 0, 1, math.inf, True, "é 字 🎉"),
    (0, 5, 7, 1, 2, -math.inf, False, ""),
    (0, 6, 8, 2, 3, math.nan, True, "\t"),
    (0, 7, 9, 3, 4, 5e-324, False, "x" * 1000),
]


def _dict(values: tuple) -> dict:
    return dict(zip(SCHEMA.names, values, strict=True))


def _row(values: tuple) -> RowValues:
    return RowValues(SCHEMA, SCHEMA_BYTES, values)


def _event(values: tuple, table_id: int = 3) -> Event:
    return Event("rows", table_id, 1, None, _row(values))


def _same(got: pa.Table, want: pa.Table) -> bool:
    """Equal, NaN included (Arrow's equals treats NaN as unequal to itself)."""
    if got.schema != want.schema or got.num_rows != want.num_rows:
        return False
    return repr(got.to_pylist()) == repr(want.to_pylist())


def test_values_round_trip_exactly() -> None:
    for values in VALUES:
        body, normalized = encode_body([_event(values)], Timestamp(5, 2), "INSERT …")
        assert isinstance(body, walrow.RowBody)
        assert isinstance(normalized[0].rows, RowValues)  # the writer keeps its values
        payload = encode_payload(9, body)
        assert payload[:4] == walrow.TAG
        txn = decode_payload(payload, Path("w"))
        assert (txn.txn_id, txn.ts, txn.sql) == (9, Timestamp(5, 2), "INSERT …")
        rows = txn.events[0].rows
        assert isinstance(rows, pa.Table)
        assert _same(rows, pa.Table.from_pylist([_dict(values)], SCHEMA))
        assert (txn.events[0].kind, txn.events[0].table_id, txn.events[0].version) == (
            "rows",
            3,
            1,
        )
        deferred = decode_payload(payload, Path("w"), deferred=True)
        assert deferred.events[0].rows.values == values or math.isnan(values[5])


def test_materialize_builds_one_table_per_schema_and_keeps_order() -> None:
    other = pa.schema([pa.field("_op", pa.int8()), pa.field("_rid", pa.int64())])
    mixed = [
        Transaction(i + 1, Timestamp(i + 1), (_event(v),)) for i, v in enumerate(VALUES[:3])
    ] + [
        Transaction(4, Timestamp(4), (Event("ddl", None, 0, {"x": 1}),)),
        Transaction(5, Timestamp(5), (Event("rows", 9, 1, None, RowValues(other, b"o", (0, 8))),)),
    ]
    built = materialize(mixed)
    assert [t.txn_id for t in built] == [1, 2, 3, 4, 5]
    for txn, values in zip(built, VALUES[:3], strict=False):
        assert txn.events[0].rows.to_pylist() == [_dict(values)]
    assert built[3] is mixed[3]  # nothing to build: the same object
    assert built[4].events[0].rows.to_pylist() == [{"_op": 0, "_rid": 8}]
    assert rows_table(SCHEMA, []).num_rows == 0


def test_a_transaction_mixing_values_and_tables_is_written_in_format_1() -> None:
    table = pa.Table.from_pylist([_dict(VALUES[0])], SCHEMA)
    events = [_event(VALUES[1]), Event("rows", 3, 1, None, table)]
    body, normalized = encode_body(events, Timestamp(1), None)
    assert isinstance(body, bytes)  # format 1: zstd
    assert all(isinstance(e.rows, pa.Table) for e in normalized)
    txn = decode_payload(encode_payload(1, body), Path("w"))
    assert [e.rows.to_pylist()[0]["_rid"] for e in txn.events] == [2, 1]


@pytest.mark.parametrize("damage", ["cut meta", "cut schema", "bad json", "width", "type"])
def test_damaged_format_3_payloads_are_corruption(damage: str) -> None:
    body, _ = encode_body([_event(VALUES[0])], Timestamp(1), None)
    payload = encode_payload(1, body)
    head = struct.calcsize("<4sQ")
    (meta_len,) = struct.unpack_from("<I", payload, head)
    meta = json.loads(payload[head + 4 : head + 4 + meta_len])
    if damage == "cut meta":
        payload = payload[: head + 4 + meta_len // 2]
    elif damage == "cut schema":
        payload = payload[:-10]
    elif damage == "bad json":
        payload = payload[: head + 4] + b"{" * meta_len + payload[head + 4 + meta_len :]
    else:
        values = meta["events"][0]["values"]
        meta["events"][0]["values"] = values[:-1] if damage == "width" else [*values[:-1], 5]
        raw = json.dumps(meta).encode()
        payload = payload[:head] + struct.pack("<I", len(raw)) + raw + SCHEMA_BYTES
    with pytest.raises(CorruptionError):
        decode_payload(payload, Path("some/wal"))


def test_the_store_reads_seals_rotates_and_reopens_value_rows(tmp_path: Path) -> None:
    store = IpcStore(tmp_path, seal_txns=10**6)
    rec = store.create("src")
    for i, values in enumerate(VALUES):
        txn = rec.append([_event(values)], ts=Timestamp(10 * (i + 1)))
        assert isinstance(txn.events[0].rows, RowValues)  # built only when read
    want = [_dict(v) for v in VALUES]

    def check(recorder) -> None:
        got = recorder.rows(3, 1).drop_columns(["_txn", "_ts", "_seq"])
        assert repr(got.to_pylist()) == repr(want)
        assert all(isinstance(e.rows, pa.Table) for t in recorder.transactions() for e in t.events)

    check(rec)  # from the tail, built at the first read
    rec.append([_event((0, 8, 1, 1, 1, 1.0, True, "after a read"))], ts=Timestamp(100))
    want.append(_dict((0, 8, 1, 1, 1, 1.0, True, "after a read")))
    check(rec)
    fork = store.fork("src", "fork", until=35)  # rotates the WAL: its frames are shared now
    assert [t.txn_id for t in fork.transactions()] == [1, 2, 3]
    rec.append([_event((0, 9, 2, 2, 2, 2.0, False, "after the fork"))], ts=Timestamp(110))
    want.append(_dict((0, 9, 2, 2, 2, 2.0, False, "after the fork")))
    store.close()

    store = IpcStore(tmp_path)  # decoded from the WAL and the rotated file
    check(store.open("src"))
    store.open("src").seal()
    store.close()
    store = IpcStore(tmp_path)  # from sealed segments
    check(store.open("src"))
    assert len(list(store.open("fork").transactions())) == 3
    store.close()


def test_the_memory_store_keeps_tables() -> None:
    rec = MemoryStore().create("d")
    txn = rec.append([_event(VALUES[0])], ts=Timestamp(1))
    assert isinstance(txn.events[0].rows, pa.Table)
    assert rec.rows(3, 1).num_rows == 1
