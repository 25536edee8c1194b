"""WAL payload format 2 (large rows, compressed by Arrow per buffer) beside format 1."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zstandard

from asof.eventlog import wal, walbulk
from asof.eventlog.errors import CorruptionError
from asof.eventlog.events import Event
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcStore
from asof.eventlog.wal import decode_payload, encode_body, encode_payload


def _big(n: int = 600_000, start: int = 0) -> pa.Table:
    """Rows above walbulk.BULK_ABOVE (about 4.8 MB at the default n)."""
    ids = np.arange(start, start + n, dtype=np.int64)
    values = pa.array(ids % 7).to_numpy().astype(np.float64)
    return pa.table(
        {
            "_op": pa.array(np.zeros(n, dtype=np.int8)),
            "_rid": pa.array(ids + 1),
            "k": pa.array(ids),
            "x": pa.array(values, mask=ids % 11 == 3),
        }
    )


def _format1_payload(txn_id: int, events: list[Event], ts: Timestamp, sql: str | None) -> bytes:
    """A payload as format 1 writers built it, whatever its size."""
    metas, blobs = [], []
    for e in events:
        blob = None
        if e.rows is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, e.rows.schema) as writer:
                writer.write(e.rows)
            blob = sink.getvalue().to_pybytes()
            blobs.append(blob)
        metas.append(
            {
                "kind": e.kind,
                "table_id": e.table_id,
                "version": e.version,
                "data": json.dumps(dict(e.data)),
                "rows": None if blob is None else len(blob),
            }
        )
    meta = json.dumps({"ts": [ts.physical, ts.logical], "sql": sql, "events": metas}).encode()
    raw = struct.pack("<QI", txn_id, len(meta)) + meta + b"".join(blobs)
    return zstandard.ZstdCompressor(level=1).compress(raw)


def test_large_rows_are_written_in_format_2_and_read_back() -> None:
    rows = _big()
    events = [Event("ddl", None, 0, {"sql": "x"}), Event("rows", 3, 1, rows=rows)]
    body, normalized = encode_body(events, Timestamp(5, 1), "INSERT")
    payload = encode_payload(9, body)
    assert payload[:4] == walbulk.TAG
    assert len(payload) < rows.nbytes / 3  # the row buffers are compressed
    txn = decode_payload(payload, Path("w"))
    assert txn.txn_id == 9 and txn.ts == Timestamp(5, 1) and txn.sql == "INSERT"
    assert txn.events == normalized == tuple(events)
    assert txn.events[1].rows.equals(rows)


def test_format_2_keeps_every_arrow_type(monkeypatch, typed_rows, rows_equal) -> None:
    monkeypatch.setattr(walbulk, "BULK_ABOVE", 0)
    rows = typed_rows(40)
    events = [Event("rows", 7, 1, rows=rows), Event("rows", 7, 1, rows=rows.slice(0, 0))]
    body, _ = encode_body(events, Timestamp(1), None)
    payload = encode_payload(1, body)
    assert payload[:4] == walbulk.TAG
    txn = decode_payload(payload, Path("w"))
    assert rows_equal(txn.events[0].rows, rows)
    assert rows_equal(txn.events[1].rows, rows.slice(0, 0))


def test_small_transactions_stay_in_format_1(typed_rows) -> None:
    body, _ = encode_body([Event("rows", 1, 1, rows=typed_rows(5))], Timestamp(1), None)
    payload = encode_payload(1, body)
    assert payload[:4] == b"\x28\xb5\x2f\xfd"  # one zstd frame


def test_format_1_payloads_of_large_rows_still_read() -> None:
    rows = _big()
    events = [Event("rows", 3, 1, {"a": 1}, rows=rows), Event("note")]
    txn = decode_payload(_format1_payload(4, events, Timestamp(8), "s"), Path("w"))
    assert txn.txn_id == 4 and txn.sql == "s" and txn.events == tuple(events)
    assert txn.events[0].rows.equals(rows)


def test_a_prepared_event_encodes_exactly_as_an_unprepared_one() -> None:
    rows = _big()
    event = Event("rows", 3, 1, rows=rows)
    prepared = walbulk.prepare(event)
    assert prepared.prepared is not None and prepared == event
    assert walbulk.prepare(Event("rows", 3, 1, rows=rows.slice(0, 10))).prepared is None
    body_a, normalized = encode_body([prepared], Timestamp(1), None)
    body_b, _ = encode_body([event], Timestamp(1), None)
    assert encode_payload(2, body_a) == encode_payload(2, body_b)
    assert normalized[0].prepared is None  # the log's copy does not keep the buffer alive


@pytest.mark.parametrize("cut", [3, 10, 14, 40, -1])
def test_a_truncated_format_2_payload_is_corruption(cut: int) -> None:
    body, _ = encode_body([Event("rows", 3, 1, rows=_big())], Timestamp(1), None)
    payload = encode_payload(1, body)
    with pytest.raises(CorruptionError, match="undecodable"):
        decode_payload(payload[:cut], Path("w"))


def test_store_recovers_and_seals_a_mix_of_formats(tmp_path: Path, rows_equal) -> None:
    """Format 1 frames written before format 2 existed, then format 2 and format 1 ones."""
    store = IpcStore(tmp_path)
    rec = store.create("db")
    old = [Event("rows", 1, 1, rows=_big(start=0))]
    wal_path = tmp_path / "logs" / "db" / "wal"
    rec.close()
    wal_path.write_bytes(wal.encode_frame(_format1_payload(1, old, Timestamp(10), "old")))
    store.close()

    store = IpcStore(tmp_path)
    rec = store.open("db")
    rec.append([rec.prepare(Event("rows", 1, 1, rows=_big(start=600_000)))], ts=Timestamp(20))
    rec.append([Event("rows", 1, 1, rows=_big(n=3, start=1_200_000))], ts=Timestamp(30))
    store.close()

    for sealed in (False, True):
        store = IpcStore(tmp_path)
        rec = store.open("db")
        if sealed:
            rec.seal()
        assert [t.txn_id for t in rec.transactions()] == [1, 2, 3]
        got = rec.rows(1, 1)
        want = pa.concat_tables([_big(start=0), _big(start=600_000), _big(n=3, start=1_200_000)])
        assert rows_equal(got.drop_columns(["_txn", "_ts", "_seq"]), want)
        store.close()


@pytest.mark.parametrize("shape", ["counted", "gap", "reversed", "chunked", "null"])
def test_counted_row_ids_are_left_out_of_the_stream_and_renumbered(monkeypatch, shape) -> None:
    monkeypatch.setattr(walbulk, "_CHECK_BLOCK", 1000)  # several blocks per chunk
    rows = _big(n=600_000, start=41)
    ids = rows.column("_rid")
    if shape == "gap":
        values = ids.combine_chunks().to_numpy().copy()
        values[599_000:] += 1
        ids = pa.chunked_array([values])
    elif shape == "reversed":
        ids = pa.chunked_array([ids.combine_chunks().to_numpy()[::-1].copy()])
    elif shape == "chunked":
        flat = ids.combine_chunks()
        ids = pa.chunked_array([flat.slice(0, 2500), flat.slice(2500, 7), flat.slice(2507)])
    elif shape == "null":
        ids = pa.chunked_array([pa.array(ids.to_pylist()[:-1] + [None], pa.int64())])
    rows = rows.set_column(1, "_rid", ids)
    buf, first = walbulk.stream(rows)
    assert (first == 42) == (shape in ("counted", "chunked"))
    body, _ = encode_body([Event("rows", 3, 1, rows=rows)], Timestamp(1), None)
    txn = decode_payload(encode_payload(1, body), Path("w"))
    assert txn.events[0].rows.schema == rows.schema
    assert txn.events[0].rows.equals(rows)
