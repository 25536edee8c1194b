"""Opening an on-disk cluster of ASOF_BENCH_ROWS rows: `Cluster.open(path)` plus the first
`SELECT count(*) FROM t`, vs DuckDB opening a file with the same rows and running the same
query.

The cluster is built once per module (bulk load, checkpoint, then a small tail in the log:
1% more rows and 100 single-row UPDATEs), closed, and opened once untimed so every round
sees the same steady state. The contrast case deletes the database's projection file before
each round, so opening rebuilds it from the checkpoint plus the log. The OS page cache is
warm in every case.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pytest

from asof import Cluster
from conftest import (
    REPORT,
    ROWS,
    insert_range_sql,
    make_asof_source,
    make_duckdb_file,
    measure,
    remove,
    rows_label,
)

TAIL_ROWS = max(1, ROWS // 100)
TAIL_UPDATES = 100
TOTAL = ROWS + TAIL_ROWS
SIZE = f"{rows_label(ROWS)} rows (+{rows_label(TAIL_ROWS)} in the log)"
QUERY = "SELECT count(*) FROM t"
OPEN_ROUNDS = 7

REPORT.compare(
    "open cluster + first count(*)",
    "open/asof",
    "open/duckdb",
    "DuckDB: connect(file) + count(*)",
    "time",
    target=("asof", "<=", 1.0),
    target_text="asof <= 1 s",
)
REPORT.compare(
    "open after deleting the projection (rebuild)",
    "open/asof_rebuild",
    "open/duckdb",
    "DuckDB: connect(file) + count(*)",
    "time",
)


@pytest.fixture(scope="module")
def stored():
    base = Path(tempfile.mkdtemp(prefix="asof-bench-open-"))
    data = base / "data"
    try:
        cluster = make_asof_source(data, ROWS)
        try:
            db = cluster.database("p")
            db_id = db.id
            db.sql(insert_range_sql(TAIL_ROWS, start=ROWS))
            for i in range(TAIL_UPDATES):
                db.sql("UPDATE t SET v = v + 1 WHERE k = ?", [i * (ROWS // TAIL_UPDATES)])
        finally:
            cluster.close()
        with Cluster.open(data) as cluster:  # settle: the first open after a load may catch up
            assert cluster.database("p").sql(QUERY).fetchall() == [(TOTAL,)]
        make_duckdb_file(base / "peer.duckdb", TOTAL)
        yield {"data": data, "db_id": db_id, "duckdb": base / "peer.duckdb"}
    finally:
        remove(base)


def _open_and_count(ctx):
    cluster = Cluster.open(ctx["data"])
    ctx["cluster"] = cluster
    ctx["result"] = cluster.database("p").sql(QUERY).fetchall()


def _close(ctx):
    ctx["cluster"].close()
    assert ctx["result"] == [(TOTAL,)]


@pytest.mark.benchmark(group="open")
def test_open_asof(benchmark, stored):
    measure(
        benchmark,
        "open/asof",
        _open_and_count,
        setup=lambda: {"data": stored["data"]},
        teardown=_close,
        rounds=OPEN_ROUNDS,
        size=SIZE,
    )


@pytest.mark.benchmark(group="open")
def test_open_asof_rebuild_projection(benchmark, stored):
    projection = stored["data"] / "projections" / f"{stored['db_id']}.duckdb"

    def setup():
        assert projection.exists(), f"the projection is not where expected: {projection}"
        for p in (projection, projection.with_name(projection.name + ".wal")):
            p.unlink(missing_ok=True)
        return {"data": stored["data"]}

    measure(
        benchmark,
        "open/asof_rebuild",
        _open_and_count,
        setup=setup,
        teardown=_close,
        rounds=OPEN_ROUNDS,
        size=SIZE,
    )


@pytest.mark.benchmark(group="open")
def test_open_duckdb(benchmark, stored):
    def run(ctx):
        con = duckdb.connect(str(stored["duckdb"]))
        ctx["con"] = con
        ctx["result"] = con.execute(QUERY).fetchall()

    def teardown(ctx):
        ctx["con"].close()
        assert ctx["result"] == [(TOTAL,)]

    measure(
        benchmark, "open/duckdb", run, setup=dict, teardown=teardown, rounds=OPEN_ROUNDS, size=SIZE
    )
