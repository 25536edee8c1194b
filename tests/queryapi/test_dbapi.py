"""PEP 249: asof.connect(), connections that commit and roll back, cursors, executemany,
and the handles' own transaction helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

import asof


def test_module_globals() -> None:
    assert (asof.apilevel, asof.paramstyle, asof.threadsafety) == ("2.0", "qmark", 2)
    assert issubclass(asof.ProgrammingError, asof.Error) and asof.Error is asof.AsofError
    assert issubclass(asof.Warning, Exception)


def test_a_connection_commits_and_rolls_back(tmp_path: Path) -> None:
    with asof.connect(tmp_path / "data", "shop", create=True) as con:
        cur = con.cursor()
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name TEXT)")
        con.commit()
        cur.executemany("INSERT INTO items VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        assert cur.rowcount == 3 and cur.description is None
        con.rollback()
        assert con.execute("SELECT count(*) FROM items").fetchone() == (0,)
        cur.executemany("INSERT INTO items VALUES (?, ?)", [(1, "a"), (2, "b")])
    with asof.connect(tmp_path / "data") as con:  # the only database: no name needed
        cur = con.execute("SELECT id, name FROM items ORDER BY id")
        assert cur.description is not None and [d[0] for d in cur.description] == ["id", "name"]
        assert cur.fetchone() == (1, "a")
        assert list(cur) == [(2, "b")]
        assert cur.fetchone() is None


def test_closing_rolls_back_and_closed_objects_refuse(tmp_path: Path) -> None:
    con = asof.connect(tmp_path / "d", "x", create=True)
    con.execute("CREATE TABLE t (k INT)")
    con.commit()
    con.execute("INSERT INTO t VALUES (1)")
    cur = con.cursor()
    con.close()
    with pytest.raises(asof.InterfaceError):
        cur.execute("SELECT 1")
    with asof.connect(tmp_path / "d", "x") as again:
        assert again.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_autocommit_connections_commit_each_statement() -> None:
    con = asof.connect(None, "x", create=True, autocommit=True)
    con.execute("CREATE TABLE t (k INT)")
    con.execute("INSERT INTO t VALUES (1)")
    assert not con.handle.in_transaction
    con.rollback()  # nothing open: harmless
    assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)
    con.close()


def test_connect_needs_a_name_when_there_are_several(tmp_path: Path) -> None:
    with asof.Cluster.open(tmp_path / "d") as cluster:
        cluster.sql("CREATE DATABASE a; CREATE DATABASE b")
    with pytest.raises(asof.ProgrammingError, match="a, b"):
        asof.connect(tmp_path / "d")
    with pytest.raises(asof.ProgrammingError):
        asof.connect(tmp_path / "d", "nope")


def test_a_failed_executemany_leaves_nothing(cluster: asof.Cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INT PRIMARY KEY)")
    with pytest.raises(asof.IntegrityError):
        db.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (1,)])
    assert not db.in_transaction
    assert db.sql("SELECT count(*) FROM t").fetchone() == (0,)
    assert db.executemany("INSERT INTO t VALUES (?)", [(k,) for k in range(5)]).rowcount == 5
    clone = cluster.clone("d", "c")
    assert clone is not None
    assert cluster.database("c").sql("SELECT count(*) FROM t").fetchone() == (5,)


def test_transaction_blocks(cluster: asof.Cluster) -> None:
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (k INT)")
    with db.transaction():
        db.sql("INSERT INTO t VALUES (1)")
        assert db.transaction_status == "in transaction"
    with pytest.raises(ZeroDivisionError), db.transaction():
        db.sql("INSERT INTO t VALUES (2)")
        raise ZeroDivisionError
    with pytest.raises(asof.ReadOnlyError), db.transaction(read_only=True):
        db.sql("INSERT INTO t VALUES (3)")
    assert db.transaction_status == "idle"
    db.begin()
    db.sql("INSERT INTO t VALUES (4)")
    db.commit()
    assert sorted(r[0] for r in db.sql("SELECT k FROM t").fetchall()) == [1, 4]
