"""`asof serve` against PostgreSQL 15 over the same kind of connection.

Both servers listen on a Unix socket in a temp dir with trust logins, and are driven by
psycopg in this process: `SELECT 1` round trips through libpq (simple protocol: PQexec;
extended: PQexecParams), durable single-row autocommit INSERTs with parameters (commits/s),
and fetching a whole table of ASOF_BENCH_PGWIRE_ROWS rows × 3 columns (default 1M) into
libpq (PQexec, so the client's Python decoding, the same for both, is left out).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import COMMITS, QUICK, REPORT, ROUNDS, _env_int, measure, remove

psycopg = pytest.importorskip("psycopg")

TRIPS = 2000
FETCH_ROWS = _env_int("ASOF_BENCH_PGWIRE_ROWS", 100_000 if QUICK else 1_000_000)

REPORT.compare(
    "pgwire: SELECT 1 round trip, simple protocol",
    "pgwire/asof_simple",
    "pgwire/pg_simple",
    "PostgreSQL 15, Unix socket",
    "time",
    unit="s/trip",
    target=("ratio", "<=", 3.0),
    target_text="ratio <= 3",
)
REPORT.compare(
    "pgwire: SELECT 1 round trip, extended protocol",
    "pgwire/asof_extended",
    "pgwire/pg_extended",
    "PostgreSQL 15, Unix socket",
    "time",
    unit="s/trip",
    target=("ratio", "<=", 3.0),
    target_text="ratio <= 3",
)
REPORT.compare(
    "pgwire: single-row INSERT commits through psycopg",
    "pgwire/asof_commits",
    "pgwire/pg_commits",
    "PostgreSQL 15 (fsync on), Unix socket",
    "rate",
    unit="commits/s",
    target=("ratio", ">=", 0.5),
    target_text="ratio >= 0.5",
)
REPORT.compare(
    f"pgwire: fetch {FETCH_ROWS:,} rows × 3 columns",
    "pgwire/asof_fetch",
    "pgwire/pg_fetch",
    "PostgreSQL 15, Unix socket",
    "time",
    unit="s",
    target=("ratio", "<=", 2.0),
    target_text="ratio <= 2",
)


class AsofServer:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="asof-bench-pgwire-"))
        self.sock = self.base / "sock"
        self.sock.mkdir()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asof",
                "--data",
                str(self.base / "data"),
                "serve",
                "--port",
                "0",
                "--socket-dir",
                str(self.sock),
                "--trust-local",
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        self.port = 0
        while time.monotonic() < deadline and not self.port:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("asof serve exited")
            found = re.search(r"on 127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.sock} port={self.port} dbname={dbname} user=bench"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        remove(self.base)


@pytest.fixture(scope="module")
def servers(postgres):
    asof = AsofServer()
    try:
        yield {"asof": asof.conninfo(), "pg": postgres.conninfo()}
    finally:
        asof.stop()


def _trips(conninfo: str, extended: bool):
    conn = psycopg.connect(conninfo, autocommit=True)
    pgconn = conn.pgconn

    def run(_ctx=None):
        for _ in range(TRIPS):
            res = pgconn.exec_params(b"SELECT 1", []) if extended else pgconn.exec_(b"SELECT 1")
            assert res.ntuples == 1

    return conn, run


@pytest.mark.benchmark(group="pgwire round trip")
@pytest.mark.parametrize("server", ["asof", "pg"])
@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_round_trip(benchmark, servers, server, protocol):
    conn, run = _trips(servers[server], protocol == "extended")
    try:
        median = measure(
            benchmark,
            f"pgwire/{server}_{protocol}_batch",
            run,
            rounds=5,
            warmup_rounds=1,
            size=f"{TRIPS} trips",
        )
        if median is not None:
            REPORT.record(
                f"pgwire/{server}_{protocol}", seconds=median / TRIPS, size=f"{TRIPS} trips/round"
            )
    finally:
        conn.close()


@pytest.mark.benchmark(group="pgwire commits")
@pytest.mark.parametrize("server", ["asof", "pg"])
def test_single_row_commits(benchmark, servers, server):
    state = {"n": 0}

    def setup():
        conn = psycopg.connect(servers[server], autocommit=True)
        state["n"] += 1
        table = f"c{state['n']}"
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (k BIGINT, v BIGINT)")
        return {"conn": conn, "sql": f"INSERT INTO {table} VALUES (%s, %s)", "table": table}

    def run(ctx):
        execute = ctx["conn"].execute
        sql = ctx["sql"]
        for i in range(COMMITS):
            execute(sql, (i, i % 7))

    def teardown(ctx):
        try:
            got = ctx["conn"].execute(f"SELECT count(*), sum(k) FROM {ctx['table']}").fetchone()
            assert got == (COMMITS, COMMITS * (COMMITS - 1) // 2)
        finally:
            ctx["conn"].close()

    measure(
        benchmark,
        f"pgwire/{server}_commits",
        run,
        setup=setup,
        teardown=teardown,
        rounds=ROUNDS,
        work=COMMITS,
        size=f"{COMMITS} commits/round",
    )


@pytest.mark.benchmark(group="pgwire fetch")
@pytest.mark.parametrize("server", ["asof", "pg"])
def test_fetch_rows(benchmark, servers, server):
    conn = psycopg.connect(servers[server], autocommit=True)
    try:
        conn.execute("DROP TABLE IF EXISTS wide")
        conn.execute("CREATE TABLE wide (k BIGINT, v DOUBLE PRECISION, s TEXT)")
        conn.execute(
            "INSERT INTO wide SELECT i, i * 0.5, 'row ' || i "
            f"FROM generate_series(1, {FETCH_ROWS}) AS g(i)"
        )
        pgconn = conn.pgconn

        def run():
            res = pgconn.exec_(b"SELECT k, v, s FROM wide")
            assert res.ntuples == FETCH_ROWS

        measure(
            benchmark,
            f"pgwire/{server}_fetch",
            run,
            rounds=ROUNDS,
            warmup_rounds=1,
            size=f"{FETCH_ROWS:,} rows × 3",
        )
    finally:
        conn.close()


os.environ.setdefault("PGCONNECT_TIMEOUT", "30")
