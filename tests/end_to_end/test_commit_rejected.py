"""Transactions DuckDB refuses only at COMMIT (keys added over rows of the same
transaction): IntegrityError, and the transaction is nowhere: not in the live database,
not in the log, not in a clone, not after reopening."""

from __future__ import annotations

import pytest

from asof import Cluster, IntegrityError

VARIANTS = {
    "add primary key": [
        "INSERT INTO t VALUES (2, 2)",
        "ALTER TABLE t ADD PRIMARY KEY (j)",
        "INSERT INTO t VALUES (3, 2)",
    ],
    "unique index": [
        "INSERT INTO t VALUES (2, 2)",
        "CREATE UNIQUE INDEX tj ON t (j)",
        "INSERT INTO t VALUES (3, 2)",
    ],
    "table created in the transaction": [
        "CREATE TABLE u AS SELECT 1 AS i UNION ALL SELECT 1",
        "ALTER TABLE u ADD PRIMARY KEY (i)",
    ],
    "key over a duplicate already there": [
        "INSERT INTO t VALUES (5, 1)",
        "CREATE UNIQUE INDEX tj ON t (j)",
    ],
}


def _state(db) -> tuple[list[tuple], list[str], list[str | None]]:
    return (
        sorted(db.sql("SELECT * FROM t").fetchall()),
        db.tables(),
        [t.sql for t in db.transactions()],
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_commit_rejected_by_duckdb_is_absent_everywhere(tmp_path, variant):
    data = tmp_path / "data"
    body = "; ".join(VARIANTS[variant])
    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE s")
        db = cluster.database("s")
        db.sql("CREATE TABLE t (i INT, j INT)")
        db.sql("INSERT INTO t VALUES (1, 1)")
        before = _state(db)
        with pytest.raises(IntegrityError, match="rolled back"):
            db.sql(f"BEGIN; {body}; COMMIT")
        assert _state(db) == before
        assert not db.session.in_transaction
        db.sql("INSERT INTO t VALUES (10, 10)")  # reads and writes go on
        db.sql("BEGIN; INSERT INTO t VALUES (11, 11); COMMIT")
        after = _state(db)
        assert after[0] == [(1, 1), (10, 10), (11, 11)]
        cluster.clone("s", "c")
        assert _state(cluster.database("c"))[:2] == after[:2]
        head = list(db.transactions())[-1].ts.physical
        assert sorted(db.as_of(head, rebuild=True).sql("SELECT * FROM t").fetchall()) == after[0]
        assert cluster.check(deep=True) == []
    with Cluster.open(data) as cluster:
        assert _state(cluster.database("s")) == after
        assert _state(cluster.database("c"))[:2] == after[:2]
        assert cluster.check(deep=True) == []


def test_commit_rejected_in_a_clone_table_copied_in_the_transaction(tmp_path):
    """A clone's first write copies the shared table in, indexes last: the key check of
    the rows written after it can come at COMMIT."""
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE s")
        db = cluster.database("s")
        db.sql("CREATE TABLE t (i INT, j INT)")
        db.sql("CREATE UNIQUE INDEX tj ON t (j)")
        db.sql("INSERT INTO t SELECT i, i FROM range(100) r(i)")
        cluster.checkpoint("s")
        cluster.clone("s", "c")
        clone = cluster.database("c")
        log_before = [t.txn_id for t in clone.transactions()]
        with pytest.raises(IntegrityError):
            clone.sql(
                "BEGIN; INSERT INTO t VALUES (1000, 1000); INSERT INTO t VALUES (1, 5); COMMIT"
            )
        assert [t.txn_id for t in clone.transactions()] == log_before
        assert clone.sql("SELECT count(*) FROM t").fetchall() == [(100,)]
        clone.sql("INSERT INTO t VALUES (1000, 1000)")
        assert clone.sql("SELECT count(*) FROM t").fetchall() == [(101,)]
    with Cluster.open(data) as cluster:
        assert cluster.database("c").sql("SELECT count(*) FROM t").fetchall() == [(101,)]
        assert cluster.check(deep=True) == []


_CRASH_BETWEEN = """
import os, sys
from asof import Cluster
from asof.eventlog.ipc import IpcRecorder

real = IpcRecorder.append

def append(self, events, **kw):
    if any(e.kind != "rows" for e in events) and os.environ.get("ASOF_CRASH_NOW"):
        os._exit(9)  # DuckDB has committed this DDL; the log never gets it
    return real(self, events, **kw)

IpcRecorder.append = append
with Cluster.open(sys.argv[1]) as cluster:
    db = cluster.database("d")
    os.environ["ASOF_CRASH_NOW"] = "1"
    db.sql("CREATE TABLE never_logged (k INT)")
"""


def test_a_crash_between_duckdb_and_the_log_is_rebuilt_not_reported(tmp_path):
    import subprocess
    import sys

    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        db = cluster.create_database("d")
        db.sql("CREATE TABLE t AS SELECT 1 AS k")
    run = subprocess.run([sys.executable, "-c", _CRASH_BETWEEN, str(data)], capture_output=True)
    assert run.returncode == 9, run.stderr
    with Cluster.open(data) as cluster:
        assert cluster.check() == []
        db = cluster.database("d")
        assert db.tables() == ["t"]  # the unlogged CREATE is gone: it never returned
        assert db.sql("SELECT k FROM t").fetchall() == [(1,)]
        db.sql("CREATE TABLE after (k INT)")  # and the txn id it took is free again


def test_a_projection_ahead_of_its_log_without_the_mark_is_damage(tmp_path):
    import duckdb

    from asof import CorruptionError

    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        db = cluster.create_database("d")
        db.sql("CREATE TABLE t AS SELECT 1 AS k")
        path = db._rt.projection_path
    con = duckdb.connect(str(path))  # as if the log had lost the last commit
    con.execute("UPDATE _asof.state SET applied_txn = applied_txn + 1")
    con.close()
    with Cluster.open(data) as cluster:
        assert any("projection" in p for p in cluster.check())
        with pytest.raises(CorruptionError):
            cluster.database("d").sql("SELECT * FROM t")
