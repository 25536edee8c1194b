"""What proves a commit besides its WAL frame: the frame's own trailer, the commit mark,
and a witness (`require`); a log that lost a proven commit refuses appends."""

from __future__ import annotations

from pathlib import Path

import pytest

from asof.eventlog import mark
from asof.eventlog.errors import CorruptionError, LogIOError
from asof.eventlog.events import Event
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcStore
from asof.eventlog.memory import MemoryStore
from asof.eventlog.wal import HEADER_SIZE, scan_file


def _log(root: Path, n: int = 4, *, marked: bool = False) -> Path:
    store = IpcStore(root)
    rec = store.create("db", marked=marked)
    for i in range(n):
        rec.append([Event("k", data={"i": i, "pad": "x" * 200})], ts=Timestamp(i + 1))
    store.close()
    return root / "logs" / "db" / "wal"


def test_a_flipped_byte_in_the_last_frame_is_reported_with_no_other_witness(tmp_path):
    path = _log(tmp_path)
    last = scan_file(path).frames[-1]
    raw = bytearray(path.read_bytes())
    raw[last.offset + HEADER_SIZE + 20] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptionError, match="complete frame") as info:
        IpcStore(tmp_path).open("db")
    assert info.value.path == str(path)
    assert path.read_bytes() == bytes(raw)  # never cut


def test_a_torn_tail_is_cut_only_by_the_first_append_after_the_witnesses(tmp_path):
    path = _log(tmp_path)
    good = scan_file(path).frames[-1].end
    raw = path.read_bytes()[:good]
    path.write_bytes(raw + b"AWL2\x10")  # an append cut short inside its header
    store = IpcStore(tmp_path)
    rec = store.open("db")
    assert rec.head().txn_id == 4 and path.stat().st_size == good + 5  # opening only reads
    rec.require(4, "a test witness")  # holds: nothing raised
    assert rec.append([Event("k")], ts=Timestamp(9)).txn_id == 5
    assert [f.end for f in scan_file(path).frames][-2] == good and not scan_file(path).torn
    store.close()


def test_a_witness_past_the_head_refuses_appends_and_keeps_the_file(tmp_path):
    path = _log(tmp_path)
    frames = scan_file(path).frames
    cut = path.read_bytes()[: frames[-2].end]  # the last frame lost at a frame boundary
    path.write_bytes(cut)
    store = IpcStore(tmp_path)
    rec = store.open("db")
    with pytest.raises(CorruptionError, match="shows transaction 4 was committed") as info:
        rec.require(4, "a projection")
    assert str(path) in str(info.value)
    with pytest.raises(CorruptionError):  # txn 4 would be reused
        rec.append([Event("k")], ts=Timestamp(9))
    assert path.read_bytes() == cut
    store.close()


def test_the_commit_mark_proves_a_cut_at_a_frame_boundary(tmp_path):
    path = _log(tmp_path, marked=True)
    assert mark.read(path.parent / "committed") == 4
    frames = scan_file(path).frames
    path.write_bytes(path.read_bytes()[: frames[-1].offset])
    with pytest.raises(CorruptionError, match="commit mark"):
        IpcStore(tmp_path).open("db", marked=True)


def test_a_damaged_commit_mark_proves_nothing_but_the_log_still_opens(tmp_path, caplog):
    path = _log(tmp_path, marked=True)
    mark_file = path.parent / "committed"
    mark_file.write_bytes(b"\xff" * mark.SIZE)
    store = IpcStore(tmp_path)
    rec = store.open("db", marked=True)
    assert "commit mark" in caplog.text and rec.head().txn_id == 4
    rec.append([Event("k")], ts=Timestamp(9))
    assert mark.read(mark_file) == 5
    store.close()


def test_read_only_store_never_writes(tmp_path):
    path = _log(tmp_path)
    store = IpcStore(tmp_path, read_only=True)
    rec = store.open("db")
    assert rec.head().txn_id == 4
    with pytest.raises(LogIOError, match="read-only"):
        rec.append([Event("k")], ts=Timestamp(9))
    store.close()
    assert scan_file(path).frames[-1].end == path.stat().st_size or scan_file(path).zero_tail


def test_memory_recorder_requires_too():
    store = MemoryStore()
    rec = store.create("db")
    rec.append([Event("k")], ts=Timestamp(1))
    rec.require(1, "x")
    with pytest.raises(CorruptionError, match="shows transaction 2"):
        rec.require(2, "a projection")
    store.close()
