"""Single-row parameter inserts commit to the log first and reach the projection later.

Whatever path an insert takes, what a reader, the log, AS OF, a clone, a checkpoint or a
reopened cluster sees must be what DuckDB itself would hold.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pyarrow as pa
import pytest

from asof import Cluster, DataError, IntegrityError, ProgrammingError
from asof.queryapi.sql.fastinsert import parse_simple_insert
from asof.queryapi.sql.statements import split
from support import head_ts, tick


def _pending(db) -> int:
    return len(db._rt.pending)


@pytest.mark.parametrize(
    "sql,fast",
    [
        ("INSERT INTO t VALUES (?, ?)", True),
        ('insert into "T" (b, a) values (?,?)', True),
        ("INSERT INTO main.t VALUES (?)", True),
        ("INSERT INTO t VALUES (?, 1)", False),
        ("INSERT INTO t VALUES (?, ?), (?, ?)", False),
        ("INSERT INTO t SELECT ?, ?", False),
        ("INSERT INTO t VALUES (?, ?) RETURNING *", False),
        ("INSERT INTO t VALUES (?, ?) ON CONFLICT DO NOTHING", False),
        ("INSERT OR REPLACE INTO t VALUES (?, ?)", False),
        ("INSERT INTO t BY NAME SELECT ? AS a", False),
        ("INSERT INTO t VALUES ($1, $2)", False),
        ("INSERT INTO d.main.t VALUES (?)", False),
    ],
)
def test_only_the_plain_shape_is_recognised(sql: str, fast: bool) -> None:
    assert (parse_simple_insert(split(sql)[0]) is not None) is fast


def test_rows_read_back_at_once_with_duckdb_types(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (i INTEGER, b BIGINT, s SMALLINT, f DOUBLE, ok BOOLEAN, v VARCHAR)")
    rows = [
        (1, 2**40, -3, 1.5, True, "é"),
        (None, None, None, None, None, None),
        (-(2**31), 0, 7, float("inf"), False, ""),
    ]
    for row in rows:
        db.sql("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", list(row))
    assert _pending(db) == 3  # committed, not yet applied
    assert db.sql("SELECT * FROM t ORDER BY b NULLS LAST, i").fetchall() == [
        rows[2],
        rows[0],
        rows[1],
    ]
    assert _pending(db) == 0
    logged = db.history("t")
    assert logged.num_rows == 3
    reference = db.sql("INSERT INTO t VALUES (1, 2, 3, 4.0, true, 'x') RETURNING *").arrow()
    assert logged.select(reference.column_names).schema == reference.schema
    assert cluster.check("d", deep=True) == []


def test_values_duckdb_must_judge_take_the_general_path(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (i INTEGER, v VARCHAR, f DOUBLE)")
    db.sql("INSERT INTO t VALUES (?, ?, ?)", ["12", 5, 3])  # DuckDB casts these
    db.sql("INSERT INTO t VALUES (?, ?, ?)", [True, None, 2**60])
    with pytest.raises((DataError, ProgrammingError)):
        db.sql("INSERT INTO t VALUES (?, ?, ?)", [2**40, "x", 1.0])  # out of INTEGER's range
    with pytest.raises(ProgrammingError):
        db.sql("INSERT INTO t VALUES (?, ?)", [1, "x"])  # too few values
    with pytest.raises(ProgrammingError):
        db.sql("INSERT INTO nowhere VALUES (?)", [1])
    assert db.sql("SELECT * FROM t ORDER BY i").fetchall() == [
        (1, None, float(2**60)),
        (12, "5", 3.0),
    ]
    assert len(list(db.transactions())) == 3  # the create and two inserts; failures left none


def test_constraints_defaults_and_generated_columns_are_enforced(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE SEQUENCE s")
    db.sql("CREATE TABLE pk (k INTEGER PRIMARY KEY, v INTEGER)")
    db.sql("CREATE TABLE nn (k INTEGER NOT NULL, v INTEGER CHECK (v > 0))")
    db.sql("CREATE TABLE df (k INTEGER DEFAULT nextval('s'), v INTEGER)")
    db.sql("CREATE TABLE gen (k INTEGER, twice INTEGER GENERATED ALWAYS AS (k * 2))")
    db.sql("INSERT INTO pk VALUES (?, ?)", [1, 1])
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO pk VALUES (?, ?)", [1, 2])
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO nn VALUES (?, ?)", [None, 1])
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO nn VALUES (?, ?)", [1, 0])
    db.sql("INSERT INTO df (v) VALUES (?)", [10])
    db.sql("INSERT INTO df (v) VALUES (?)", [11])
    db.sql("INSERT INTO gen (k) VALUES (?)", [4])
    assert db.sql("SELECT * FROM pk").fetchall() == [(1, 1)]
    assert db.sql("SELECT * FROM nn").fetchall() == []
    assert db.sql("SELECT * FROM df ORDER BY k").fetchall() == [(1, 10), (2, 11)]
    assert db.sql("SELECT * FROM gen").fetchall() == [(4, 8)]
    assert cluster.check("d", deep=True) == []


def test_omitted_columns_without_a_default_are_null(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (a INTEGER, b VARCHAR, c DOUBLE)")
    db.sql("INSERT INTO t (c, a) VALUES (?, ?)", [0.5, 3])
    assert _pending(db) == 1
    assert db.sql("SELECT * FROM t").fetchall() == [(3, None, 0.5)]


def test_row_ids_stay_unique_across_both_paths(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER, v INTEGER)")
    for i in range(5):
        db.sql("INSERT INTO t VALUES (?, ?)", [i, 0])
        db.sql(f"INSERT INTO t VALUES ({100 + i}, 0)")  # no parameters: the general path
        db.sql("UPDATE t SET v = v + 1 WHERE k = ?", [i])
    db.sql("BEGIN")
    db.sql("INSERT INTO t VALUES (?, ?)", [50, 0])  # inside a transaction: the general path
    db.sql("DELETE FROM t WHERE k = 100")
    db.sql("COMMIT")
    db.sql("INSERT INTO t VALUES (?, ?)", [51, 0])
    ids = db.sql("SELECT _rid FROM _asof.t1").fetchall()
    assert len(ids) == len(set(ids)) == 11
    assert sorted(db.sql("SELECT k, v FROM t").fetchall()) == sorted(
        [(i, 1) for i in range(5)] + [(100 + i, 0) for i in range(1, 5)] + [(50, 0), (51, 0)]
    )
    assert cluster.check("d", deep=True) == []


def test_as_of_clone_and_checkpoint_see_pending_rows(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER)")
    db.sql("INSERT INTO t VALUES (?)", [1])
    tick()
    first = head_ts(db)
    tick()
    db.sql("INSERT INTO t VALUES (?)", [2])
    with db.as_of(first) as old:
        assert old.sql("SELECT k FROM t").fetchall() == [(1,)]
    with db.as_of(head_ts(db)) as now:
        assert sorted(now.sql("SELECT k FROM t").fetchall()) == [(1,), (2,)]
    db.sql("INSERT INTO t VALUES (?)", [3])
    cluster.checkpoint("d")
    assert _pending(db) == 0
    db.sql("INSERT INTO t VALUES (?)", [4])
    cluster.sql("CREATE DATABASE c TEMPLATE d")
    assert sorted(cluster.database("c").sql("SELECT k FROM t").fetchall()) == [
        (i,) for i in range(1, 5)
    ]


def test_many_pending_rows_are_applied_in_batches(cluster, monkeypatch) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER, s VARCHAR)")
    monkeypatch.setattr(type(db._rt), "pending_limit", 10)
    for i in range(25):
        db.sql("INSERT INTO t VALUES (?, ?)", [i, str(i)])
    assert _pending(db) == 5
    assert db.sql("SELECT count(*), sum(k) FROM t").fetchall() == [(25, 300)]


def test_threads_inserting_and_reading_agree(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER, w INTEGER)")
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            handle = cluster.database("d")
            for i in range(50):
                handle.sql("INSERT INTO t VALUES (?, ?)", [i, w])
                assert handle.sql("SELECT count(*) FROM t WHERE w = ?", [w]).fetchall() == [
                    (i + 1,)
                ]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.sql("SELECT count(*) FROM t").fetchall() == [(150,)]


def test_rows_not_yet_applied_survive_a_crash(tmp_path) -> None:
    data = tmp_path / "data"
    script = textwrap.dedent(
        f"""
        import os
        from asof import Cluster
        cluster = Cluster.open({str(data)!r})
        db = cluster.create_database("d")
        db.sql("CREATE TABLE t (k INTEGER, v VARCHAR)")
        db.sql("INSERT INTO t VALUES (0, 'applied')")
        for i in range(1, 21):
            db.sql("INSERT INTO t VALUES (?, ?)", [i, "logged"])
        assert len(db._rt.pending) == 20
        os._exit(0)  # no close: the projection never saw the last 20 rows
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=str(tmp_path))
    with Cluster.open(data) as cluster:
        db = cluster.database("d")
        assert db.sql("SELECT count(*), sum(k) FROM t").fetchall() == [(21, 210)]
        assert cluster.check("d", deep=True) == []
        db.sql("INSERT INTO t VALUES (?, ?)", [21, "after"])
        ids = db.sql("SELECT _rid FROM _asof.t1").arrow().column(0)
        assert len(pa.compute.unique(ids)) == 22


