"""Row versions in the live projection (projections/versions.py): an AS OF in the past that
only row changes followed reads them, and must equal the state rebuilt from the log."""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from asof import DataError, NotSupportedError, ProgrammingError
from asof.projections.snapshots import HostedSnapshot, VersionedSnapshot
from support import head_ts, table_rows, tick


@pytest.fixture
def db(disk_cluster):
    disk_cluster.sql("CREATE DATABASE d")
    d = disk_cluster.database("d")
    d.sql("CREATE TABLE t (k INT PRIMARY KEY, v INT, s VARCHAR)")
    d.sql("INSERT INTO t SELECT i, i % 5, 'r' || i FROM range(20) r(i)")
    return d


def _storage(db, sql: str, params=None) -> list[tuple]:
    cur = db._rt.cursor()
    try:
        return cur.execute(sql, params).fetchall()
    finally:
        cur.close()


def _check_every_past_state(db, stamps: list[tuple[int, list[tuple]]]) -> None:
    for ts, expected in stamps:
        with db.as_of(ts) as past:
            assert isinstance(past._source, VersionedSnapshot), ts
            assert table_rows(past, "t") == expected
        with db.as_of(ts, rebuild=True) as built:
            assert table_rows(built, "t") == expected


def test_updates_deletes_and_upserts_are_read_back_at_every_past_time(db):
    stamps = []

    def step(*statements: str) -> None:
        tick()
        if len(statements) > 1:
            db.sql("BEGIN")
        for sql in statements:
            db.sql(sql)
        if len(statements) > 1:
            db.sql("COMMIT")
        stamps.append((head_ts(db), table_rows(db, "t")))

    step("UPDATE t SET v = v + 100 WHERE k < 5")
    step("DELETE FROM t WHERE k BETWEEN 10 AND 12")
    step("INSERT INTO t VALUES (50, 1, 'new')")  # the single-row fast path
    step(
        "UPDATE t SET v = -1 WHERE k = 1",
        "UPDATE t SET v = -2 WHERE k = 1",  # two versions in one transaction: one kept
        "INSERT INTO t VALUES (60, 6, 'x')",
        "UPDATE t SET s = 'changed' WHERE k = 60",  # born and changed in one transaction
        "DELETE FROM t WHERE k = 2",
    )
    step("INSERT INTO t VALUES (1, 0, 'dup'), (70, 7, 'y') ON CONFLICT DO UPDATE SET v = 77")
    step("UPDATE t SET k = k + 1000 WHERE k = 3")  # a key change
    step("INSERT INTO t SELECT i, 0, 'bulk' FROM range(100, 200) r(i)")
    db.sql("BEGIN")
    db.sql("UPDATE t SET v = 999")
    db.sql("ROLLBACK")  # leaves no version behind
    tick()
    db.sql("DELETE FROM t WHERE k = 50")
    _check_every_past_state(db, stamps)
    history = _storage(db, "SELECT count(*) FROM _asof.h1 WHERE _asof_to <= _asof_from")
    assert history == [(0,)]  # no empty intervals


def test_updated_rows_move_to_the_end_of_their_table(db):
    for k in (3, 7, 1):
        db.sql("UPDATE t SET v = v + 1 WHERE k = ?", [k])
    order = [r[0] for r in _storage(db, "SELECT _asof_from FROM _asof.t1")]
    assert order == sorted(order)  # stored in commit order: zone maps skip what is newer
    assert [r[0] for r in _storage(db, "SELECT k FROM _asof.t1")][-3:] == [3, 7, 1]


