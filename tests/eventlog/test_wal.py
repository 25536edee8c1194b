"""The WAL on its own: frames, payload encoding, torn tails, corruption, I/O faults."""

from __future__ import annotations

import errno
import os
import zlib
from pathlib import Path

import pyarrow as pa
import pytest

from asof.eventlog import wal
from asof.eventlog.errors import CorruptionError, LogIOError
from asof.eventlog.events import Event
from asof.eventlog.hlc import Timestamp
from asof.eventlog.wal import (
    HEADER_SIZE,
    Wal,
    WalScan,
    decode_payload,
    encode_body,
    encode_frame,
    scan,
)


def _payload(i: int) -> bytes:
    return f"payload {i} ".encode() * (i + 1)


def _frames(n: int) -> bytes:
    return b"".join(encode_frame(_payload(i)) for i in range(n))


def test_scan_reads_back_every_frame() -> None:
    found = scan(_frames(5))
    assert [f.payload for f in found.frames] == [_payload(i) for i in range(5)]
    assert not found.torn and not found.corrupt


def test_scan_treats_any_cut_of_the_last_frame_as_a_torn_tail() -> None:
    data = _frames(4)
    last_start = len(_frames(3))
    for cut in range(last_start, len(data)):
        found = scan(data[:cut])
        assert len(found.frames) == 3
        assert found.good_end == last_start
        assert not found.corrupt
        assert found.torn == (cut > last_start)


def test_bytes_no_append_could_leave_are_damage_not_a_torn_tail() -> None:
    """A crash leaves a prefix of a frame, or blocks unwritten (zeros): never other bytes."""
    found = scan(_frames(2) + b"\x07" * 100)
    assert found.corrupt and "damaged frame header" in (found.problem(Path("w")) or "")
    # a zero header block then data in a later block: the header's block was never written
    found = scan(_frames(2) + b"\x00" * 600 + b"\x07" * 10)
    assert found.torn and len(found.frames) == 2
    # ... but data in the header's own block means the header was written, and is damaged
    found = scan(_frames(2) + b"\x00" * 50 + b"\x07" + b"\x00" * 49)
    assert found.corrupt


def _last_frame_damage(change) -> WalScan:
    data = bytearray(_frames(3) + encode_frame(bytes(range(256)) * 40))
    start = len(_frames(3))
    change(data, start)
    return scan(bytes(data) + bytes(4096))


def test_a_flipped_byte_in_the_last_complete_frame_is_damage() -> None:
    """The trailer is in place, so the frame was written whole: a bad checksum is damage."""
    for where in (HEADER_SIZE + 1, HEADER_SIZE + 5000, HEADER_SIZE + 10239):

        def flip(data: bytearray, start: int, where: int = where) -> None:
            data[start + where] ^= 0x10

        found = _last_frame_damage(flip)
        assert found.corrupt and "complete frame" in (found.problem(Path("w")) or "")
        assert len(found.frames) == 3


def test_the_trailer_tells_a_cut_short_frame_from_a_damaged_one() -> None:
    def zero_trailer(data: bytearray, start: int) -> None:
        data[-HEADER_SIZE:] = bytes(HEADER_SIZE)

    def flip_trailer(data: bytearray, start: int) -> None:
        data[-3] ^= 1

    def unwritten_block(data: bytearray, start: int) -> None:
        block = (start + 2048) // wal.BLOCK * wal.BLOCK
        data[block : block + wal.BLOCK] = bytes(wal.BLOCK)

    def bytes_after(data: bytearray, start: int) -> None:
        data[start + HEADER_SIZE + 7] ^= 1
        data.extend(b"\x01")

    assert _last_frame_damage(zero_trailer).torn
    assert _last_frame_damage(unwritten_block).torn  # a power loss left a block unwritten
    assert "trailer" in (_last_frame_damage(flip_trailer).damage or "")
    assert "followed by more bytes" in (_last_frame_damage(bytes_after).damage or "")


def test_format_1_frames_still_read_and_a_flip_in_their_last_frame_is_damage() -> None:
    def v1(payload: bytes) -> bytes:
        head = wal._HEADER.pack(wal.MAGIC_V1, len(payload), zlib.crc32(payload))
        return head + wal._HEADER_CRC.pack(zlib.crc32(head)) + payload

    old = v1(b"one") + v1(b"two")
    found = scan(old + encode_frame(b"three"))  # a format 1 WAL appended to after upgrade
    assert [f.payload for f in found.frames] == [b"one", b"two", b"three"]
    assert scan(old[:-1]).torn
    flipped = bytearray(old)
    flipped[-1] ^= 1
    assert scan(bytes(flipped)).corrupt


