"""Clones: the seed's behaviours, isolation, lineage, failure cleanup, flags, windows."""

from __future__ import annotations

import threading

import pytest

from asof import NotSupportedError, OperationalError, ProgrammingError
from support import head_ts, seed, table_rows, tick

SEED_KEYS = {
    "aggregate_state",
    "source_namespace_id",
    "seq_no",
    "target_namespace_name",
    "restore_time",
}


def test_seed_walkthrough(cluster):
    db, ts = seed(cluster)
    with pytest.raises(ProgrammingError, match="t1"):
        db.sql("SELECT * FROM t1 ORDER BY k")
    t2_before = db.as_of(ts).sql("SELECT * FROM t2 ORDER BY key").fetchall()
    cluster.sql(f"CREATE DATABASE clone_db TEMPLATE production_DB AS OF {ts}")
    clone = cluster.database("clone_db")
    assert clone.sql("SELECT * FROM t1 ORDER BY k").fetchall() == [
        (1, 1),
        (2, 0),
        (3, 1),
        (4, 0),
        (5, 1),
    ]
    assert clone.sql("SELECT * FROM t2 ORDER BY key").fetchall() == t2_before
    assert db.sql("SELECT count(*) FROM t2").fetchall() == [(7,)]
    records = cluster.list_clones("production_db")
    assert len(records) == 1
    d = records[0].to_dict()
    assert set(d) == SEED_KEYS
    assert d["aggregate_state"] == "COMPLETE"
    assert d["seq_no"] == "1"
    assert d["target_namespace_name"] == "clone_db"
    assert d["source_namespace_id"] == db.id
    assert cluster.list_clones("production_db", 1)[0].to_dict() == d
    assert cluster.list_clones("production_db", 2) == []


def test_clone_now_and_numbering(cluster):
    db, _ = seed(cluster)
    cluster.sql("CREATE DATABASE c1 TEMPLATE production_db")
    cluster.clone("production_db", "c2")
    assert [r.seq_no for r in cluster.list_clones("production_db")] == [1, 2]
    for name in ("c1", "c2"):
        assert table_rows(cluster.database(name), "t2") == table_rows(db, "t2")


def test_isolation_both_ways(cluster):
    db, ts = seed(cluster)
    cluster.clone("production_db", "c", as_of=ts)
    c = cluster.database("c")
    c.sql("INSERT INTO t1 VALUES (100, 100)")
    c.sql("ALTER TABLE t2 ADD COLUMN extra INT DEFAULT 7")
    c.sql("CREATE TABLE only_in_clone (x INT)")
    db.sql("CREATE TABLE t1 (k INT, v INT)")
    db.sql("INSERT INTO t1 VALUES (-1, -1)")
    db.sql("TRUNCATE t2")
    assert c.sql("SELECT count(*) FROM t1").fetchall() == [(6,)]
    assert c.sql("SELECT count(*) FROM t2").fetchall() == [(5,)]
    assert db.sql("SELECT * FROM t1").fetchall() == [(-1, -1)]
    assert db.sql("SELECT count(*) FROM t2").fetchall() == [(0,)]
    with pytest.raises(ProgrammingError):
        db.sql("SELECT * FROM only_in_clone")
    assert "extra" not in db.sql("SELECT * FROM t2").columns


def test_time_travel_inside_clone_reaches_before_as_of(cluster):
    db, ts = seed(cluster)
    first = list(db.transactions())[1].ts.physical  # after the first INSERT into t1
    cluster.clone("production_db", "c", as_of=ts)
    c = cluster.database("c")
    tick()
    c.sql("DELETE FROM t1")
    assert c.as_of(first).sql("SELECT count(*) FROM t1").fetchall() == [(5,)]
    assert c.sql("SELECT count(*) FROM t1").fetchall() == [(0,)]


def test_clone_of_clone_and_dropping_sources(cluster):
    db, ts = seed(cluster)
    cluster.clone("production_db", "c1", as_of=ts)
    c1 = cluster.database("c1")
    tick()
    c1.sql("INSERT INTO t1 VALUES (6, 0)")
    tick()
    cluster.clone("c1", "c2")
    tick()
    cluster.clone("c2", "c3")
    cluster.sql("DROP DATABASE production_db")
    cluster.sql("DROP DATABASE c1")
    c3 = cluster.database("c3")
    assert c3.sql("SELECT count(*) FROM t1").fetchall() == [(6,)]
    assert c3.as_of(int(ts)).sql("SELECT count(*) FROM t1").fetchall() == [(5,)]
    assert sorted(cluster.databases()) == ["c2", "c3"]


