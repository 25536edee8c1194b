"""SET, RESET and PRAGMA: a session changes only its own session-scoped settings."""

from __future__ import annotations

import pytest

from asof import Cluster, NotSupportedError, ReadOnlyError
from support import head_ts, user_state


@pytest.fixture
def db(cluster):
    cluster.sql("CREATE DATABASE d")
    d = cluster.database("d")
    d.sql("CREATE SEQUENCE s; CREATE TABLE t (k INT, v INT)")
    d.sql("INSERT INTO t VALUES (1, 10), (NULL, 20), (3, NULL)")
    return d


def keys(handle) -> list:
    return [r[0] for r in handle.sql("SELECT k FROM t ORDER BY k").fetchall()]


def test_a_setting_applies_to_its_session_only(cluster, db):
    other = cluster.database("d")
    db.sql("SET default_null_order = 'nulls_first'")
    assert keys(db) == [None, 1, 3]
    assert keys(other) == [1, 3, None]
    db.sql("RESET default_null_order")
    assert keys(db) == [1, 3, None]


@pytest.mark.parametrize(
    "sql",
    [
        "SET default_null_order = 'nulls_first'",
        "SET SESSION default_null_order TO 'nulls_first'",
        "set  Session  Default_Null_Order='NULLS_FIRST';",
        "PRAGMA default_null_order = 'nulls_first'",
        "SET \"default_null_order\" = 'nulls_first' -- trailing",
    ],
)
def test_spellings_of_an_allowed_setting(db, sql):
    db.sql(sql)
    assert keys(db) == [None, 1, 3]


@pytest.mark.parametrize(
    "sql",
    [
        "SET GLOBAL default_null_order = 'nulls_first'",
        "SET memory_limit = '1GB'",
        "SET GLOBAL memory_limit = '1GB'",
        "PRAGMA memory_limit = '1GB'",
        "SET allowed_directories = ['/']",
        "SET \"allowed_directories\" = ['/']",
        "RESET allowed_directories",
        "SET SESSION enable_external_access = true",
        "SET SESSION python_enable_replacements = true",
        "set Search_Path TO '_asof'",
        "SET schema = '_asof'",
        "SET integer_division = true",
        "SET default_order = 'desc'",
        "SET home_directory = '/'",
        "SET extension_directory = '/tmp'",
        "SET autoload_known_extensions = true",
        "PRAGMA enable_verification",
        "SET VARIABLE asof_txn = 1",
        "SET default_transaction_invalidation_policy = 'NEVER'",
        "SET GLOBAL default_transaction_invalidation_policy = 'SYNTACTIC_ERRORS_DO_NOT_INVALIDATE'",
        "SET VARIABLE x = nextval('s')",
        "SET VARIABLE x = (SELECT setval('s', 100))",
        "SET VARIABLE x = (SELECT setval('_asof.rid', 1))",
        "SET VARIABLE x = (SELECT count(*) FROM duckdb_databases())",
        "SET VARIABLE x = current_setting('allowed_directories')",
    ],
)
def test_settings_beyond_the_session_are_refused(cluster, db, sql):
    before = user_state(db)
    with pytest.raises(NotSupportedError):
        db.sql(sql)
    assert user_state(db) == before
    assert keys(cluster.database("d")) == [1, 3, None]


def test_a_variable_is_the_sessions_own_and_writes_with_it_are_logged(cluster, db):
    db.sql("SET VARIABLE x = 41 + 1")
    assert db.sql("SELECT getvariable('x')").fetchall() == [(42,)]
    assert cluster.database("d").sql("SELECT getvariable('x')").fetchall() == [(None,)]
    db.sql("INSERT INTO t VALUES (getvariable('x'), 0)")
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert user_state(rebuilt)["tables"] == user_state(db)["tables"]
    db.sql("RESET VARIABLE x")
    assert db.sql("SELECT getvariable('x')").fetchall() == [(None,)]


def test_a_check_may_not_read_a_variable(db):
    """Replay runs without the session's variables, so such a CHECK would judge anew."""
    db.sql("CREATE MACRO lim() AS \"GetVariable\"('lim')")
    db.sql("CREATE TABLE judged (x INT CHECK (x > 0))")
    for sql in (
        "CREATE TABLE z (x INT CHECK (x < getvariable('x')))",
        "CREATE TABLE z (x INT CHECK (x < system.main.getvariable('x')))",
        "CREATE TABLE z (x INT CHECK (x < lim()))",
    ):
        with pytest.raises(NotSupportedError, match="getvariable"):
            db.sql(sql)
    db.sql("INSERT INTO judged VALUES (1)")


