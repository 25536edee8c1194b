"""A byte-level fault campaign over the WALs of a cluster (a database's and the catalog's).

Each fault (a flipped byte, a cut at or inside a frame, a zeroed range) is applied to a copy
of a data directory taken as a crash would leave it (the cluster still open, every commit
fsync'd), and the copy is opened. Only two outcomes are allowed: everything reads exactly as
in an undamaged twin (the fault hit room to grow into, or a torn frame nobody committed), or
a CorruptionError names the damaged file. A committed transaction that disappears without a
word, or rows that differ, fail the campaign.

The default run applies a few dozen chosen faults; `pytest -m slow` runs several hundred.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import attrs
import pytest

from asof import Cluster, CorruptionError
from asof.eventlog import wal
from asof.eventlog.wal import HEADER_SIZE, scan_file
from asof.queryapi.forensics.checks import table_digests

DATABASES = ("a", "b", "c")  # c is a clone of a


@attrs.frozen
class Base:
    """The crash image, what it holds, and the WALs to damage."""

    data: Path
    state: dict
    wals: dict[str, Path]  # label -> WAL path inside `data`


def _build(data: Path, image: Path) -> None:
    cluster = Cluster.open(data)
    cluster.sql("CREATE DATABASE a")
    a = cluster.database("a")
    a.sql("CREATE TABLE t (k INT PRIMARY KEY, s VARCHAR, f DOUBLE)")
    a.sql("INSERT INTO t SELECT i, 'row ' || i, i / 7 FROM range(300) r(i)")
    cluster.clone("a", "c")
    for i in range(300, 306):  # single-row commits (WAL payload format 3)
        a.sql("INSERT INTO t VALUES (?, ?, ?)", (i, f"fast {i}", i * 0.5))
    a.sql("UPDATE t SET s = s || '!' WHERE k % 10 = 0")
    a.sql(
        "BEGIN; DELETE FROM t WHERE k < 5; INSERT INTO t VALUES (-1, repeat('x', 3000), 0); COMMIT"
    )
    a.sql("INSERT INTO t SELECT i, md5(i::VARCHAR), random() FROM range(1000, 1400) r(i)")
    cluster.sql("CREATE DATABASE b")
    b = cluster.database("b")
    b.sql("CREATE TABLE u (x BIGINT, y VARCHAR)")
    b.sql("INSERT INTO u VALUES (1, 'one'), (2, 'two')")
    c = cluster.database("c")
    c.sql("INSERT INTO t VALUES (5000, 'clone only', 1)")
    c.sql("UPDATE t SET f = -f WHERE k < 20")
    cluster.set_flag("enable_db_clone", True)  # the catalog's last commit
    for name in DATABASES:
        cluster.database(name).sql("SELECT 1").fetchall()  # rows pending are applied
    shutil.copytree(data, image)  # as a crash now would leave it: nothing is lost
    cluster.close()
    for path in image.rglob("wal"):  # zeros after the frames are room: keep a little
        size = scan_file(path).good_end
        with open(path, "r+b") as fh:
            fh.truncate(size + 1024)


def _state(cluster: Cluster) -> dict:
    state: dict = {"databases": sorted(cluster.databases()), "flags": cluster.flags}
    for name in DATABASES:
        rt = cluster._runtime(cluster._record(name))
        cur = rt.cursor()
        try:
            state[name] = (rt.recorder.head().txn_id, table_digests(cur))
        finally:
            cur.close()
    return state


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("walfaults")
    image = root / "image"
    _build(root / "live", image)
    twin = root / "twin"
    shutil.copytree(image, twin)
    with Cluster.open(twin) as cluster:
        state = _state(cluster)
        ids = {n: cluster._record(n).db_id for n in ("a", "c")}
    assert state["a"][0] > 5 and state["c"][1]["t"][0] == 301
    wals = {
        "database": image / "logs" / ids["a"] / "wal",
        "clone": image / "logs" / ids["c"] / "wal",
        "catalog": image / "logs" / "catalog" / "wal",
    }
    for path in wals.values():
        assert len(scan_file(path).frames) >= 2
    return Base(image, state, wals)


# Faults: (description, function of the WAL's bytes and frames returning the new bytes)


def _flip(at: int):
    def apply(data: bytearray) -> bytearray:
        if at < len(data):
            data[at] ^= 0x5A
        return data

    return f"flip {at}", apply


def _cut(at: int):
    return f"cut {at}", lambda data: data[:at]


def _zero(at: int, n: int):
    def apply(data: bytearray) -> bytearray:
        data[at : at + n] = bytes(len(data[at : at + n]))
        return data

    return f"zero {at}+{n}", apply


def _torn_append(keep: int):
    """An uncommitted frame cut short after `keep` bytes, then a flipped byte in it."""

    def apply(data: bytearray) -> bytearray:
        end = scan_file_bytes(data)
        frame = wal.encode_frame(b"never committed " * 40)
        data[end : end + keep] = frame[:keep]
        return data

    return f"torn append {keep}", apply


def scan_file_bytes(data: bytearray) -> int:
    return wal.scan(bytes(data)).good_end


def _quick_faults(path: Path) -> list:
    frames = scan_file(path).frames
    last, prev = frames[-1], frames[-2]
    end = last.end
    mid = (last.offset + HEADER_SIZE + last.end - HEADER_SIZE) // 2
    return [
        _flip(0),
        _flip(prev.offset + HEADER_SIZE + 1),
        _flip(last.offset + 2),  # the last frame's header
        _flip(last.offset + 9),  # its length
        _flip(mid),  # its payload: a flipped bit in the last complete frame
        _flip(end - 3),  # its trailer
        _flip(end + 700),  # room to grow into, a block later: not a frame
        _cut(0),
        _cut(prev.end),  # exactly at a frame boundary: the last frame gone
        _cut(prev.offset),
        _cut(mid),
        _cut(end - 1),
        _zero(end - HEADER_SIZE, HEADER_SIZE),  # the trailer
        _zero(last.offset, last.end - last.offset),  # the whole last frame
        _zero(prev.offset + 4, 16),
        _torn_append(HEADER_SIZE + 40),
        _torn_append(10),
    ]


def _all_faults(path: Path, rng: random.Random) -> list:
    frames = scan_file(path).frames
    end = frames[-1].end
    faults = [_cut(f.offset) for f in frames] + [_cut(f.end) for f in frames]
    faults += [_flip(rng.randrange(end)) for _ in range(60)]
    faults += [_cut(rng.randrange(end)) for _ in range(25)]
    faults += [_zero(rng.randrange(end), rng.choice((1, 8, 64, 512, 4096))) for _ in range(25)]
    faults += [
        _flip(frames[-1].offset + rng.randrange(frames[-1].end - frames[-1].offset))
        for _ in range(20)
    ]
    faults += [_torn_append(rng.randrange(1, 600)) for _ in range(6)]
    return faults


def _outcome(base: Base, label: str, fault, scratch: Path) -> str:
    """'intact', 'reported', or raise AssertionError describing a silent loss."""
    name, apply = fault
    copy = scratch / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(base.data, copy)
    target = copy / base.wals[label].relative_to(base.data)
    target.write_bytes(bytes(apply(bytearray(target.read_bytes()))))
    named = str(target.relative_to(copy))
    try:
        cluster = Cluster.open(copy)
    except CorruptionError as exc:
        assert named in str(exc), f"{label} {name}: {exc} does not name {named}"
        return "reported"
    with cluster:
        errors: dict[str, str] = {}
        got: dict = {"databases": sorted(cluster.databases()), "flags": cluster.flags}
        for db in DATABASES:
            try:
                cluster.database(db).sql("SELECT 1")  # the public path: opens the projection
                rt = cluster._runtime(cluster._record(db))
                cur = rt.cursor()
                try:
                    got[db] = (rt.recorder.head().txn_id, table_digests(cur))
                finally:
                    cur.close()
            except CorruptionError as exc:
                errors[db] = str(exc)
        if not errors:
            assert got == base.state, f"{label} {name}: silent loss or wrong rows"
            return "intact"
        for db, message in errors.items():
            assert named in message, f"{label} {name}: {db}: {message} does not name {named}"
        problems = cluster.check()
        assert any(named in p for p in problems), f"{label} {name}: check() says {problems}"
        for db in set(DATABASES) - set(errors):
            assert got[db] == base.state[db], f"{label} {name}: {db} changed"
        return "reported"


def _campaign(base: Base, faults: dict[str, list], scratch: Path) -> Counter:
    outcomes: Counter = Counter()
    for label, items in faults.items():
        for fault in items:
            outcomes[(label, _outcome(base, label, fault, scratch))] += 1
    return outcomes


def test_quick_fault_campaign(base: Base, tmp_path: Path) -> None:
    faults = {label: _quick_faults(path) for label, path in base.wals.items()}
    outcomes = _campaign(base, faults, tmp_path)
    total = sum(len(v) for v in faults.values())
    assert sum(outcomes.values()) == total >= 45
    for label in base.wals:  # every WAL had faults that must be reported, and harmless ones
        assert outcomes[(label, "reported")] >= 12, outcomes
        assert outcomes[(label, "intact")] >= 2, outcomes


@pytest.mark.slow
def test_full_fault_campaign(base: Base, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    faults = {label: _all_faults(path, rng) for label, path in base.wals.items()}
    outcomes = _campaign(base, faults, tmp_path)
    assert sum(outcomes.values()) >= 400, outcomes


def _flip_last_frame(path: Path) -> None:
    last = scan_file(path).frames[-1]
    raw = bytearray(path.read_bytes())
    raw[(last.offset + last.end) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flip_in_a_frame_nothing_else_has_seen_is_still_reported(tmp_path: Path) -> None:
    """Rows of the fast insert path still pending (not in the projection), and a catalog
    without its commit mark (as clusters made before it had): only the frame's trailer
    tells that it was written whole."""
    data, image = tmp_path / "data", tmp_path / "image"
    cluster = Cluster.open(data)
    cluster.sql("CREATE DATABASE a")
    a = cluster.database("a")
    a.sql("CREATE TABLE t (k INT, s VARCHAR)")
    a.sql("INSERT INTO t VALUES (0, 'zero')")
    for i in range(1, 4):
        a.sql("INSERT INTO t VALUES (?, ?)", (i, f"pending {i}"))
    assert cluster._runtime(cluster._record("a")).pending  # not in the projection yet
    db_id = cluster._record("a").db_id
    shutil.copytree(data, image)
    cluster.close()
    for target, mark in (
        (image / "logs" / db_id / "wal", None),
        (
            image / "logs" / "catalog" / "wal",
            image / "logs" / "catalog" / "committed",
        ),
    ):
        copy = tmp_path / f"copy-{target.parent.name}"
        shutil.copytree(image, copy)
        damaged = copy / target.relative_to(image)
        if mark is not None:
            (copy / mark.relative_to(image)).unlink()
        _flip_last_frame(damaged)
        with pytest.raises(CorruptionError, match=str(damaged.relative_to(copy))):
            with Cluster.open(copy) as opened:
                opened.database("a").sql("SELECT count(*) FROM t").fetchall()