def test_sequences_and_materialized_views_survive_cloning(cluster):
    cluster.sql("CREATE DATABASE p")
    db = cluster.database("p")
    db.sql("CREATE SEQUENCE s")
    db.sql("CREATE TABLE t (id BIGINT DEFAULT nextval('s'), v INT)")
    db.sql("INSERT INTO t (v) SELECT * FROM range(3)")
    db.sql("CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM t")
    tick()
    ts = head_ts(db)
    tick()
    db.sql("INSERT INTO t (v) VALUES (99)")
    db.sql("REFRESH MATERIALIZED VIEW mv")
    db.sql("DROP MATERIALIZED VIEW mv")
    cluster.clone("p", "c", as_of=ts)
    c = cluster.database("c")
    assert c.sql("SELECT n FROM mv").fetchall() == [(3,)]
    assert c.sql("SELECT nextval('s')").fetchall() == [(4,)]
    assert db.sql("SELECT nextval('s')").fetchall() == [(5,)]
    c.sql("INSERT INTO t (v) VALUES (1)")
    c.sql("REFRESH MATERIALIZED VIEW mv")
    assert c.sql("SELECT n FROM mv").fetchall() == [(4,)]


def test_as_of_outside_window_names_the_window(cluster):
    db, _ = seed(cluster)
    created = list(db.transactions())[0].ts.physical
    for bad in (created - 10_000_000, 10**17):
        with pytest.raises(ProgrammingError, match="choose a time from"):
            cluster.clone("production_db", "c", as_of=bad)
        assert "c" not in cluster.databases()
    for garbage in (-1, 1.5, "soon", None.__class__):
        with pytest.raises(ProgrammingError):
            cluster.clone("production_db", "c", as_of=garbage)
    with pytest.raises(ProgrammingError, match="microseconds"):
        cluster.sql("CREATE DATABASE c TEMPLATE production_db AS OF 'yesterday'")
    assert cluster.list_clones("production_db") == []


def test_target_name_taken_and_unknown_source(cluster):
    seed(cluster)
    cluster.sql("CREATE DATABASE other")
    with pytest.raises(ProgrammingError, match="already exists"):
        cluster.clone("production_db", "other")
    with pytest.raises(ProgrammingError, match="does not exist"):
        cluster.clone("nope", "x")


def test_flag_turns_cloning_off_and_on(cluster):
    seed(cluster)
    cluster.set_flag("enable_db_clone", "false")
    with pytest.raises(NotSupportedError, match="enable_db_clone"):
        cluster.clone("production_db", "c")
    assert "c" not in cluster.databases()
    cluster.set_flag("enable_db_clone", True)
    cluster.clone("production_db", "c")
    with pytest.raises(ProgrammingError, match="unknown flag"):
        cluster.set_flag("no_such_flag", 1)


def test_failed_clone_leaves_nothing_and_says_why(cluster, monkeypatch):
    seed(cluster)
    before = set(cluster.store._logs) if hasattr(cluster.store, "_logs") else None

    def broken_fork(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cluster.store, "fork", broken_fork)
    with pytest.raises(OperationalError, match="rolled back"):
        cluster.clone("production_db", "c")
    monkeypatch.undo()
    assert "c" not in cluster.databases()
    if before is not None:
        assert set(cluster.store._logs) == before
    rec = cluster.list_clones("production_db")[0]
    assert rec.state == "ABORTED"
    assert "No space left" in rec.to_dict()["abort_message"]
    cluster.clone("production_db", "c")  # the name is free and cloning works again
    assert [r.state for r in cluster.list_clones("production_db")] == ["ABORTED", "COMPLETE"]