def test_user_views_and_other_tables_show_the_past_too(db):
    db.sql("CREATE VIEW big AS SELECT k FROM t WHERE v >= 3")
    db.sql("CREATE TABLE u (x INT)")
    db.sql("INSERT INTO u VALUES (1)")
    tick()
    ts = head_ts(db)
    view, u = table_rows(db, "big"), table_rows(db, "u")
    tick()
    db.sql("UPDATE t SET v = 4")
    db.sql("DELETE FROM u")
    with db.as_of(ts) as past:
        assert isinstance(past._source, VersionedSnapshot)
        assert table_rows(past, "big") == view
        assert table_rows(past, "u") == u
        assert past.tables() == ["t", "u"]
        assert past.sql("SELECT count(*) FROM t JOIN u ON t.k = u.x").fetchall() == [(1,)]
        assert sorted(past.sql("SELECT * FROM main.u").fetchall()) == u


def test_a_clone_keeps_versions_from_its_first_write_on(disk_cluster, db):
    disk_cluster.checkpoint("d")
    tick()
    disk_cluster.clone("d", "c")
    clone = disk_cluster.database("c")
    clone.sql("UPDATE t SET v = 7 WHERE k = 0")  # materializes the shared table
    tick()
    first = head_ts(clone), table_rows(clone, "t")
    tick()
    clone.sql("UPDATE t SET v = 8 WHERE k < 10")
    tick()
    second = head_ts(clone), table_rows(clone, "t")
    tick()
    clone.sql("DELETE FROM t WHERE k > 15")
    _check_every_past_state(clone, [first, second])
    assert table_rows(db, "t") != table_rows(clone, "t")


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE t ADD COLUMN w INT DEFAULT 1",
        "TRUNCATE t",
        "CREATE TABLE other (x INT)",
        "CREATE SEQUENCE s",
        "INSERT INTO t VALUES (nextval('s0'), 0, 'seq')",
    ],
)
def test_anything_but_row_changes_restarts_the_versions(db, change):
    db.sql("CREATE SEQUENCE s0 START 500")
    tick()
    ts = head_ts(db)
    expected = table_rows(db, "t")
    tick()
    db.sql("UPDATE t SET v = 0 WHERE k = 1")
    db.sql(change)
    with db.as_of(ts) as past:  # built from the log instead
        assert isinstance(past._source, HostedSnapshot)
        assert table_rows(past, "t") == expected
    tick()
    after = head_ts(db), table_rows(db, "t")
    tick()
    db.sql("UPDATE t SET v = 1 WHERE k = 2")
    db.sql("INSERT INTO t (k, v, s) VALUES (900, 9, 'after')")
    _check_every_past_state(db, [after])


def test_a_failed_query_keeps_the_versioned_handle(db):
    ts = head_ts(db)
    expected = table_rows(db, "t")
    tick()
    db.sql("UPDATE t SET v = 0")
    for _ in range(3):  # later handles reuse the first one's cursor and views
        with db.as_of(ts) as past:
            assert isinstance(past._source, VersionedSnapshot)
            with pytest.raises(DataError):
                past.sql("SELECT CAST(s || 'x' AS INT) FROM t")  # aborts the read transaction
            db.sql("DELETE FROM t WHERE k = 3")  # row changes keep the versions reaching
            assert isinstance(past._source, VersionedSnapshot)
            assert table_rows(past, "t") == expected
    with db.as_of(ts) as past:
        assert isinstance(past._source, VersionedSnapshot)
        db.sql("ALTER TABLE t ADD COLUMN w INT")  # empties the history the views read
        assert table_rows(past, "t") == expected  # the read transaction still sees it
        with pytest.raises(DataError):
            past.sql("SELECT CAST(s || 'x' AS INT) FROM t")
        assert isinstance(past._source, HostedSnapshot)  # versions no longer reach: built
        assert table_rows(past, "t") == expected


def test_diff_and_restore_read_a_versioned_handle(disk_cluster, db):
    ts = head_ts(db)
    tick()
    db.sql("DELETE FROM t WHERE k < 3")
    db.sql("UPDATE t SET v = 9 WHERE k = 5")
    with db.as_of(ts) as past:
        assert isinstance(past._source, VersionedSnapshot)
        changes = disk_cluster.diff(past, db).tables["t"]
        assert changes.only_in_a.num_rows == 3 and changes.changed.num_rows == 1
        disk_cluster.restore_table(past, "t", db, mode="append", where="k < 3")
    assert len(table_rows(db, "t")) == 20


