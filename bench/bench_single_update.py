"""Single-row autocommit UPDATEs by primary key, each durable when it returns: what keeping
row versions (projections/versions.py) costs a write.

asof vs SQLite in WAL mode with synchronous=FULL vs DuckDB on a file. Each round: a fresh
database holding t(k PRIMARY KEY, v) of UPDATE_ROWS rows (untimed, with an untimed
`os.sync()`), then ASOF_BENCH_COMMITS statements `UPDATE t SET v = v + 1 WHERE k = ?` on
random keys (fixed seed). asof copies each row's old version to the table's history first
(one INSERT ... SELECT with the statement's own WHERE) and the UPDATE stamps the row with
its transaction in place.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from pathlib import Path

import duckdb
import pytest

from asof import Cluster
from conftest import COMMITS, REPORT, ROUNDS, measure, remove, rows_label

UPDATE_ROWS = 100_000
SIZE = f"{rows_label(UPDATE_ROWS)} rows, {COMMITS} commits/round"
UPDATE = "UPDATE t SET v = v + 1 WHERE k = ?"
LOAD = f"INSERT INTO t SELECT i, 0 FROM range({UPDATE_ROWS}) r(i)"

REPORT.compare(
    "single-row UPDATE by key, autocommit (durable)",
    "update/asof",
    "update/sqlite",
    "SQLite WAL, synchronous=FULL, INTEGER PRIMARY KEY",
    "rate",
    unit="commits/s",
)
REPORT.compare(
    "single-row UPDATE by key, autocommit (vs DuckDB)",
    "update/asof",
    "update/duckdb",
    "DuckDB file",
    "rate",
    unit="commits/s",
)


def _keys() -> list[int]:
    rng = random.Random(20241125)
    return [rng.randrange(UPDATE_ROWS) for _ in range(COMMITS)]


def _check(rows: list[tuple]) -> None:
    assert rows == [(UPDATE_ROWS, COMMITS)]


def _case(benchmark, key: str, open_engine, sql_of) -> None:
    keys = _keys()

    def setup():
        os.sync()  # earlier benchmarks' dirty pages would compete with this one's syncs
        base = Path(tempfile.mkdtemp(prefix="asof-bench-update-"))
        return {"base": base, **open_engine(base)}

    def run(ctx):
        sql = sql_of(ctx)
        for k in keys:
            sql(UPDATE, [k])

    def teardown(ctx):
        try:
            _check(sql_of(ctx)("SELECT count(*), sum(v) FROM t").fetchall())
        finally:
            ctx["close"]()
            remove(ctx["base"])

    measure(
        benchmark,
        key,
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=COMMITS,
        size=SIZE,
    )


@pytest.mark.benchmark(group="single update")
def test_single_update_asof(benchmark):
    def open_engine(base):
        cluster = Cluster.open(base / "data")
        cluster.sql("CREATE DATABASE p")
        db = cluster.database("p")
        db.sql("CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT)")
        db.sql(LOAD)
        return {"db": db, "close": cluster.close}

    _case(benchmark, "update/asof", open_engine, lambda ctx: ctx["db"].sql)


@pytest.mark.benchmark(group="single update")
def test_single_update_sqlite(benchmark):
    def open_engine(base):
        con = sqlite3.connect(base / "db.sqlite", isolation_level=None)  # autocommit
        assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BIGINT)")
        con.execute("BEGIN")
        con.executemany("INSERT INTO t VALUES (?, 0)", ((i,) for i in range(UPDATE_ROWS)))
        con.execute("COMMIT")
        return {"con": con, "close": con.close}

    _case(benchmark, "update/sqlite", open_engine, lambda ctx: ctx["con"].execute)


@pytest.mark.benchmark(group="single update")
def test_single_update_duckdb(benchmark):
    def open_engine(base):
        con = duckdb.connect(str(base / "db.duckdb"))
        con.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT)")
        con.execute(LOAD)
        return {"con": con, "close": con.close}

    _case(benchmark, "update/duckdb", open_engine, lambda ctx: ctx["con"].execute)
