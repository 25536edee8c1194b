"""AS OF handles served from the live projection (a read transaction, with row versions for
past times) or from cached states."""

from __future__ import annotations

import duckdb
import pytest

from asof import DataError, InterfaceError, ProgrammingError, ReadOnlyError
from asof.projections.snapshots import HostedSnapshot, LiveSnapshot, VersionedSnapshot
from support import head_ts, table_rows, tick


@pytest.fixture
def db(cluster):
    cluster.sql("CREATE DATABASE d")
    d = cluster.database("d")
    d.sql("CREATE TABLE t (k INT, v INT)")
    d.sql("INSERT INTO t SELECT i, i % 3 FROM range(10) r(i)")
    return d


def _beyond_versions(db) -> None:
    """Commit a schema change: states before it are built (and cached), not read from the
    live projection's row versions."""
    db.sql("CREATE SEQUENCE IF NOT EXISTS schema_change")


def _sum(handle, table: str = "t") -> tuple:
    return tuple(handle.sql(f"SELECT count(*), sum(v) FROM {table}").fetchall()[0])


def test_head_as_of_reads_the_live_projection_and_ignores_later_commits(cluster, db):
    ts = head_ts(db)
    before = table_rows(db, "t")
    with db.as_of(ts) as head:
        assert isinstance(head._source, LiveSnapshot)
        tick()
        db.sql("INSERT INTO t VALUES (100, 100)")
        db.sql("UPDATE t SET v = -1 WHERE k < 5")
        db.sql("BEGIN")
        db.sql("DELETE FROM t WHERE k = 9")
        db.sql("CREATE TABLE u (x INT)")
        db.sql("COMMIT")
        db.sql("ALTER TABLE t ADD COLUMN w INT DEFAULT 7")
        assert table_rows(head, "t") == before
        assert head.tables() == ["t"]
        assert len(table_rows(db, "t")) == 10
        with pytest.raises(ReadOnlyError):
            head.sql("INSERT INTO t VALUES (1, 1)")
        assert isinstance(head._source, LiveSnapshot)  # refused before DuckDB saw it
        assert table_rows(head, "t") == before
        with pytest.raises(duckdb.TransactionException):  # the handle's read transaction
            _projection_checkpoint(db)
    _projection_checkpoint(db)  # closing the handle ended it
    with pytest.raises(InterfaceError):
        head.sql("SELECT 1")
    assert head._source is None


def _projection_checkpoint(db) -> None:
    cur = db._rt.projection.cursor()
    try:
        cur.execute("CHECKPOINT")
    finally:
        cur.close()


def test_a_failed_query_keeps_the_head_snapshot(cluster, db):
    ts = head_ts(db)
    expected = _sum(db)
    head = db.as_of(ts)
    with pytest.raises(DataError):
        head.sql("SELECT CAST(k::VARCHAR || 'x' AS INT) FROM t")  # aborts the read transaction
    assert _sum(head) == expected  # a new one: same state, nothing committed since
    assert isinstance(head._source, LiveSnapshot)
    tick()
    db.sql("INSERT INTO t VALUES (50, 50)")
    with pytest.raises(ProgrammingError):
        head.sql("SELECT * FROM no_such_table")  # refused at bind time: snapshot intact
    assert isinstance(head._source, LiveSnapshot)
    assert _sum(head) == expected
    with pytest.raises(DataError):
        head.sql("SELECT CAST(k::VARCHAR || 'x' AS INT) FROM t")
    # A commit came in before the failure: the handle moved to a state built at ts.
    assert isinstance(head._source, HostedSnapshot)
    assert _sum(head) == expected
    head.close()


def test_a_past_as_of_reads_row_versions_until_a_schema_change_then_builds(cluster, db):
    ts = head_ts(db)
    expected = table_rows(db, "t")
    tick()
    db.sql("DELETE FROM t WHERE k < 3")
    db.sql("UPDATE t SET v = 50 WHERE k > 6")
    with db.as_of(ts) as past:
        assert isinstance(past._source, VersionedSnapshot)
        assert table_rows(past, "t") == expected
        _beyond_versions(db)  # the handle keeps its read transaction
        assert table_rows(past, "t") == expected
    with db.as_of(ts) as past:
        assert isinstance(past._source, HostedSnapshot)
        assert table_rows(past, "t") == expected


def test_head_as_of_on_a_clone_survives_materialization(cluster, db):
    cluster.checkpoint("d")
    tick()
    cluster.clone("d", "c")
    clone = cluster.database("c")
    expected = table_rows(clone, "t")
    head = clone.as_of(head_ts(clone))
    assert isinstance(head._source, LiveSnapshot)
    tick()
    clone.sql("UPDATE t SET v = 99 WHERE k = 1")  # turns the shared table into a real one
    clone.sql("DROP TABLE t")
    assert table_rows(head, "t") == expected
    assert cluster.diff(head, clone).tables["t"].only_in_a.num_rows == 10
    head.close()
    assert clone.tables() == []