def test_zeros_after_the_last_frame_are_room_to_grow_not_damage() -> None:
    found = scan(_frames(2) + b"\x00" * 4096)
    assert len(found.frames) == 2 and found.good_end == len(_frames(2))
    assert not found.torn and not found.corrupt and found.zero_tail
    assert found.problem(Path("w")) is None


def test_appends_write_into_preallocated_space(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    log, _ = Wal.open(path, create=True)
    log.append([b"one"])
    assert path.stat().st_size == wal.PREALLOCATE  # grown ahead of the frames, zero-filled
    log.append([b"two"])
    assert path.stat().st_size == wal.PREALLOCATE
    assert log.size == len(encode_frame(b"one")) + len(encode_frame(b"two"))
    log.append([b"x" * wal.PREALLOCATE])  # a frame larger than the step grows the file itself
    big_end = log.size
    log.append([b"three"])
    log.close()
    reopened, payloads = Wal.open(path)
    assert payloads == [b"one", b"two", b"x" * wal.PREALLOCATE, b"three"]
    assert reopened.size == big_end + len(encode_frame(b"three"))
    assert not reopened.changed_on_disk()
    reopened.close()


@pytest.mark.parametrize("where", ["magic", "length", "crc", "payload"])
def test_a_bad_frame_followed_by_a_good_one_is_corruption(where: str) -> None:
    data = bytearray(_frames(3))
    second = len(encode_frame(_payload(0)))
    offset = {"magic": 0, "length": 5, "crc": 12, "payload": HEADER_SIZE + 3}[where]
    data[second + offset] ^= 0x40
    found = scan(bytes(data))
    assert found.corrupt
    assert found.good_end == second
    assert "followed by good frames" in (found.problem(Path("w")) or "")


def test_encode_decode_payload_keeps_every_arrow_type(typed_rows, rows_equal) -> None:
    rows = typed_rows(25)
    events = [
        Event("create", 7, 1, {"name": "t", "cols": ["a", "b"], "n": None}),
        Event("rows", 7, 1, rows=rows),
        Event("rows", 7, 1, rows=rows.slice(0, 0)),
        Event("note"),
    ]
    body, normalized = encode_body(events, Timestamp(123, 4), "INSERT ...")
    txn = decode_payload(wal.encode_payload(42, body), Path("w"))
    assert txn.txn_id == 42 and txn.ts == Timestamp(123, 4) and txn.sql == "INSERT ..."
    assert txn.events == tuple(events) == normalized
    assert rows_equal(txn.events[1].rows, rows)
    assert rows_equal(txn.events[2].rows, rows.slice(0, 0))
    assert txn.events[0].rows is None and txn.events[3].rows is None


@pytest.mark.parametrize("rows", [1, 3, 64, 65])
def test_few_rows_with_nested_dictionaries_read_back(rows: int) -> None:
    """An ENUM inside a list, a struct or a map (DuckDB's `mood[]`) is a dictionary the
    few-row encoder must not leave out: its frame would not decode."""
    enum = pa.dictionary(pa.int8(), pa.string())
    table = pa.table(
        {
            "l": pa.array([["a", "b"]] * rows, type=pa.list_(enum)),
            "s": pa.array([{"x": "c"}] * rows, type=pa.struct([("x", enum)])),
            "m": pa.array([[("a", "b")]] * rows, type=pa.map_(pa.string(), enum)),
        }
    )
    body, _ = encode_body([Event("rows", 1, 1, rows=table)], Timestamp(1), None)
    txn = decode_payload(wal.encode_payload(1, body), Path("w"))
    assert txn.events[0].rows.to_pylist() == table.to_pylist()


def test_event_data_reads_back_as_json() -> None:
    body, normalized = encode_body([Event("k", data={"t": (1, 2)})], Timestamp(1), None)
    assert normalized[0].data == {"t": [1, 2]}
    assert decode_payload(wal.encode_payload(1, body), Path("w")).events == normalized


def test_undecodable_payload_raises_corruption() -> None:
    with pytest.raises(CorruptionError, match="undecodable"):
        decode_payload(b"not zstd", Path("some/wal"))


def test_open_truncates_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    data = _frames(3)
    path.write_bytes(data + encode_frame(_payload(9))[:-4])
    log, payloads = Wal.open(path)
    assert payloads == [_payload(i) for i in range(3)]
    assert path.stat().st_size == len(data) == log.size
    log.append([b"next"])
    log.close()
    assert [f.payload for f in scan(path.read_bytes()).frames][-1] == b"next"


def test_open_refuses_corruption_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    data = bytearray(_frames(3))
    data[HEADER_SIZE + 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as info:
        Wal.open(path)
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert path.read_bytes() == bytes(data)  # never repaired


def _failing(real, err: int, times: int = 1, partial: bool = False):
    calls = {"left": times}

    def fake(fd: int, *args):
        if calls["left"] > 0:
            calls["left"] -= 1
            if partial:  # a short write reached the file before the error
                real(fd, args[0][: len(args[0]) // 2], *args[1:])
            raise OSError(err, os.strerror(err))
        return real(fd, *args)

    return fake


@pytest.mark.parametrize(
    "target,err,partial",
    [("_write", errno.ENOSPC, True), ("_write", errno.EIO, False), ("_fsync", errno.EIO, False)],
)
def test_failed_append_is_rolled_back_and_the_next_one_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, err: int, partial: bool
) -> None:
    path = tmp_path / "wal"
    log, _ = Wal.open(path, create=True)
    log.append([b"one"])
    size = log.size
    monkeypatch.setattr(wal, target, _failing(getattr(wal, target), err, partial=partial))
    with pytest.raises(LogIOError):
        log.append([b"two"])
    assert path.stat().st_size == size  # cut back to the last good frame
    assert [f.payload for f in scan(path.read_bytes()).frames] == [b"one"]
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a: opened.append(str(p)) or real_open(p, *a))
    log.append([b"three"])
    assert opened == [str(path)]  # the file was reopened and re-read before appending
    log.close()
    assert [f.payload for f in scan(path.read_bytes()).frames] == [b"one", b"three"]


def test_failed_rollback_is_repaired_before_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wal"
    log, _ = Wal.open(path, create=True)
    log.append([b"one"])
    # the fsync fails, the rollback truncation fails, then the repair's fsync fails once
    monkeypatch.setattr(wal, "_fsync", _failing(wal._fsync, errno.EIO, times=2))
    monkeypatch.setattr(wal, "_truncate", _failing(wal._truncate, errno.EIO, times=1))
    with pytest.raises(LogIOError):
        log.append([b"lost"])
    with pytest.raises(LogIOError, match="cannot truncate"):
        log.append([b"not yet"])
    log.append([b"two"])
    log.close()
    assert [f.payload for f in scan(path.read_bytes()).frames] == [b"one", b"two"]


def test_a_missing_wal_is_corruption(tmp_path: Path) -> None:
    with pytest.raises(CorruptionError, match="missing"):
        Wal.open(tmp_path / "wal")


def test_append_after_close_raises(tmp_path: Path) -> None:
    log, _ = Wal.open(tmp_path / "wal", create=True)
    log.close()
    with pytest.raises(LogIOError):
        log.append([b"x"])


def test_rows_as_record_batch_are_accepted(typed_rows, rows_equal) -> None:
    batch = typed_rows(3).to_batches()[0]
    body, _ = encode_body([Event("rows", 1, rows=batch)], Timestamp(1), None)
    txn = decode_payload(wal.encode_payload(1, body), Path("w"))
    assert rows_equal(txn.events[0].rows, pa.Table.from_batches([batch]))


def test_a_failed_append_that_left_bad_bytes_is_not_mistaken_for_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync error may drop pages: the frame the failed append wrote can read back
    with changed bytes, past what the WAL knows is committed. Its own leftovers."""
    path = tmp_path / "wal"
    log, _ = Wal.open(path, create=True)
    log.append([b"one"])
    real_write = wal._write

    def write_damaged(fd: int, data: bytes, offset: int) -> None:
        bad = bytearray(data)
        bad[HEADER_SIZE + 1] ^= 0xFF
        real_write(fd, bytes(bad), offset)

    monkeypatch.setattr(wal, "_write", write_damaged)
    monkeypatch.setattr(wal, "_fsync", _failing(wal._fsync, errno.EIO, times=1))
    monkeypatch.setattr(wal, "_truncate", _failing(wal._truncate, errno.EIO, times=1))
    with pytest.raises(LogIOError):
        log.append([b"two" * 100])
    monkeypatch.setattr(wal, "_write", real_write)
    log.append([b"three"])
    log.close()
    found = scan(path.read_bytes())
    assert [f.payload for f in found.frames] == [b"one", b"three"] and not found.corrupt