def test_settings_follow_a_clone_to_its_file(cluster, db):
    """A fresh clone's state is hosted; its first write moves the session to a file."""
    cluster.clone("d", "c")
    clone = cluster.database("c")
    clone.sql("SET default_null_order = 'nulls_first'")
    assert keys(clone) == [None, 1, 3]
    clone.sql("INSERT INTO t VALUES (2, 2)")
    assert keys(clone) == [None, 1, 2, 3]


def test_read_only_handles_refuse_settings(tmp_path):
    with Cluster.open(tmp_path / "data") as cluster:
        cluster.sql("CREATE DATABASE d")
        d = cluster.database("d")
        d.sql("CREATE TABLE t (k INT)")
        with d.as_of(head_ts(d)) as past, pytest.raises(ReadOnlyError):
            past.sql("SET default_null_order = 'nulls_first'")


def test_an_open_cluster_trusts_its_users_settings(tmp_path):
    with Cluster.open(tmp_path / "data", allow_external_access=True) as cluster:
        cluster.sql("CREATE DATABASE d")
        d = cluster.database("d")
        d.sql("SET threads = 2")
        d.sql("SET default_order = 'desc'")


def test_the_invalidation_policy_is_the_sessions_own(cluster, db):
    """With SYNTACTIC_ERRORS_DO_NOT_INVALIDATE, a read that does not bind or a missing
    table leaves the transaction open, and what it wrote commits; another session (and
    any error that may have changed something) still fails its transaction."""
    from asof import DataError, InFailedTransactionError, ProgrammingError

    other = cluster.database("d")
    db.sql("SET default_transaction_invalidation_policy = 'SYNTACTIC_ERRORS_DO_NOT_INVALIDATE'")
    db.sql("BEGIN")
    db.sql("INSERT INTO t VALUES (4, 40)")
    for bad in (
        "SELECT nope FROM t",
        "SELECT * FROM missing",
        "UPDATE missing SET x = 1",
        "ALTER TABLE missing ADD COLUMN z INT",
        "DROP TABLE missing",
        "CREATE TABLE t (z INT)",
    ):
        with pytest.raises(ProgrammingError):
            db.sql(bad)
    db.sql("INSERT INTO t VALUES (5, 50)")
    db.sql("COMMIT")
    assert keys(other) == [1, 3, 4, 5, None]
    db.sql("BEGIN")
    db.sql("INSERT INTO t VALUES (6, 60)")
    with pytest.raises(DataError):  # a conversion error may follow effects: it fails
        db.sql("UPDATE t SET v = 'x' WHERE k = 6")
    with pytest.raises(InFailedTransactionError):
        db.sql("SELECT 1")
    db.sql("ROLLBACK")
    other.sql("BEGIN")
    with pytest.raises(ProgrammingError):
        other.sql("SELECT nope FROM t")
    with pytest.raises(InFailedTransactionError):
        other.sql("SELECT 1")
    other.sql("ROLLBACK")
    db.sql("RESET default_transaction_invalidation_policy")
    db.sql("BEGIN")
    with pytest.raises(ProgrammingError):
        db.sql("SELECT nope FROM t")
    with pytest.raises(InFailedTransactionError):
        db.sql("SELECT 1")
    db.sql("ROLLBACK")
    assert keys(db) == [1, 3, 4, 5, None]
    assert cluster.check(deep=True) == []


def test_current_setting_reads_only_the_sessions_own_settings(db):
    db.sql("SET default_null_order = 'nulls_first'")
    assert db.sql("SELECT current_setting('default_null_order')").fetchall() == [("NULLS_FIRST",)]
    assert db.sql("SELECT current_setting('schema')").fetchall() == [("main",)]
    for sql in (
        "SELECT current_setting('allowed_directories')",
        "SELECT current_setting(lower('SCHEMA'))",
        "SELECT current_setting('default_transaction_invalidation_policy')",
    ):
        with pytest.raises(NotSupportedError):
            db.sql(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SET threads = 1",
        "PRAGMA threads = 2",
        "SET GLOBAL threads = 1",
        "RESET threads",
        "SET disabled_optimizers = 'join_order,build_side_probe_side'",
        "RESET disabled_optimizers",
        "SET enable_macro_dependencies = true",
        "SET wal_autocheckpoint = '1GB'",
    ],
)
def test_database_settings_apply_to_the_database_and_change_no_data(cluster, db, sql):
    before = user_state(db)
    db.sql(sql)
    assert user_state(db) == before
    assert keys(db) == [1, 3, None]
    assert cluster.check(deep=True) == []
