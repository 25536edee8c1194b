"""Transactions mean what they say: the failed state, READ ONLY, the write lock taken at the
first write, serialization failures instead of lost updates, readers that never wait, and
multi-statement strings that say what they committed."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asof import (
    AsofError,
    InFailedTransactionError,
    IntegrityError,
    NoActiveTransactionError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
    SerializationError,
)
from asof.projections.live import DatabaseRuntime
from support import tick

BEGINS = ["begin", "BEGIN TRANSACTION", "START TRANSACTION", "begin work", "BEGIN READ WRITE"]
COMMITS = ["commit", "end", "commit work", "END TRANSACTION", "COMMIT TRANSACTION"]
ROLLBACKS = ["rollback", "abort", "ROLLBACK WORK", "ABORT TRANSACTION"]
READ_ONLY_BEGINS = ["BEGIN TRANSACTION READ ONLY", "BEGIN READ ONLY", "START TRANSACTION READ ONLY"]


@pytest.fixture(params=["live", "written clone", "fresh clone"])
def target(request, cluster):
    """(cluster, name) of a database holding t = {(1, 10), (2, 20)}: a live database, a clone
    that has written (its own projection file), or a clone nobody wrote to yet."""
    cluster.sql("CREATE DATABASE src")
    src = cluster.database("src")
    src.sql("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    src.sql("INSERT INTO t VALUES (1, 10), (2, 20)")
    if request.param == "live":
        return cluster, "src"
    tick()
    cluster.clone("src", "c")
    if request.param == "written clone":
        cluster.database("c").sql("UPDATE t SET v = v WHERE k = 1")
    return cluster, "c"


def rows(db) -> list[tuple]:
    return db.sql("SELECT * FROM t ORDER BY k").fetchall()


def txn_count(db) -> int:
    return len(list(db.transactions()))


def assert_rebuild_matches(db) -> None:
    head = list(db.transactions())[-1].ts.physical
    with db.as_of(head, rebuild=True) as rebuilt:
        assert rows(rebuilt) == rows(db)


@pytest.fixture
def short_lock(monkeypatch):
    """Writers give up after 0.3 s, so a test can tell waiting from not waiting."""
    monkeypatch.setattr(DatabaseRuntime, "lock_timeout", 0.3)


# ------------------------------------------------------------------ failed state
@pytest.mark.parametrize(
    "begin,rollback", list(zip(BEGINS, ROLLBACKS + ROLLBACKS[:1], strict=True))
)
def test_a_failed_statement_fails_the_transaction_until_rollback(target, begin, rollback):
    cluster, name = target
    db = cluster.database(name)
    before, logged = rows(db), txn_count(db)
    db.sql(begin)
    assert db.in_transaction and db.transaction_status == "in transaction"
    db.sql("INSERT INTO t VALUES (3, 30)")
    with pytest.raises(IntegrityError, match="ROLLBACK"):
        db.sql("INSERT INTO t VALUES (1, 0)")
    assert db.in_transaction and db.transaction_status == "failed"
    for refused in [
        "INSERT INTO t VALUES (4, 40)",
        "SELECT * FROM t",
        "UPDATE t SET v = 0",
        "CREATE TABLE u (x INT)",
        "BEGIN",
    ]:
        with pytest.raises(InFailedTransactionError, match="(?i)duplicate key") as info:
            db.sql(refused)
        assert not info.value.rolled_back
    assert db.transaction_status == "failed"
    db.sql(rollback)
    assert not db.in_transaction and db.transaction_status == "idle"
    assert rows(db) == before and txn_count(db) == logged  # nothing of it was committed
    db.sql("INSERT INTO t VALUES (5, 50)")  # usable again, and autocommits
    assert rows(db) == [*before, (5, 50)]
    assert_rebuild_matches(db)


@pytest.mark.parametrize("commit", COMMITS)
def test_commit_of_a_failed_transaction_rolls_back_and_says_so(target, commit):
    cluster, name = target
    db = cluster.database(name)
    before, logged = rows(db), txn_count(db)
    db.sql("BEGIN")
    db.sql("UPDATE t SET v = -1 WHERE k = 2")
    with pytest.raises(ProgrammingError):
        db.sql("SELECT nope FROM t")
    with pytest.raises(InFailedTransactionError, match="rolled the transaction back") as info:
        db.sql(commit)
    assert info.value.rolled_back and info.value.sqlstate == "25P02"
    assert db.transaction_status == "idle"
    assert rows(db) == before and txn_count(db) == logged
    with pytest.raises(NoActiveTransactionError):
        db.sql("ROLLBACK")  # the COMMIT already ended it


def test_any_error_fails_the_transaction_even_one_asof_raises_itself(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    db.sql("CREATE TABLE t (k INT)")
    for bad in [
        "ATTACH 'x.db'",  # refused by asof, before DuckDB sees it
        "SELECT * FROM t AT (TIMESTAMP => 1)",  # outside the window
        "BEGIN",  # nested, as DuckDB: the transaction fails
        "INSERT INTO _asof.tables VALUES (1)",
    ]:
        db.sql("BEGIN")
        db.sql("INSERT INTO t VALUES (1)")
        with pytest.raises(AsofError):
            db.sql(bad)
        assert db.transaction_status == "failed", bad
        db.sql("ROLLBACK")
    assert db.sql("SELECT count(*) FROM t").fetchall() == [(0,)]


@pytest.mark.parametrize("word", ["COMMIT", "commit work", "end", "ROLLBACK", "abort"])
def test_commit_or_rollback_without_a_transaction_is_refused_as_in_duckdb(target, word):
    cluster, name = target
    db = cluster.database(name)
    logged = txn_count(db)
    with pytest.raises(NoActiveTransactionError, match="no transaction is active") as info:
        db.sql(word)
    assert info.value.sqlstate == "25P01"
    ref = duckdb.connect()
    with pytest.raises(duckdb.TransactionException, match="no transaction is active"):
        ref.execute(word)
    assert db.transaction_status == "idle" and txn_count(db) == logged


def test_transaction_status_through_a_lifecycle(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    assert (db.in_transaction, db.transaction_status) == (False, "idle")
    db.sql("CREATE TABLE t (k INT)")
    db.sql("START TRANSACTION")
    assert (db.in_transaction, db.transaction_status) == (True, "in transaction")
    db.sql("INSERT INTO t VALUES (1)")
    db.sql("commit work")
    assert (db.in_transaction, db.transaction_status) == (False, "idle")
    assert db.sql("SELECT * FROM t").fetchall() == [(1,)]


def test_as_of_handles_take_transaction_statements(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    db.sql("CREATE TABLE t (k INT)")
    db.sql("INSERT INTO t VALUES (1)")
    past = db.as_of(list(db.transactions())[-1].ts.physical)
    with pytest.raises(NoActiveTransactionError):
        past.sql("COMMIT")
    past.sql("BEGIN READ ONLY")
    assert past.sql("SELECT * FROM t").fetchall() == [(1,)]
    with pytest.raises(ReadOnlyError):
        past.sql("INSERT INTO t VALUES (2)")
    with pytest.raises(InFailedTransactionError):
        past.sql("SELECT * FROM t")
    past.sql("ROLLBACK")
    assert past.sql("SELECT * FROM t").fetchall() == [(1,)]


# ------------------------------------------------------------------ READ ONLY
@pytest.mark.parametrize("begin", READ_ONLY_BEGINS)
def test_read_only_transactions_refuse_writes_and_take_no_lock(target, begin, short_lock):
    cluster, name = target
    db, other = cluster.database(name), cluster.database(name)
    before, logged = rows(db), txn_count(db)
    db.sql(begin)
    assert rows(db) == before
    other.sql("INSERT INTO t VALUES (7, 70)")  # no wait: the read-only transaction holds nothing
    assert rows(db) == before  # its snapshot
    for write in [
        "INSERT INTO t VALUES (8, 80)",
        "DELETE FROM t",
        "UPDATE t SET v = 0",
        "CREATE TABLE u (x INT)",
        "DROP TABLE t",
    ]:
        with pytest.raises(ReadOnlyError, match="read-only transaction"):
            db.sql(write)
        assert db.transaction_status == "failed"
        db.sql("ROLLBACK")
        db.sql(begin)
    db.sql("COMMIT")
    assert rows(db) == [*before, (7, 70)] and txn_count(db) == logged + 1


# ------------------------------------------------- the write lock, lazily
@pytest.mark.parametrize("begin", BEGINS)
def test_begin_takes_no_write_lock(target, begin, short_lock):
    cluster, name = target
    reader, writer = cluster.database(name), cluster.database(name)
    reader.sql(begin)
    before = rows(reader)
    started = time.monotonic()
    writer.sql("INSERT INTO t VALUES (3, 30)")  # would time out if BEGIN held the lock
    writer.sql("BEGIN; UPDATE t SET v = 0 WHERE k = 1; COMMIT")
    assert time.monotonic() - started < 0.3
    assert rows(reader) == before  # a stable snapshot: the reader sees neither commit
    reader.sql("COMMIT")
    assert rows(reader) == [(1, 0), (2, 20), (3, 30)]


def test_the_snapshot_is_taken_at_the_first_read_and_then_stays(target):
    cluster, name = target
    a, b = cluster.database(name), cluster.database(name)
    a.sql("BEGIN")
    b.sql("INSERT INTO t VALUES (3, 30)")  # before a's first read: a sees it
    assert rows(a) == [(1, 10), (2, 20), (3, 30)]
    b.sql("INSERT INTO t VALUES (4, 40)")  # after it: a does not
    b.sql("DELETE FROM t WHERE k = 1")
    assert rows(a) == [(1, 10), (2, 20), (3, 30)]
    a.sql("COMMIT")
    assert rows(a) == [(2, 20), (3, 30), (4, 40)]


def test_a_write_after_a_stale_read_is_a_serialization_failure(target):
    """The lost-update schedule: both read v, both write v + 1. The second writer's
    snapshot is stale at its first write, so it fails instead of overwriting."""
    cluster, name = target
    a, b = cluster.database(name), cluster.database(name)
    a.sql("BEGIN")
    b.sql("BEGIN")
    (va,) = a.sql("SELECT v FROM t WHERE k = 1").fetchone()
    (vb,) = b.sql("SELECT v FROM t WHERE k = 1").fetchone()
    a.sql("UPDATE t SET v = ? WHERE k = 1", [va + 1])
    a.sql("COMMIT")
    with pytest.raises(SerializationError, match="could not serialize") as info:
        b.sql("UPDATE t SET v = ? WHERE k = 1", [vb + 1])
    assert isinstance(info.value, OperationalError) and info.value.sqlstate == "40001"
    assert b.transaction_status == "failed"
    b.sql("ROLLBACK")
    b.sql("BEGIN")  # the retry reads the new value
    (vb,) = b.sql("SELECT v FROM t WHERE k = 1").fetchone()
    b.sql("UPDATE t SET v = ? WHERE k = 1", [vb + 1])
    b.sql("COMMIT")
    assert b.sql("SELECT v FROM t WHERE k = 1").fetchall() == [(12,)]
    assert_rebuild_matches(b)


def test_a_transaction_that_writes_before_it_reads_moves_to_the_latest_state(target):
    cluster, name = target
    a, b = cluster.database(name), cluster.database(name)
    a.sql("BEGIN")
    b.sql("UPDATE t SET v = 21 WHERE k = 2")  # after a's BEGIN, before its first statement
    a.sql("UPDATE t SET v = v + 1 WHERE k = 2")  # nothing read yet: nothing stale
    assert rows(a) == [(1, 10), (2, 22)]  # after its first write it reads the latest state
    a.sql("COMMIT")
    assert rows(b) == [(1, 10), (2, 22)]


def test_any_commit_after_a_read_fails_the_first_write(target):
    """The rule is per transaction, not per row: any commit after a read fails the write."""
    cluster, name = target
    a, b = cluster.database(name), cluster.database(name)
    b.sql("CREATE TABLE other (x INT)")
    a.sql("BEGIN")
    a.sql("SELECT count(*) FROM t")
    b.sql("INSERT INTO other VALUES (1)")
    with pytest.raises(SerializationError):
        a.sql("INSERT INTO t VALUES (9, 90)")
    a.sql("ROLLBACK")
    assert (9, 90) not in rows(a)


def test_a_transaction_that_wrote_holds_the_lock_until_it_ends(target, short_lock):
    cluster, name = target
    a, b = cluster.database(name), cluster.database(name)
    a.sql("BEGIN")
    a.sql("INSERT INTO t VALUES (3, 30)")
    with pytest.raises(OperationalError, match="locked"):
        b.sql("INSERT INTO t VALUES (4, 40)")
    assert b.transaction_status == "idle"
    a.sql("COMMIT")
    b.sql("INSERT INTO t VALUES (4, 40)")
    assert rows(b) == [(1, 10), (2, 20), (3, 30), (4, 40)]


def test_concurrent_read_modify_write_with_retries_loses_no_update(cluster):
    cluster.sql("CREATE DATABASE d")
    cluster.database("d").sql("CREATE TABLE c (id INT PRIMARY KEY, v INT)")
    cluster.database("d").sql("INSERT INTO c VALUES (1, 0)")
    threads, each = 4, 15
    retries = []

    def work() -> None:
        db = cluster.database("d")
        for _ in range(each):
            while True:
                db.sql("BEGIN")
                (v,) = db.sql("SELECT v FROM c").fetchone()
                try:
                    db.sql("UPDATE c SET v = ?", [v + 1])
                    db.sql("COMMIT")
                    break
                except SerializationError:
                    retries.append(1)
                    db.sql("ROLLBACK")

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert cluster.database("d").sql("SELECT v FROM c").fetchall() == [(threads * each,)]


# ------------------------------------------------------- readers never wait
def test_as_of_and_clone_do_not_wait_for_an_idle_write_transaction(target):
    cluster, name = target
    writer, reader = cluster.database(name), cluster.database(name)
    writer.sql("BEGIN")
    writer.sql("INSERT INTO t VALUES (3, 30)")  # holds the write lock, then sits idle
    started = time.monotonic()
    now = cluster.clock.peek_physical()
    with reader.as_of(now) as past:
        assert rows(past) == [(1, 10), (2, 20)]
    cluster.clone(name, "copy")  # AS OF now
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed  # the lock timeout is 30 s
    assert rows(cluster.database("copy")) == [(1, 10), (2, 20)]
    writer.sql("COMMIT")
    # The commit came after the settled time, and so is outside both.
    assert list(writer.transactions())[-1].ts.physical > now
    with reader.as_of(now) as past:
        assert rows(past) == [(1, 10), (2, 20)]
    assert rows(cluster.database("copy")) == [(1, 10), (2, 20)]
    assert rows(reader) == [(1, 10), (2, 20), (3, 30)]


# ---------------------------------------------------- multi-statement strings
def test_a_failing_string_says_which_statements_were_committed(target):
    cluster, name = target
    db = cluster.database(name)
    with pytest.raises(IntegrityError) as info:
        db.sql(
            "INSERT INTO t VALUES (3, 30); INSERT INTO t VALUES (4, 40); "
            "INSERT INTO t VALUES (1, 0); INSERT INTO t VALUES (5, 50); SELECT 1"
        )
    msg = str(info.value)
    assert msg.startswith("statement 3 of 5 failed")
    assert "statements 1-2 took effect (committed)" in msg
    assert "statements 4-5 did not run" in msg
    assert rows(db) == [(1, 10), (2, 20), (3, 30), (4, 40)]
    assert db.transaction_status == "idle"


def test_a_failing_string_inside_begin_commits_nothing_of_its_transaction(target):
    cluster, name = target
    db = cluster.database(name)
    with pytest.raises(IntegrityError) as info:
        db.sql(
            "INSERT INTO t VALUES (3, 30); BEGIN; INSERT INTO t VALUES (4, 40); "
            "INSERT INTO t VALUES (1, 0); COMMIT"
        )
    msg = str(info.value)
    assert msg.startswith("statement 4 of 5 failed")
    assert "statement 1 took effect (committed)" in msg
    assert "statements 2-3 are in the failed transaction" in msg
    assert "statement 5 did not run" in msg
    assert db.transaction_status == "failed"
    db.sql("ROLLBACK")
    assert rows(db) == [(1, 10), (2, 20), (3, 30)]


def test_a_string_with_its_own_transactions(target):
    cluster, name = target
    db = cluster.database(name)
    with pytest.raises(ProgrammingError) as info:
        db.sql(
            "BEGIN; INSERT INTO t VALUES (3, 30); ROLLBACK; "
            "BEGIN; INSERT INTO t VALUES (4, 40); COMMIT; SELECT nope"
        )
    msg = str(info.value)
    assert msg.startswith("statement 7 of 7 failed")
    assert "statements 4-6 took effect" in msg  # the rolled-back ones did not
    assert rows(db) == [(1, 10), (2, 20), (4, 40)]


def test_a_single_statement_error_is_not_rewritten(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    with pytest.raises(ProgrammingError) as info:
        db.sql("SELECT nope")
    assert "statement 1" not in str(info.value)


# -------------------------------------------- random sequences against DuckDB
_STATEMENTS = st.one_of(
    st.sampled_from(BEGINS + READ_ONLY_BEGINS + COMMITS + ROLLBACKS),
    st.builds(lambda k, v: f"INSERT INTO t VALUES ({k}, {v})", st.integers(1, 6), st.integers()),
    st.builds(lambda k: f"UPDATE t SET v = v + 1 WHERE k = {k}", st.integers(1, 6)),
    st.builds(lambda k: f"DELETE FROM t WHERE k = {k}", st.integers(1, 6)),
    st.sampled_from(
        [
            "SELECT count(*) FROM t",
            "SELECT nope FROM t",
            "INSERT INTO t VALUES ('x', 1)",
            "INSERT INTO t VALUES (NULL, 1)",
            "UPDATE t SET v = 1 / 0",
            "CREATE TABLE IF NOT EXISTS u (x INT)",
            "INSERT INTO t VALUES (7, 0); INSERT INTO t VALUES (7, 1)",
        ]
    ),
)


def _duckdb(ref: duckdb.DuckDBPyConnection, sql: str) -> BaseException | None:
    try:
        ref.execute(sql).fetchall()
    except duckdb.Error as exc:
        return exc
    return None


def _committed(handle) -> list[tuple]:
    return sorted(handle.execute("SELECT * FROM t").fetchall())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=st.lists(_STATEMENTS, min_size=1, max_size=25))
def test_random_transaction_sequences_commit_what_duckdb_commits(program):
    """asof and a plain DuckDB connection run the same statements; after each one, both
    fail or both succeed (but COMMIT of a failed transaction, which asof reports), and
    what is committed is the same on both."""
    from asof import Cluster

    cluster = Cluster.open(None)
    ref = duckdb.connect()
    try:
        cluster.sql("CREATE DATABASE d")
        db, watcher = cluster.database("d"), cluster.database("d")
        for h in (db, ref):
            h.execute("CREATE TABLE t (k INT PRIMARY KEY, v BIGINT)")
            h.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
        ref_watch = ref.cursor()  # another DuckDB connection sees only what was committed
        for sql in program:
            failed_before = db.transaction_status == "failed"
            ref_exc = _duckdb(ref, sql)
            try:
                db.sql(sql)
                ours = None
            except AsofError as exc:
                ours = exc
            is_commit = sql.lower().split()[0] in ("commit", "end")
            if failed_before and is_commit:
                assert isinstance(ours, InFailedTransactionError) and ours.rolled_back
                assert ref_exc is None  # DuckDB rolls back silently
            else:
                assert (ours is None) == (ref_exc is None), (sql, ours, ref_exc)
            assert _committed(watcher) == _committed(ref_watch), sql
            if db.transaction_status == "idle":
                assert _committed(db) == _committed(ref), sql
        if db.in_transaction:
            db.sql("ROLLBACK")
            ref.execute("ROLLBACK")
        assert _committed(db) == _committed(ref)
        head = list(db.transactions())[-1].ts.physical
        with db.as_of(head, rebuild=True) as rebuilt:
            assert _committed(rebuilt) == _committed(ref)
    finally:
        ref.close()
        cluster.close()
