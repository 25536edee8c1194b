"""Forks rotate the source's WAL into a shared file instead of sealing it (walseg.py)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pytest

from asof.eventlog import walseg
from asof.eventlog.errors import CorruptionError
from asof.eventlog.events import Event, Transaction
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcRecorder, IpcStore
from asof.eventlog.segment import SegmentRef


class _Crash(BaseException):
    """A simulated crash: no cleanup handler (they catch OSError) undoes the step."""


def _simple(n: int, start: int = 0, extra: str = "v") -> pa.Table:
    return pa.table(
        {
            "_op": pa.array([0] * n, pa.int8()),
            "_rid": pa.array(range(start, start + n), pa.int64()),
            extra: pa.array([f"{extra}{i}" for i in range(start, start + n)]),
        }
    )


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, inode) of every file under root."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_ino)
    return out


def _written(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> int:
    """Bytes of new files (hard links to files that existed excluded) plus growth."""
    old_inodes = {ino for _, ino in before.values()}
    total = 0
    for name, (size, ino) in after.items():
        if name in before:
            total += max(0, size - before[name][0])
        elif ino not in old_inodes:
            total += size
    return total


def _fill(rec: IpcRecorder, typed_rows: Callable[..., pa.Table], start: int = 1) -> int:
    """Transactions of several shapes, one per 10 µs from `start` * 10; returns the count."""
    shapes: list[list[Event]] = [
        [Event("create_table", 1, 0, {"name": "t1"})],
        [Event("rows", 1, 0, rows=typed_rows(3)), Event("note", None, 0, {"i": 1})],
        [Event("rows", 2, 0, rows=_simple(2)), Event("rows", 1, 0, rows=typed_rows(2, 5))],
        [Event("rows", 1, 0, rows=typed_rows(0))],  # an event with zero rows
        [Event("alter", 1, 1, {"add": "w"})],
        [Event("rows", 1, 1, rows=_simple(4, extra="w"))],
        [Event("rows", 2, 0, rows=_simple(1, 10)), Event("rows", 2, 0, rows=_simple(1, 11))],
        [Event("rows", 1, 0, rows=typed_rows(2, 20))],
    ]
    for i, events in enumerate(shapes):
        rec.append(events, ts=Timestamp((start + i) * 10, i % 2), sql=f"sql {i}")
    return len(shapes)


def _observe(rec: Any) -> dict[Any, Any]:
    txns = list(rec.transactions())
    out: dict[Any, Any] = {"head": rec.head(), "txns": txns}
    stamps = sorted({t.ts.physical for t in txns}) or [0]
    for after in [0, 1, 3, len(txns) - 1]:
        for until in [None, stamps[0], stamps[len(stamps) // 2], stamps[-1] - 1]:
            out["t", after, until] = list(rec.transactions(after_txn=after, until=until))
            out["h", after, until] = [
                t.info for t in rec.transactions(after_txn=after, until=until, with_rows=False)
            ]
            for key in [(1, 0), (1, 1), (2, 0), (3, 0)]:
                out["r", key, after, until] = rec.rows(*key, after_txn=after, until=until)
    return out


def _assert_same(got: dict[Any, Any], want: dict[Any, Any], assert_same_txns, rows_equal) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if key == "head":
            assert got[key] == want[key]
        elif key == "txns" or key[0] == "t":
            assert_same_txns(got[key], want[key])
        elif key[0] == "h":
            assert got[key] == want[key]
        else:
            assert rows_equal(got[key], want[key]), key


def _shape(refs: tuple[SegmentRef, ...]) -> list[SegmentRef]:
    """References without what differs between a seal and a rotation (paths, sizes)."""
    return [attrs.evolve(r, path="", size=0, crc32=0) for r in refs]


def _wal_files(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("*.wal"))


def test_fork_after_appends_links_the_wal_and_writes_only_a_manifest(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    for i in range(20):
        src.append([Event("rows", 1, 0, rows=_simple(20_000, i * 20_000))], ts=Timestamp(i + 1))
    wal_inode = (tmp_path / "logs/src/wal").stat().st_ino
    before = _tree(tmp_path)
    assert sum(size for size, _ in before.values()) > 1 << 20
    fork = store.fork("src", "fork", until=12)
    after = _tree(tmp_path)
    assert _written(before, after) < 64 * 1024
    new = [n for n in after if n not in before]
    assert not [n for n in new if n.endswith(".arrow")]
    (shared,) = _wal_files(tmp_path)
    assert shared.stat().st_ino == wal_inode and shared.stat().st_nlink == 1
    assert (tmp_path / "logs/src/wal").stat().st_size == 0
    assert fork.head().txn_id == 12  # type: ignore[union-attr]
    assert fork.rows(1, 0).num_rows == 12 * 20_000  # type: ignore[union-attr]
    assert src.rows(1, 0).num_rows == 20 * 20_000  # type: ignore[union-attr]
    assert store.verify() == []


@pytest.mark.parametrize("cut", ["all", "middle", "none"])
def test_a_rotated_fork_reads_as_a_sealed_one(
    tmp_path: Path, typed_rows, assert_same_txns, rows_equal, cut: str
) -> None:
    stores = {}
    for how in ["rotated", "sealed"]:
        store = IpcStore(tmp_path / how)
        src = store.create("src")
        n = _fill(src, typed_rows)
        src.seal()  # earlier sealed history: the rotated file also holds sealed frames
        n += _fill(src, typed_rows, start=n + 1)
        until = {"all": n * 10, "middle": (n - 3) * 10, "none": 5}[cut]
        if how == "sealed":
            src.seal()
        store.fork("src", "fork", until=until)
        stores[how] = store
    rotated, sealed = stores["rotated"], stores["sealed"]
    assert _wal_files(tmp_path / "rotated") and not _wal_files(tmp_path / "sealed")
    for name in ["src", "fork"]:
        a, b = rotated.open(name), sealed.open(name)
        assert _shape(a.manifest.segments) == _shape(b.manifest.segments)
        assert a.manifest.last_sealed_txn == b.manifest.last_sealed_txn
        _assert_same(_observe(a), _observe(b), assert_same_txns, rows_equal)
    # reopened (nothing cached: the rotated file is decoded from disk)
    rotated.close()
    again = IpcStore(tmp_path / "rotated")
    for name in ["src", "fork"]:
        got = _observe(again.open(name))
        _assert_same(got, _observe(sealed.open(name)), assert_same_txns, rows_equal)
    assert again.verify() == []


def test_forks_of_forks_and_the_source_going_on(
    tmp_path: Path, typed_rows, assert_same_txns
) -> None:
    store = IpcStore(tmp_path, seal_txns=10**6)
    src = store.create("src")
    base = [
        src.append([Event("rows", 1, 0, rows=_simple(3, 3 * i))], ts=Timestamp(10 * (i + 1)))
        for i in range(10)
    ]
    fork = store.fork("src", "fork", until=60)  # txns 1..6, the cap inside the rotated file
    mine = fork.append([Event("rows", 1, 0, rows=_simple(1, 100))], ts=Timestamp(200))
    fork2 = store.fork("fork", "fork2", until=40)  # rotates fork's WAL; cap in src's file
    fork3 = store.fork("fork", "fork3", until=300)
    assert len(_wal_files(tmp_path)) == 2
    # the source goes on: appends, seals, compacts; gc keeps what the forks read
    more = [
        src.append([Event("rows", 1, 0, rows=_simple(2, 50 + i))], ts=Timestamp(300 + i))
        for i in range(3)
    ]
    src.seal()
    store.compact("src")
    assert all(walseg.SUFFIX not in p for p in store.gc())  # the forks still read it
    assert len(_wal_files(tmp_path)) == 2
    assert_same_txns(src.transactions(), [*base, *more])
    assert_same_txns(fork.transactions(), [*base[:6], mine])
    assert_same_txns(fork2.transactions(), base[:4])
    assert_same_txns(fork3.transactions(), [*base[:6], mine])
    assert fork.rows(1, 0)["_rid"].to_pylist() == [*range(18), 100]
    assert fork2.rows(1, 0)["_rid"].to_pylist() == list(range(12))
    assert fork2.append([Event("x")], ts=Timestamp(500)).txn_id == 5
    assert fork3.append([Event("x")], ts=Timestamp(500)).txn_id == 8
    store.close()
    store = IpcStore(tmp_path)
    assert_same_txns(store.open("src").transactions(), [*base, *more])
    assert [t.txn_id for t in store.open("fork2").transactions()] == [1, 2, 3, 4, 5]
    assert store.verify() == []


def test_drop_compact_gc_keep_what_a_fork_reads_then_free_the_rotated_file(
    tmp_path: Path, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    base = [
        src.append([Event("rows", 1, 0, rows=_simple(2, 2 * i))], ts=Timestamp(i + 1))
        for i in range(6)
    ]
    store.fork("src", "fork", until=4)
    (shared,) = _wal_files(tmp_path)
    src.append([Event("rows", 1, 0, rows=_simple(2, 99))], ts=Timestamp(10))
    src.seal()
    store.compact("src")  # the source's parts of the rotated file become segments
    assert not [s for s in src.manifest.segments if walseg.is_virtual(s.path)]
    assert store.relative(shared) not in store.gc() and shared.exists()  # the fork reads it
    store.drop("src")
    assert store.relative(shared) not in store.gc() and shared.exists()
    fork = store.open("fork")
    fork.append([Event("rows", 1, 0, rows=_simple(1, 7))], ts=Timestamp(20))
    fork.seal()
    store.compact("fork")  # inherited parts are never rewritten
    assert store.relative(shared) not in store.gc() and shared.exists()
    assert_same_txns(list(fork.transactions())[:4], base[:4])
    assert store.verify() == []
    store.drop("fork")
    assert store.relative(shared) in store.gc()
    assert not shared.exists()


@pytest.mark.parametrize("step", ["after-link", "before-manifest", "after-manifest", "rename"])
def test_a_crash_at_each_step_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns, step: str
) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    base = [
        src.append([Event("rows", 1, 0, rows=_simple(2, 2 * i))], ts=Timestamp(i + 1))
        for i in range(3)
    ]
    src.seal()
    base += [
        src.append([Event("rows", 1, 0, rows=_simple(2, 2 * i))], ts=Timestamp(i + 1))
        for i in range(3, 6)
    ]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise _Crash(step)

    if step == "after-link":
        monkeypatch.setattr(walseg, "fsync_dir", crash)
    elif step == "before-manifest":
        monkeypatch.setattr(walseg.mf, "write", crash)
    elif step == "after-manifest":
        real_write = walseg.mf.write

        def write_then_crash(path: Path, manifest: Any) -> None:
            real_write(path, manifest)
            raise _Crash(step)

        monkeypatch.setattr(walseg.mf, "write", write_then_crash)
    else:
        real_replace = os.replace

        def replace(src_path: Any, dst: Any) -> None:
            if Path(dst).name == "wal":
                raise _Crash(step)
            real_replace(src_path, dst)

        monkeypatch.setattr(walseg.os, "replace", replace)
    with pytest.raises(_Crash):
        store.fork("src", "fork", until=5)
    monkeypatch.undo()
    store.close()  # the process is gone: its descriptors and lock with it

    store = IpcStore(tmp_path)
    assert store.log_ids() == ["src"]
    src = store.open("src")
    assert_same_txns(src.transactions(), base)
    store.gc()
    assert store.verify() == []
    if step in ("after-link", "before-manifest"):
        assert not _wal_files(tmp_path)  # the orphan link is gone
    else:
        assert len(_wal_files(tmp_path)) == 1  # the manifest names it
        assert len(list((tmp_path / "logs/src").iterdir())) == 3  # a leftover fresh WAL
    later = src.append([Event("rows", 1, 0, rows=_simple(1, 50))], ts=Timestamp(7))
    assert later.txn_id == 7
    src.seal()  # resets the WAL: a shared file is replaced, never cut
    fork = store.fork("src", "fork", until=5)
    assert_same_txns(fork.transactions(), base[:5])
    assert_same_txns(src.transactions(), [*base, later])
    assert len(list((tmp_path / "logs/src").iterdir())) == 2  # the leftover is removed
    assert store.verify() == []
    store.close()
    store = IpcStore(tmp_path)
    assert_same_txns(store.open("src").transactions(), [*base, later])
    assert_same_txns(store.open("fork").transactions(), base[:5])


def test_a_flipped_byte_in_a_rotated_file_is_corruption_naming_it(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    for i in range(4):
        src.append([Event("rows", 1, 0, rows=_simple(50, 50 * i))], ts=Timestamp(i + 1))
    store.fork("src", "fork", until=3)
    store.close()
    (shared,) = _wal_files(tmp_path)
    data = bytearray(shared.read_bytes())
    data[len(data) // 2] ^= 0x40
    shared.write_bytes(bytes(data))
    store = IpcStore(tmp_path)
    with pytest.raises(CorruptionError, match=shared.name) as info:
        list(store.open("fork").transactions())
    assert info.value.path is not None and shared.name in info.value.path
    with pytest.raises(CorruptionError, match=shared.name):
        store.open("src").rows(1, 0)
    problems = store.verify()
    assert len(problems) == 2 and all(shared.name in p for p in problems), problems


def test_without_hard_links_a_fork_seals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    base = [src.append([Event("rows", 1, 0, rows=_simple(2))], ts=Timestamp(i)) for i in (1, 2)]

    def no_link(*args: Any) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(walseg.os, "link", no_link)
    fork = store.fork("src", "fork", until=1)
    assert not _wal_files(tmp_path) and list((tmp_path / "segments").glob("*.arrow"))
    assert_same_txns(fork.transactions(), base[:1])
    assert store.verify() == []


def test_a_reader_elsewhere_becomes_the_writer_after_a_rotation(
    tmp_path: Path, assert_same_txns
) -> None:
    writer = IpcStore(tmp_path)
    src = writer.create("src")
    base = [src.append([Event("x", None, 0, {"i": i})], ts=Timestamp(i + 1)) for i in range(3)]
    reader = IpcStore(tmp_path)
    other = reader.open("src")  # holds the WAL file that is about to be rotated out
    writer.fork("src", "fork", until=2)
    writer.close()
    (shared,) = _wal_files(tmp_path)
    size = shared.stat().st_size
    txn: Transaction = other.append([Event("y")], ts=Timestamp(10))
    assert txn.txn_id == 4 and shared.stat().st_size == size
    assert_same_txns(other.transactions(), [*base, txn])
    reader.close()
    assert_same_txns(IpcStore(tmp_path).open("src").transactions(), [*base, txn])


def test_a_reader_that_opened_the_old_wal_after_the_manifest_write_never_appends_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns
) -> None:
    writer = IpcStore(tmp_path)
    src = writer.create("src")
    base = [src.append([Event("x", None, 0, {"i": i})], ts=Timestamp(i + 1)) for i in range(3)]
    reader = IpcStore(tmp_path)
    opened: list[IpcRecorder] = []
    real_replace = os.replace

    def replace(src_path: Any, dst: Any) -> None:
        if Path(dst).name == "wal" and not opened:  # the new manifest is on disk already
            opened.append(reader.open("src"))
        real_replace(src_path, dst)

    monkeypatch.setattr(walseg.os, "replace", replace)
    writer.fork("src", "fork", until=2)
    monkeypatch.undo()
    writer.close()
    (other,) = opened
    assert other.manifest == IpcStore(tmp_path).open("src").manifest  # same manifest...
    (shared,) = _wal_files(tmp_path)
    size = shared.stat().st_size
    txn = other.append([Event("y")], ts=Timestamp(10))  # ...but the WAL file was replaced
    assert txn.txn_id == 4 and shared.stat().st_size == size
    reader.close()
    assert_same_txns(IpcStore(tmp_path).open("src").transactions(), [*base, txn])
