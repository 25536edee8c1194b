"""Durable bulk INSERT ... SELECT of ASOF_BENCH_ROWS rows: asof vs DuckDB on a file.

Each round gets a fresh on-disk database with an empty table t; the timed part is the one
autocommit statement, which returns only once the commit is durable (asof fsyncs its log,
DuckDB fsyncs its WAL). Closing (asof seals its log into segments, DuckDB checkpoints) is not
timed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pytest

from asof import Cluster
from conftest import (
    CREATE_T,
    REPORT,
    ROUNDS,
    ROWS,
    insert_range_sql,
    measure,
    remove,
    rows_label,
)

SIZE = f"{rows_label(ROWS)} rows"
INSERT = insert_range_sql(ROWS)

REPORT.compare(
    "bulk INSERT ... SELECT (durable)",
    "bulk/asof",
    "bulk/duckdb",
    "DuckDB file",
    "rate",
    unit="rows/s",
    target=("ratio", ">=", 0.5),
    target_text="ratio >= 0.5",
)


def _check_rows(con_or_db) -> None:
    assert con_or_db.execute("SELECT count(*), sum(k) FROM t").fetchall() == [
        (ROWS, ROWS * (ROWS - 1) // 2)
    ]


@pytest.mark.benchmark(group="bulk insert")
def test_bulk_insert_asof(benchmark):
    def setup():
        base = Path(tempfile.mkdtemp(prefix="asof-bench-bulk-"))
        cluster = Cluster.open(base / "data")
        cluster.sql("CREATE DATABASE p")
        db = cluster.database("p")
        db.sql(CREATE_T)
        return {"base": base, "cluster": cluster, "db": db}

    def run(ctx):
        ctx["db"].sql(INSERT)

    def teardown(ctx):
        try:
            _check_rows(ctx["db"])
        finally:
            ctx["cluster"].close()
            remove(ctx["base"])

    measure(
        benchmark,
        "bulk/asof",
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=ROWS,
        size=SIZE,
    )


@pytest.mark.benchmark(group="bulk insert")
def test_bulk_insert_duckdb(benchmark):
    def setup():
        base = Path(tempfile.mkdtemp(prefix="asof-bench-bulk-duckdb-"))
        con = duckdb.connect(str(base / "db.duckdb"))
        con.execute(CREATE_T)
        return {"base": base, "con": con}

    def run(ctx):
        ctx["con"].execute(INSERT)  # autocommit: returns after the durable commit

    def teardown(ctx):
        try:
            _check_rows(ctx["con"])
        finally:
            ctx["con"].close()
            remove(ctx["base"])

    measure(
        benchmark,
        "bulk/duckdb",
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=ROWS,
        size=SIZE,
    )