def test_a_fresh_clone_gets_its_file_then_takes_fast_inserts(disk_cluster) -> None:
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER)")
    db.sql("INSERT INTO t SELECT range FROM range(100)")
    disk_cluster.checkpoint("d")
    disk_cluster.sql("CREATE DATABASE c TEMPLATE d")
    clone = disk_cluster.database("c")
    assert clone.sql("SELECT count(*) FROM t").fetchall() == [(100,)]
    assert clone._rt.hosted  # read from the shared checkpoint, no file of its own yet
    for k in range(100, 105):
        clone.sql("INSERT INTO t VALUES (?)", [k])
    assert not clone._rt.hosted
    assert clone.sql("SELECT count(*), max(k) FROM t").fetchall() == [(105, 104)]
    assert db.sql("SELECT count(*) FROM t").fetchall() == [(100,)]
    assert disk_cluster.check("c", deep=True) == []


def test_as_of_the_head_sees_rows_not_yet_applied(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER)")
    for k in range(3):
        db.sql("INSERT INTO t VALUES (?)", [k])
    assert _pending(db) == 3
    with db.as_of(head_ts(db)) as now:
        assert now.sql("SELECT count(*) FROM t").fetchall() == [(3,)]
        db.sql("INSERT INTO t VALUES (?)", [3])  # after T: not in the handle
        assert now.sql("SELECT count(*) FROM t").fetchall() == [(3,)]
    assert db.sql("SELECT count(*) FROM t").fetchall() == [(4,)]


