"""Compaction and GC at the cluster level: clones keep reading the same, disk comes back."""

from __future__ import annotations

import pytest

from asof import Cluster, ProgrammingError
from asof.eventlog.ipc import IpcStore
from support import table_rows


def _segments_bytes(root) -> int:
    return sum(p.stat().st_size for p in (root / "segments").glob("*.arrow"))


def _own_bytes(cluster: Cluster, name: str) -> int:
    rec = cluster._record(name)
    manifest = cluster.store.open(rec.db_id).manifest
    return sum(s.size for s in manifest.segments)


def test_clone_reads_the_same_before_and_after_its_source_compacts(tmp_path):
    root = tmp_path / "data"
    with Cluster.open(root) as cluster:
        cluster.sql("CREATE DATABASE p")
        db = cluster.database("p")
        db.sql("CREATE TABLE t (id INT, v VARCHAR)")
        for i in range(40):
            db.sql("INSERT INTO t VALUES (?, ?)", [i, f"v{i}"])
            db.sql("UPDATE t SET v = v || '!' WHERE id = ?", [i // 2])
            db._rt.recorder.seal()  # many small segments, as a long-running database has
        mid = list(db.transactions())[30].ts.physical
        cluster.clone("p", "c", as_of=mid)
        clone = cluster.database("c")
        before = table_rows(clone, "t")
        before_early = clone.as_of(mid - 1).sql("SELECT count(*) FROM t").fetchall()
        history_before = clone.history("t").num_rows
        source_before = table_rows(db, "t")

        reports = cluster.compact("p")
        assert reports["p"].segments_after < reports["p"].segments_before
        cluster.gc()  # removes only what neither the source nor the clone needs
        assert table_rows(clone, "t") == before
        assert clone.as_of(mid - 1).sql("SELECT count(*) FROM t").fetchall() == before_early
        assert clone.history("t").num_rows == history_before
        assert table_rows(db, "t") == source_before
        assert cluster.check(deep=True) == []

        cluster.sql("DROP DATABASE c")
        assert cluster.gc()  # now the old segments go
        assert _segments_bytes(root) == _own_bytes(cluster, "p")
    with Cluster.open(root) as cluster:
        assert table_rows(cluster.database("p"), "t") == source_before


def test_compaction_folds_history_older_than_the_retention_window(tmp_path):
    now = [1_800_000_000_000_000]
    cluster = Cluster(IpcStore(tmp_path / "data"), wall=lambda: now[0])
    try:
        cluster.sql("CREATE DATABASE p")
        cluster.create_snapshot_schedule("p", 1, 5)
        db = cluster.database("p")
        db.sql("CREATE TABLE t (x INT)")
        db.sql("INSERT INTO t VALUES (1)")
        now[0] += 1
        early = list(db.transactions())[-1].ts.physical
        now[0] += 60_000_000
        db.sql("INSERT INTO t VALUES (2)")  # the schedule writes a checkpoint here
        now[0] += 10 * 60_000_000  # ten minutes later: the checkpoint is outside the window
        db.sql("INSERT INTO t VALUES (3)")
        cluster.compact("p")
        assert db.sql("SELECT count(*) FROM t").fetchall() == [(3,)]
        with pytest.raises(ProgrammingError, match="choose a time from"):
            db.as_of(early)
        kept = [t.txn_id for t in db.transactions()]
        assert kept and min(kept) > 2
        recent = list(db.transactions())[-1].ts.physical
        assert db.as_of(recent).sql("SELECT count(*) FROM t").fetchall() == [(3,)]
        assert cluster.check(deep=True) == []
    finally:
        cluster.close()


def test_a_clone_right_after_a_bulk_load_shares_the_wal_until_gc_frees_it(tmp_path):
    root = tmp_path / "data"
    with Cluster.open(root) as cluster:
        cluster.sql("CREATE DATABASE p")
        db = cluster.database("p")
        db.sql("CREATE TABLE t (k BIGINT, v BIGINT)")
        db.sql("INSERT INTO t SELECT i, i % 7 FROM range(200000) r(i)")  # a bulk WAL frame
        cluster.clone("p", "c")  # rotates p's WAL: no segment written
        assert list((root / "segments").glob("*.wal")) and _segments_bytes(root) == 0
        clone = cluster.database("c")
        expected = [(v, len(range(v, 200000, 7))) for v in range(7)]
        query = "SELECT v, count(*) FROM t GROUP BY v ORDER BY v"
        assert clone.sql(query).fetchall() == expected
        db.sql("INSERT INTO t VALUES (-1, -1)")
        assert cluster.check(deep=True) == []
        cluster.compact("p")
        assert not [p for p in cluster.gc() if p.endswith(".wal")]  # the clone still reads it
    with Cluster.open(root) as cluster:
        assert cluster.database("c").sql(query).fetchall() == expected
        assert cluster.database("p").sql("SELECT count(*) FROM t").fetchall() == [(200001,)]
        assert cluster.check(deep=True) == []
        cluster.sql("DROP DATABASE c")
        assert [p for p in cluster.gc() if p.endswith(".wal")]
        assert not list((root / "segments").glob("*.wal"))
        assert cluster.check(deep=True) == []
