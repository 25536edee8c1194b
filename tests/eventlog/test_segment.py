"""Segments and manifests on their own: round trips, checksums, fork caps."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from asof.eventlog import manifest as mf
from asof.eventlog.errors import CorruptionError
from asof.eventlog.events import Event, Transaction
from asof.eventlog.hlc import Timestamp
from asof.eventlog.manifest import Manifest
from asof.eventlog.recorder import CheckpointRef, Lineage
from asof.eventlog.rows import prefix_log_meta
from asof.eventlog.segment import (
    ROWS,
    TXNS,
    SegmentCache,
    SegmentRef,
    _run_index,
    check_file,
    concat_rows,
    read_segment,
    txn_records,
    txn_table,
    write_segment,
)


def _ref(path: str, size: int, crc: int, **kw: object) -> SegmentRef:
    fields = dict(
        kind=ROWS, table_id=1, version=0, min_txn=1, max_txn=1, min_ts=10, max_ts=10,
        row_count=0, size=size, crc32=crc,
    )  # fmt: skip
    fields.update(kw)
    return SegmentRef(path, **fields)  # type: ignore[arg-type]


def _with_meta(rows: pa.Table, txn_id: int, ts: int, seq: int) -> pa.Table:
    return prefix_log_meta([rows], [txn_id], [ts], [seq])


def test_rows_segment_round_trip_keeps_types_and_metadata(tmp_path: Path, typed_rows) -> None:
    table = concat_rows(
        [_with_meta(typed_rows(50, start=i * 50), i + 1, 100 + i, 0) for i in range(3)]
    )
    path = tmp_path / "seg.arrow"
    size, crc = write_segment(path, table)
    assert size == path.stat().st_size
    back = read_segment(path, _ref("seg.arrow", size, crc))
    assert back.schema.equals(table.schema, check_metadata=True)
    assert back.equals(table)
    assert check_file(path, size, crc, "segment", "seg.arrow") is None


def test_many_one_row_events_become_one_batch(tmp_path: Path) -> None:
    """Thousands of single-row commits are sealed as a few batches, not one per event."""
    parts = [pa.table({"k": [i], "s": [str(i)]}) for i in range(3000)]
    table = concat_rows([prefix_log_meta(parts, list(range(3000)), [7] * 3000, [0] * 3000)])
    assert {c.num_chunks for c in table.columns} == {1}
    size, crc = write_segment(tmp_path / "seg.arrow", table)
    with pa.ipc.open_file(tmp_path / "seg.arrow") as reader:
        assert reader.num_record_batches == 1
    back = read_segment(tmp_path / "seg.arrow", _ref("seg.arrow", size, crc))
    assert back.column("k").to_pylist() == list(range(3000))
    assert back.column("_txn").to_pylist() == list(range(3000))


def test_dictionary_columns_are_unified_for_the_file_format(tmp_path: Path) -> None:
    parts = [
        pa.table({"d": pa.array(values).dictionary_encode()}) for values in (["x", "y"], ["y", "z"])
    ]
    table = concat_rows(parts)
    size, crc = write_segment(tmp_path / "d.arrow", table)
    back = read_segment(tmp_path / "d.arrow", _ref("d.arrow", size, crc))
    assert back.schema == table.schema
    assert back.to_pylist() == pa.concat_tables(parts).to_pylist()


@pytest.mark.parametrize("offset", [0, 9, 100, -20, -1])
def test_a_flipped_byte_in_a_segment_names_the_file(tmp_path: Path, offset: int) -> None:
    path = tmp_path / "seg.arrow"
    size, crc = write_segment(path, pa.table({"a": list(range(1000))}))
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as info:
        read_segment(path, _ref("seg.arrow", size, crc))
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert "checksum" in (check_file(path, size, crc, "segment", "seg.arrow") or "")


def test_a_missing_segment_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CorruptionError, match="missing"):
        read_segment(tmp_path / "gone.arrow", _ref("gone.arrow", 1, 1))
    assert "missing" in (check_file(tmp_path / "gone.arrow", 1, 1, "segment", "gone") or "")


def test_txn_index_round_trip() -> None:
    rows = pa.table({"_op": pa.array([0], pa.int8()), "_rid": pa.array([5], pa.int64())})
    txns = [
        Transaction(
            1,
            Timestamp(10, 2),
            (Event("ddl", None, 0, {"sql": "x"}), Event("rows", 3, 2, rows=rows)),
            "CREATE",
        ),
        Transaction(2, Timestamp(11), (Event("rows", 3, 2, rows=rows.slice(0, 0)),), None),
    ]
    located = {(1, 1): "segments/a.arrow", (2, 0): "segments/a.arrow"}
    records = txn_records(txn_table(txns, located))
    assert [(r.txn_id, r.ts, r.sql) for r in records] == [
        (1, Timestamp(10, 2), "CREATE"),
        (2, Timestamp(11), None),
    ]
    first = records[0].events
    assert (first[0].kind, first[0].table_id, first[0].data, first[0].row_count) == (
        "ddl",
        None,
        {"sql": "x"},
        None,
    )
    assert (first[1].seq, first[1].row_count, first[1].rows_segment) == (1, 1, "segments/a.arrow")
    assert records[1].events[0].row_count == 0


def test_run_index_and_event_rows(tmp_path: Path) -> None:
    base = pa.table({"_op": pa.array([0, 0, 1], pa.int8()), "_rid": pa.array([1, 2, 3])})
    table = concat_rows(
        [_with_meta(base, 1, 10, 0), _with_meta(base.slice(0, 1), 1, 10, 2)]
        + [_with_meta(base.slice(1), 4, 12, 0)]
    )
    assert _run_index(table) == {(1, 0): (0, 3), (1, 2): (3, 1), (4, 0): (4, 2)}
    size, crc = write_segment(tmp_path / "s.arrow", table)
    cache = SegmentCache(lambda rel: tmp_path / rel)
    ref = _ref("s.arrow", size, crc)
    assert cache.event_rows(ref, 4, 0).equals(base.slice(1))
    assert cache.event_rows(ref, 9, 9).num_rows == 0  # an event with zero rows


def test_segment_ref_caps() -> None:
    ref = _ref("p", 1, 1, min_txn=5, max_txn=9, min_ts=100, max_ts=200)
    assert ref.skip(after_txn=9, until=None) and not ref.skip(after_txn=8, until=None)
    assert ref.skip(after_txn=0, until=99) and not ref.skip(after_txn=0, until=100)
    assert ref.capped(250) is ref  # wholly before the fork point: no cap needed
    capped = ref.capped(150)
    assert capped.until == 150 and capped.cap(None) == 150 and capped.cap(120) == 120
    assert capped.capped(180).until == 150 and capped.capped(120).until == 120
    assert capped.visible_at(100) and not capped.capped(120).visible_at(99)
    assert SegmentRef.from_json(json.loads(json.dumps(capped.to_json()))) == capped


def _manifest() -> Manifest:
    seg = SegmentRef("segments/a.arrow", TXNS, None, 0, 1, 3, 10, 30, 3, 1234, 99, until=25)
    ckpt = CheckpointRef("checkpoints/c.duckdb", 2, Timestamp(20, 1), 4096, 7)
    return Manifest("db-1", (Lineage("src", 25),), (seg,), (ckpt,), 2)


def test_manifest_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    mf.write(path, _manifest())
    assert mf.read(path) == _manifest()
    assert not [p for p in tmp_path.iterdir() if p.name != "manifest.json"]  # no tmp left


def test_every_flipped_byte_of_a_manifest_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    raw = mf.encode(_manifest())
    for i in range(len(raw)):
        for flip in (0x01, 0x20):
            data = bytearray(raw)
            data[i] ^= flip
            with pytest.raises(CorruptionError) as info:
                mf.decode(bytes(data), path)
            assert str(path) in str(info.value)


def test_reformatted_manifest_with_the_same_content_is_rejected(tmp_path: Path) -> None:
    data = json.loads(mf.encode(_manifest()))
    with pytest.raises(CorruptionError):
        mf.decode(json.dumps(data).encode(), tmp_path / "m")


def test_manifest_bytes_are_checked_without_re_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = mf.encode(_manifest())
    monkeypatch.setattr(mf, "_canonical", lambda data: pytest.fail("re-encoded"))
    assert mf.decode(raw, tmp_path / "m") == _manifest()
    for i in range(0, len(raw), max(1, len(raw) // 40)):  # any flipped byte is caught
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(CorruptionError):
            mf.decode(bytes(bad), tmp_path / "m")


def test_segment_cache_keeps_within_its_byte_budget(tmp_path: Path) -> None:
    refs = []
    for i in range(6):
        table = _with_meta(pa.table({"k": list(range(i * 1000, (i + 1) * 1000))}), i + 1, i, 0)
        size, crc = write_segment(tmp_path / f"s{i}.arrow", table)
        refs.append(_ref(f"s{i}.arrow", size, crc, row_count=1000))
    one = SegmentCache(lambda p: tmp_path / p).table(refs[0]).get_total_buffer_size()
    cache = SegmentCache(lambda p: tmp_path / p, max_bytes=3 * one)
    for ref in refs:
        assert cache.table(ref).num_rows == 1000
    assert len(cache._entries) == 3  # the oldest went first
    assert cache._bytes == sum(e.nbytes for e in cache._entries.values()) <= 3 * one
    assert cache.table(refs[-1]).column("k")[0].as_py() == 5000  # still cached
    cache.clear()
    assert cache._bytes == 0