def _updated_and_closed(data) -> tuple[int, list[tuple], object]:
    """A closed cluster at `data` whose database d had t's rows updated after `ts`: (ts, the
    rows at ts, d's projection file)."""
    from asof import Cluster

    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE d")
        d = cluster.database("d")
        d.sql("CREATE TABLE t (k INT, v INT)")
        d.sql("INSERT INTO t VALUES (1, 1), (2, 2)")
        tick()
        ts, expected = head_ts(d), table_rows(d, "t")
        tick()
        d.sql("UPDATE t SET v = 5")
        return ts, expected, d._rt.projection_path


def test_versions_survive_a_reopen_and_a_rebuilt_projection_starts_them_over(tmp_path):
    from asof import Cluster

    ts, expected, path = _updated_and_closed(tmp_path / "data")
    with Cluster.open(tmp_path / "data") as cluster:
        d = cluster.database("d")
        with d.as_of(ts) as past:
            assert isinstance(past._source, VersionedSnapshot)
            assert table_rows(past, "t") == expected
    path.unlink()
    with Cluster.open(tmp_path / "data") as cluster:
        d = cluster.database("d")
        with d.as_of(ts) as past:  # rebuilt from the log: versions start at its end
            assert isinstance(past._source, HostedSnapshot)
            assert table_rows(past, "t") == expected


def test_compaction_drops_versions_outside_the_window(tmp_path):
    from asof import Cluster
    from asof.eventlog.ipc import IpcStore

    now = [1_800_000_000_000_000]
    cluster = Cluster(IpcStore(tmp_path / "data"), wall=lambda: now[0])
    try:
        cluster.sql("CREATE DATABASE p")
        cluster.create_snapshot_schedule("p", 1, 5)
        db = cluster.database("p")
        db.sql("CREATE TABLE t (k INT, v INT)")
        db.sql("INSERT INTO t SELECT i, 0 FROM range(10) r(i)")
        now[0] += 1
        db.sql("UPDATE t SET v = 1")  # 10 versions superseded before the checkpoint
        now[0] += 60_000_000
        db.sql("UPDATE t SET v = 2 WHERE k < 4")  # the schedule writes a checkpoint here
        now[0] += 10 * 60_000_000  # the checkpoint falls outside the window
        db.sql("UPDATE t SET v = 3 WHERE k < 2")
        now[0] += 1
        kept = head_ts(db), table_rows(db, "t")
        now[0] += 1
        db.sql("UPDATE t SET v = 4 WHERE k < 2")
        assert _storage(db, "SELECT count(*) FROM _asof.h1") == [(18,)]
        cluster.compact("p")
        assert _storage(db, "SELECT count(*) FROM _asof.h1") == [(4,)]
        _check_every_past_state(db, [kept])
    finally:
        cluster.close()


def test_the_version_names_are_reserved(db):
    with pytest.raises(ProgrammingError, match="_asof_from"):
        db.sql("CREATE TABLE x (_asof_from INT)")
    with pytest.raises(ProgrammingError, match="_asof_to"):
        db.sql("ALTER TABLE t ADD COLUMN _asof_to INT")
    with pytest.raises(ProgrammingError, match="_asof_from"):
        db.sql("UPDATE t SET _asof_from = 1")
    assert "_asof_from" not in db.sql("SELECT * FROM t").columns
    assert "_asof_from" not in db.sql("UPDATE t SET v = 1 WHERE k = 1 RETURNING *").columns


def test_the_writing_transaction_variable_is_reserved(tmp_path):
    from asof import Cluster

    with Cluster.open(tmp_path / "data", allow_external_access=True) as cluster:
        cluster.sql("CREATE DATABASE d")
        with pytest.raises(NotSupportedError, match="asof_txn"):
            cluster.database("d").sql("SET VARIABLE asof_txn = 1")


