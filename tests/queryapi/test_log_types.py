"""Values Arrow cannot carry whole: TIME WITH TIME ZONE is logged as text, and INTERVALs
beyond what Arrow holds are refused, so every state read from the log equals the live one."""

from __future__ import annotations

import pyarrow as pa
import pytest

from asof import DataError, NotSupportedError
from asof.eventlog.rows import concat_images
from support import head_ts

STATE = "SELECT id, a::VARCHAR, b::VARCHAR, z::VARCHAR FROM t ORDER BY id"


def test_time_with_time_zone_keeps_its_offset_in_every_state(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, a TIMETZ, b INTERVAL, n INT)")
    db.sql("INSERT INTO t VALUES (1, '00:00:00+15:59:59', INTERVAL 1 DAY, 1)")
    db.sql("INSERT INTO t SELECT 2, '12:00:00+05'::TIMETZ, INTERVAL '400 years', 2")
    db.sql("UPDATE t SET a = '01:02:03-07:30' WHERE id = 2")
    db.sql(
        "INSERT INTO t VALUES (2, '03:00:00+01', INTERVAL 2 DAYS, 3) "
        "ON CONFLICT (id) DO UPDATE SET a = excluded.a"
    )
    db.sql("BEGIN")
    db.sql("UPDATE t SET a = a + INTERVAL 1 HOUR WHERE id = 1")
    db.sql("COMMIT")
    db.sql("ALTER TABLE t ADD COLUMN z TIMETZ DEFAULT '10:00:00+03'")
    db.sql("CREATE TABLE t2 AS SELECT * FROM t")
    live = db.sql(STATE).fetchall()
    assert live[0][1] == "01:00:00+15:59:59" and live[1][1] == "03:00:00+01"
    disk_cluster.clone("d", "c")
    assert disk_cluster.database("c").sql(STATE).fetchall() == live
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert rebuilt.sql(STATE).fetchall() == live
        assert rebuilt.sql("SELECT a::VARCHAR FROM t2 ORDER BY id").fetchall() == [
            (r[1],) for r in live
        ]
    assert db.history("t").column("a").to_pylist()[:3] == [
        "00:00:00+15:59:59",
        "12:00:00+05",
        "01:02:03-07:30",
    ]
    assert disk_cluster.check(deep=True) == []


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (9, INTERVAL '9223372036854775807 microseconds')",
        "INSERT INTO t SELECT 9, INTERVAL '-9223372036854775807 microseconds'",
        "UPDATE t SET b = INTERVAL '2147483647 months 9223372036854775 milliseconds'",
        "ALTER TABLE t ADD COLUMN c INTERVAL DEFAULT INTERVAL '3000000 hours'",
        "CREATE TABLE big AS SELECT INTERVAL '3000000 hours' AS i",
    ],
)
def test_intervals_the_log_cannot_hold_are_refused_and_change_nothing(cluster, sql):
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (id INT, b INTERVAL)")
    db.sql("INSERT INTO t VALUES (1, INTERVAL '2562047 hours')")  # the largest that fits
    before = db.sql("SELECT * FROM t").fetchall()
    with pytest.raises(DataError, match="292 years"):
        db.sql(sql)
    assert db.sql("SELECT * FROM t").fetchall() == before
    assert "big" not in db.tables()
    assert cluster.check(deep=True) == []


def test_bits_read_back_as_the_same_bits(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE TABLE t AS SELECT * FROM (VALUES ('110010'::BIT), ('110'::BIT)) v(a)")
    db.sql("INSERT INTO t VALUES ('0101'::BIT)")
    db.sql("UPDATE t SET a = '1'::BIT WHERE a::VARCHAR = '110'")
    with pytest.raises(NotSupportedError, match="cannot describe"):  # DuckDB serializes no plan
        db.sql("DELETE FROM t WHERE a = '110'::BIT")
    live = sorted(db.sql("SELECT a::VARCHAR FROM t").fetchall())
    assert live == [("0101",), ("1",), ("110010",)]
    disk_cluster.clone("d", "c")
    assert sorted(disk_cluster.database("c").sql("SELECT a::VARCHAR FROM t").fetchall()) == live
    assert disk_cluster.check(deep=True) == []


def test_images_logged_before_the_text_encoding_join_the_new_ones():
    old = pa.table({"a": pa.array([3723000000], pa.time64("us")), "_rid": [1]})
    new = pa.table({"a": pa.array(["01:00:00+02"]), "_rid": [2]})
    joined = concat_images([old, new])
    assert joined.column("a").to_pylist() == ["01:02:03.000000", "01:00:00+02"]
