"""Temporary objects belong to their session: never logged, never seen elsewhere."""

from __future__ import annotations

import pytest

from asof import AsofError, NotSupportedError, ProgrammingError
from support import head_ts, user_state


@pytest.fixture
def db(cluster):
    cluster.sql("CREATE DATABASE d")
    d = cluster.database("d")
    d.sql("CREATE SEQUENCE s; CREATE TABLE t (k INT, v INT); INSERT INTO t VALUES (1, 1)")
    return d


def test_a_temporary_table_is_the_sessions_own(cluster, db):
    db.sql("CREATE TEMP TABLE scratch (x INT)")
    db.sql("INSERT INTO scratch VALUES (1), (2)")
    db.sql("UPDATE scratch SET x = x * 10")
    db.sql("DELETE FROM scratch WHERE x = 20")
    assert db.sql("SELECT * FROM scratch").fetchall() == [(10,)]
    db.sql("INSERT INTO t SELECT x, 0 FROM scratch")  # a user table: logged
    other = cluster.database("d")
    with pytest.raises(ProgrammingError, match="scratch"):
        other.sql("SELECT * FROM scratch")
    with db.as_of(head_ts(db)) as past, pytest.raises(ProgrammingError):
        past.sql("SELECT * FROM scratch")
    cluster.clone("d", "c")
    with pytest.raises(ProgrammingError):
        cluster.database("c").sql("SELECT * FROM scratch")
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert user_state(rebuilt)["tables"] == user_state(db)["tables"]
    assert user_state(db)["tables"]["t"] == [(1, 1), (10, 0)]
    logged = [t.sql for t in db.transactions()]
    assert not any("TEMP" in sql or "INTO scratch" in sql for sql in logged), logged


def test_a_temporary_table_shadows_a_table_as_in_duckdb(db):
    db.sql("CREATE TEMP TABLE t (z INT)")
    db.sql("INSERT INTO t VALUES (99)")
    assert db.sql("SELECT * FROM t").fetchall() == [(99,)]
    db.sql("DROP TABLE t")
    assert db.sql("SELECT * FROM t").fetchall() == [(1, 1)]


def test_transactions_cover_temporary_objects(db):
    db.sql("CREATE TEMP TABLE scratch (x INT)")
    db.sql("BEGIN")
    db.sql("INSERT INTO scratch VALUES (5)")
    db.sql("ROLLBACK")
    assert db.sql("SELECT count(*) FROM scratch").fetchall() == [(0,)]


def test_sequences_moved_through_temporary_tables_are_logged(db):
    db.sql("CREATE TEMP TABLE ids (x BIGINT DEFAULT nextval('s'))")
    db.sql("INSERT INTO ids DEFAULT VALUES")
    db.sql("INSERT INTO ids SELECT nextval('s')")
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert user_state(rebuilt)["sequences"] == user_state(db)["sequences"] == [("main", "s", 2)]


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TEMP MACRO nextval(x) AS 1",
        "CREATE TEMP MACRO current_database() AS 'elsewhere'",
        'CREATE TEMPORARY MACRO "GetVariable"(x) AS 42',
        "CREATE OR REPLACE TEMP MACRO range(n) AS TABLE SELECT 1",
        "CREATE TEMP TABLE z AS SELECT setval('_asof.rid', 1)",
        "CREATE TEMP TABLE z AS SELECT * FROM duckdb_databases()",
    ],
)
def test_temporary_objects_pass_the_same_checks(db, sql):
    before = user_state(db)
    with pytest.raises((NotSupportedError, ProgrammingError)):
        db.sql(sql)
    assert user_state(db) == before


def test_writes_to_a_temporary_table_pass_the_same_checks(db):
    db.sql("CREATE TEMP TABLE scratch (x BIGINT)")
    before = user_state(db)
    for sql in (
        "INSERT INTO scratch SELECT setval('_asof.rid', 1)",
        "INSERT INTO scratch SELECT count(*) FROM duckdb_databases()",
        "UPDATE scratch SET x = setval('_asof.rid', 1)",
        "CREATE TEMP TABLE z (x BIGINT DEFAULT setval('_asof.rid', 1))",
        "INSERT INTO z DEFAULT VALUES",  # a default is checked where it is used
    ):
        if sql.startswith("CREATE"):
            db.sql(sql)
            continue
        with pytest.raises(AsofError):
            db.sql(sql)
    assert user_state(db) == before


def test_temporary_objects_on_a_clone_outlive_its_first_write(cluster, db):
    """Making a temporary object is a write: a clone moves to its own file first, so the
    object is made on the cursor the session keeps."""
    cluster.clone("d", "c")
    clone = cluster.database("c")
    clone.sql("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    cluster.database("c").sql("INSERT INTO t VALUES (2, 2)")
    assert clone.sql("SELECT * FROM scratch").fetchall() == [(1,)]
    assert clone.sql("SELECT count(*) FROM t").fetchall() == [(2,)]