_databases = itertools.count()
_KEYS = st.integers(0, 12)
_STATEMENTS = st.one_of(
    st.builds(
        lambda k, v: f"INSERT INTO t VALUES ({k}, {v}, 'i') ON CONFLICT DO NOTHING", _KEYS, _KEYS
    ),
    st.builds(lambda k, v: f"UPDATE t SET v = {v} WHERE k = {k}", _KEYS, _KEYS),
    st.builds(lambda k: f"UPDATE t SET v = v + 1, s = s || 'u' WHERE k < {k}", _KEYS),
    st.builds(lambda k: f"DELETE FROM t WHERE k = {k}", _KEYS),
    st.builds(lambda k: f"DELETE FROM t WHERE v > {k}", _KEYS),
    st.builds(
        lambda k, v: f"INSERT INTO t VALUES ({k}, {v}, 'o') ON CONFLICT DO UPDATE SET v = {v}",
        _KEYS,
        _KEYS,
    ),
)
_TRANSACTIONS = st.lists(
    st.tuples(st.lists(_STATEMENTS, min_size=1, max_size=4), st.booleans()),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_TRANSACTIONS)
def test_random_row_changes_read_back_at_every_past_time(cluster, transactions):
    name = f"p{next(_databases)}"
    cluster.sql(f"CREATE DATABASE {name}")
    db = cluster.database(name)
    db.sql("CREATE TABLE t (k INT PRIMARY KEY, v INT, s VARCHAR)")
    db.sql("INSERT INTO t SELECT i, i, 's' FROM range(0, 12, 2) r(i)")
    stamps = [(head_ts(db), table_rows(db, "t"))]
    for statements, commit in transactions:
        tick()
        db.sql("BEGIN")
        for sql in statements:
            db.sql(sql)
        db.sql("COMMIT" if commit else "ROLLBACK")
        if commit:
            stamps.append((head_ts(db), table_rows(db, "t")))
    tick()
    db.sql("INSERT INTO t VALUES (100, 0, 'last')")  # every stamp is now in the past
    _check_every_past_state(db, stamps)
    cluster.drop_database(name)


def test_a_projection_without_row_versions_is_rebuilt_on_open(tmp_path):
    import duckdb

    from asof import Cluster

    with Cluster.open(tmp_path / "data") as cluster:
        cluster.sql("CREATE DATABASE d")
        d = cluster.database("d")
        d.sql("CREATE TABLE t (k INT, v INT)")
        d.sql("INSERT INTO t VALUES (1, 1), (2, 2)")
        d.sql("UPDATE t SET v = 3 WHERE k = 1")
        expected = table_rows(d, "t")
        path = d._rt.projection_path
    con = duckdb.connect(str(path))  # as a version before row versions left it
    con.execute("DROP TABLE _asof.h1; ALTER TABLE _asof.state DROP COLUMN since_txn")
    con.close()
    with Cluster.open(tmp_path / "data") as cluster:
        d = cluster.database("d")
        assert table_rows(d, "t") == expected
        assert _storage(d, "SELECT count(*) FROM _asof.h1") == [(0,)]
        d.sql("UPDATE t SET v = 4 WHERE k = 2")
        assert table_rows(d, "t") == [(1, 3), (2, 4)]


def _in_transaction(cur) -> bool:
    try:
        cur.execute("BEGIN TRANSACTION")
    except Exception:
        return True
    cur.execute("ROLLBACK")
    return False