def test_not_null_columns_keep_the_fast_path_and_refuse_null(disk_cluster) -> None:
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE nn (k INTEGER NOT NULL, v VARCHAR)")
    db.sql("INSERT INTO nn VALUES (?, ?)", [1, None])
    assert _pending(db) == 1
    before = len(list(db.transactions()))
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO nn VALUES (?, ?)", [None, "x"])
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO nn (v) VALUES (?)", ["x"])
    assert len(list(db.transactions())) == before  # the failures logged nothing
    assert db.sql("SELECT * FROM nn").fetchall() == [(1, None)]


@pytest.mark.parametrize(
    "values",
    [[128, 0, "a"], [-129, 0, "a"], [0, -1, "a"], [0, 256, "a"], [0, 0, "\ud800"]],
)
def test_values_a_narrow_column_cannot_hold_are_left_to_duckdb(cluster, values) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k TINYINT, u UTINYINT, s VARCHAR)")
    with pytest.raises(DataError):
        db.sql("INSERT INTO t VALUES (?, ?, ?)", values)
    db.sql("INSERT INTO t VALUES (?, ?, ?)", [-128, 255, "ok"])
    assert _pending(db) == 1
    assert db.sql("SELECT * FROM t").fetchall() == [(-128, 255, "ok")]


def test_logged_values_read_back_exactly_after_a_reopen(tmp_path) -> None:
    rows = [
        (2**63 - 1, 0.1, True, 'quote " and \\ and \n'),
        (-(2**63), -0.0, False, "é 字 🎉"),
        (None, float("inf"), None, ""),
        (0, 5e-324, True, None),
        (1, float("nan"), False, "x" * 5000),
    ]
    with Cluster.open(tmp_path / "data") as cluster:
        db = cluster.create_database("d")
        db.sql("CREATE TABLE t (n INTEGER, k BIGINT, f DOUBLE, ok BOOLEAN, s VARCHAR)")
        for i, row in enumerate(rows):
            db.sql("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [i, *row])
        assert _pending(db) == len(rows)
        live = db.sql("SELECT * FROM t ORDER BY n").fetchall()
        projection = tmp_path / "data" / "projections" / f"{cluster._record('d').db_id}.duckdb"
    for rebuild in (False, True):
        if rebuild:  # the state again, from the log alone
            projection.unlink()
        with Cluster.open(tmp_path / "data") as cluster:
            db = cluster.database("d")
            got = db.sql("SELECT * FROM t ORDER BY n").fetchall()
            assert repr(got) == repr(live)
            assert repr([r[1:] for r in got]) == repr(rows)
            assert db.history("t").num_rows == len(rows)
            assert cluster.check("d", deep=True) == []


def test_keys_are_checked_against_pending_and_stored_rows(disk_cluster) -> None:
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE t (k INTEGER PRIMARY KEY, a VARCHAR, b BIGINT, UNIQUE (a, b))")
    db.sql("INSERT INTO t VALUES (?, ?, ?)", [1, "x", 1])
    db.sql("INSERT INTO t VALUES (?, ?, ?)", [2, "x", None])
    db.sql("INSERT INTO t VALUES (?, ?, ?)", [3, "x", None])  # NULLs never collide
    assert _pending(db) == 3
    logged = len(list(db.transactions()))
    for dup in ([1, "y", 5], [4, "x", 1]):  # against rows still pending
        with pytest.raises(IntegrityError):
            db.sql("INSERT INTO t VALUES (?, ?, ?)", dup)
    assert db.sql("SELECT count(*) FROM t").fetchall() == [(3,)]  # applies the pending rows
    for dup in ([2, "z", 0], [5, "x", 1]):  # against stored rows
        with pytest.raises(IntegrityError):
            db.sql("INSERT INTO t VALUES (?, ?, ?)", dup)
    assert len(list(db.transactions())) == logged  # the failures logged nothing
    db.sql("DELETE FROM t WHERE k = 1")
    db.sql("INSERT INTO t VALUES (?, ?, ?)", [1, "x", 1])  # free again
    assert _pending(db) == 1
    assert sorted(db.sql("SELECT * FROM t").fetchall()) == [
        (1, "x", 1),
        (2, "x", None),
        (3, "x", None),
    ]
    assert disk_cluster.check("d", deep=True) == []


def test_keys_only_duckdb_can_compare_take_the_general_path(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE f (x DOUBLE UNIQUE)")
    db.sql("INSERT INTO f VALUES (?)", [float("nan")])
    assert _pending(db) == 0  # NaN: DuckDB's index holds NaN equal to NaN
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO f VALUES (?)", [float("nan")])
    db.sql("INSERT INTO f VALUES (?)", [0.0])
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO f VALUES (?)", [-0.0])
    db.sql("CREATE TABLE c (s VARCHAR COLLATE NOCASE PRIMARY KEY)")
    db.sql("INSERT INTO c VALUES (?)", ["A"])
    db.sql("INSERT INTO c VALUES (?)", ["a"])
    assert _pending(db) == 0  # a collated key may compare unlike Python: DuckDB decides
    assert sorted(db.sql("SELECT s FROM c").fetchall()) == [("A",), ("a",)]
    db.sql("CREATE TABLE ix (k INTEGER)")
    db.sql("CREATE UNIQUE INDEX one_k ON ix (k)")
    db.sql("INSERT INTO ix VALUES (?)", [1])
    assert _pending(db) == 0  # unique indexes stay with DuckDB
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO ix VALUES (?)", [1])


def test_keys_that_count_up_skip_the_probe_until_a_general_write(cluster, monkeypatch) -> None:
    from asof.projections import keys as fastinsert

    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k BIGINT PRIMARY KEY, v VARCHAR)")
    db.sql("INSERT INTO t VALUES (?, ?)", [1, "a"])  # the first looks the largest key up
    probes: list[str] = []
    real = fastinsert.first_row

    def counting(cur, sql, params=None):
        probes.append(sql)
        return real(cur, sql, params)

    monkeypatch.setattr(fastinsert, "first_row", counting)
    for k in range(2, 7):
        db.sql("INSERT INTO t VALUES (?, ?)", [k, "up"])
    assert probes == []  # each key above every earlier one: nothing to look up
    assert _pending(db) == 6
    db.sql("UPDATE t SET k = 100 WHERE k = 3")  # a general write may store larger keys
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO t VALUES (?, ?)", [100, "dup"])
    db.sql("INSERT INTO t VALUES (?, ?)", [3, "reused"])  # below the largest, but free
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO t VALUES (?, ?)", [3, "pending dup"])
    db.sql("INSERT INTO t VALUES (200, 'general')")
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO t VALUES (?, ?)", [200, "dup"])
    db.sql("INSERT INTO t VALUES (?, ?)", [201, "up"])
    assert sorted(k for (k,) in db.sql("SELECT k FROM t").fetchall()) == [
        1,
        2,
        3,
        4,
        5,
        6,
        100,
        200,
        201,
    ]
    assert cluster.check("d", deep=True) == []
