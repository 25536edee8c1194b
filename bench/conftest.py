"""Shared helpers for the benchmarks in bench/ (run: pytest bench/ --benchmark-only).

Machines are shared and noisy, so no benchmark asserts a speed. Each one measures asof and a
peer in the same run; at the end of the session a table of asof vs peer, their ratio, the data
size and whether the target is met is printed and written to .benchmarks/asof-latest.{md,json}.

Sizes come from the environment (underscores allowed: ASOF_BENCH_ROWS=10_000_000):

    ASOF_BENCH_ROWS              rows of the "10M" benchmarks: bulk insert, open, large clone
                                 (10M); the sizes below default to at most this
    ASOF_BENCH_QUICK=1           ASOF_BENCH_ROWS defaults to 100k (a run of about a minute)
    ASOF_BENCH_SMALL_ROWS        rows of the small clone (10k)
    ASOF_BENCH_ASOF_ROWS         rows of the AS OF table (1M)
    ASOF_BENCH_UPDATES           single-row UPDATEs before the AS OF query (100k at 1M rows,
                                 else rows / 50)
    ASOF_BENCH_UPDATE_TXNS       explicit transactions those UPDATEs are spread over (10)
    ASOF_BENCH_COMMITS           single-row autocommit INSERTs per round (500; 200 when quick)
    ASOF_BENCH_ROUNDS            rounds of the slow benchmarks (3); fast ones use more
    ASOF_BENCH_OUT               where the results table goes (default .benchmarks/)
    ASOF_BENCH_PG_BIN            where initdb, pg_ctl and postgres are (/usr/local/bin)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from asof import Cluster

# --------------------------------------------------------------------------- sizes


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise pytest.UsageError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise pytest.UsageError(f"{name} must be positive, not {value}")
    return value


QUICK = os.environ.get("ASOF_BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")

ROWS = _env_int("ASOF_BENCH_ROWS", 100_000 if QUICK else 10_000_000)
# The other sizes follow ROWS down, so ASOF_BENCH_ROWS=100000 alone gives a quick run.
SMALL_ROWS = _env_int("ASOF_BENCH_SMALL_ROWS", min(10_000, ROWS))
ASOF_ROWS = _env_int("ASOF_BENCH_ASOF_ROWS", min(1_000_000, ROWS))
UPDATES = _env_int(
    "ASOF_BENCH_UPDATES", 100_000 if ASOF_ROWS >= 1_000_000 else max(1_000, ASOF_ROWS // 50)
)
UPDATE_TXNS = _env_int("ASOF_BENCH_UPDATE_TXNS", 10)
COMMITS = _env_int("ASOF_BENCH_COMMITS", 500 if ROWS >= 1_000_000 else 200)
ROUNDS = _env_int("ASOF_BENCH_ROUNDS", 3)


def rows_label(n: int) -> str:
    """10_000_000 -> '10M', 100_000 -> '100k', 1_234 -> '1234'."""
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def insert_range_sql(rows: int, start: int = 0) -> str:
    return f"INSERT INTO t SELECT i, i % 7 FROM range({start}, {start + rows}) r(i)"


CREATE_T = "CREATE TABLE t (k BIGINT, v BIGINT)"

# --------------------------------------------------------------------------- collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Collect bench_*.py here (pytest's default pattern is test_*.py)."""
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it itself
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# --------------------------------------------------------------------------- measuring


def median_seconds(benchmark) -> float | None:
    """The median round time pytest-benchmark recorded, or None when it was disabled."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    return float(stats.stats.median)


def measure(
    benchmark,
    key: str,
    target: Callable[..., Any],
    *,
    setup: Callable[[], Any] | None = None,
    teardown: Callable[..., Any] | None = None,
    rounds: int = ROUNDS,
    warmup_rounds: int = 0,
    work: float | None = None,
    size: str = "",
    **extra: Any,
) -> float | None:
    """Time `target` with benchmark.pedantic and record its median under `key`.

    `setup` returns the context object passed to `target(ctx)` and `teardown(ctx)` (both
    untimed); without it `target()` takes no argument. `work` (rows, commits) turns the median
    into a rate for the report.
    """
    if setup is None:
        run_setup = None
    else:

        def run_setup():
            return (setup(),), {}

    benchmark.extra_info.update({"size": size, **({"work": work} if work else {}), **extra})
    benchmark.pedantic(
        target, setup=run_setup, teardown=teardown, rounds=rounds, warmup_rounds=warmup_rounds
    )
    seconds = median_seconds(benchmark)
    if seconds is not None:
        rates = {"per_second": work / seconds} if work else {}
        benchmark.extra_info.update({"median_s": seconds, **rates})
        REPORT.record(key, seconds=seconds, work=work, size=size, **extra)
    return seconds


class Tree(dict):
    """Every file under a root: relative path -> size in bytes; `inode` maps each path to
    its (device, inode), so that a new hard link to an existing file counts no bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.inode: dict[str, tuple[int, int]] = {}

    def unique_bytes(self) -> int:
        """Total size, each file (inode) counted once however many names it has."""
        return sum({self.inode[p]: size for p, size in self.items()}.values())