def test_later_handles_read_without_a_read_transaction_and_follow_a_schema_change(db):
    ts = head_ts(db)
    expected = table_rows(db, "t")
    tick()
    db.sql("UPDATE t SET v = 0")
    with db.as_of(ts) as first:  # finds the tables, in a read transaction
        assert table_rows(first, "t") == expected
    past = db.as_of(ts)
    try:
        assert isinstance(past._source, VersionedSnapshot)
        assert not _in_transaction(past._source.cur)  # a pooled cursor: nothing to pin
        db.sql("UPDATE t SET v = 1 WHERE k = 2")
        assert table_rows(past, "t") == expected
        db.sql("ALTER TABLE t ADD COLUMN w INT")  # empties the history its views read
        assert table_rows(past, "t") == expected  # the query fails to bind, then runs built
        assert isinstance(past._source, HostedSnapshot)
    finally:
        past.close()
    with db.as_of(ts) as again:  # the versions no longer reach ts
        assert isinstance(again._source, HostedSnapshot)
        assert table_rows(again, "t") == expected
    tick()
    later, now = head_ts(db), table_rows(db, "t")
    tick()
    db.sql("DELETE FROM t WHERE k < 3")
    for _ in range(2):  # after the schema change: the careful path, then a pooled cursor
        with db.as_of(later) as past:
            assert isinstance(past._source, VersionedSnapshot)
            assert table_rows(past, "t") == now


def test_pooled_handles_at_different_times_share_cursors(db):
    stamps = []
    for k in range(4):
        tick()
        db.sql("UPDATE t SET v = v + 10 WHERE k = ?", [k])
        stamps.append((head_ts(db), table_rows(db, "t")))
    tick()
    db.sql("DELETE FROM t WHERE k = 0")
    handles = [db.as_of(ts) for ts, _ in stamps]  # open at once: each its own cursor
    try:
        for handle, (_, expected) in zip(handles, stamps, strict=True):
            assert table_rows(handle, "t") == expected
    finally:
        for handle in handles:
            handle.close()
    for ts, expected in reversed(stamps):  # one at a time: the pool's cursors move
        with db.as_of(ts) as handle:
            assert isinstance(handle._source, VersionedSnapshot)
            assert table_rows(handle, "t") == expected


def test_pruning_moves_coverage_and_open_handles_move_to_a_built_state(db):
    tick()
    db.sql("UPDATE t SET v = 7 WHERE k = 1")
    tick()
    mid, expected = head_ts(db), table_rows(db, "t")
    tick()
    db.sql("UPDATE t SET v = 8 WHERE k = 1")
    with db.as_of(mid):
        pass
    past = db.as_of(mid)
    try:
        horizon = db._rt.recorder.head().txn_id - 1  # the versions superseded by mid go
        assert db._rt.prune_versions(horizon) == 1
        assert _storage(db, "SELECT since_txn, _asof.versions_since() FROM _asof.state") == [
            (horizon, horizon)
        ]
        assert table_rows(past, "t") == expected
        assert isinstance(past._source, HostedSnapshot)  # its views no longer bind
    finally:
        past.close()
    with db.as_of(mid) as again:  # mid is the new start of coverage: versions again
        assert isinstance(again._source, VersionedSnapshot)
        assert table_rows(again, "t") == expected


def test_an_explicit_transaction_leaves_the_row_groups_it_moves_rows_from_as_they_were(db):
    db.sql("CREATE TABLE big (k INT, v INT)")
    db.sql("INSERT INTO big SELECT i, 0 FROM range(300000) r(i)")
    loaded = db._rt.recorder.head().txn_id
    db.sql("BEGIN")
    for k in range(0, 300_000, 3_000):  # 100 rows, one in every 3,000: moved at commit
        db.sql("UPDATE big SET v = 1 WHERE k = ?", [k])
    db.sql("COMMIT")
    stats = _storage(
        db,
        "SELECT row_group_id, stats FROM pragma_storage_info('_asof.t2') "
        "WHERE column_name = '_asof_from' AND segment_type <> 'VALIDITY' ORDER BY row_group_id",
    )
    first = stats[0][1]
    top = first["max"] if isinstance(first, dict) else int(first.split("Max: ")[1].split("]")[0])
    assert int(top) == loaded  # no stamp in place widened its min/max
    assert _storage(db, "SELECT count(*) FROM _asof.t2 WHERE _asof_from > ?", [loaded]) == [(100,)]


