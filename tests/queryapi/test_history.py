"""History, the transaction log, and time travel inside SQL."""

from __future__ import annotations

import datetime as dt

import pytest

from asof import NotSupportedError, ProgrammingError
from support import head_ts, seed, tick


def test_history_of_seed_shows_inserts_and_drop(cluster):
    db, _ = seed(cluster)
    h = db.history("t1")
    assert h.column_names[:5] == ["ts", "txn_id", "op", "row_id", "table_id"]
    ops = h.column("op").to_pylist()
    assert ops == ["insert"] * 5 + ["drop"]
    assert h.column("k").to_pylist()[-1] is None


def test_history_where_since_until_and_recreated_tables(cluster):
    db, _ = seed(cluster)
    db.sql("CREATE TABLE t1 (k INT, v TEXT)")
    db.sql("INSERT INTO t1 VALUES (1, 'a'), (2, 'b')")
    tick()
    mid = head_ts(db)
    tick()
    db.sql("UPDATE t1 SET v = 'z' WHERE k = 1")
    db.sql("TRUNCATE t1")
    h = db.history("t1")
    assert len(set(h.column("table_id").to_pylist())) == 2  # dropped and re-created
    assert h.schema.field("v").type == "string"  # INT then TEXT: widened
    k1 = db.history("t1", where="k = 1")
    assert [r["op"] for r in k1.to_pylist()] == ["insert", "drop", "insert", "update", "truncate"]
    late = db.history("t1", since=mid + 1)
    assert late.column("op").to_pylist() == ["update", "truncate"]
    early = db.history("t1", until=mid)
    assert "truncate" not in early.column("op").to_pylist()
    with pytest.raises(ProgrammingError):
        db.history("nope")
    with pytest.raises(ProgrammingError):
        db.history("t1", where="no_such_column = 1")


def test_transaction_log_finds_the_bad_update(cluster):
    db, _ = seed(cluster)
    tick()
    db.sql("UPDATE t2 SET c1 = 'oops'")
    log = db.transaction_log()
    assert log.column_names == [
        "ts", "txn_id", "tables", "inserted", "updated", "deleted", "ddl", "sql",
    ]  # fmt: skip
    rows = log.to_pylist()
    bad = [r for r in rows if r["updated"] == 7]
    assert len(bad) == 1 and bad[0]["sql"] == "UPDATE t2 SET c1 = 'oops'"
    assert bad[0]["tables"] == ["t2"]
    drop = [r for r in rows if "drop_table" in r["ddl"]]
    assert drop[0]["tables"] == ["t1"]
    t1_only = db.transaction_log(table="t1").to_pylist()
    assert all("t1" in r["tables"] for r in t1_only) and len(t1_only) == 3
    last_good = rows[rows.index(bad[0]) - 1]["ts"]
    assert db.as_of(last_good).sql("SELECT count(*) FROM t2 WHERE c1 = 'oops'").fetchall() == [(0,)]
    assert len(list(db.transactions(table="t2"))) == 4
    assert len(db.transaction_log(since=bad[0]["ts"])) == 1


def test_at_timestamp_in_sql(cluster):
    db, ts = seed(cluster)
    good = head_ts(db)
    tick()
    db.sql("UPDATE t2 SET c1 = NULL")
    assert db.sql(f"SELECT count(*) FROM t1 AT (TIMESTAMP => {ts})").fetchall() == [(5,)]
    rows = db.sql(
        f"SELECT a.key, a.c1 IS NULL, b.c1 IS NULL FROM t2 AS a "
        f"JOIN t2 AS b AT (TIMESTAMP => {good}) ON a.key = b.key ORDER BY a.key"
    ).fetchall()
    assert rows == [(k, True, False) for k in range(1, 8)]
    assert db.sql(
        f"SELECT t1.k FROM t1 AT (TIMESTAMP => {ts}) WHERE t1.k > 3 ORDER BY t1.k"
    ).fetchall() == [(4,), (5,)]
    text = dt.datetime.fromtimestamp(int(ts) / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    got = db.sql(f"SELECT count(*) FROM t1 AT (TIMESTAMP => TIMESTAMP '{text}')").fetchall()
    assert got == [(5,)]


def test_at_timestamp_errors(cluster):
    db, ts = seed(cluster)
    with pytest.raises(NotSupportedError, match="read-only"):
        db.sql(f"INSERT INTO t2 SELECT * FROM t2 AT (TIMESTAMP => {head_ts(db)})")
    with pytest.raises(ProgrammingError, match="window"):
        db.sql("SELECT * FROM t2 AT (TIMESTAMP => 5)")
    with pytest.raises(ProgrammingError, match="time"):
        db.sql("SELECT * FROM t2 AT (TIMESTAMP => 'soon')")
    assert db.sql("SELECT count(*) FROM t2").fetchall() == [(7,)]  # nothing left registered


def test_asof_history_table_function(cluster):
    db, _ = seed(cluster)
    rows = db.sql("SELECT op, count(*) FROM asof_history('t1') GROUP BY op ORDER BY op").fetchall()
    assert rows == [("drop", 1), ("insert", 5)]
    assert db.sql("SELECT count(*) FROM asof_history('t1', 'k > 3')").fetchall() == [(3,)]
    with pytest.raises(ProgrammingError):
        db.sql("SELECT * FROM asof_history(t1)")
