"""The projection side of a commit failing: DuckDB's own writes hit a full disk, or the log
refuses a transaction DuckDB already took. Committed means in the log, and the projection
must end up holding exactly the log: no acknowledged row lost, no refused one kept."""

from __future__ import annotations

import errno

import pytest
from faultfs import FaultFS, SmallDisk

from asof import Cluster, OperationalError


@pytest.fixture
def full_projections(tmp_path):
    disk = SmallDisk(tmp_path / "data" / "projections", size="32m")
    yield tmp_path / "data", disk
    disk.free()
    disk.unmount()


def _rows(db) -> list[tuple]:
    return sorted(db.sql("SELECT * FROM t").fetchall())


def _open(data):
    cluster = Cluster.open(data)
    if "d" not in cluster.databases():
        cluster.sql("CREATE DATABASE d")
        cluster.database("d").sql("CREATE TABLE t (k INT, v INT)")
    return cluster, cluster.database("d")


def test_fast_inserts_on_a_full_projection_disk_are_never_lost(full_projections):
    """Single-row commits go to the log while DuckDB cannot write; applying them fails, they
    stay pending and the high-water mark stays; reads refuse until space returns, then the
    rows are all there, and stay there when more commits follow and after reopening."""
    data, disk = full_projections
    cluster, db = _open(data)
    big = "x" * 50_000  # each row needs new pages of DuckDB's WAL
    expected = [(k, f"{k}{big}") for k in range(7)]
    with cluster:
        db.sql("CREATE TABLE s (k INT, s VARCHAR)")
        db.sql("INSERT INTO s VALUES (?, ?)", list(expected[0]))
        assert db.sql("SELECT count(*) FROM s").fetchall() == [(1,)]
        mark = db._rt.stored_high_water()
        disk.fill()
        for row in expected[1:6]:
            db.sql("INSERT INTO s VALUES (?, ?)", list(row))  # in the log: acknowledged
        assert len(db._rt.pending) == 5
        with pytest.raises(OperationalError, match="safe in the log"):
            db.sql("SELECT count(*) FROM s")
        assert len(db._rt.pending) == 5  # not cleared though not applied
        assert db._rt.stored_high_water() == mark  # not moved past them
        with pytest.raises(OperationalError):  # nothing more is taken meanwhile
            db.sql("INSERT INTO s VALUES (?, ?)", [99, "no"])
        disk.free()
        db.sql("INSERT INTO s VALUES (?, ?)", list(expected[6]))
        assert sorted(db.sql("SELECT * FROM s").fetchall()) == expected
        assert cluster.check(deep=True) == []
    with Cluster.open(data) as cluster:
        assert sorted(cluster.database("d").sql("SELECT * FROM s").fetchall()) == expected
        cluster.clone("d", "c")
        assert sorted(cluster.database("c").sql("SELECT * FROM s").fetchall()) == expected


def test_general_commit_whose_duckdb_commit_fails_is_committed(full_projections):
    """Row changes are logged first: once the log has them the commit succeeds, even when
    DuckDB then cannot commit; the projection catches up from the log when it can."""
    data, disk = full_projections
    cluster, db = _open(data)
    with cluster:
        db.sql("INSERT INTO t SELECT i, 0 FROM range(10) r(i)")
        disk.fill()
        db.sql("UPDATE t SET v = 1 WHERE k < 5")  # logged: committed
        db.sql("DELETE FROM t WHERE k = 9")  # refused by the stale projection, or committed
        disk.free()
    with Cluster.open(data) as cluster:
        db = cluster.database("d")
        logged = [t.sql for t in db.transactions()]
        assert "UPDATE t SET v = 1 WHERE k < 5" in logged
        expected = [(k, 1 if k < 5 else 0) for k in range(10)]
        if "DELETE FROM t WHERE k = 9" in logged:
            expected = expected[:-1]
        assert _rows(db) == expected
        assert cluster.check(deep=True) == []


