"""INSERT ... SELECT captured as Arrow (queryapi/bulkinsert.py) against DuckDB and the log.

Each case runs on an on-disk cluster (so large rows take WAL format 2 and are encoded while
DuckDB inserts them) and on plain DuckDB; the projection must equal DuckDB, the storage
table (row ids included) must equal what the log holds, and a projection rebuilt from the
log must equal the live one.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from asof import Cluster
from asof.eventlog import walbulk
from asof.eventlog.wal import scan_file
from asof.queryapi.errors import DatabaseError, IntegrityError
from asof.queryapi.sql import bulkinsert
from asof.queryapi.sql.dml import plan_dml
from asof.queryapi.sql.session import Session
from asof.queryapi.sql.statements import split

TYPED = (
    "CREATE TABLE t (i INTEGER, b BIGINT, u UBIGINT, f FLOAT, d DOUBLE, n DECIMAL(18, 3), "
    "s VARCHAR, bl BLOB, ok BOOLEAN, dt DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ, "
    "iv INTERVAL, id UUID)"
)


def _typed_rows(lo: int, hi: int) -> str:
    cols = [
        "CASE WHEN i % 17 = 0 THEN NULL ELSE i END",
        "i * 1000003",
        "i",
        "i / 7",
        "CASE WHEN i % 101 = 0 THEN 'nan'::DOUBLE ELSE i / 3 END",
        "i / 1000",
        "CASE WHEN i % 13 = 0 THEN NULL ELSE 'row ' || i END",
        "('b' || i)::BLOB",
        "i % 2 = 0",
        "DATE '2020-01-01' + (i % 4000)::INTEGER",
        "TIME '00:00:00' + to_seconds(i % 86400)",
        "TIMESTAMP '2000-01-01' + to_seconds(i)",
        "TIMESTAMPTZ '2000-01-01 00:00:00+00' + to_minutes(i)",
        "to_days((i % 1000)::INTEGER) + to_microseconds(i)",
        "('00000000-0000-0000-0000-' || lpad(i::VARCHAR, 12, '0'))::UUID",
    ]
    return f"SELECT {', '.join(cols)} FROM range({lo}, {hi}) r(i)"


@pytest.fixture
def db(disk_cluster):
    disk_cluster.sql("CREATE DATABASE d")
    return disk_cluster.database("d")


@pytest.fixture
def ref():
    con = duckdb.connect()
    yield con
    con.close()


def _both(db, ref, sql: str) -> None:
    ref.execute(sql)
    db.sql(sql)


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


def _pyrows(table: pa.Table) -> list[tuple]:
    """Rows as Arrow turns them into Python values, in a stable order."""
    cols = [c.to_pylist() for c in table.columns]
    return _sorted([tuple(map(repr, r)) for r in zip(*cols, strict=True)])


def _same_as_duckdb(db, ref, table: str) -> None:
    got = db.sql(f"SELECT * FROM {table}").arrow()
    want = ref.sql(f"SELECT * FROM {table}").to_arrow_table()
    assert got.schema == want.schema
    assert _pyrows(got) == _pyrows(want)


def _storage(db, table: str) -> pa.Table:
    cur = db._rt.projection.cursor()
    (tid,) = cur.execute("SELECT table_id FROM _asof.tables WHERE name = ?", [table]).fetchall()[0]
    rows = cur.sql(f"SELECT * EXCLUDE (_asof_from) FROM _asof.t{tid} ORDER BY _rid")
    return rows.to_arrow_table(), tid


def _log_matches_projection(db, table: str) -> None:
    live, tid = _storage(db, table)
    logged = db._rt.recorder.rows(tid, 1)
    last = logged.group_by("_rid").aggregate([("_txn", "max")])
    assert logged.num_rows == live.num_rows == last.num_rows  # inserts only, each row once
    logged = logged.drop_columns(["_txn", "_ts", "_seq", "_op"]).select(live.column_names)
    assert logged.schema == live.schema
    assert _pyrows(logged) == _pyrows(live)  # row ids included; NaN compares as its repr


def _rebuilt_matches(db, table: str) -> None:
    """The state rebuilt from the log at the head equals the live projection."""
    head = list(db.transactions())[-1].ts.physical
    with db.as_of(head) as old:
        assert _pyrows(old.sql(f"SELECT * FROM {table}").arrow()) == _pyrows(
            db.sql(f"SELECT * FROM {table}").arrow()
        )


@pytest.fixture
def captured(monkeypatch) -> list[int]:
    """Row counts of the inserts that took the Arrow capture."""
    calls: list[int] = []
    real = bulkinsert.insert_rows

    def spy(cur, table_id, rows):
        calls.append(rows.num_rows)
        return real(cur, table_id, rows)

    monkeypatch.setattr(bulkinsert, "insert_rows", spy)
    return calls


def test_a_large_insert_select_of_many_types_round_trips_through_the_log(db, ref, captured):
    _both(db, ref, TYPED)
    n = 60_000  # above walbulk.BULK_ABOVE
    _both(db, ref, f"INSERT INTO t {_typed_rows(0, n)}")
    _both(db, ref, "INSERT INTO t VALUES (NULL, 1, 2, 3, 4, 5, 's', 'b', true, NULL, NULL, "
          "NULL, NULL, NULL, NULL)")  # fmt: skip
    _both(db, ref, f"INSERT INTO t {_typed_rows(n, n + 10)}")
    assert captured == [n, 10]
    _same_as_duckdb(db, ref, "t")
    _log_matches_projection(db, "t")
    live, _ = _storage(db, "t")
    assert live.column("_rid").to_pylist() == list(range(1, n + 12))  # no gap, no reuse
    tail = db._rt.recorder.transactions()
    assert sum(e.row_count for txn in tail for e in txn.events) == n + 11
    _rebuilt_matches(db, "t")


def test_the_large_transaction_is_written_in_format_2(tmp_path, db):
    db.sql("CREATE TABLE t (k BIGINT, v BIGINT)")
    db.sql("INSERT INTO t SELECT i, i % 7 FROM range(1000000) r(i)")
    payloads = [f.payload for p in (tmp_path / "data").rglob("wal") for f in scan_file(p).frames]
    assert sum(p[:4] == walbulk.TAG for p in payloads) == 1


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t SELECT 1.9, '7', 3",  # casts, as INSERT casts
        "INSERT INTO t (c, a, b) SELECT 3, 1, 'x'",  # a permuted column list
        "INSERT INTO t (\"C\", A, b) SELECT 3, 1, 'x'",
        "INSERT INTO t BY POSITION SELECT 1, 'x', 3",
        "INSERT INTO t (SELECT 1, 'x', 3)",
        "INSERT INTO t WITH q AS (SELECT 1 AS a) SELECT a, 'w', a FROM q",
        "INSERT INTO t FROM (SELECT 1, 'x', 3)",
        "INSERT INTO t SELECT * FROM t",
        "INSERT INTO t SELECT a + 10, b, c FROM t WHERE a = 1",
        "INSERT INTO t SELECT ?, ?, ?",
        "INSERT INTO t SELECT 1, 'x'",  # too few values: DuckDB's error
        "INSERT INTO t SELECT 'not a number', 'x', 3",  # a failed cast
        "INSERT INTO t SELECT nosuch, 'x', 3",
        "INSERT INTO t (a, b) SELECT 1, 'x'",  # a default: the general capture
        "INSERT INTO t BY NAME SELECT 1 AS c, 2 AS a",
        "WITH q AS (SELECT 5 AS a) INSERT INTO t SELECT a, 'cte', a FROM q",
        "INSERT INTO t SELECT range, 'r', range FROM range(0)",
    ],
)
def test_insert_select_matches_duckdb(db, ref, sql):
    setup = [
        "CREATE TABLE t (a INTEGER, b VARCHAR, c DOUBLE DEFAULT 42)",
        "INSERT INTO t VALUES (1, 'one', 1.5)",
    ]
    for s in setup:
        _both(db, ref, s)
    params = [4, "p", 2.5] if "?" in sql else None
    try:
        ref.execute(sql, params)
    except duckdb.Error:
        with pytest.raises(DatabaseError):
            db.sql(sql, params)
        assert len(list(db.transactions())) == 2  # nothing logged
    else:
        db.sql(sql, params)
    db.sql("INSERT INTO t VALUES (9, 'after', 9)")
    ref.execute("INSERT INTO t VALUES (9, 'after', 9)")
    _same_as_duckdb(db, ref, "t")
    _log_matches_projection(db, "t")
    live, _ = _storage(db, "t")
    assert pc.count_distinct(live.column("_rid")).as_py() == live.num_rows


def test_which_inserts_are_captured_as_arrow(db):
    db.sql("CREATE TABLE t (a INTEGER, b VARCHAR)")
    db.sql("CREATE TABLE g (a INTEGER, twice INTEGER GENERATED ALWAYS AS (a * 2))")

    def source(sql: str) -> str | None:
        session = Session(db._rt)
        try:
            return plan_dml(split(sql)[0], session.lookup).source
        finally:
            session.close()

    assert source("INSERT INTO t SELECT 1, 'x'") == "SELECT 1, 'x'"
    assert source("INSERT INTO t (b, a) SELECT 'x', 1") == "SELECT 'x', 1"
    assert source("INSERT INTO t (a) SELECT 1") is None  # b gets its default
    assert source("INSERT INTO t VALUES (1, 'x')") is None
    assert source("INSERT INTO t SELECT 1, 'x' RETURNING a") is None
    assert source("INSERT OR REPLACE INTO t SELECT 1, 'x'") is None
    assert source("INSERT INTO t SELECT 1, 'x' ON CONFLICT DO NOTHING") is None
    assert source("INSERT INTO t BY NAME SELECT 1 AS a, 'x' AS b") is None
    assert source("INSERT INTO t DEFAULT VALUES") is None
    assert source("INSERT INTO g SELECT 1") is None  # a generated column


def test_a_nextval_in_the_query_runs_once(db, ref):
    for s in [
        "CREATE SEQUENCE s",
        "CREATE TABLE t (a BIGINT, b INTEGER)",
        "INSERT INTO t SELECT nextval('s'), nextval('s')::INTEGER FROM range(3)",
        "INSERT INTO t VALUES (nextval('s'), 0)",
    ]:
        _both(db, ref, s)
    _same_as_duckdb(db, ref, "t")
    assert db.sql("SELECT max(a) FROM t").fetchall() == [(7,)]


def test_columns_of_other_types_take_the_general_capture(db, ref, captured):
    for s in [
        "CREATE TYPE mood AS ENUM ('sad', 'ok')",
        "CREATE TABLE t (m mood, l INTEGER[], st STRUCT(x INTEGER), h HUGEINT)",
        "INSERT INTO t SELECT 'ok', [1, 2], {'x': 3}, 170141183460469231731687303715884105727",
    ]:
        _both(db, ref, s)
    assert captured == []
    _same_as_duckdb(db, ref, "t")
    _rebuilt_matches(db, "t")


def test_a_constraint_violation_logs_nothing_and_row_ids_go_on(db):
    db.sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER CHECK (v >= 0))")
    db.sql("INSERT INTO t SELECT i, i FROM range(5) r(i)")
    n = len(list(db.transactions()))
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO t SELECT i, i FROM range(4, 8) r(i)")
    with pytest.raises(IntegrityError):
        db.sql("INSERT INTO t SELECT i, -1 FROM range(10, 12) r(i)")
    assert len(list(db.transactions())) == n
    db.sql("INSERT INTO t SELECT i, i FROM range(5, 7) r(i)")
    live, _ = _storage(db, "t")
    assert live.column("k").to_pylist() == list(range(7))
    _log_matches_projection(db, "t")


def test_rolled_back_and_explicit_transactions(db):
    db.sql("CREATE TABLE t (k BIGINT)")
    db.sql("BEGIN")
    db.sql("INSERT INTO t SELECT range FROM range(3)")
    db.sql("ROLLBACK")
    db.sql("BEGIN")
    db.sql("INSERT INTO t SELECT range FROM range(3)")
    db.sql("INSERT INTO t VALUES (100)")
    db.sql("INSERT INTO t SELECT range + 10 FROM range(2)")
    db.sql("COMMIT")
    live, _ = _storage(db, "t")
    assert live.column("k").to_pylist() == [0, 1, 2, 100, 10, 11]
    rids = live.column("_rid").to_pylist()
    assert rids == sorted(rids) and len(set(rids)) == 6
    _log_matches_projection(db, "t")


def test_row_ids_continue_after_reopening(tmp_path):
    path = tmp_path / "data"
    with Cluster.open(path) as c:
        c.sql("CREATE DATABASE d")
        db = c.database("d")
        db.sql("CREATE TABLE t (k BIGINT)")
        db.sql("INSERT INTO t SELECT range FROM range(1000)")
    with Cluster.open(path) as c:
        db = c.database("d")
        db.sql("INSERT INTO t VALUES (-1)")
        db.sql("INSERT INTO t SELECT range FROM range(2)")
        live, _ = _storage(db, "t")
        assert live.column("_rid").to_pylist() == list(range(1, 1004))
        _log_matches_projection(db, "t")
