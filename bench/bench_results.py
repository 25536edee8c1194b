"""Reading the first rows of a large result: what streaming results cost.

asof's `db.sql("SELECT * FROM t").fetchone()` against DuckDB's own
`con.execute(...).fetchone()` on a file, both over t(i BIGINT, j BIGINT, s VARCHAR) of
ASOF_BENCH_ROWS rows (10M). A result reads batches as fetches ask for them, so the first row
costs one batch, not the table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pytest

from asof import Cluster
from conftest import REPORT, ROWS, measure, remove, rows_label

SIZE = f"{rows_label(ROWS)} rows × 3 columns"
LOAD = f"CREATE TABLE t AS SELECT range AS i, range * 2 AS j, 'x' || range AS s FROM range({ROWS})"
QUERY = "SELECT * FROM t"

REPORT.compare(
    "fetchone() of SELECT * on a large table",
    "results/asof_fetchone",
    "results/duckdb_fetchone",
    "DuckDB file, execute().fetchone()",
    "time",
    target=("asof", "<=", 0.1),
    target_text="asof <= 0.1 s (it was 6.4 s at 15M rows, the whole result)",
)


@pytest.fixture(scope="module")
def base():
    path = Path(tempfile.mkdtemp(prefix="asof-bench-results-"))
    yield path
    remove(path)


@pytest.mark.benchmark(group="results")
def test_fetchone_asof(benchmark, base):
    cluster = Cluster.open(base / "data")
    try:
        db = cluster.create_database("d")
        db.sql(LOAD)
        measure(
            benchmark,
            "results/asof_fetchone",
            lambda: db.sql(QUERY).fetchone(),
            rounds=5,
            warmup_rounds=1,
            size=SIZE,
        )
    finally:
        cluster.close()


@pytest.mark.benchmark(group="results")
def test_fetchone_duckdb(benchmark, base):
    con = duckdb.connect(str(base / "duck.db"))
    try:
        con.execute(LOAD)
        measure(
            benchmark,
            "results/duckdb_fetchone",
            lambda: con.execute(QUERY).fetchone(),
            rounds=5,
            warmup_rounds=1,
            size=SIZE,
        )
    finally:
        con.close()
