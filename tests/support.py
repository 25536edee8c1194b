"""Helpers shared by the test modules (import from here, not from conftest)."""

from __future__ import annotations

import time


def head_ts(db) -> int:
    """The physical commit time of the database's newest transaction."""
    return list(db.transactions())[-1].ts.physical


def tick() -> None:
    """Let the wall clock move so consecutive commits get distinct microseconds."""
    time.sleep(0.002)


def table_rows(handle, table: str) -> list[tuple]:
    return sorted(handle.sql(f'SELECT * FROM "{table}"').fetchall(), key=repr)


def seed(cluster):
    cluster.sql("CREATE DATABASE production_db")
    db = cluster.database("production_db")
    db.sql("CREATE TABLE t1 (k INT, v INT)")
    db.sql("INSERT INTO t1 (k,v) SELECT i,i%2 FROM generate_series(1,5) AS i")
    db.sql("CREATE TABLE t2 (key INT, c1 TEXT)")
    db.sql("INSERT INTO t2 (key,c1) SELECT i,md5(random()::text) FROM generate_series(1,5) AS i")
    tick()
    ts = db.sql(
        "SELECT (EXTRACT (EPOCH FROM CURRENT_TIMESTAMP)*1000000)::decimal(38,0)"
    ).fetchone()[0]
    tick()
    db.sql("DROP TABLE t1")
    db.sql("INSERT INTO t2 (key,c1) SELECT i,md5(random()::text) FROM generate_series(6,7) AS i")
    return db, ts


def digest(handle) -> dict:
    """Everything a hostile statement must leave alone, read through allowed SQL: every
    user table's rows, every sequence of the database (asof's row id sequence included),
    its views and macros."""
    tables = [r[0] for r in handle.sql("SELECT name FROM _asof.tables ORDER BY name").fetchall()]
    return {
        "tables": {t: table_rows(handle, t) for t in tables},
        "sequences": handle.sql(
            "SELECT schema_name, sequence_name, last_value FROM duckdb_sequences() "
            "WHERE database_name = current_database() ORDER BY ALL"
        ).fetchall(),
        "views": handle.sql(
            "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal AND schema_name = 'main' ORDER BY ALL"
        ).fetchall(),
        "macros": handle.sql(
            "SELECT function_name, macro_definition FROM duckdb_functions() "
            "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY ALL"
        ).fetchall(),
    }


def user_state(handle) -> dict:
    """What the log must reproduce: user tables and user sequences (the row id sequence is
    derived, not logged)."""
    d = digest(handle)
    d["sequences"] = [s for s in d["sequences"] if s[0] == "main"]
    return d


def head_txn(db) -> int:
    txns = list(db.transactions())
    return txns[-1].txn_id if txns else 0
