"""The durable store through the Store / Recorder protocols, checked against MemoryStore."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pytest

from asof.eventlog import ipc, wal
from asof.eventlog.errors import CorruptionError, LogError, LogIOError, UnknownLogError
from asof.eventlog.events import Event, Transaction
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcStore
from asof.eventlog.memory import MemoryStore
from asof.eventlog.recorder import CheckpointRef, Lineage, Recorder, Store
from asof.eventlog.wal import scan_file


def _simple(n: int, start: int = 0, extra: str = "v") -> pa.Table:
    return pa.table(
        {
            "_op": pa.array([0] * n, pa.int8()),
            "_rid": pa.array(range(start, start + n), pa.int64()),
            extra: pa.array([f"{extra}{i}" for i in range(start, start + n)]),
        }
    )


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


# The same scenario on both backends


class _Clock:
    """Deterministic timestamps, with ties on the physical part now and then."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> Timestamp:
        self.n += 1
        return Timestamp(1000 + 10 * (self.n // 2 * 2), self.n % 2)


def _checkpoint(store: Store, txn: Transaction) -> CheckpointRef:
    path = store.new_file_path("checkpoints", ".ckpt")
    data = f"state at {txn.txn_id}".encode()
    path.write_bytes(data)
    return CheckpointRef(store.relative(path), txn.txn_id, txn.ts, len(data), zlib.crc32(data))


def run_scenario(
    make_store: Callable[[], Store], mode: str, typed_rows: Callable[..., pa.Table]
) -> tuple[Store, dict[str, Recorder]]:
    """Appends, checkpoints, forks and a fork of a fork; `mode` adds seals or reopens."""
    store = make_store()
    clock = _Clock()
    src = store.create("src")

    def commit(rec: Recorder, events: list[Event], sql: str | None = None) -> Transaction:
        txn = rec.append(events, ts=clock(), sql=sql)
        if mode == "seal-often" and txn.txn_id % 3 == 0:
            rec.seal()
        return txn

    commit(src, [Event("create_table", 1, 0, {"name": "t1", "cols": ["a"]})], "CREATE TABLE t1")
    for i in range(4):
        txn = commit(
            src,
            [
                Event("rows", 1, 0, rows=typed_rows(3 + i, start=10 * i)),
                Event("note", None, 0, {"i": i}),
                Event("rows", 2, 0, rows=_simple(2, start=i)),
            ],
            f"INSERT {i}",
        )
    src.add_checkpoint(_checkpoint(store, txn))
    commit(src, [Event("rows", 1, 0, rows=typed_rows(0))])  # an event with zero rows
    commit(src, [Event("alter", 1, 1, {"add": "w"})], "ALTER")
    commit(src, [Event("rows", 1, 1, rows=_simple(4, extra="w"))])
    if mode == "seal-often":
        src.seal()
    fork_point = clock.n  # the fork sees everything so far, ties included
    cut = 1000 + 10 * (fork_point // 2 * 2)
    for i in range(3):
        txn = commit(src, [Event("rows", 2, 0, rows=_simple(1, start=100 + i))], "after fork")
    src.add_checkpoint(_checkpoint(store, txn))
    fork = store.fork("src", "fork", until=cut)
    for i in range(3):
        commit(fork, [Event("rows", 2, 0, rows=_simple(2, start=200 + i))], "in fork")
    fork2 = store.fork("fork", "fork2", until=clock.n * 10 + 1000 - 10)
    commit(fork2, [Event("rows", 1, 1, rows=_simple(1, start=300, extra="w"))])
    commit(src, [Event("drop_table", 2, 0)], "DROP")
    logs = {"src": src, "fork": fork, "fork2": fork2}
    if mode == "reopen":
        store.close()
        store = make_store()
        logs = {name: store.open(name) for name in logs}
    return store, logs


def observe(rec: Recorder) -> dict[Any, Any]:
    """Everything a reader can ask of a log, over a grid of ranges."""
    txns = list(rec.transactions())
    stamps = sorted({t.ts.physical for t in txns})
    out: dict[Any, Any] = {
        "head": rec.head(),
        "lineage": rec.lineage,
        # paths are random names; compare what they point at
        "checkpoints": [attrs.evolve(c, path="") for c in rec.checkpoints()],
        "checkpoints-early": [
            attrs.evolve(c, path="") for c in rec.checkpoints(until=stamps[len(stamps) // 2])
        ],
        "txns": txns,
    }
    afters = [0, 1, 4, 5, 7, txns[-1].txn_id - 1, txns[-1].txn_id]
    untils = [None, stamps[0] - 1, stamps[0], stamps[len(stamps) // 2], stamps[-2], stamps[-1]]
    for after in afters:
        for until in untils:
            out["txns", after, until] = list(rec.transactions(after_txn=after, until=until))
            out["headers", after, until] = [
                t.info for t in rec.transactions(after_txn=after, until=until, with_rows=False)
            ]
            for table_id, version in [(1, 0), (1, 1), (2, 0), (3, 0)]:
                key = ("rows", table_id, version, after, until)
                out[key] = rec.rows(table_id, version, after_txn=after, until=until)
    return out


@pytest.fixture
def memory_observations(typed_rows) -> dict[str, dict[Any, Any]]:
    store, logs = run_scenario(MemoryStore, "plain", typed_rows)
    return {name: observe(rec) for name, rec in logs.items()}


@pytest.mark.parametrize("mode", ["plain", "seal-often", "reopen", "seal-at-end"])
def test_ipc_matches_memory(
    tmp_path: Path, mode: str, typed_rows, memory_observations, assert_same_txns, rows_equal
) -> None:
    store, logs = run_scenario(lambda: IpcStore(tmp_path), mode, typed_rows)

    def check(name: str, got: dict[Any, Any], want: dict[Any, Any]) -> None:
        assert got.keys() == want.keys()
        for key in want:
            kind = key[0] if isinstance(key, tuple) else key
            if kind == "txns":
                assert_same_txns(got[key], want[key])
            elif kind == "rows":
                assert rows_equal(got[key], want[key]), (name, key)
            else:
                assert got[key] == want[key], (name, key)

    for name, rec in logs.items():
        check(name, observe(rec), memory_observations[name])
    if mode == "seal-at-end":  # sealing changes nothing a reader can see
        for name, rec in logs.items():
            assert rec.head() is not None
            rec.seal()
            check(name, observe(rec), memory_observations[name])
    assert store.verify() == []
    store.close()


def test_scenario_shapes(memory_observations) -> None:
    """Guard the scenario itself: it must exercise empty results, ties and inheritance."""
    fork = memory_observations["fork"]
    assert fork["lineage"] == (Lineage("src", 1080),)
    # txn 9 was appended to the source after txn 8 but shares its physical time: inherited
    assert [t.ts for t in fork["txns"][7:9]] == [Timestamp(1080, 0), Timestamp(1080, 1)]
    assert [t.sql for t in fork["txns"][8:]] == ["after fork"] + ["in fork"] * 3
    assert len(fork["checkpoints"]) == 1
    assert memory_observations["fork2"]["lineage"][1:] == fork["lineage"]
    src = memory_observations["src"]
    assert src["rows", 1, 0, 5, None].num_rows == 0  # only the zero-row event is in range
    assert src["rows", 3, 0, 0, None] is None
    assert [t.ts.logical for t in src["txns"]][:3] == [1, 0, 1]


# Round trips and reopening


def test_round_trip_and_reopen_in_a_fresh_store(
    tmp_path: Path, typed_rows, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    appended = [
        rec.append(
            [Event("rows", 1, 0, {"k": i}, rows=typed_rows(20, start=i * 20))],
            ts=Timestamp(i + 1),
            sql=f"q{i}",
        )
        for i in range(5)
    ]
    assert_same_txns(rec.transactions(), appended)
    rec.seal()
    appended.append(rec.append([Event("x")], ts=Timestamp(50)))
    assert_same_txns(rec.transactions(), appended)
    store.close()
    again = IpcStore(tmp_path).open("db")
    assert_same_txns(again.transactions(), appended)
    assert again.head() == appended[-1].info
    assert again.append([Event("y")], ts=Timestamp(60)).txn_id == 7


def test_a_new_process_sees_every_committed_transaction(tmp_path: Path, typed_rows) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    for i in range(4):
        rec.append([Event("rows", 1, 0, rows=typed_rows(5, start=i * 5))], ts=Timestamp(i + 1))
        if i == 1:
            rec.seal()
    want = rec.rows(1, 0)
    store.close()
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from asof.eventlog.ipc import IpcStore\n"
        "rec = IpcStore(Path(sys.argv[1])).open('db')\n"
        "rows = rec.rows(1, 0)\n"
        "print(json.dumps([[t.txn_id for t in rec.transactions()], rows.num_rows, "
        "str(rows.schema), rows['_rid'].to_pylist()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    ids, count, schema, rids = json.loads(out.stdout)
    assert ids == [1, 2, 3, 4] and count == want.num_rows == 20
    assert schema == str(want.schema) and rids == want["_rid"].to_pylist()


def test_changing_row_schema_within_a_version_survives_a_seal(
    tmp_path: Path, assert_same_txns
) -> None:
    rec = IpcStore(tmp_path).create("db")
    plain = _simple(2)
    tagged = plain.replace_schema_metadata({"v": "2"})
    txns = [
        rec.append([Event("rows", 1, 0, rows=r)], ts=Timestamp(i + 1))
        for i, r in enumerate([plain, tagged, plain])
    ]
    rec.seal()
    assert_same_txns(rec.transactions(), txns)
    kinds = [s.kind for s in rec.manifest.segments]
    assert kinds.count("rows") == 3 and kinds.count("txns") == 1


def test_automatic_seal_keeps_the_wal_small(tmp_path: Path, assert_same_txns) -> None:
    store = IpcStore(tmp_path, seal_bytes=4096)
    rec = store.create("db")
    txns = [
        rec.append([Event("rows", 1, 0, rows=_simple(50, start=i * 50))], ts=Timestamp(i + 1))
        for i in range(40)
    ]
    assert scan_file(tmp_path / "logs/db/wal").good_end <= 4096 + 2048
    assert len(rec.manifest.segments) > 4
    assert_same_txns(rec.transactions(), txns)
    assert rec.rows(1, 0, after_txn=10, until=20)["_txn"].to_pylist() == sorted(
        [i for i in range(11, 21) for _ in range(50)]
    )
    store.close()
    assert_same_txns(IpcStore(tmp_path).open("db").transactions(), txns)


def test_without_rows_events_carry_no_rows(tmp_path: Path) -> None:
    rec = IpcStore(tmp_path).create("db")
    rec.append([Event("rows", 1, 0, rows=_simple(3))], ts=Timestamp(1))
    rec.seal()
    rec.append([Event("rows", 1, 0, rows=_simple(3))], ts=Timestamp(2))
    txns = list(rec.transactions(with_rows=False))
    assert [t.events[0].rows for t in txns] == [None, None]


# Crashes, torn tails, corruption


def test_torn_last_frame_recovers_the_earlier_transactions(
    tmp_path: Path, typed_rows, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    for i in range(3):
        rec.append([Event("rows", 1, 0, rows=_simple(4, start=i * 4))], ts=Timestamp(i + 1))
    rec.seal()
    rec.append([Event("rows", 1, 0, rows=typed_rows(4))], ts=Timestamp(4))
    for i in range(4, 6):
        rec.append([Event("rows", 2, 0, rows=_simple(2, start=i))], ts=Timestamp(i + 1))
    before = list(rec.transactions())
    path = tmp_path / "logs/db/wal"
    good = scan_file(path).good_end
    rec.append([Event("rows", 2, 0, {"last": True}, rows=_simple(3))], ts=Timestamp(9), sql="LAST")
    store.close()
    full = path.read_bytes()[: scan_file(path).good_end]
    assert len(full) - good > 100
    for cut in range(good, len(full)):
        path.write_bytes(full[:cut])
        reopened = IpcStore(tmp_path)
        log = reopened.open("db")
        assert_same_txns(log.transactions(), before)
        assert path.stat().st_size == cut  # opening only reads
        if cut % 97 == 0 or cut == len(full) - 1:  # the first append cuts the torn bytes
            assert log.append([Event("z")], ts=Timestamp(20)).txn_id == 7
            assert scan_file(path).good_end > good and not scan_file(path).torn
        reopened.close()


def test_crash_between_manifest_and_wal_truncation_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    txns = [
        rec.append([Event("rows", 1, 0, rows=_simple(2, start=i))], ts=Timestamp(i + 1))
        for i in range(4)
    ]
    monkeypatch.setattr(wal.Wal, "reset", lambda self: None)  # "crash" before truncating
    rec.seal()
    monkeypatch.undo()
    store.close()
    assert (tmp_path / "logs/db/wal").stat().st_size > 0
    rec = IpcStore(tmp_path).open("db")
    assert_same_txns(rec.transactions(), txns)
    txns.append(rec.append([Event("after")], ts=Timestamp(10)))
    assert txns[-1].txn_id == 5
    assert_same_txns(rec.transactions(), txns)


def test_failed_wal_truncation_after_a_seal_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    txns = [rec.append([Event("n", data={"i": i})], ts=Timestamp(i + 1)) for i in range(3)]
    real = wal._truncate
    calls = {"n": 0}

    def truncate_fails_once(fd: int, length: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "I/O error")
        real(fd, length)

    monkeypatch.setattr(wal, "_truncate", truncate_fails_once)
    rec.seal()  # sealed; the stale WAL frames are merely left behind
    txns.append(rec.append([Event("n", data={"i": 3})], ts=Timestamp(4)))
    assert txns[-1].txn_id == 4
    assert_same_txns(rec.transactions(), txns)
    store.close()
    assert_same_txns(IpcStore(tmp_path).open("db").transactions(), txns)


def test_failed_seal_keeps_the_wal_and_gc_removes_its_orphans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    txns = [
        rec.append([Event("rows", 1, 0, rows=_simple(2, start=i))], ts=Timestamp(i + 1))
        for i in range(3)
    ]

    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ipc.mf, "write", no_space)
    with pytest.raises(LogIOError):
        rec.seal()
    monkeypatch.undo()
    assert_same_txns(rec.transactions(), txns)
    orphans = store.gc()
    assert len(orphans) == 2 and all(p.startswith("segments/") for p in orphans)
    store.close()
    rec = IpcStore(tmp_path).open("db")
    assert_same_txns(rec.transactions(), txns)
    rec.seal()
    assert_same_txns(rec.transactions(), txns)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


def test_flipped_byte_in_a_segment(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    rec.append([Event("rows", 1, 0, rows=_simple(100))], ts=Timestamp(1))
    rec.seal()
    seg = next(s for s in rec.manifest.segments if s.kind == "rows")
    store.close()
    path = tmp_path / seg.path
    _flip(path, path.stat().st_size // 2)
    store = IpcStore(tmp_path)
    rec = store.open("db")
    with pytest.raises(CorruptionError) as info:
        rec.rows(1, 0)
    assert str(path) in str(info.value)
    with pytest.raises(CorruptionError):
        list(rec.transactions())
    problems = store.verify()
    assert len(problems) == 1 and seg.path in problems[0] and "checksum" in problems[0]


def test_flipped_byte_in_a_manifest(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    rec.append([Event("x")], ts=Timestamp(1))
    rec.seal()
    store.close()
    path = tmp_path / "logs/db/manifest.json"
    _flip(path, 40)
    store = IpcStore(tmp_path)
    with pytest.raises(CorruptionError) as info:
        store.open("db")
    assert str(path) in str(info.value)
    assert any(str(path) in p and "checksum" in p for p in store.verify("db"))
    with pytest.raises(CorruptionError):
        store.gc()  # never deletes while it cannot know what is referenced


def test_verify_reports_missing_files_and_bad_wal_frames(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    ckpt = None
    for i in range(3):
        txn = rec.append([Event("x", data={"i": i})], ts=Timestamp(i + 1))
        if i == 0:
            ckpt = _checkpoint(store, txn)
            rec.add_checkpoint(ckpt)
    assert store.verify() == []
    store.close()
    assert ckpt is not None
    (tmp_path / ckpt.path).unlink()
    wal_path = tmp_path / "logs/db/wal"
    _flip(wal_path, 30)  # inside the first frame's payload
    problems = IpcStore(tmp_path).verify()
    assert any("missing" in p and ckpt.path in p for p in problems)
    assert any("followed by good frames" in p for p in problems)
    with pytest.raises(CorruptionError, match=str(wal_path)):
        IpcStore(tmp_path).open("db")


# I/O faults


@pytest.mark.parametrize(
    "target,err",
    [
        ("_write", errno.ENOSPC),
        ("_write", errno.EIO),
        ("_fsync", errno.EIO),
        ("_fsync", errno.ENOSPC),
    ],
)
def test_io_fault_records_nothing_and_the_next_append_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, err: int, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    txns = [rec.append([Event("rows", 1, 0, rows=_simple(2))], ts=Timestamp(1))]
    real = getattr(wal, target)
    failures = {"left": 1}

    def flaky(fd: int, *args: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            if target == "_write":
                real(fd, args[0][:7], *args[1:])  # a short write lands first
            raise OSError(err, os.strerror(err))
        real(fd, *args)

    monkeypatch.setattr(wal, target, flaky)
    with pytest.raises(LogIOError):
        rec.append([Event("rows", 1, 0, rows=_simple(5))], ts=Timestamp(2))
    assert_same_txns(rec.transactions(), txns)
    assert rec.head() == txns[0].info
    txns.append(rec.append([Event("ok")], ts=Timestamp(3)))
    assert txns[-1].txn_id == 2
    assert_same_txns(rec.transactions(), txns)
    store.close()
    assert_same_txns(IpcStore(tmp_path).open("db").transactions(), txns)


# Forks


def test_fork_shares_history_until_the_cut_and_is_independent_after(
    tmp_path: Path, assert_same_txns
) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    base = [
        src.append([Event("rows", 1, 0, rows=_simple(2, start=i))], ts=Timestamp(10 * (i + 1)))
        for i in range(6)
    ]
    fork = store.fork("src", "copy", until=35)
    assert_same_txns(fork.transactions(), base[:3])
    assert fork.head() == base[2].info
    assert fork.lineage == (Lineage("src", 35),)
    mine = fork.append([Event("rows", 1, 0, rows=_simple(1, start=99))], ts=Timestamp(100))
    theirs = src.append([Event("rows", 1, 0, rows=_simple(1, start=77))], ts=Timestamp(100))
    assert mine.txn_id == 4 and theirs.txn_id == 7
    assert_same_txns(fork.transactions(), [*base[:3], mine])
    assert_same_txns(src.transactions(), [*base, theirs])
    assert fork.rows(1, 0)["_rid"].to_pylist() == [0, 1, 1, 2, 2, 3, 99]
    fork.seal()
    src.seal()
    store.close()
    store = IpcStore(tmp_path)
    assert_same_txns(store.open("copy").transactions(), [*base[:3], mine])
    assert_same_txns(store.open("src").transactions(), [*base, theirs])
    assert store.verify() == []


def test_fork_of_an_empty_log_and_before_any_transaction(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    store.create("empty")
    assert store.fork("empty", "e2", until=10**15).head() is None
    src = store.create("src")
    src.append([Event("x")], ts=Timestamp(50))
    early = store.fork("src", "early", until=49)
    assert early.head() is None and list(early.transactions()) == []
    assert early.append([Event("y")], ts=Timestamp(60)).txn_id == 1


def test_fork_writes_only_a_small_manifest(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    src = store.create("big")
    for i in range(20):
        src.append(
            [Event("rows", 1, 0, rows=_simple(20_000, start=i * 20_000))], ts=Timestamp(i + 1)
        )
        if i % 5 == 4:
            src.seal()
    before = _files(tmp_path)
    assert sum(before.values()) > 1 << 20
    fork = store.fork("big", "small", until=12)
    after = _files(tmp_path)
    written = sum(size for name, size in after.items() if before.get(name) != size)
    assert written < 64 * 1024
    assert not [n for n in after if n.startswith("segments") and n not in before]
    assert fork.head().txn_id == 12  # type: ignore[union-attr]
    assert fork.rows(1, 0).num_rows == 12 * 20_000  # type: ignore[union-attr]


def test_gc_keeps_files_a_fork_refers_to_after_the_source_is_dropped(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    src = store.create("src")
    for i in range(4):
        txn = src.append([Event("rows", 1, 0, rows=_simple(10, start=i * 10))], ts=Timestamp(i + 1))
        src.seal()
    src.add_checkpoint(_checkpoint(store, txn))
    pending = store.new_file_path("checkpoints", ".ckpt")
    pending.write_bytes(b"being written")
    sidecar = pending.with_name(pending.name + ".wal")
    sidecar.write_bytes(b"a writer's sidecar")
    store.fork("src", "fork", until=2)
    assert store.gc() == []
    store.drop("src")
    assert not store.exists("src") and store.log_ids() == ["fork"]
    removed = store.gc()
    assert removed and all(p.startswith(("segments/", "checkpoints/")) for p in removed)
    assert store.relative(pending) not in removed and store.relative(sidecar) not in removed
    fork = store.open("fork")
    assert fork.rows(1, 0).num_rows == 20  # type: ignore[union-attr]
    assert store.verify() == []
    store.drop("fork")
    store.gc()
    left = [n for n in _files(tmp_path) if not n.endswith(".asof-shared")]
    assert sorted(left) == sorted([store.relative(pending), store.relative(sidecar)])


# Store-level behaviour


def test_store_protocol_edges(tmp_path: Path) -> None:
    store = IpcStore(tmp_path)
    for bad in ["", "Upper", "../x", "a/b", "a.b", "x" * 200]:
        with pytest.raises(ValueError):
            store.create(bad)
        with pytest.raises(ValueError):
            store.exists(bad)
    with pytest.raises(UnknownLogError):
        store.open("nope")
    rec = store.create("db")
    assert store.open("db") is rec
    with pytest.raises(LogError):
        store.create("db")
    with pytest.raises(LogError):
        store.fork("db", "db", until=1)
    store.drop("db")
    store.drop("db")  # dropping twice is fine
    assert not store.exists("db") and not (tmp_path / "logs/db").exists()
    with pytest.raises(LogIOError):
        rec.append([Event("x")], ts=Timestamp(1))
    path = store.new_file_path("checkpoints", ".duckdb")
    assert path.parent == tmp_path / "checkpoints" and path.suffix == ".duckdb"
    assert store.resolve(store.relative(path)) == path
    with pytest.raises(ValueError):
        store.resolve("../etc/passwd")
    with pytest.raises(ValueError):
        store.new_file_path("logs", ".x")
    assert store.root == tmp_path


def test_group_commit_from_many_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = IpcStore(tmp_path)
    rec = store.create("db")
    fsyncs = []
    real = wal._fsync

    def slow_fsync(fd: int) -> None:
        fsyncs.append(fd)
        time.sleep(0.002)  # a realistic fsync, so that appends pile up behind it
        real(fd)

    monkeypatch.setattr(wal, "_fsync", slow_fsync)
    results: dict[int, list[Transaction]] = {}
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        results[n] = [
            rec.append([Event("w", data={"thread": n, "i": i})], ts=Timestamp(1)) for i in range(50)
        ]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(t.txn_id for txns in results.values() for t in txns)
    assert ids == list(range(1, 401))
    for txns in results.values():  # each thread's appends keep their order
        assert [t.events[0].data["i"] for t in txns] == list(range(50))
        assert [t.txn_id for t in txns] == sorted(t.txn_id for t in txns)
    assert len(fsyncs) < 400  # some fsyncs covered several appends
    logged = list(rec.transactions())
    assert [t.txn_id for t in logged] == ids
    by_id = {t.txn_id: t for txns in results.values() for t in txns}
    assert all(by_id[t.txn_id] == t for t in logged)
    store.close()
    assert len(list(IpcStore(tmp_path).open("db").transactions())) == 400


# Several store objects (or processes) on one directory


def test_one_writer_at_a_time_and_readers_never_interfere(tmp_path: Path, assert_same_txns) -> None:
    writer = IpcStore(tmp_path)
    a = writer.create("db")
    txns = [a.append([Event("n", data={"i": i})], ts=Timestamp(i + 1)) for i in range(2)]
    wal_path = tmp_path / "logs/db/wal"
    in_flight = b"AWL1\x00\x01partial frame of an append in progress"
    with open(wal_path, "ab") as fh:
        fh.write(in_flight)
    reader = IpcStore(tmp_path)
    b = reader.open("db")
    assert_same_txns(b.transactions(), txns)
    assert wal_path.read_bytes().endswith(in_flight)  # a reader cuts nothing off
    with pytest.raises(LogIOError, match="another process or store"):
        b.append([Event("second writer")], ts=Timestamp(9))
    txns.append(a.append([Event("n", data={"i": 2})], ts=Timestamp(3)))
    writer.close()
    # once the writer is gone the other store may write, after catching up with the disk
    txns.append(b.append([Event("n", data={"i": 3})], ts=Timestamp(4)))
    assert txns[-1].txn_id == 4
    assert_same_txns(b.transactions(), txns)
    reader.close()
    assert_same_txns(IpcStore(tmp_path).open("db").transactions(), txns)


def test_open_retries_when_a_writer_seals_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_same_txns
) -> None:
    writer = IpcStore(tmp_path)
    a = writer.create("db")
    txns = [a.append([Event("n", data={"i": i})], ts=Timestamp(i + 1)) for i in range(3)]
    real_open = ipc.Wal.open
    calls = {"n": 0}

    def racing_open(path: Path, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # between reading the manifest and the WAL, the writer seals
            a.seal()
            txns.append(a.append([Event("n", data={"i": 3})], ts=Timestamp(4)))
        return real_open(path, **kw)

    monkeypatch.setattr(ipc.Wal, "open", racing_open)
    b = IpcStore(tmp_path).open("db")
    assert calls["n"] == 2
    assert_same_txns(b.transactions(), txns)


@pytest.mark.parametrize("backend", ["memory", "ipc"])
def test_last_at_finds_what_a_walk_of_the_log_finds(tmp_path: Path, backend: str) -> None:
    store: Store = MemoryStore() if backend == "memory" else IpcStore(tmp_path)
    src = store.create("src")

    def add(rec: Recorder, i: int, ts: int) -> None:
        rec.append([Event("rows", 1, 0, rows=_simple(1, start=i))], ts=Timestamp(ts))

    for i in range(6):
        add(src, i, 10 * (i + 1))  # 10 .. 60
    src.seal()
    for i in range(6, 9):
        add(src, i, 10 * (i + 1))  # 70 .. 90, in the WAL
    fork = store.fork("src", "copy", until=45)
    add(fork, 100, 200)
    add(src, 9, 300)
    src.seal()
    add(src, 10, 310)
    for rec in (src, fork):
        for until in range(0, 320, 5):
            walked = [t.txn_id for t in rec.transactions(until=until, with_rows=False)]
            assert rec.last_at(until) == (walked[-1] if walked else 0), (rec.log_id, until)
    store.close()