def test_one_clone_at_a_time_per_source(cluster, monkeypatch):
    seed(cluster)
    entered = threading.Event()
    release = threading.Event()
    real_fork = cluster.store.fork

    def slow_fork(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real_fork(*args, **kwargs)

    monkeypatch.setattr(cluster.store, "fork", slow_fork)
    errors = []
    t = threading.Thread(target=lambda: cluster.clone("production_db", "first"))
    t.start()
    assert entered.wait(10)
    try:
        cluster.clone("production_db", "second")
    except OperationalError as exc:
        errors.append(exc)
    release.set()
    t.join()
    assert errors and "still running" in str(errors[0])
    assert "first" in cluster.databases()
    cluster.clone("production_db", "second")


def test_fresh_clone_reads_shared_checkpoint_without_copying(cluster):
    cluster.sql("CREATE DATABASE p")
    db = cluster.database("p")
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    db.sql("INSERT INTO t SELECT i, i % 10 FROM range(10000) r(i)")
    cluster.checkpoint("p")
    db.sql("UPDATE t SET v = -1 WHERE id < 100")
    db.sql("DELETE FROM t WHERE id >= 9900")
    cluster.clone("p", "c")
    c = cluster.database("c")
    # Served from the shared checkpoint plus a small delta: the table is still a view.
    assert c.sql("SELECT count(*) FROM _asof.lazy").fetchall() == [(1,)]
    assert c.sql("SELECT count(*) FROM _asof.d1").fetchall() == [(200,)]
    assert table_rows(c, "t") == table_rows(db, "t")
    c.sql("UPDATE t SET v = 5 WHERE id = 1")  # first write materializes the table
    assert c.sql("SELECT count(*) FROM _asof.lazy").fetchall() == [(0,)]
    assert c.sql("SELECT v FROM t WHERE id = 1").fetchall() == [(5,)]
    assert db.sql("SELECT v FROM t WHERE id = 1").fetchall() == [(-1,)]
    with pytest.raises(Exception, match="Duplicate key"):
        c.sql("INSERT INTO t VALUES (2, 2)")


def test_snapshot_schedules(cluster):
    seed(cluster)
    s = cluster.create_snapshot_schedule("production_db", 1440, 4320)
    assert cluster.list_snapshot_schedules() == [s]
    assert s.to_dict()["retention_minutes"] == 4320
    with pytest.raises(ProgrammingError):
        cluster.create_snapshot_schedule("production_db", 0, 10)
    with pytest.raises(ProgrammingError):
        cluster.create_snapshot_schedule("production_db", 100, 10)
    cluster.delete_snapshot_schedule(s.schedule_id)
    assert cluster.list_snapshot_schedules() == []
    with pytest.raises(ProgrammingError, match="no snapshot schedule"):
        cluster.delete_snapshot_schedule(s.schedule_id)


def test_row_ids_are_never_reused_after_a_rebuild_or_in_a_clone(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    db.sql("CREATE TABLE t (x INT)")
    db.sql("INSERT INTO t VALUES (1), (2), (3)")
    db.sql("DELETE FROM t WHERE x = 3")
    cluster.clone("d", "c")
    clone = cluster.database("c")
    clone.sql("INSERT INTO t VALUES (4)")
    ids = clone.history("t").column("row_id").to_pylist()
    assert ids == [1, 2, 3, 3, 4]


def test_a_transaction_logs_one_event_per_table_with_each_rows_last_image(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    db.sql("CREATE TABLE t (k INT, v INT)")
    db.sql("INSERT INTO t VALUES (1, 0), (2, 0)")
    db.sql(
        "BEGIN; UPDATE t SET v = 1 WHERE k = 1; UPDATE t SET v = 2 WHERE k = 1; "
        "INSERT INTO t VALUES (3, 0); UPDATE t SET v = 9 WHERE k = 3; "
        "INSERT INTO t VALUES (4, 0); DELETE FROM t WHERE k = 4; DELETE FROM t WHERE k = 2; COMMIT"
    )
    events = list(db.transactions())[-1].events
    assert [(e.kind, e.row_count) for e in events] == [("rows", 3)]
    ops = sorted(
        zip(
            events[0].rows.column("_op").to_pylist(),
            events[0].rows.column("k").to_pylist(),
            strict=True,
        )
    )
    assert ops == [(0, 3), (1, 1), (2, 2)]  # 3 born here: an insert; 4 never existed outside
    head = list(db.transactions())[-1].ts.physical
    assert table_rows(db.as_of(head, rebuild=True), "t") == table_rows(db, "t") == [(1, 2), (3, 9)]
