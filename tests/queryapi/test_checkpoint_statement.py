"""CHECKPOINT in SQL writes asof's own checkpoint, as `Cluster.checkpoint` does."""

from __future__ import annotations

import pytest

from asof import OperationalError, ProgrammingError, ReadOnlyError
from support import head_ts


def test_checkpoint_statement_writes_a_checkpoint_clones_start_from(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE t (i INT)")
    db.sql("INSERT INTO t SELECT * FROM range(100)")
    db.sql("CHECKPOINT")
    refs = db._rt.recorder.checkpoints()
    assert len(refs) == 1 and refs[0].txn_id == list(db.transactions())[-1].txn_id
    db.sql("FORCE CHECKPOINT d")  # nothing new since: nothing written
    assert len(db._rt.recorder.checkpoints()) == 1
    db.sql("DELETE FROM t WHERE i < 50")
    db.sql("checkpoint;")
    assert len(db._rt.recorder.checkpoints()) == 2
    disk_cluster.clone("d", "c")
    assert disk_cluster.database("c").sql("SELECT count(*) FROM t").fetchall() == [(50,)]
    assert disk_cluster.check(deep=True) == []


def test_checkpoint_statement_refusals_change_nothing(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE t (i INT)")
    with pytest.raises(ProgrammingError, match="does not exist"):
        db.sql("CHECKPOINT elsewhere")
    db.sql("BEGIN")
    db.sql("INSERT INTO t VALUES (1)")
    with pytest.raises(OperationalError, match="transaction local changes"):
        db.sql("CHECKPOINT")
    db.sql("ROLLBACK")
    assert db._rt.recorder.checkpoints() == []
    with pytest.raises(ReadOnlyError):
        db.as_of(head_ts(db)).sql("CHECKPOINT")
    db.sql("BEGIN")  # a transaction that has not written may checkpoint, as in DuckDB
    db.sql("SELECT * FROM t")
    db.sql("CHECKPOINT")
    db.sql("COMMIT")
    assert len(db._rt.recorder.checkpoints()) == 1
