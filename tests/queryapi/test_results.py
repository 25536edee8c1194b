"""Results convert the way DuckDB's own do: fetchall gives the same Python values."""

from __future__ import annotations

import duckdb
import pytest

from support import head_ts

QUERIES = [
    "SELECT uuid '12345678-1234-5678-1234-567812345678' AS u, NULL::UUID AS n",
    "SELECT MAP {'a': 1, 'b': 2} AS m, MAP {}::MAP(VARCHAR, INTEGER) AS e",
    "SELECT INTERVAL 1 MONTH + INTERVAL 3 DAY + INTERVAL 5 MICROSECOND AS i",
    "SELECT 170141183460469231731687303715884105727::HUGEINT AS h, 1::UHUGEINT AS u",
    "SELECT 1.5::DECIMAL(10, 2) AS d, [1, 2] AS l, {'x': 1} AS s, 'ab'::BLOB AS b",
    "SELECT TIMESTAMP '2024-01-01 01:02:03' AS ts, DATE '2024-01-01' AS d, TIME '01:02' AS t",
    "SELECT 1 AS x, 2 AS x",
]


@pytest.mark.parametrize("query", QUERIES)
def test_fetchall_matches_duckdb(cluster, query: str) -> None:
    db = cluster.create_database("d")
    got = db.sql(query)
    assert got.fetchall() == duckdb.sql(query).fetchall()
    assert got.columns == duckdb.sql(query).columns


def test_fetchone_and_as_of_convert_too(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (u UUID, m MAP(VARCHAR, INTEGER))")
    db.sql("INSERT INTO t VALUES (uuid '12345678-1234-5678-1234-567812345678', MAP {'k': 7})")
    expected = duckdb.sql(
        "SELECT uuid '12345678-1234-5678-1234-567812345678', MAP {'k': 7}"
    ).fetchall()[0]
    assert db.sql("SELECT * FROM t").fetchone() == expected
    with db.as_of(head_ts(db)) as old:
        assert old.sql("SELECT * FROM t").fetchall() == [expected]


def test_returning_converts_like_duckdb(cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (u UUID, m MAP(VARCHAR, INTEGER), n INTEGER)")
    insert = "INSERT INTO t VALUES (uuid '12345678-1234-5678-1234-567812345678', MAP {'k': 7}, 1)"
    ref = duckdb.connect()
    ref.execute("CREATE TABLE t (u UUID, m MAP(VARCHAR, INTEGER), n INTEGER)")
    expected = ref.execute(insert + " RETURNING m, u, n + 1").fetchall()
    assert db.sql(insert + " RETURNING m, u, n + 1").fetchall() == expected
    update = "UPDATE t SET n = n + 1 RETURNING *"
    assert db.sql(update).fetchall() == ref.execute(update).fetchall()


def test_time_with_time_zone_and_bit_results_convert_as_duckdb_does(cluster):
    """Arrow drops a TIMETZ's offset and holds a BIT as DuckDB's internal bytes: results
    carry their text, and fetches give what DuckDB's own client gives."""
    import duckdb

    db = cluster.create_database("d")
    sql = (
        "SELECT '12:00:00+05'::TIMETZ a, '0101'::BIT b, '00:00:00+15:59:59'::TIMETZ c, "
        "'23:59:59.123456-07:30'::TIMETZ d, 1 AS a, NULL::TIMETZ e, "
        "'24:00:00-15:59:59'::TIMETZ f"
    )
    assert db.sql(sql).fetchall() == duckdb.sql(sql).fetchall()
    assert db.sql(sql).columns == ["a", "b", "c", "d", "a", "e", "f"]
    db.sql("CREATE TABLE t (a TIMETZ, b BIT)")
    db.sql("INSERT INTO t VALUES ('01:00:00+02', '101')")
    assert db.sql("SELECT b, a::VARCHAR FROM t").fetchall() == [("101", "01:00:00+02")]


def test_results_stream_until_a_fetch_needs_every_row(cluster):
    from asof.queryapi.result import BATCH_ROWS

    db = cluster.create_database("d")
    db.sql("CREATE TABLE t AS SELECT range AS i FROM range(1000000)")
    r = db.sql("SELECT i FROM t ORDER BY i")
    assert r.fetchone() == (0,) and r.streaming
    assert r._read_rows <= BATCH_ROWS  # one batch read, not the million rows
    assert r.fetchmany(3) == [(1,), (2,), (3,)]
    assert r.columns == ["i"] and "more rows" in repr(r)
    db.sql("INSERT INTO t VALUES (-1)")  # the next statement reads the rest first
    assert not r.streaming
    assert r.fetchone() == (4,)
    assert len(r) == 1_000_000
    assert len(r.fetchall()) == 1_000_000 - 5


def test_an_error_while_streaming_is_an_asof_error(cluster):
    from asof import AsofError

    db = cluster.create_database("d")
    r = db.sql(
        "SELECT CASE WHEN range > 200000 THEN error('late') ELSE range END FROM range(300000)"
    )
    with pytest.raises(AsofError, match="late"):
        r.fetchall()
    assert db.sql("SELECT 1").fetchall() == [(1,)]  # the handle goes on


def test_an_as_of_handle_closed_mid_stream_keeps_the_rows(cluster):
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t AS SELECT range AS i FROM range(200000)")
    ts = list(db.transactions())[-1].ts.physical
    past = db.as_of(ts)
    r = past.sql("SELECT i FROM t")
    assert r.fetchone() is not None
    past.close()
    assert len(r) == 200000
    again = db.as_of(ts)  # a pooled cursor is free to serve the next handle
    assert again.sql("SELECT count(*) FROM t").fetchall() == [(200000,)]


def test_numpy_record_batches_show_and_repr(cluster, capsys):
    from asof import InterfaceError, ProgrammingError

    db = cluster.create_database("d")
    db.sql("CREATE TABLE t AS SELECT range AS i, 'x' || range AS s FROM range(100)")
    arrays = db.sql("SELECT * FROM t ORDER BY i").fetchnumpy()
    assert arrays["i"][:3].tolist() == [0, 1, 2] and list(arrays) == ["i", "s"]
    r = db.sql("SELECT i FROM t ORDER BY i")
    assert r.fetchone() == (0,)
    batches = list(r.fetch_record_batch(30))  # the rows not fetched yet, streaming
    assert [b.num_rows for b in batches] == [30, 30, 30, 9]
    assert batches[0].column(0)[0].as_py() == 1
    assert r.fetchone() is None
    db.sql("SELECT * FROM t ORDER BY i LIMIT 2").show()
    out = capsys.readouterr().out
    assert "| i | s  |" in out and "| 1 | x1 |" in out and "2 rows" in out
    text = repr(db.sql("SELECT * FROM t ORDER BY i"))
    assert "| 9 | x9 |" in text and "more rows" in text
    assert repr(db.sql("INSERT INTO t VALUES (1, NULL)")) == "<Result rowcount=1>"
    with pytest.raises(ProgrammingError):
        db.sql("SELECT 1").fetch_record_batch(0)
    try:
        import polars  # noqa: F401
    except ImportError:
        with pytest.raises(InterfaceError, match="pip install polars"):
            db.sql("SELECT 1").pl()
    else:
        assert db.sql("SELECT 1 AS x").pl().to_dicts() == [{"x": 1}]