def test_past_states_are_cached_and_shared_by_independent_handles(cluster, db):
    ts1 = head_ts(db)
    first = table_rows(db, "t")
    tick()
    db.sql("UPDATE t SET v = v + 10")
    ts2 = head_ts(db)
    tick()
    db.sql("DELETE FROM t WHERE k > 4")
    _beyond_versions(db)
    a = db.as_of(ts1)
    b = db.as_of(ts1)
    c = db.as_of(ts2 - 1)  # resolves to the same transaction as ts1
    assert len(cluster._states) == 1
    assert a._source.state is b._source.state is c._source.state
    a.close()
    assert table_rows(b, "t") == first  # closing one handle leaves the others working
    b.close()
    assert table_rows(c, "t") == first
    c.close()
    # The cache still holds the state: a new handle reads it without a build.
    again = db.as_of(ts1)
    assert len(cluster._states) == 1 and table_rows(again, "t") == first
    with db.as_of(ts2) as second:
        assert [r[1] for r in table_rows(second, "t")] == [r[1] + 10 for r in first]
    assert len(cluster._states) == 2
    again.close()


def test_the_cache_is_bounded_and_released(cluster, db):
    stamps = []
    for i in range(6):
        tick()
        db.sql(f"INSERT INTO t VALUES ({1000 + i}, 0)")
        stamps.append(head_ts(db))
    tick()
    db.sql("INSERT INTO t VALUES (-1, 0)")
    _beyond_versions(db)
    for i, ts in enumerate(stamps):
        with db.as_of(ts) as h:
            assert _sum(h)[0] == 11 + i
    assert len(cluster._states) == cluster._states.capacity
    held = db.as_of(stamps[-1])
    cluster.drop_database("d")
    assert len(cluster._states) == 0
    assert _sum(held)[0] == 16  # an open handle keeps its state until it is closed
    held.close()


def test_compaction_and_gc_release_cached_states(disk_cluster):
    disk_cluster.sql("CREATE DATABASE d")
    d = disk_cluster.database("d")
    d.sql("CREATE TABLE t (k INT)")
    d.sql("INSERT INTO t VALUES (1)")
    ts = head_ts(d)
    tick()
    d.sql("INSERT INTO t VALUES (2)")
    _beyond_versions(d)
    d.as_of(ts).close()
    assert len(disk_cluster._states) == 1
    disk_cluster.compact()
    assert len(disk_cluster._states) == 0
    d.as_of(ts).close()
    disk_cluster.gc()
    assert len(disk_cluster._states) == 0
    with d.as_of(ts) as h:
        assert table_rows(h, "t") == [(1,)]


def test_rebuild_builds_from_the_log(cluster, db):
    with db.as_of(head_ts(db), rebuild=True) as h:
        assert isinstance(h._source, HostedSnapshot)
        assert table_rows(h, "t") == table_rows(db, "t")
    assert len(cluster._states) == 0


def test_a_state_asked_for_twice_is_copied_into_real_tables(cluster, db):
    cluster.checkpoint("d")
    tick()
    db.sql("UPDATE t SET v = 100 WHERE k < 4")
    db.sql("DELETE FROM t WHERE k = 9")
    ts = head_ts(db)
    expected = table_rows(db, "t")
    tick()
    db.sql("INSERT INTO t VALUES (77, 7)")
    _beyond_versions(db)
    first = db.as_of(ts)
    state = first._source.state
    assert not state.materialized
    cur = first._cursor()
    assert cur.execute("SELECT count(*) FROM _asof.lazy").fetchall() == [(1,)]
    second = db.as_of(ts)
    assert second._source.state is state and state.materialized
    assert cur.execute("SELECT count(*) FROM _asof.lazy").fetchall() == [(0,)]
    cur.close()
    assert table_rows(first, "t") == table_rows(second, "t") == expected
    first.close()
    second.close()
    with db.as_of(ts) as third:
        assert table_rows(third, "t") == expected


def test_handles_close_cleanly_after_the_cluster(cluster, db):
    ts = head_ts(db)
    tick()
    db.sql("INSERT INTO t VALUES (11, 1)")
    _beyond_versions(db)
    past = db.as_of(ts)
    head = db.as_of(head_ts(db))
    assert isinstance(past._source, HostedSnapshot) and isinstance(head._source, LiveSnapshot)
    cluster.close()
    past.close()
    head.close()
