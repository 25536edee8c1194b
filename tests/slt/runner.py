"""Run a sqllogictest file on DuckDB and on asof, and compare statement by statement.

`run_file(path)` runs the file once per engine (each in its own scratch directory), checks
every executed statement against the file, pairs the two runs by statement key (line plus
loop variables) and, after the last statement, compares asof's final state with itself
reopened, cloned, read AS OF the last commit, rebuilt from the log and deep-checked, and
with DuckDB's final state. See docs/sql-compatibility.md for what the numbers mean.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import duckdb

from .compare import check_query, check_statement, same_outcome
from .engines import (
    CLONE,
    DATABASE,
    SCRIPT_LOCK_TIMEOUT,
    AsofEngine,
    DuckDBEngine,
    Engine,
    HarnessError,
    Outcome,
    handle_digests,
    lock_timeout,
)
from .parser import Record, parse_file, substitute

#: `require` arguments that state facts of DuckDB's own build, all true for the Python wheel.
BUILD_REQUIRES = {
    "skip_reload",
    "noforcestorage",
    "no_alternative_verify",
    "noalternativeverify",
    "no_vector_verification",
    "vector_size",
    "exact_vector_size",
}
STANDARD_VECTOR_SIZE = 2048


@attrs.define
class Executed:
    """One executed statement or query on one engine."""

    key: str
    record: Record
    sql: str
    outcome: Outcome
    #: the outcome is what the file expects
    right: bool
    why: str = ""


@attrs.define
class EngineRun:
    engine: str
    executed: list[Executed] = attrs.field(factory=list)
    skipped: str | None = None
    harness_errors: list[str] = attrs.field(factory=list)
    state: dict[str, tuple] | None = None
    state_error: str | None = None
    #: asof only: the final state through each way of reading it, compared with live
    invariants: dict[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0


@attrs.define
class Paired:
    key: str
    record: Record
    sql: str
    duckdb: Outcome
    asof: Outcome
    duckdb_right: bool
    asof_right: bool
    same: bool
    why: str
    asof_why: str


@attrs.define
class FileReport:
    path: str
    duckdb: EngineRun | None
    asof: EngineRun
    paired: list[Paired] = attrs.field(factory=list)

    @property
    def skipped(self) -> str | None:
        return self.asof.skipped

    @property
    def invariant_failures(self) -> dict[str, str]:
        return {k: v for k, v in self.asof.invariants.items() if v != "same"}

    @property
    def final_same(self) -> bool | None:
        if self.duckdb is None or self.duckdb.state is None or self.asof.state is None:
            return None
        return self.duckdb.state == self.asof.state


class _Context:
    def __init__(self, engine: Engine, workdir: Path, run: EngineRun) -> None:
        self.engine = engine
        self.workdir = workdir
        self.run = run
        self.labels: dict[str, str] = {}
        self.hash_threshold = 0
        self.keys: dict[str, int] = {}
        self.mutex = threading.Lock()
        self.halted = False

    def keywords(self, text: str) -> str:
        test_dir = str(self.workdir / "testdir")
        return (
            text.replace("__TEST_DIR__", test_dir)
            .replace("{TEST_DIR}", test_dir)
            .replace("__WORKING_DIRECTORY__", os.getcwd())
        )

    def key(self, record: Record, variables: dict[str, str]) -> str:
        base = str(record.line) + "".join(f"|{k}={v}" for k, v in variables.items())
        with self.mutex:
            n = self.keys.get(base, 0)
            self.keys[base] = n + 1
        return base if n == 0 else f"{base}#{n}"


def _condition_holds(what: str, engine: Engine, variables: dict[str, str]) -> bool:
    if "=" in what:
        name, value = what.split("=", 1)
        return variables.get(name, os.environ.get(name)) == value
    return what.lower() in engine.systems


def _skip_by_conditions(record: Record, engine: Engine, variables: dict[str, str]) -> bool:
    for c in record.conditions:
        holds = _condition_holds(substitute(c.what, variables), engine, variables)
        if holds == c.skip:
            return True
    return False


def _require(params: tuple[str, ...], engine: Engine) -> str | None:
    """None when the requirement holds, else why the file is skipped. `require asof` marks
    asof's own files that use what DuckDB lacks (AS OF, clones, asof's refusals)."""
    if not params:
        return "require without a parameter"
    what = params[0]
    if what == "asof":
        return None if engine.name == "asof" else "require asof"
    if what in BUILD_REQUIRES:
        if what in ("vector_size", "exact_vector_size") and len(params) > 1:
            size = int(params[1])
            if what == "vector_size" and size > STANDARD_VECTOR_SIZE:
                return f"require vector_size {size}"
            if what == "exact_vector_size" and size != STANDARD_VECTOR_SIZE:
                return f"require exact_vector_size {size}"
        return None
    con = duckdb.connect(":memory:")
    try:
        found = con.execute(
            "SELECT loaded FROM duckdb_extensions() WHERE extension_name = ?", [what]
        ).fetchall()
    finally:
        con.close()
    if found and found[0][0]:
        return None
    return f"require {what}: not built in"


def _matching_end(records: Sequence[Record], start: int) -> int:
    depth = 0
    for j in range(start, len(records)):
        if records[j].kind == "loop":
            depth += 1
        elif records[j].kind == "endloop":
            depth -= 1
            if depth == 0:
                return j
    raise HarnessError(f"line {records[start].line}: missing endloop")


def _run_block(
    ctx: _Context,
    records: Sequence[Record],
    variables: dict[str, str],
    default_connection: str | None,
) -> None:
    """Interpret records[0:len] (loops are nested blocks); stops at `halt` or a skip."""
    skip_level = 0
    i = 0
    while i < len(records) and not ctx.halted and ctx.run.skipped is None:
        r = records[i]
        if r.kind == "loop":
            end = _matching_end(records, i)
            body = records[i + 1 : end]
            if r.concurrent:
                with (
                    lock_timeout(30.0),
                    ThreadPoolExecutor(max_workers=min(8, len(r.values) or 1)) as pool,
                ):
                    futures = [
                        pool.submit(_run_thread, ctx, body, {**variables, r.var: v}, f"__thread{n}")
                        for n, v in enumerate(r.values)
                    ]
                    for f in futures:
                        f.result()
            else:
                for v in r.values:
                    _run_block(ctx, body, {**variables, r.var: v}, default_connection)
            i = end + 1
            continue
        i += 1
        if _skip_by_conditions(r, ctx.engine, variables):
            continue
        if r.kind == "mode":
            if r.params[:1] == ("skip",):
                skip_level += 1
            elif r.params[:1] == ("unskip",):
                skip_level -= 1
            continue
        if skip_level > 0:
            continue
        if r.kind in ("statement", "query"):
            _execute(ctx, r, variables, r.connection or default_connection)
        elif r.kind == "require":
            ctx.run.skipped = _require(r.params, ctx.engine)
        elif r.kind == "require-env":
            value = os.environ.get(r.params[0]) if r.params else None
            if value is None or (len(r.params) > 1 and value != r.params[1]):
                ctx.run.skipped = "require-env " + " ".join(r.params)
        elif r.kind == "halt":
            ctx.halted = True
        elif r.kind == "hash-threshold":
            ctx.hash_threshold = int(r.params[0])
        elif r.kind == "sleep":
            unit = (r.params[1] if len(r.params) > 1 else "second").rstrip("s")
            scale = {"millisecond": 1e-3, "microsecond": 1e-6, "nanosecond": 1e-9}
            time.sleep(float(r.params[0]) * scale.get(unit, 1.0))
        elif r.kind in ("restart", "reconnect", "load"):
            try:
                if r.kind == "restart":
                    ctx.engine.restart()
                elif r.kind == "reconnect":
                    ctx.engine.reconnect()
                else:
                    ctx.engine.load(ctx.keywords(r.params[0]) if r.params else None)
            except HarnessError as exc:
                ctx.run.harness_errors.append(f"line {r.line}: {exc}")
                ctx.halted = True
            except Exception as exc:  # a failed reopen is the engine's, and serious
                ctx.run.harness_errors.append(
                    f"line {r.line}: {r.kind} failed: {type(exc).__name__}: {exc}"
                )
                ctx.halted = True
        # set/reset/tags/test-env/continue/unzip: runner settings without effect here


def _run_thread(
    ctx: _Context, body: Sequence[Record], variables: dict[str, str], connection: str
) -> None:
    try:
        _run_block(ctx, body, variables, connection)
    finally:
        ctx.engine.close_connection(connection)


def _execute(ctx: _Context, r: Record, variables: dict[str, str], connection: str | None) -> None:
    sql = ctx.keywords(substitute(r.sql, variables))
    outcome = ctx.engine.execute(connection, sql, r.kind == "query")
    if r.kind == "query":
        expected = [ctx.keywords(substitute(v, variables)) for v in r.results]
        with ctx.mutex:
            right, why = check_query(r, outcome, expected, ctx.labels, ctx.hash_threshold)
    else:
        right, why = check_statement(r, outcome)
    executed = Executed(ctx.key(r, variables), r, sql, outcome, right, why)
    with ctx.mutex:
        ctx.run.executed.append(executed)


def run_engine(engine: Engine, records: Sequence[Record], workdir: Path) -> EngineRun:
    """Run the file's records on one engine; then read its final state (and for asof,
    compare that state through every way of reading it)."""
    run = EngineRun(engine.name)
    ctx = _Context(engine, workdir, run)
    (workdir / "testdir").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with lock_timeout(SCRIPT_LOCK_TIMEOUT):
            _run_block(ctx, records, {}, None)
    except HarnessError as exc:
        run.harness_errors.append(str(exc))
    if run.skipped is None:
        try:
            run.state = engine.state()
        except Exception as exc:
            run.state_error = f"{type(exc).__name__}: {exc}"
        if isinstance(engine, AsofEngine) and run.state is not None:
            run.invariants = asof_invariants(engine, run.state)
    run.seconds = time.perf_counter() - started
    return run


def _compare(label: str, live: dict[str, tuple], other: dict[str, tuple]) -> str:
    if other == live:
        return "same"
    names = sorted(n for n in set(live) | set(other) if live.get(n) != other.get(n))
    parts = [f"{n}: live {live.get(n)!r}, {label} {other.get(n)!r}" for n in names[:3]]
    return "; ".join(parts)


def asof_invariants(engine: AsofEngine, live: dict[str, tuple]) -> dict[str, str]:
    """The final state read through AS OF the last commit, a rebuild from the log, a fresh
    clone, `check(deep=True)` and after reopening the cluster: each must equal live."""
    out: dict[str, str] = {}
    cluster = engine.cluster
    db = cluster.database(DATABASE)

    def attempt(label: str, fn: Any) -> None:
        try:
            out[label] = fn()
        except Exception as exc:
            out[label] = f"error: {type(exc).__name__}: {exc}"

    last: list[int] = []

    def as_of(rebuild: bool) -> str:
        if not last:
            txns = list(db.transactions())
            if not txns:
                return "same"  # nothing committed: nothing to read in the past
            last.append(int(txns[-1].ts.physical))
        h = db.as_of(last[0], rebuild=rebuild)
        try:
            return _compare("as_of", live, handle_digests(h))
        finally:
            h.close()

    attempt("as_of", lambda: as_of(False))
    attempt("rebuilt", lambda: as_of(True))

    def clone() -> str:
        cluster.clone(DATABASE, CLONE)
        return _compare("clone", live, handle_digests(cluster.database(CLONE)))

    attempt("clone", clone)

    def deep_check() -> str:
        problems = cluster.check(deep=True)
        return "same" if not problems else "; ".join(problems)[:1000]

    attempt("check", deep_check)
    db.close()

    def reopened() -> str:
        engine.restart()
        return _compare("reopened", live, handle_digests(engine.cluster.database(DATABASE)))

    attempt("reopened", reopened)
    if out.get("clone") == "same":
        attempt(
            "clone_reopened",
            lambda: _compare(
                "reopened clone", live, handle_digests(engine.cluster.database(CLONE))
            ),
        )
    return out


def pair(duck: EngineRun, asof_run: EngineRun) -> list[Paired]:
    by_key = {e.key: e for e in duck.executed}
    out = []
    for a in asof_run.executed:
        d = by_key.get(a.key)
        if d is None:
            continue
        same, why = same_outcome(a.record, d.outcome, a.outcome)
        out.append(
            Paired(a.key, a.record, a.sql, d.outcome, a.outcome, d.right, a.right, same, why, a.why)
        )
    return out


def run_file(
    path: str | Path, *, duckdb_too: bool = True, workdir: Path | None = None
) -> FileReport:
    """Run one file on DuckDB (unless `duckdb_too` is False) and on asof, and pair the
    results."""
    records = parse_file(path)
    scratch = Path(workdir or tempfile.mkdtemp(prefix="slt-"))
    duck_run = None
    if duckdb_too:
        # DuckDB restarts only a database in a file; asof is always on disk.
        persistent = any(r.kind == "restart" for r in records)
        duck = DuckDBEngine(scratch / "duckdb", persistent=persistent)
        try:
            duck_run = run_engine(duck, records, scratch / "duckdb")
        finally:
            duck.close()
    engine = AsofEngine(scratch / "asof")
    try:
        asof_run = run_engine(engine, records, scratch / "asof")
    finally:
        engine.remove()
    report = FileReport(str(path), duck_run, asof_run)
    if duck_run is not None:
        report.paired = pair(duck_run, asof_run)
    if workdir is None:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return report


class _CheckingAsof(AsofEngine):
    """An asof engine that deep-checks the database after every statement (slow)."""

    first_failure: tuple[str, str] | None = None

    def execute(self, connection: str | None, sql: str, query: bool) -> Outcome:
        outcome = super().execute(connection, sql, query)
        if self.first_failure is None:
            try:
                problems = self.cluster.check(DATABASE, deep=True)
            except Exception as exc:
                problems = [f"{type(exc).__name__}: {exc}"]
            if problems:
                self.first_failure = (sql, "; ".join(problems)[:500])
        return outcome


def first_divergence(path: str | Path) -> tuple[str, str] | None:
    """The first statement after which the deep check (projection == rebuild from the log)
    fails, and the check's report; None when it never does. For finding what causes a
    divergence the final checks reported."""
    records = parse_file(path)
    scratch = Path(tempfile.mkdtemp(prefix="slt-bisect-"))
    engine = _CheckingAsof(scratch)
    try:
        run_engine(engine, records, scratch)
        return engine.first_failure
    finally:
        engine.remove()