def tree_sizes(root: Path) -> Tree:
    """Every file under `root` (relative path -> size in bytes, with inodes)."""
    out = Tree()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            rel = str(p.relative_to(root))
            out[rel] = st.st_size
            out.inode[rel] = (st.st_dev, st.st_ino)
    return out


@dataclass
class DiskDelta:
    added_bytes: int  # total size after minus before (can be negative: a WAL truncated)
    new_files: int  # new names, hard links to files that existed before included
    new_file_bytes: int  # sizes of new files, hard links to existing files excluded
    grown_bytes: int  # growth of files that existed before (shrinking ones count 0)
    linked_files: int = 0  # new names of files that existed before (no data written)

    @property
    def written_bytes(self) -> int:
        """A lower bound of what was written: new files plus growth of old ones."""
        return self.new_file_bytes + self.grown_bytes


def disk_delta(before: Tree, after: Tree) -> DiskDelta:
    new = [p for p in after if p not in before]
    old_files = set(before.inode.values())
    linked = [p for p in new if after.inode[p] in old_files]
    grown = sum(max(0, after[p] - before[p]) for p in after if p in before)
    return DiskDelta(
        added_bytes=after.unique_bytes() - before.unique_bytes(),
        new_files=len(new),
        new_file_bytes=sum(after[p] for p in new if p not in linked),
        grown_bytes=grown,
        linked_files=len(linked),
    )


def proc_write_chars() -> int | None:
    """Bytes this process has passed to write() so far (Linux /proc/self/io), if known."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- data


def make_asof_source(path: Path, rows: int, *, name: str = "p", checkpoint: bool = True) -> Cluster:
    """An on-disk cluster with database `name` holding t(k, v) = (i, i % 7), i < rows."""
    cluster = Cluster.open(path)
    try:
        cluster.sql(f"CREATE DATABASE {name}")
        db = cluster.database(name)
        db.sql(CREATE_T)
        db.sql(insert_range_sql(rows))
        if checkpoint:
            cluster.checkpoint(name)
    except BaseException:
        cluster.close()
        raise
    return cluster


def make_duckdb_file(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(CREATE_T)
        con.execute(insert_range_sql(rows))
        con.execute("CHECKPOINT")
    finally:
        con.close()


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL

PG_BIN = Path(os.environ.get("ASOF_BENCH_PG_BIN", "/usr/local/bin"))
PG_USERS = ("postgres", "nobody")


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL listening only on a Unix socket in a temp dir."""

    base: Path
    data: Path
    socket_dir: Path
    user: str | None  # the OS user running it (None: this process's user)
    superuser: str

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} dbname={dbname} user={self.superuser}"

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(self.conninfo(dbname), autocommit=True)

    def stop(self) -> None:
        _run_as(
            self.user,
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=False,
        )


