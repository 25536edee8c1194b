"""restore_table and undrop_table: modes, constraints, events, random workloads, concurrency."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from test_diff import ops, run

from asof import Cluster, IntegrityError, ProgrammingError
from support import head_ts, seed, table_rows, tick


def test_undrop_seed_table(cluster):
    db, _ = seed(cluster)
    result = cluster.undrop_table("production_db", "t1")
    assert (result.created, result.inserted, result.mode) == (True, 5, "create")
    assert db.sql("SELECT * FROM t1 ORDER BY k").fetchall() == [
        (1, 1), (2, 0), (3, 1), (4, 0), (5, 1),
    ]  # fmt: skip
    last = db.transaction_log().to_pylist()[-1]
    assert last["ddl"] == ["create_table"] and last["inserted"] == 5
    assert "restore_table t1" in last["sql"]
    with pytest.raises(ProgrammingError, match="already exists"):
        cluster.undrop_table(db, "t1")
    with pytest.raises(ProgrammingError, match="never dropped"):
        cluster.undrop_table(db, "t2")


def test_restore_from_clone_keeps_constraints(cluster):
    cluster.sql("CREATE DATABASE p")
    db = cluster.database("p")
    db.sql("CREATE TABLE acct (id INT PRIMARY KEY, owner TEXT NOT NULL, bal INT CHECK (bal >= 0))")
    db.sql("INSERT INTO acct VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 30)")
    tick()
    cluster.clone("p", "rescue")
    db.sql("DROP TABLE acct")
    result = cluster.restore_table(cluster.database("rescue"), "acct", db)
    assert result.inserted == 3
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO acct VALUES (1, 'dup', 1)")
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO acct VALUES (9, 'neg', -1)")


def test_modes_on_a_bad_update(cluster):
    db, _ = seed(cluster)
    good = head_ts(db)
    tick()
    db.sql("UPDATE t2 SET c1 = 'oops'")
    db.sql("INSERT INTO t2 VALUES (8, 'new')")
    past = db.as_of(good)
    expected = table_rows(past, "t2")
    r = cluster.restore_table(past, "t2", db, mode="upsert", key="key")
    assert (r.updated, r.inserted) == (7, 0)
    assert table_rows(db, "t2") == sorted([*expected, (8, "new")], key=repr)
    db.sql("UPDATE t2 SET c1 = 'oops' WHERE key <= 2")
    r = cluster.restore_table(past, "t2", db, mode="replace", where="key <= 2")
    assert (r.deleted, r.inserted) == (2, 2)
    assert table_rows(db, "t2") == sorted([*expected, (8, "new")], key=repr)
    r = cluster.restore_table(past, "t2", db, mode="append", where="key = 1")
    assert r.inserted == 1 and db.sql("SELECT count(*) FROM t2").fetchall() == [(9,)]
    r = cluster.restore_table(past, "t2", db, mode="replace")
    assert table_rows(db, "t2") == expected


def test_restore_errors_change_nothing(cluster):
    db, ts = seed(cluster)
    n = len(list(db.transactions()))
    past = db.as_of(ts)
    with pytest.raises(ProgrammingError, match="mode"):
        cluster.restore_table(past, "t1", db, mode="merge")
    with pytest.raises(ProgrammingError, match="key"):
        cluster.restore_table(past, "t1", db, mode="upsert")
    with pytest.raises(ProgrammingError, match="does not exist"):
        cluster.restore_table(past, "t1", db, mode="append")
    with pytest.raises(ProgrammingError, match="does not exist"):
        cluster.restore_table(past, "nope", db)
    with pytest.raises(ProgrammingError):
        cluster.restore_table(past, "t2", db, mode="append", where="no_column = 1")
    db.sql("CREATE TABLE t1 (k INT PRIMARY KEY, v INT)")
    db.sql("INSERT INTO t1 VALUES (1, 1)")
    with pytest.raises(IntegrityError):  # the second row batch conflicts: all rolled back
        cluster.restore_table(past, "t1", db, mode="append")
    assert db.sql("SELECT count(*) FROM t1").fetchall() == [(1,)]
    assert len(list(db.transactions())) == n + 2


def test_restore_while_another_thread_commits(disk_cluster):
    cluster = disk_cluster
    cluster.sql("CREATE DATABASE p")
    db = cluster.database("p")
    db.sql("CREATE TABLE big (k INT, v INT)")
    db.sql("CREATE TABLE log (n INT)")
    db.sql("INSERT INTO big SELECT i, i FROM range(5000) t(i)")
    good = head_ts(db)
    tick()
    db.sql("DELETE FROM big")
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        w = cluster.database("p")
        i = 0
        try:
            while not stop.is_set():
                w.sql("INSERT INTO log VALUES (?)", [i])
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        result = cluster.restore_table(db.as_of(good), "big", db, mode="append")
    finally:
        stop.set()
        t.join()
    assert not errors and result.inserted == 5000
    assert db.sql("SELECT count(*), sum(v) FROM big").fetchall() == [(5000, sum(range(5000)))]
    assert db.sql("SELECT count(*) = max(n) + 1 FROM log").fetchall() == [(True,)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=ops, after=ops)
def test_restored_table_equals_state_at_t(before, after):
    with Cluster.open(None) as cluster:
        cluster.sql("CREATE DATABASE s")
        db = cluster.database("s")
        db.sql("CREATE TABLE t (k INT, v INT)")
        for step in before:
            run(db, *step)
        mark = head_ts(db)
        reference = Counter(db.sql("SELECT k, v FROM t").fetchall())
        tick()
        for step in after:
            run(db, *step)
        cluster.restore_table(db.as_of(mark), "t", db, mode="replace")
        assert Counter(db.sql("SELECT k, v FROM t").fetchall()) == reference
        db.sql("DROP TABLE t")
        cluster.undrop_table(db, "t")
        assert Counter(db.sql("SELECT k, v FROM t").fetchall()) == reference
