"""Clones: creation time and bytes written at ASOF_BENCH_SMALL_ROWS and ASOF_BENCH_ROWS rows,
the first aggregate on a fresh clone vs the same query on its source, and PostgreSQL 15's
`CREATE DATABASE c TEMPLATE p STRATEGY WAL_LOG | FILE_COPY` on the same rows.

asof sources: an on-disk cluster, t(k, v) = (i, i % 7) bulk loaded, a checkpoint written.
Two states are measured:

* sealed: the cluster was closed and reopened after the load (closing seals the log's WAL
  into immutable segments), so a clone writes only metadata; each round is one more clone of
  the same source.
* first after load: the clone right after the load and checkpoint, the log's WAL still
  holding the load; `store.fork` rotates it first (the WAL file becomes a shared segment
  file under a second name, see eventlog/walseg.py). A fresh source per round.

Bytes: every file under the data directory is listed before and after the clone call:
`written` = bytes of new files + growth of existing ones (what the target is judged on),
`net` = total size after - before (each inode once), `new files` = their count. A new name
for a file that existed before (a hard link, as a rotated WAL gets) writes no data: it counts
in `linked files`, not in `written`. On Linux, `wchar` (bytes this process passed to write())
is recorded too.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from itertools import count
from pathlib import Path

import pytest

from asof import Cluster
from conftest import (
    REPORT,
    ROUNDS,
    ROWS,
    SMALL_ROWS,
    disk_delta,
    make_asof_source,
    measure,
    proc_write_chars,
    remove,
    rows_label,
    tree_sizes,
)

QUERY = "SELECT v, count(*), sum(k) FROM t GROUP BY v"
CLONE_ROUNDS = 10
SIZES = {"small": SMALL_ROWS, "large": ROWS}
_names = count()

for _label, _rows in SIZES.items():
    _n = rows_label(_rows)
    REPORT.compare(
        f"clone creation, {_n} rows (sealed source)",
        f"clone/{_label}/time",
        f"pg/{_label}/wal_log/time",
        "PostgreSQL 15 TEMPLATE, WAL_LOG",
        "time",
        target=("asof", "<=", 0.010),
        target_text="asof <= 10 ms",
    )
    REPORT.compare(
        f"clone creation, {_n} rows (sealed) vs FILE_COPY",
        f"clone/{_label}/time",
        f"pg/{_label}/file_copy/time",
        "PostgreSQL 15 TEMPLATE, FILE_COPY",
        "time",
    )
    REPORT.compare(
        f"clone creation, {_n} rows (first after load)",
        f"clone_cold/{_label}/time",
        f"pg/{_label}/wal_log/time",
        "PostgreSQL 15 TEMPLATE, WAL_LOG",
        "time",
        target=("asof", "<=", 0.010),
        target_text="asof <= 10 ms",
    )
    REPORT.compare(
        f"clone bytes written, {_n} rows (sealed source)",
        f"clone/{_label}/bytes",
        f"pg/{_label}/wal_log/bytes",
        "PostgreSQL 15 WAL_LOG (data dir growth)",
        "bytes",
        target=("asof", "<=", 65536),
        target_text="asof <= 64 KiB",
    )
    REPORT.compare(
        f"clone bytes written, {_n} rows (first after load)",
        f"clone_cold/{_label}/bytes",
        f"pg/{_label}/wal_log/bytes",
        "PostgreSQL 15 WAL_LOG (data dir growth)",
        "bytes",
        target=("asof", "<=", 65536),
        target_text="asof <= 64 KiB",
    )
    REPORT.compare(
        f"first GROUP BY on a fresh clone, {_n} rows",
        f"clone/{_label}/first_query",
        f"clone/{_label}/source_query",
        "same query on the source (asof)",
        "time",
        target=("ratio", "<=", 2.0),
        target_text="ratio <= 2",
    )
REPORT.compare(
    f"clone time, {rows_label(ROWS)} vs {rows_label(SMALL_ROWS)} rows (sealed)",
    "clone/large/time",
    "clone/small/time",
    f"asof at {rows_label(SMALL_ROWS)} rows",
    "time",
    target_text="≈ 1 (size-independent)",
)


def _expected(rows: int) -> list[tuple]:
    out = []
    for v in range(7):
        ks = range(v, rows, 7)
        out.append((v, len(ks), sum(ks)))
    return out


def _sorted(rows) -> list[tuple]:
    return sorted((int(a), int(b), int(c)) for a, b, c in rows)


# ------------------------------------------------------------------------------ asof


@pytest.fixture(scope="module", params=list(SIZES))
def source(request):
    label = request.param
    rows = SIZES[label]
    base = Path(tempfile.mkdtemp(prefix=f"asof-bench-clone-{label}-"))
    data = base / "data"
    make_asof_source(data, rows).close()  # closing seals the WAL into segments
    cluster = Cluster.open(data)
    try:
        yield {"label": label, "rows": rows, "data": data, "cluster": cluster}
    finally:
        cluster.close()
        remove(base)


def _clone_round(ctx) -> None:
    ctx["cluster"].clone("p", ctx["target"])


def _record_bytes(key: str, deltas: list, wchars: list, size: str) -> None:
    if not deltas:
        return
    REPORT.record(
        key,
        value=max(d.written_bytes for d in deltas),
        size=size,
        net_added_bytes_max=max(d.added_bytes for d in deltas),
        new_files_max=max(d.new_files for d in deltas),
        new_file_bytes_max=max(d.new_file_bytes for d in deltas),
        linked_files_max=max(d.linked_files for d in deltas),
        written_bytes_median=statistics.median(d.written_bytes for d in deltas),
        wchar_median=statistics.median(wchars) if wchars else None,
    )


@pytest.mark.benchmark(group="clone creation")
def test_clone_create(benchmark, source):
    size = f"{rows_label(source['rows'])} rows"
    deltas, wchars = [], []

    def setup():
        ctx = {"cluster": source["cluster"], "target": f"c{next(_names)}"}
        os.sync()  # no round waits behind the write-back of earlier work
        ctx["before"] = tree_sizes(source["data"])
        ctx["wchar"] = proc_write_chars()
        return ctx

    def teardown(ctx):
        w = proc_write_chars()
        if w is not None and ctx["wchar"] is not None:
            wchars.append(w - ctx["wchar"])
        deltas.append(disk_delta(ctx["before"], tree_sizes(source["data"])))

    measure(
        benchmark,
        f"clone/{source['label']}/time",
        _clone_round,
        setup=setup,
        teardown=teardown,
        rounds=CLONE_ROUNDS,
        size=size,
    )
    _record_bytes(f"clone/{source['label']}/bytes", deltas, wchars, size)
    benchmark.extra_info["bytes_written_max"] = max(d.written_bytes for d in deltas)
    benchmark.extra_info["new_files_max"] = max(d.new_files for d in deltas)


@pytest.mark.benchmark(group="clone creation (first after load)")
@pytest.mark.parametrize("label", list(SIZES))
def test_clone_create_first_after_load(benchmark, label):
    rows = SIZES[label]
    size = f"{rows_label(rows)} rows"
    deltas, wchars = [], []

    def setup():
        base = Path(tempfile.mkdtemp(prefix=f"asof-bench-clone-cold-{label}-"))
        cluster = make_asof_source(base / "data", rows)
        os.sync()  # the load's own write-back is not the clone's
        ctx = {"base": base, "cluster": cluster, "target": "c"}
        ctx["before"] = tree_sizes(base / "data")
        ctx["wchar"] = proc_write_chars()
        return ctx

    def teardown(ctx):
        try:
            w = proc_write_chars()
            if w is not None and ctx["wchar"] is not None:
                wchars.append(w - ctx["wchar"])
            deltas.append(disk_delta(ctx["before"], tree_sizes(ctx["base"] / "data")))
        finally:
            ctx["cluster"].close()
            remove(ctx["base"])

    measure(
        benchmark,
        f"clone_cold/{label}/time",
        _clone_round,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        size=size,
    )
    _record_bytes(f"clone_cold/{label}/bytes", deltas, wchars, size)


@pytest.mark.benchmark(group="clone first query")
def test_clone_first_query(benchmark, source):
    cluster = source["cluster"]
    results = []

    def setup():  # untimed: the clone itself
        name = f"q{next(_names)}"
        cluster.clone("p", name)
        return name

    def run(name):
        results.append(cluster.database(name).sql(QUERY).fetchall())

    measure(
        benchmark,
        f"clone/{source['label']}/first_query",
        run,
        setup=setup,
        rounds=CLONE_ROUNDS,
        size=f"{rows_label(source['rows'])} rows",
    )
    assert _sorted(results[-1]) == _expected(source["rows"])


@pytest.mark.benchmark(group="clone first query")
def test_source_query(benchmark, source):
    db = source["cluster"].database("p")
    results = []

    def run():
        results.append(db.sql(QUERY).fetchall())

    measure(
        benchmark,
        f"clone/{source['label']}/source_query",
        run,
        rounds=CLONE_ROUNDS,
        warmup_rounds=1,
        size=f"{rows_label(source['rows'])} rows",
    )
    assert _sorted(results[-1]) == _expected(source["rows"])


# ------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module", params=list(SIZES))
def pg_template(request, postgres):
    label = request.param
    rows = SIZES[label]
    name = f"p_{label}"
    started = time.perf_counter()
    with postgres.connect() as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")
        con.execute(f"CREATE DATABASE {name}")
    with postgres.connect(name) as con:
        con.execute("CREATE TABLE t (k bigint, v bigint)")
        con.execute(f"INSERT INTO t SELECT i, i % 7 FROM generate_series(0, {rows - 1}) AS s(i)")
        con.execute("VACUUM (FREEZE, ANALYZE) t")
        size = con.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    with postgres.connect() as con:
        con.execute("CHECKPOINT")
    REPORT.note(
        f"PostgreSQL template {name}: {rows} rows, {size / (1 << 20):.1f} MiB, loaded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    yield {"label": label, "rows": rows, "name": name, "server": postgres, "db_bytes": size}
    with postgres.connect() as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.benchmark(group="clone creation (PostgreSQL)")
@pytest.mark.parametrize("strategy", ["WAL_LOG", "FILE_COPY"])
def test_pg_create_database_template(benchmark, pg_template, strategy):
    server = pg_template["server"]
    admin = server.connect()
    deltas = []
    size = f"{rows_label(pg_template['rows'])} rows"

    def setup():
        target = f"c{next(_names)}"
        os.sync()
        return {"target": target, "before": tree_sizes(server.data)}

    def run(ctx):
        admin.execute(
            f"CREATE DATABASE {ctx['target']} TEMPLATE {pg_template['name']} STRATEGY {strategy}"
        )

    def teardown(ctx):
        deltas.append(disk_delta(ctx["before"], tree_sizes(server.data)))
        admin.execute(f"DROP DATABASE {ctx['target']}")

    key = f"pg/{pg_template['label']}/{strategy.lower()}"
    try:
        with admin.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM pg_database WHERE datname = '{pg_template['name']}'")
            assert cur.fetchone()[0] == 1
        measure(
            benchmark,
            f"{key}/time",
            run,
            setup=setup,
            teardown=teardown,
            rounds=ROUNDS if pg_template["label"] == "large" else CLONE_ROUNDS,
            size=size,
            template_bytes=pg_template["db_bytes"],
        )
    finally:
        admin.close()
    if deltas:
        REPORT.record(
            f"{key}/bytes",
            value=max(d.written_bytes for d in deltas),
            size=size,
            net_added_bytes_max=max(d.added_bytes for d in deltas),
            new_files_max=max(d.new_files for d in deltas),
        )