def _run_as(user: str | None, argv: list[str], *, check: bool = True, timeout: float = 120):
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def start_postgres() -> PostgresServer:
    """Start a server or raise pytest.skip.Exception saying why it cannot be started."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            pytest.skip(f"PostgreSQL is not installed ({PG_BIN / tool} is missing)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    user: str | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        for candidate in PG_USERS:
            try:
                pwd.getpwnam(candidate)
            except KeyError:
                continue
            if shutil.which("runuser"):
                user = candidate
                break
        if user is None:
            pytest.skip("running as root and no non-root user (postgres, nobody) with runuser")
    base = Path(tempfile.mkdtemp(prefix="asof-bench-pg-"))
    data = base / "data"
    sock = base / "sock"
    sock.mkdir()
    if user is not None:
        for p in (base, sock):
            shutil.chown(p, user)
    superuser = user or os.environ.get("USER") or "postgres"
    try:
        _run_as(
            user,
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "--auth=trust",
                "-U",
                superuser,
                "--no-instructions",
            ],
        )
        _run_as(
            user,
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-o",
                f"-c listen_addresses='' -k {sock}",
                "start",
            ],
        )
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        remove(base)
        pytest.skip(f"PostgreSQL could not be started: {exc} {detail.strip()[-300:]}")
    server = PostgresServer(base, data, sock, user, superuser)
    try:
        with server.connect() as con:
            con.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means: skip the PG benchmarks
        server.stop()
        remove(base)
        pytest.skip(f"PostgreSQL started but does not answer on {sock}: {exc}")
    return server


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
        remove(server.base)


# --------------------------------------------------------------------------- the report


@dataclass
class Measurement:
    seconds: float | None = None
    value: float | None = None  # for non-time measurements (bytes)
    work: float | None = None
    size: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    """One row of the results table: asof vs a peer on one metric."""

    title: str
    asof: str  # measurement keys
    peer: str | None
    peer_label: str
    metric: str  # "rate" (work/s, higher is better), "time" (s), "bytes"
    unit: str = ""  # for rates: "rows/s", "commits/s"
    target: tuple[str, str, float] | None = None  # ("ratio" | "asof", "<=" | ">=", value)
    target_text: str = ""


class Report:
    def __init__(self) -> None:
        self.measurements: dict[str, Measurement] = {}
        self.comparisons: list[Comparison] = []
        self.notes: list[str] = []

    def record(
        self,
        key: str,
        *,
        seconds: float | None = None,
        value: float | None = None,
        work: float | None = None,
        size: str = "",
        **extra: Any,
    ) -> None:
        self.measurements[key] = Measurement(seconds, value, work, size, extra)

    def compare(
        self,
        title: str,
        asof: str,
        peer: str | None,
        peer_label: str,
        metric: str,
        *,
        unit: str = "",
        target: tuple[str, str, float] | None = None,
        target_text: str = "",
    ) -> None:
        if any(c.title == title for c in self.comparisons):
            return
        self.comparisons.append(
            Comparison(title, asof, peer, peer_label, metric, unit, target, target_text)
        )

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- values
    def _metric(self, key: str | None, metric: str) -> float | None:
        m = self.measurements.get(key) if key else None
        if m is None:
            return None
        if metric == "rate":
            return m.work / m.seconds if m.seconds and m.work else None
        if metric == "time":
            return m.seconds
        return m.value

    @staticmethod
    def _fmt(value: float | None, metric: str, unit: str) -> str:
        if value is None:
            return "n/a"
        if metric == "rate":
            return f"{value:,.0f} {unit}".strip()
        if metric == "time":
            return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"
        if abs(value) >= 1 << 20:
            return f"{value / (1 << 20):,.1f} MiB"
        if abs(value) >= 1 << 10:
            return f"{value / (1 << 10):,.1f} KiB"
        return f"{value:,.0f} B"

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for c in self.comparisons:
            a = self._metric(c.asof, c.metric)
            p = self._metric(c.peer, c.metric)
            ratio = a / p if a is not None and p else None
            met = None
            if c.target is not None:
                what, op, bound = c.target
                x = ratio if what == "ratio" else a
                if x is not None:
                    met = x <= bound if op == "<=" else x >= bound
            m = self.measurements.get(c.asof) or self.measurements.get(c.peer or "")
            out.append(
                {
                    "benchmark": c.title,
                    "asof": a,
                    "asof_text": self._fmt(a, c.metric, c.unit),
                    "peer": c.peer_label,
                    "peer_value": p,
                    "peer_text": self._fmt(p, c.metric, c.unit) if c.peer else "",
                    "ratio": ratio,
                    "size": m.size if m else "",
                    "target": c.target_text,
                    "met": met,
                }
            )
        return out

    def markdown(self) -> str:
        lines = [
            "| benchmark | data size | asof | peer | peer value | ratio asof/peer | target | met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows():
            if r["asof"] is None and r["peer_value"] is None:
                continue
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}"
            met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]] if r["target"] else ""
            lines.append(
                f"| {r['benchmark']} | {r['size']} | {r['asof_text']} | {r['peer']} | "
                f"{r['peer_text']} | {ratio} | {r['target']} | {met} |"
            )
        return "\n".join(lines)


REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Report:
    return REPORT


def machine() -> dict[str, Any]:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": _git_head(),
        "sizes": {
            "ASOF_BENCH_ROWS": ROWS,
            "ASOF_BENCH_SMALL_ROWS": SMALL_ROWS,
            "ASOF_BENCH_ASOF_ROWS": ASOF_ROWS,
            "ASOF_BENCH_UPDATES": UPDATES,
            "ASOF_BENCH_UPDATE_TXNS": UPDATE_TXNS,
            "ASOF_BENCH_COMMITS": COMMITS,
            "ASOF_BENCH_ROUNDS": ROUNDS,
        },
    }


def _git_head() -> str | None:
    """The commit benchmarked, with '+dirty' when the work tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if head and dirty.strip() else head or None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not REPORT.measurements:
        return
    tr = terminalreporter
    info = machine()
    tr.section("asof vs peers (medians; ratio = asof / peer)")
    tr.write_line(
        f"machine: {info['nproc']} CPUs, {info['memory']}, Python {info['python']}, "
        f"DuckDB {info['duckdb']}, SQLite {info['sqlite']}, commit {info['commit']}"
    )
    md = REPORT.markdown()
    for line in md.splitlines():
        tr.write_line(line)
    for n in REPORT.notes:
        tr.write_line(f"note: {n}")
    out = Path(os.environ.get("ASOF_BENCH_OUT") or Path(config.rootpath) / ".benchmarks")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "asof-latest.md").write_text(md + "\n")
        measurements = {
            k: {"median_s": m.seconds, "value": m.value, "work": m.work, "size": m.size, **m.extra}
            for k, m in REPORT.measurements.items()
        }
        (out / "asof-latest.json").write_text(
            json.dumps(
                {
                    "machine": info,
                    "rows": REPORT.rows(),
                    "measurements": measurements,
                    "notes": REPORT.notes,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        tr.write_line(f"written: {out / 'asof-latest.md'}, {out / 'asof-latest.json'}")
    except OSError as exc:
        tr.write_line(f"could not write the results to {out}: {exc}")
