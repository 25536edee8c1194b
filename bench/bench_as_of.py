"""AS OF the last commit vs the current state, after many single-row UPDATEs.

Setup (once per module, untimed): an on-disk cluster with t(k, v) of ASOF_BENCH_ASOF_ROWS
rows, a checkpoint (as a snapshot schedule would take one), then ASOF_BENCH_UPDATES separate
single-row `UPDATE t SET v = v + 1 WHERE k = ?` statements (random keys, fixed seed) spread
over ASOF_BENCH_UPDATE_TXNS explicit transactions (BEGIN ... COMMIT). Autocommit would be one
fsync'd commit per UPDATE, far more than a couple of minutes at 100k.

Timed: `db.as_of(T).sql("SELECT sum(v), count(*) FROM t").fetchall()`, handle creation
included, vs the same query on the live handle:

* T = the last commit: the handle reads the live projection in a read transaction;
* T = the middle of the updates (half the transactions), nothing cached (the state cache is
  emptied before each round): the handle reads the live projection's row versions
  (projections/versions.py) through views that pick the versions current at T;
* T = the middle, the query alone on a handle opened (untimed) before: what each further
  query at T costs;
* T = the checkpoint's time, before all the updates: the same, further back;
* contrast, T = the last commit and the middle, `rebuild=True`: the state built from
  checkpoint + log (what a T before the row versions reach costs).

A second setup has many small transactions instead: ASOF_BENCH_SMALL_TXNS (20k) autocommit
single-row INSERTs after a checkpoint of 100k rows, then T = the middle of them, handle
included, against the same query on the current state (finding T's transaction among
them is a search, not a walk).
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (
    ASOF_ROWS,
    REPORT,
    UPDATE_TXNS,
    UPDATES,
    make_asof_source,
    measure,
    remove,
    rows_label,
)

QUERY = "SELECT sum(v), count(*) FROM t"
SMALL_TXNS = int(os.environ.get("ASOF_BENCH_SMALL_TXNS", "20000").replace("_", ""))
SMALL_BASE = min(100_000, ASOF_ROWS)
SMALL_SIZE = f"{rows_label(SMALL_BASE)} rows + {rows_label(SMALL_TXNS)} single-row commits"
SIZE = f"{rows_label(ASOF_ROWS)} rows, {rows_label(UPDATES)} updates"
FAST_ROUNDS = 10

REPORT.compare(
    "AS OF last commit: handle + sum/count",
    "asof/as_of_last",
    "asof/current",
    "same query, current state (asof)",
    "time",
    target=("ratio", "<=", 2.0),
    target_text="ratio <= 2",
)
REPORT.compare(
    "AS OF mid-updates, nothing cached (row versions)",
    "asof/as_of_mid_cold",
    "asof/current",
    "same query, current state (asof)",
    "time",
    target=("ratio", "<=", 2.0),
    target_text="ratio <= 2",
)
REPORT.compare(
    "AS OF mid-updates, query on an open handle (row versions)",
    "asof/as_of_mid_query",
    "asof/current",
    "same query, current state (asof)",
    "time",
    target=("ratio", "<=", 2.0),
    target_text="ratio <= 2",
)
REPORT.compare(
    "AS OF checkpoint time, before every update (row versions)",
    "asof/as_of_checkpoint",
    "asof/current",
    "same query, current state (asof)",
    "time",
    target=("ratio", "<=", 2.0),
    target_text="ratio <= 2",
)
REPORT.compare(
    "AS OF last commit, rebuilt from checkpoint + log (contrast)",
    "asof/as_of_last_rebuild",
    "asof/current",
    "same query, current state (asof)",
    "time",
)
REPORT.compare(
    "AS OF mid-updates, rebuilt from checkpoint + log (contrast)",
    "asof/as_of_mid_rebuild",
    "asof/current",
    "same query, current state (asof)",
    "time",
)


REPORT.compare(
    "AS OF mid-commits, many small transactions: handle + sum/count",
    "asof/as_of_small_txns",
    "asof/current_small_txns",
    "same query, current state (asof)",
    "time",
    target=("ratio", "<=", 2.0),
    target_text="ratio <= 2",
)


@contextlib.contextmanager
def _source(rows: int):
    """A fresh on-disk cluster with p.t of `rows` rows and a checkpoint, removed after."""
    base = Path(tempfile.mkdtemp(prefix="asof-bench-asof-"))
    cluster = make_asof_source(base / "data", rows)
    try:
        yield cluster
    finally:
        cluster.close()
        remove(base)


@pytest.fixture(scope="module")
def updated():
    with _source(ASOF_ROWS) as cluster:
        db = cluster.database("p")
        checkpoint_ts = list(db.transactions())[-1].ts.physical
        rng = random.Random(20240807)
        per_txn = -(-UPDATES // UPDATE_TXNS)
        started = time.perf_counter()
        done = 0
        mid_ts = mid_expected = None
        while done < UPDATES:
            db.sql("BEGIN")
            for _ in range(min(per_txn, UPDATES - done)):
                db.sql("UPDATE t SET v = v + 1 WHERE k = ?", [rng.randrange(ASOF_ROWS)])
                done += 1
            db.sql("COMMIT")
            if mid_ts is None and done >= UPDATES // 2:
                mid_ts = list(db.transactions())[-1].ts.physical
                mid_expected = db.sql(QUERY).fetchall()
        update_seconds = time.perf_counter() - started
        last_ts = list(db.transactions())[-1].ts.physical
        expected = db.sql(QUERY).fetchall()
        assert expected[0][1] == ASOF_ROWS
        assert expected[0][0] == sum(i % 7 for i in range(ASOF_ROWS)) + UPDATES
        REPORT.note(
            f"AS OF setup: {UPDATES} single-row UPDATEs in {UPDATE_TXNS} explicit transactions "
            f"took {update_seconds:.1f} s ({UPDATES / update_seconds:,.0f} UPDATEs/s)"
        )
        yield {
            "cluster": cluster,
            "db": db,
            "checkpoint_ts": checkpoint_ts,
            "last_ts": last_ts,
            "mid_ts": mid_ts,
            "mid_expected": mid_expected,
            "expected": expected,
            "update_seconds": update_seconds,
        }


def _as_of_case(
    benchmark,
    updated,
    key: str,
    ts: int,
    expected,
    *,
    cold: bool = False,
    rebuild: bool = False,
    size: str = SIZE,
) -> None:
    handles = []
    cluster = updated["cluster"]

    def setup():  # untimed: close the previous round's handle; cold rounds empty the cache
        while len(handles) > 0:
            handles.pop().close()
        if cold:
            cluster._states.discard()
        return updated["db"]

    def run(db):
        handle = db.as_of(ts, rebuild=rebuild)
        handles.append(handle)
        return handle.sql(QUERY).fetchall()

    try:
        measure(
            benchmark,
            key,
            run,
            setup=setup,
            rounds=FAST_ROUNDS,
            warmup_rounds=1,
            size=size,
            update_seconds=updated.get("update_seconds"),
        )
        assert handles[-1].sql(QUERY).fetchall() == expected
    finally:
        for h in handles:
            h.close()


@pytest.mark.benchmark(group="as of")
def test_as_of_last_commit(benchmark, updated):
    _as_of_case(benchmark, updated, "asof/as_of_last", updated["last_ts"], updated["expected"])


@pytest.mark.benchmark(group="as of")
def test_as_of_last_commit_rebuilt(benchmark, updated):
    _as_of_case(
        benchmark,
        updated,
        "asof/as_of_last_rebuild",
        updated["last_ts"],
        updated["expected"],
        rebuild=True,
    )


@pytest.mark.benchmark(group="as of")
def test_as_of_mid_cold(benchmark, updated):
    _as_of_case(
        benchmark,
        updated,
        "asof/as_of_mid_cold",
        updated["mid_ts"],
        updated["mid_expected"],
        cold=True,
    )


@pytest.mark.benchmark(group="as of")
def test_as_of_mid_query(benchmark, updated):
    result = []
    with updated["db"].as_of(updated["mid_ts"]) as handle:

        def run():
            result.append(handle.sql(QUERY).fetchall())

        measure(
            benchmark,
            "asof/as_of_mid_query",
            run,
            rounds=FAST_ROUNDS,
            warmup_rounds=1,
            size=SIZE,
        )
    assert result[-1] == updated["mid_expected"]


@pytest.mark.benchmark(group="as of")
def test_as_of_mid_rebuilt(benchmark, updated):
    _as_of_case(
        benchmark,
        updated,
        "asof/as_of_mid_rebuild",
        updated["mid_ts"],
        updated["mid_expected"],
        rebuild=True,
    )


@pytest.mark.benchmark(group="as of")
def test_as_of_checkpoint_time(benchmark, updated):
    expected = [(sum(i % 7 for i in range(ASOF_ROWS)), ASOF_ROWS)]
    _as_of_case(
        benchmark,
        updated,
        "asof/as_of_checkpoint",
        updated["checkpoint_ts"],
        expected,
        cold=True,
    )


def _current_case(benchmark, db, key: str, size: str) -> list[tuple]:
    """The query on the live handle, the peer of the AS OF cases; returns its result."""
    result = []

    def run():
        result.append(db.sql(QUERY).fetchall())

    measure(benchmark, key, run, rounds=FAST_ROUNDS, warmup_rounds=1, size=size)
    return result[-1]


@pytest.mark.benchmark(group="as of")
def test_current_state(benchmark, updated):
    assert _current_case(benchmark, updated["db"], "asof/current", SIZE) == updated["expected"]


@pytest.fixture(scope="module")
def small_txns():
    with _source(SMALL_BASE) as cluster:
        db = cluster.database("p")
        mid_ts = mid_expected = None
        for i in range(SMALL_TXNS):
            db.sql("INSERT INTO t VALUES (?, ?)", [SMALL_BASE + i, i % 7])
            if i == SMALL_TXNS // 2:
                mid_ts = db._rt.recorder.head().ts.physical
                mid_expected = db.sql(QUERY).fetchall()
        db.sql("UPDATE t SET v = v + 1 WHERE k = 0")  # AS OF mid is in the past
        yield {"cluster": cluster, "db": db, "mid_ts": mid_ts, "mid_expected": mid_expected}


@pytest.mark.benchmark(group="as of, small transactions")
def test_as_of_among_small_transactions(benchmark, small_txns):
    _as_of_case(
        benchmark,
        small_txns,
        "asof/as_of_small_txns",
        small_txns["mid_ts"],
        small_txns["mid_expected"],
        cold=True,
        size=SMALL_SIZE,
    )


@pytest.mark.benchmark(group="as of, small transactions")
def test_current_state_among_small_transactions(benchmark, small_txns):
    rows = _current_case(benchmark, small_txns["db"], "asof/current_small_txns", SMALL_SIZE)
    assert rows[0][1] == SMALL_BASE + SMALL_TXNS