def test_a_projection_without_the_coverage_macro_gets_it_on_open(tmp_path):
    import duckdb

    from asof import Cluster

    ts, expected, path = _updated_and_closed(tmp_path / "data")
    con = duckdb.connect(str(path))  # as the version before the macro left it
    con.execute("DROP MACRO _asof.versions_since")
    con.close()
    with Cluster.open(tmp_path / "data") as cluster:
        d = cluster.database("d")
        for _ in range(2):
            with d.as_of(ts) as past:
                assert isinstance(past._source, VersionedSnapshot)
                assert table_rows(past, "t") == expected
        assert d._rt.version_tables is not None


_PLAIN = [  # (statement, params): the old versions are copied to history first
    ("UPDATE t SET v = v + 1 WHERE k = ?", [3]),
    ("UPDATE t SET v = ?, s = 'x' WHERE k BETWEEN ? AND ?", [7, 2, 5]),
    ("UPDATE t AS x SET v = 0 WHERE x.k IN (1, 2) OR x.s LIKE 'r1%'", None),
    ("UPDATE t SET v = -1 WHERE v IS DISTINCT FROM 2 AND k::VARCHAR <> '4'", None),
    ("UPDATE t SET v = 5", None),
    ("UPDATE t SET v = 6 WHERE k % 2 = ? RETURNING k, v", [0]),
    ("DELETE FROM t WHERE k >= ? AND NOT (s = 'r19')", [15]),
    ("DELETE FROM t x WHERE x.k = 0", None),
]
_NOT_PLAIN = [  # read from a snapshot at commit instead
    ("UPDATE t SET v = 1 WHERE k = (random() * 0)::INT", None),
    ("UPDATE t SET v = 1 WHERE k IN (SELECT k FROM t WHERE v = 0)", None),
    ("UPDATE t SET v = u.k FROM (SELECT 1 AS k) AS u WHERE t.k = u.k", None),
    ("DELETE FROM t USING (SELECT 2 AS k) AS u WHERE t.k = u.k", None),
    ("UPDATE t SET v = 1 WHERE k = $key", {"key": 3}),
    ("WITH c AS (SELECT 4 AS k) UPDATE t SET v = 1 WHERE k = 4", None),
]


@pytest.mark.parametrize(("sql", "params"), _PLAIN + _NOT_PLAIN)
def test_autocommit_changes_keep_the_old_versions_either_way(db, sql, params):
    from asof.queryapi.sql.dml import plan_dml
    from asof.queryapi.sql.statements import split

    session = db._live()
    plan = plan_dml(split(sql)[0], session.lookup)
    assert (plan.history is not None) == ((sql, params) in _PLAIN)
    assert plan_dml(split(sql)[0], session.lookup, autocommit=False).history is None
    ts, before = head_ts(db), table_rows(db, "t")
    tick()
    db.sql(sql, params)
    tick()
    db.sql("UPDATE t SET v = 100 WHERE k = 1")  # ts is in the past, behind two commits
    for _ in range(2):  # the careful path, then a pooled cursor
        with db.as_of(ts) as past:
            assert isinstance(past._source, VersionedSnapshot)
            assert table_rows(past, "t") == before
    with db.as_of(ts, rebuild=True) as built:
        assert table_rows(built, "t") == before


def test_a_failed_autocommit_update_leaves_no_history(db):
    from asof import IntegrityError

    count = _storage(db, "SELECT count(*) FROM _asof.h1")
    with pytest.raises(IntegrityError):
        db.sql("UPDATE t SET k = ? WHERE k = ?", [2, 1])  # the key 2 is taken
    assert _storage(db, "SELECT count(*) FROM _asof.h1") == count