def test_ddl_commit_refused_by_a_full_projection_disk_is_nowhere(full_projections):
    """A DDL transaction commits in DuckDB before the log: DuckDB refusing it (no space)
    means nothing was logged."""
    data, disk = full_projections
    cluster, db = _open(data)
    with cluster:
        db.sql("INSERT INTO t VALUES (1, 1)")
        head = list(db.transactions())[-1].txn_id
        disk.fill()
        with pytest.raises(OperationalError):
            db.sql("BEGIN; CREATE TABLE u (a INT); INSERT INTO u SELECT * FROM range(100); COMMIT")
        assert list(db.transactions())[-1].txn_id == head
        disk.free()
        assert db.tables() == ["t"]
        db.sql("CREATE TABLE w (a INT)")
        assert db.tables() == ["t", "w"]
    with Cluster.open(data) as cluster:
        assert cluster.database("d").tables() == ["t", "w"]


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_ddl_in_duckdb_whose_log_append_fails_is_rolled_away(tmp_path, monkeypatch, code):
    """DuckDB took the DDL, the log did not: the projection is rebuilt from the log, so the
    table is gone at once, for readers, in the log and after reopening."""
    data = tmp_path / "data"
    faults = FaultFS(data, monkeypatch)
    cluster, db = _open(data)
    with cluster:
        db.sql("INSERT INTO t VALUES (1, 1)")
        generation = db._rt.generation
        faults.arm("pwrite", 1, code)
        with pytest.raises(OperationalError, match="could not write the log"):
            db.sql("BEGIN; CREATE TABLE u (a INT PRIMARY KEY); INSERT INTO u VALUES (1); COMMIT")
        faults.clear()
        assert faults.total == 1
        assert db._rt.generation > generation  # rebuilt
        assert db.tables() == ["t"]
        assert _rows(db) == [(1, 1)]
        db.sql("CREATE TABLE u (a INT)")  # the same name: a new table, empty
        assert db.sql("SELECT count(*) FROM u").fetchall() == [(0,)]
    with Cluster.open(data) as cluster:
        db = cluster.database("d")
        assert db.tables() == ["t", "u"]
        assert db.sql("SELECT count(*) FROM u").fetchall() == [(0,)]
        assert cluster.check(deep=True) == []


def test_projection_ahead_of_its_log_is_rebuilt_on_open(tmp_path, monkeypatch):
    """The process stops after DuckDB took a DDL commit and before the log did (here: the
    append fails and the rebuild never runs): on open the projection holds a transaction
    the log does not, and is rebuilt instead of being read."""
    data = tmp_path / "data"
    faults = FaultFS(data, monkeypatch)
    cluster, db = _open(data)
    with cluster:
        db.sql("INSERT INTO t VALUES (1, 1)")
        head = list(db.transactions())[-1].txn_id
        monkeypatch.setattr(type(db._rt), "reopen", lambda self, rebuild=False: None)
        faults.arm("pwrite", 1, errno.EIO)
        with pytest.raises(OperationalError):
            db.sql("CREATE TABLE u (a INT)")
        faults.clear()
        assert db._rt.stored_high_water() == head + 1  # DuckDB has it: the "crash" state
    monkeypatch.undo()
    with Cluster.open(data) as cluster:
        db = cluster.database("d")
        assert db.tables() == ["t"]
        assert db._rt.stored_high_water() == head
        assert cluster.check(deep=True) == []


def test_commit_hook_failure_does_not_fail_the_commit(tmp_path):
    data = tmp_path / "data"
    cluster, db = _open(data)
    with cluster:

        def broken(rt, txn):
            raise OSError(errno.ENOSPC, "no space for the scheduled checkpoint")

        db._rt.commit_hooks.append(broken)
        db.sql("INSERT INTO t VALUES (1, 1)")
        db.sql("INSERT INTO t VALUES (?, ?)", [2, 2])
        assert _rows(db) == [(1, 1), (2, 2)]
