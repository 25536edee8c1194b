"""Single-row autocommit INSERTs, each durable when it returns: commits per second.

asof (fsyncs its log before the commit returns) vs SQLite in WAL mode with
synchronous=FULL (fsyncs its WAL on every commit) vs DuckDB on a file (writes and syncs its
WAL on every commit). Each round: a fresh database, ASOF_BENCH_COMMITS statements
`INSERT INTO t VALUES (?, ?)` with parameters. Each round starts with `os.sync()`, untimed,
so no engine's fsyncs wait behind the write-back of an earlier benchmark's data. Also with `k` a PRIMARY KEY, asof vs SQLite:
each insert must then look its key up first.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import duckdb
import pytest

from asof import Cluster
from conftest import COMMITS, CREATE_T, REPORT, ROUNDS, measure, remove

SIZE = f"{COMMITS} commits/round"
INSERT = "INSERT INTO t VALUES (?, ?)"
#: Table shapes: the table as asof and DuckDB get it, and as SQLite does (its rowid key).
SHAPES = {
    "": (CREATE_T, CREATE_T),
    "_pk": (
        "CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT)",
        "CREATE TABLE t (k INTEGER PRIMARY KEY, v BIGINT)",
    ),
}

REPORT.compare(
    "single-row INSERT, autocommit (durable)",
    "single/asof",
    "single/sqlite",
    "SQLite WAL, synchronous=FULL",
    "rate",
    unit="commits/s",
    target=("ratio", ">=", 1.0),
    target_text="ratio >= 1",
)
REPORT.compare(
    "single-row INSERT, PRIMARY KEY table (durable)",
    "single/asof_pk",
    "single/sqlite_pk",
    "SQLite WAL, synchronous=FULL, INTEGER PRIMARY KEY",
    "rate",
    unit="commits/s",
)
REPORT.compare(
    "single-row INSERT, autocommit (vs DuckDB)",
    "single/asof",
    "single/duckdb",
    "DuckDB file",
    "rate",
    unit="commits/s",
)


def _check(rows: list[tuple]) -> None:
    assert rows == [(COMMITS, COMMITS * (COMMITS - 1) // 2)]


@pytest.mark.benchmark(group="single insert")
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_single_insert_asof(benchmark, shape):
    def setup():
        os.sync()  # earlier benchmarks' dirty pages would compete with this one's syncs
        base = Path(tempfile.mkdtemp(prefix="asof-bench-single-"))
        cluster = Cluster.open(base / "data")
        cluster.sql("CREATE DATABASE p")
        db = cluster.database("p")
        db.sql(SHAPES[shape][0])
        return {"base": base, "cluster": cluster, "db": db}

    def run(ctx):
        sql = ctx["db"].sql
        for i in range(COMMITS):
            sql(INSERT, [i, i % 7])

    def teardown(ctx):
        try:
            _check(ctx["db"].sql("SELECT count(*), sum(k) FROM t").fetchall())
        finally:
            ctx["cluster"].close()
            remove(ctx["base"])

    measure(
        benchmark,
        f"single/asof{shape}",
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=COMMITS,
        size=SIZE,
    )


@pytest.mark.benchmark(group="single insert")
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_single_insert_sqlite(benchmark, shape):
    def setup():
        os.sync()  # earlier benchmarks' dirty pages would compete with this one's syncs
        base = Path(tempfile.mkdtemp(prefix="asof-bench-single-sqlite-"))
        con = sqlite3.connect(base / "db.sqlite", isolation_level=None)  # autocommit
        assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        con.execute("PRAGMA synchronous=FULL")
        con.execute(SHAPES[shape][1])
        return {"base": base, "con": con}

    def run(ctx):
        execute = ctx["con"].execute
        for i in range(COMMITS):
            execute(INSERT, (i, i % 7))

    def teardown(ctx):
        try:
            _check(ctx["con"].execute("SELECT count(*), sum(k) FROM t").fetchall())
        finally:
            ctx["con"].close()
            remove(ctx["base"])

    measure(
        benchmark,
        f"single/sqlite{shape}",
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=COMMITS,
        size=SIZE,
    )


@pytest.mark.benchmark(group="single insert")
def test_single_insert_duckdb(benchmark):
    def setup():
        os.sync()  # earlier benchmarks' dirty pages would compete with this one's syncs
        base = Path(tempfile.mkdtemp(prefix="asof-bench-single-duckdb-"))
        con = duckdb.connect(str(base / "db.duckdb"))
        con.execute(CREATE_T)
        return {"base": base, "con": con}

    def run(ctx):
        execute = ctx["con"].execute
        for i in range(COMMITS):
            execute(INSERT, [i, i % 7])

    def teardown(ctx):
        try:
            _check(ctx["con"].execute("SELECT count(*), sum(k) FROM t").fetchall())
        finally:
            ctx["con"].close()
            remove(ctx["base"])

    measure(
        benchmark,
        "single/duckdb",
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=COMMITS,
        size=SIZE,
    )
