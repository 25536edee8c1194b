"""Compaction: merging a log's own segments and folding its history into a checkpoint."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from asof.eventlog import compact, ipc
from asof.eventlog import manifest as mf
from asof.eventlog.errors import LogError, LogIOError
from asof.eventlog.events import Event, Transaction
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcStore
from asof.eventlog.memory import MemoryStore
from asof.eventlog.recorder import CheckpointRef, Recorder, Store

KEYS = [(1, 0), (2, 0), (2, 1), (3, 0)]
_TYPED: dict[tuple[int, int], pa.Table] = {}


def _simple(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "_op": pa.array([0] * n, pa.int8()),
            "_rid": pa.array(range(start, start + n), pa.int64()),
            "v": pa.array([f"v{i}" for i in range(start, start + n)]),
        }
    )


def _events(i: int, typed_rows: Callable[..., pa.Table]) -> list[Event]:
    """A varied transaction: typed rows, plain rows, zero rows, and row-less events."""
    key = (1 + i % 4, 10 * i)
    if key not in _TYPED:  # building typed rows costs more than the rest of a commit
        _TYPED[key] = typed_rows(key[0], start=key[1])
    events = [Event("rows", 1, 0, {"i": i}, rows=_TYPED[key])]
    if i % 3 == 0:
        events.append(Event("note", None, 0, {"i": i}))
    if i % 4 == 1:
        events.append(Event("rows", 2, 0, rows=_simple(2, start=i)))
    if i % 7 == 3:
        events.append(Event("rows", 2, 1, rows=_simple(0)))  # an event with zero rows
    return events


def _fill(rec: Recorder, n: int, typed_rows: Callable[..., pa.Table], *, seal: bool) -> None:
    start = 0 if rec.head() is None else rec.head().txn_id  # type: ignore[union-attr]
    for i in range(start, start + n):
        rec.append(_events(i, typed_rows), ts=Timestamp(1000 + 10 * (i // 2), i % 2), sql=f"q{i}")
        if seal:
            rec.seal()


def _checkpoint(store: Store, rec: Recorder, txn_id: int) -> CheckpointRef:
    txn = next(rec.transactions(after_txn=txn_id - 1, with_rows=False))
    path = store.new_file_path("checkpoints", ".ckpt")
    data = f"state at {txn_id}".encode()
    path.write_bytes(data)
    ref = CheckpointRef(store.relative(path), txn_id, txn.ts, len(data), zlib.crc32(data))
    rec.add_checkpoint(ref)
    return ref


def observe(rec: Recorder) -> dict[Any, Any]:
    """What readers see, over a grid of ranges; checkpoint paths left out (random names)."""
    out: dict[Any, Any] = {
        "head": rec.head(),
        "start": rec.history_start(),
        "checkpoints": [attrs.evolve(c, path="") for c in rec.checkpoints()],
    }
    for after in [0, 11, 12, 20]:
        for until in [None, 1035, 1075]:  # ties at 1030 and 1070; the data spans 1000-1100
            out["txns", after, until] = list(rec.transactions(after_txn=after, until=until))
            for key in KEYS:
                out["rows", *key, after, until] = rec.rows(*key, after_txn=after, until=until)
    return out


def _same(got: dict[Any, Any], want: dict[Any, Any], assert_same_txns, rows_equal) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        kind = key[0] if isinstance(key, tuple) else key
        if kind == "txns":
            assert_same_txns(got[key], value)
        elif kind == "rows":
            assert rows_equal(got[key], value), key
        else:
            assert got[key] == value, key


def _after_fold(seen: dict[Any, Any], fold: int) -> dict[Any, Any]:
    """What `seen` becomes once the history up to txn `fold` is folded."""
    out: dict[Any, Any] = {}
    for key, value in seen.items():
        kind = key[0] if isinstance(key, tuple) else key
        if kind == "txns":
            value = [t for t in value if t.txn_id > fold]
        elif kind == "rows" and value is not None:
            has_event = any(
                t.txn_id > max(fold, key[3])
                and any(
                    e.rows is not None and (e.table_id, e.version) == key[1:3] for e in t.events
                )
                for t in seen["txns", key[3], key[4]]
            )
            value = value.filter(pc.greater(value["_txn"], fold)) if has_event else None
        elif kind == "checkpoints":
            value = [c for c in value if c.txn_id >= fold]
        out[key] = value
    return out


def _segment_files(root: Path) -> dict[str, int]:
    return {f"segments/{p.name}": p.stat().st_size for p in (root / "segments").iterdir()}


# Merging


def test_many_small_seals_merge_into_few_segments(
    tmp_path: Path, typed_rows, assert_same_txns, rows_equal
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    _fill(rec, 30, typed_rows, seal=True)
    before = observe(rec)
    many = len(rec.manifest.segments)
    assert many >= 60
    report = store.compact("db")
    assert report.segments_before == many and report.rows_dropped == 0
    # one file per table version, one txns file
    assert report.segments_after == len(rec.manifest.segments) == len(KEYS) - 1 + 1
    assert report.bytes_after < report.bytes_before
    _same(observe(rec), before, assert_same_txns, rows_equal)
    assert store.verify() == []
    removed = store.gc()
    assert len(removed) == many
    assert sum(_segment_files(tmp_path).values()) == report.bytes_after
    again = store.compact("db")  # nothing left to merge: nothing written
    assert again.segments_before == again.segments_after == report.segments_after
    assert store.gc() == []
    store.close()
    _same(observe(IpcStore(tmp_path).open("db")), before, assert_same_txns, rows_equal)


def test_compaction_seals_the_wal_first_and_splits_huge_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed_rows, assert_same_txns, rows_equal
) -> None:
    monkeypatch.setattr(compact, "MAX_ROWS", 5)
    store = IpcStore(tmp_path)
    rec = store.create("db")
    _fill(rec, 12, typed_rows, seal=True)
    _fill(rec, 3, typed_rows, seal=False)  # still in the WAL
    before = observe(rec)
    store.compact("db")
    assert (tmp_path / "logs/db/wal").stat().st_size == 0
    table1 = [s for s in rec.manifest.segments if s.table_id == 1]
    assert 1 < len(table1) < 13 and all(s.row_count <= 6 for s in table1)  # 6: one seal
    _same(observe(rec), before, assert_same_txns, rows_equal)


def test_seals_during_compaction_are_kept(tmp_path: Path, monkeypatch, typed_rows) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    _fill(rec, 6, typed_rows, seal=True)
    real = ipc.compact_manifest

    def racing(*args: Any) -> Any:
        done = real(*args)
        _fill(rec, 2, typed_rows, seal=True)  # an append and a seal meanwhile
        _checkpoint(store, rec, 7)
        return done

    monkeypatch.setattr(ipc, "compact_manifest", racing)
    store.compact("db")
    assert [t.txn_id for t in rec.transactions()] == list(range(1, 9))
    assert [c.txn_id for c in rec.checkpoints()] == [7]
    store.close()
    assert [t.txn_id for t in IpcStore(tmp_path).open("db").transactions()] == list(range(1, 9))


# Folding


def test_fold_starts_history_at_the_checkpoint(
    tmp_path: Path, typed_rows, assert_same_txns, rows_equal
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    _fill(rec, 24, typed_rows, seal=True)
    _checkpoint(store, rec, 5)
    fold = _checkpoint(store, rec, 12)
    _checkpoint(store, rec, 20)
    before = observe(rec)
    head = rec.head()
    with pytest.raises(LogError, match="no checkpoint"):
        store.compact("db", fold_txn=13)
    with pytest.raises(LogError, match="timestamp"):
        store.compact("db", fold_txn=12, fold_ts=Timestamp(1))
    report = store.compact("db", fold_txn=12, fold_ts=fold.ts)
    assert report.rows_dropped == sum(1 + i % 4 for i in range(12)) + 2 * 3  # table 1, 2
    folded = _after_fold(before, 12)
    fold_info = before["txns", 0, None][11].info
    folded["start"] = fold_info
    _same(observe(rec), folded, assert_same_txns, rows_equal)
    assert rec.head() == head and rec.history_start() == fold_info
    assert [c.txn_id for c in rec.checkpoints()] == [12, 20]
    assert min(s.min_txn for s in rec.manifest.segments) == 13
    assert rec.append([Event("x")], ts=Timestamp(5000)).txn_id == 25
    store.close()
    rec = IpcStore(tmp_path).open("db")
    assert rec.history_start() == fold_info
    assert [t.txn_id for t in rec.transactions()] == list(range(13, 26))


def test_folding_every_transaction_keeps_head_and_numbering(
    tmp_path: Path, typed_rows, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    _fill(rec, 8, typed_rows, seal=True)
    _checkpoint(store, rec, 8)
    head = rec.head()
    report = store.compact("db", fold_txn=8)
    assert report.segments_after == 0 and report.bytes_after == 0
    assert list(rec.transactions()) == [] and rec.rows(1, 0) is None
    assert rec.head() == rec.history_start() == head
    store.gc()
    assert _segment_files(tmp_path) == {}
    store.close()
    store = IpcStore(tmp_path)
    rec = store.open("db")
    assert rec.head() == head
    txn = rec.append([Event("rows", 1, 0, rows=_simple(2))], ts=Timestamp(9000))
    assert txn.txn_id == 9
    assert_same_txns(rec.transactions(), [txn])
    report = store.compact("db", fold_txn=3)  # an older fold point: merging only
    assert report.segments_after == report.segments_before == 2
    assert rec.history_start() == head
    assert_same_txns(rec.transactions(), [txn])


# Forks


def test_fork_made_before_compaction_reads_the_same(
    tmp_path: Path, typed_rows, assert_same_txns, rows_equal
) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    _fill(src, 20, typed_rows, seal=True)
    _checkpoint(store, src, 6)
    own_before = _segment_files(tmp_path)
    fork = store.fork("src", "fork", until=1000 + 10 * 7)  # txns 1..16
    _fill(fork, 4, typed_rows, seal=True)
    _checkpoint(store, src, 18)
    seen = observe(fork)
    store.compact("src", fold_txn=18)
    _same(observe(fork), seen, assert_same_txns, rows_equal)
    store.gc()  # only source files the fork does not name go
    assert all((tmp_path / s.path).is_file() for s in fork.manifest.segments)
    _same(observe(fork), seen, assert_same_txns, rows_equal)
    store.close()
    store = IpcStore(tmp_path)
    fork = store.open("fork")
    _same(observe(fork), seen, assert_same_txns, rows_equal)
    inherited = [s for s in fork.manifest.segments if s.path in own_before]
    store.compact("fork")  # its own segments merge; inherited ones stay as they are
    assert [s for s in fork.manifest.segments if s.path in own_before] == inherited
    own = [s for s in fork.manifest.segments if s.path not in own_before]
    assert [s.kind for s in own].count("txns") == 1
    assert len({(s.table_id, s.version) for s in own}) == len(own)
    _same(observe(fork), seen, assert_same_txns, rows_equal)
    store.drop("fork")
    store.gc()
    src = store.open("src")
    assert _segment_files(tmp_path) == {s.path: s.size for s in src.manifest.segments}
    assert store.verify() == []


def test_fork_made_after_compaction_inherits_the_fold(
    tmp_path: Path, typed_rows, assert_same_txns, rows_equal
) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    _fill(src, 20, typed_rows, seal=True)
    _checkpoint(store, src, 10)
    store.compact("src", fold_txn=10)
    with pytest.raises(LogError, match="folded"):
        store.fork("src", "early", until=1000)
    fork = store.fork("src", "fork", until=1000 + 10 * 7)  # txns 11..16
    assert fork.history_start() == src.history_start()
    assert [t.txn_id for t in fork.transactions()] == list(range(11, 17))
    assert [c.txn_id for c in fork.checkpoints()] == [10]
    shared = {s.path for s in src.manifest.segments}
    assert {s.path for s in fork.manifest.segments} <= shared
    assert fork.append([Event("mine")], ts=Timestamp(9000)).txn_id == 17
    _checkpoint(store, fork, 14)
    seen = observe(fork)
    store.compact("fork", fold_txn=14)
    assert shared >= {s.path for s in fork.manifest.segments if s.until is not None}
    folded = _after_fold(seen, 14)
    folded["start"] = seen["txns", 0, None][3].info
    _same(observe(fork), folded, assert_same_txns, rows_equal)
    assert [t.txn_id for t in fork.transactions()] == [15, 16, 17]
    assert fork.rows(1, 0)["_txn"].unique().to_pylist() == [15, 16]  # type: ignore[index]
    assert [t.txn_id for t in src.transactions()] == list(range(11, 21))
    assert store.verify() == []


# Crashes and manifests


def test_crash_during_compaction_leaves_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed_rows, assert_same_txns, rows_equal
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    _fill(rec, 10, typed_rows, seal=True)
    _checkpoint(store, rec, 4)
    before = observe(rec)
    manifest_bytes = (tmp_path / "logs/db/manifest.json").read_bytes()
    files = _segment_files(tmp_path)

    def crash(*args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(ipc.mf, "write", crash)
    with pytest.raises(RuntimeError):
        store.compact("db", fold_txn=4)
    monkeypatch.setattr(ipc.mf, "write", lambda *a: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(LogIOError):
        store.compact("db", fold_txn=4)
    monkeypatch.undo()
    assert (tmp_path / "logs/db/manifest.json").read_bytes() == manifest_bytes
    _same(observe(rec), before, assert_same_txns, rows_equal)
    leftovers = set(_segment_files(tmp_path)) - set(files)
    assert leftovers and sorted(store.gc()) == sorted(leftovers)
    assert _segment_files(tmp_path) == files
    store.close()
    store = IpcStore(tmp_path)  # a restart after the crash: the old log, whole
    _same(observe(store.open("db")), before, assert_same_txns, rows_equal)
    store.compact("db", fold_txn=4)
    assert [t.txn_id for t in store.open("db").transactions()] == list(range(5, 11))


def test_manifest_formats(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    legacy = {
        "format": 1,
        "log_id": "f",
        "lineage": [{"source_id": "src", "until": 50}],
        "segments": [],
        "checkpoints": [],
        "last_sealed_txn": 7,
    }
    legacy["checksum"] = zlib.crc32(mf._canonical(legacy))
    path.write_bytes(mf._canonical(legacy))
    old = mf.read(path)
    assert old.inherited_txn == 7 and old.folded is None  # a legacy fork: all inherited
    mf.write(path, old)
    assert json.loads(path.read_bytes())["format"] == 1  # unfolded: older code still reads it
    folded = attrs.evolve(old, folded_txn=3, folded_ts=Timestamp(30, 1), folded_sql="q")
    mf.write(path, folded)
    assert json.loads(path.read_bytes())["format"] == 2  # older code must refuse it
    assert mf.read(path) == folded


# Both backends through the protocols


def _story(store: Store, typed_rows: Callable[..., pa.Table]) -> dict[str, Recorder]:
    src = store.create("src")
    _fill(src, 16, typed_rows, seal=True)
    _checkpoint(store, src, 4)
    _checkpoint(store, src, 9)
    before = store.fork("src", "before", until=1000 + 10 * 6)  # txns 1..14
    _fill(before, 3, typed_rows, seal=False)
    store.compact("src", fold_txn=9)
    _fill(src, 3, typed_rows, seal=False)
    after = store.fork("src", "after", until=1000 + 10 * 8)  # txns 10..18
    _checkpoint(store, before, 12)
    store.compact("before", fold_txn=12)
    _fill(after, 2, typed_rows, seal=True)
    return {"src": src, "before": before, "after": after}


def test_memory_and_durable_stores_agree(
    tmp_path: Path, typed_rows, assert_same_txns, rows_equal
) -> None:
    stores: list[Store] = [MemoryStore(), IpcStore(tmp_path)]
    memory, durable = (_story(store, typed_rows) for store in stores)
    for store in stores:
        with pytest.raises(LogError, match="folded"):
            store.fork("src", "too-early", until=1030)  # txn 9, the fold, is at 1040
    for name, rec in memory.items():
        want = observe(rec)
        assert want["start"] is not None
        _same(observe(durable[name]), want, assert_same_txns, rows_equal)
    assert [t.txn_id for t in memory["before"].transactions()] == [13, 14, 15, 16, 17]
    assert memory["after"].head().txn_id == 20  # type: ignore[union-attr]
    txn: Transaction = memory["src"].append([Event("x")], ts=Timestamp(9999))
    assert durable["src"].append([Event("x")], ts=Timestamp(9999)).txn_id == txn.txn_id == 20


def test_gc_spares_files_a_read_in_progress_still_needs(tmp_path: Path) -> None:
    """A read that started before a compaction finishes after gc: its files stay until it
    ends, then go."""
    import gc as python_gc

    store = IpcStore(tmp_path)
    rec = store.create("db")
    for i in range(4):
        rec.append([Event("rows", 1, 0, rows=_simple(3, start=i * 3))], ts=Timestamp(i + 1))
        rec.seal()
    expected = [t.txn_id for t in rec.transactions()]
    reading = rec.transactions()
    first = next(reading)
    store.cache.clear()  # the rest must come from the files
    old = {p.name for p in (tmp_path / "segments").iterdir()}
    rec.compact()
    store.gc()
    assert [first.txn_id, *(t.txn_id for t in reading)] == expected
    del reading, first
    python_gc.collect()
    removed = store.gc()
    assert removed and {r.rsplit("/", 1)[-1] for r in removed} <= old
    assert [t.txn_id for t in rec.transactions()] == expected
