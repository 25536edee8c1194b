"""Measure how closely asof follows DuckDB on DuckDB's own sqllogictest files.

    python -m tests.slt.measure [--out DIR] [--timeout S] [--only GLOB ...]
    python -m tests.slt.measure --summarize DIR      # recompute the summary from results

Every file runs on plain DuckDB and on asof (tests/slt/runner.py). Files run one after
another in a worker process, so that one that hangs or crashes the interpreter costs only
itself: the parent kills the worker after `--timeout` seconds on one file, records the file
as timed out and starts a new worker on the next. Results go to DIR/results.jsonl (one line
per file, so an interrupted run resumes where it stopped) and DIR/summary.json.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .classify import FOLLOW_ON, SERIALISED_WRITERS, classify
from .corpus import corpus_dir, corpus_files, relative

DEFAULT_OUT = Path("slt-results")
NONDETERMINISTIC = re.compile(r"\b(random|uuid|gen_random_uuid)\s*\(", re.I)


# ------------------------------------------------------------------ one file
def file_result(path: Path, root: Path) -> dict[str, Any]:
    """Run one file and reduce the report to what the summary needs (JSON-able)."""
    from .runner import run_file

    started = time.perf_counter()
    try:
        report = run_file(path)
    except Exception as exc:  # a file the harness cannot read: counted, never hidden
        return {
            "file": relative(path, root),
            "harness_error": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - started,
        }
    duck = report.duckdb
    assert duck is not None
    mismatches = []
    diverged = False
    for p in report.paired:
        if not p.duckdb_right:
            continue
        if not p.same:
            mismatches.append(
                {
                    "key": p.key,
                    "kind": p.record.kind,
                    "expect": p.record.expect if p.record.kind == "statement" else "rows",
                    "sql": p.sql[:400],
                    "duckdb_ok": p.duckdb.ok,
                    "asof_ok": p.asof.ok,
                    "duckdb_error": p.duckdb.error[:300],
                    "asof_error": p.asof.error[:300],
                    "asof_class": p.asof.error_class,
                    "foreign_error": p.asof.foreign_error,
                    "why": p.why,
                    "follows": diverged,
                }
            )
            diverged = True
    duckdb_wrong = [
        {"key": e.key, "sql": e.sql[:200], "why": e.why[:200]} for e in duck.executed if not e.right
    ]
    agreeing_errors = [p for p in report.paired if p.duckdb_right and p.same and not p.duckdb.ok]
    return {
        "file": relative(path, root),
        "skipped": report.skipped,
        "harness_errors": duck.harness_errors + report.asof.harness_errors,
        "executed": len(report.paired),
        "duckdb_right": sum(p.duckdb_right for p in report.paired),
        "asof_same": sum(p.duckdb_right and p.same for p in report.paired),
        "asof_right": sum(p.asof_right for p in report.paired),
        "same_error_message": sum(p.asof_right for p in agreeing_errors),
        "agreeing_errors": len(agreeing_errors),
        "foreign_errors": sum(1 for p in report.paired if p.asof.foreign_error),
        "mismatches": mismatches,
        "duckdb_wrong": duckdb_wrong[:20],
        "final_same": report.final_same,
        "final_diff": _state_diff(duck.state, report.asof.state),
        "state_errors": [e for e in (duck.state_error, report.asof.state_error) if e],
        "invariants": report.asof.invariants,
        "invariant_failures": report.invariant_failures,
        "seconds": time.perf_counter() - started,
    }


def _state_diff(a: dict | None, b: dict | None) -> list[str]:
    if a is None or b is None or a == b:
        return []
    names = sorted(set(a) | set(b))
    return [
        f"{n}: duckdb {a.get(n)!r} asof {b.get(n)!r}"[:300] for n in names if a.get(n) != b.get(n)
    ]


def worker(files: list[str], out: Path) -> None:
    root = corpus_dir()
    assert root is not None
    with out.open("a", encoding="utf-8") as f:
        for name in files:
            print("START " + name, flush=True)
            result = file_result(root / "test" / "sql" / name, root)
            f.write(json.dumps(result, default=str) + "\n")
            f.flush()
            print("DONE " + name, flush=True)


# ------------------------------------------------------------------ the corpus
def run_corpus(names: list[str], out_dir: Path, timeout: float, rerun: bool = False) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    done = set() if rerun else {r["file"] for r in load_results(results)}
    todo = [n for n in names if n not in done]
    print(f"{len(done)} files done before, {len(todo)} to run", flush=True)
    while todo:
        before = len(todo)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.slt.measure", "--worker", str(results), *todo],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert proc.stdout is not None
        current, since = None, time.monotonic()
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 5.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                word, _, name = line.strip().partition(" ")
                if word == "START":
                    current, since = name, time.monotonic()
                elif word == "DONE":
                    todo.remove(name)
                    print(f"[{len(names) - len(todo)}/{len(names)}] {name}", flush=True)
                    current = None
            elif current is not None and time.monotonic() - since > timeout:
                proc.kill()
                break
        proc.wait()
        if current is not None and current in todo:
            reason = "timeout" if proc.returncode == -9 else f"worker exit {proc.returncode}"
            with results.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"file": current, "harness_error": reason}) + "\n")
            todo.remove(current)
            print(f"{current}: {reason}", flush=True)
        elif proc.returncode != 0 and todo:
            if current is None and len(todo) == before:
                raise SystemExit(f"the worker fails before any file (exit {proc.returncode})")
            print(f"worker exited {proc.returncode} between files; restarting", flush=True)


def load_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            latest[r["file"]] = r
    return list(latest.values())


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    ran = [r for r in results if "harness_error" not in r and not r.get("skipped")]
    causes: dict[str, dict[str, Any]] = {}

    def count(cause: str, r: dict[str, Any], m: dict[str, Any], follow_on: bool) -> None:
        c = causes.setdefault(
            cause, {"statements": 0, "follow_on": 0, "files": set(), "example": None}
        )
        c["follow_on" if follow_on else "statements"] += 1
        c["files"].add(r["file"])
        if c["example"] is None and not follow_on:
            c["example"] = {
                "file": r["file"],
                "line": m["key"],
                "sql": m["sql"][:200],
                "duckdb": "ok" if m["duckdb_ok"] else m["duckdb_error"][:160],
                "asof": "ok" if m["asof_ok"] else m["asof_error"][:160],
                "why": m["why"],
            }

    for r in ran:
        last_cause = None
        for m in r["mismatches"]:
            cause = classify(m)
            if cause == FOLLOW_ON and last_cause is not None:
                count(last_cause, r, m, True)  # charged to the difference it follows
                continue
            count(cause, r, m, False)
            last_cause = cause
    root = corpus_dir()
    final_causes: dict[str, list[str]] = {}
    for r in ran:
        if r["final_same"] is not False:
            continue
        text = ""
        if root is not None:
            path = root / "test" / "sql" / r["file"]
            text = path.read_text(encoding="utf-8") if path.exists() else ""
        direct = [classify(m) for m in r["mismatches"] if not m.get("follows")]
        # a refused SET is mostly a harmless setting; name what else differed, if anything
        direct = [c for c in direct if not c.startswith("SET")] + direct
        if direct:
            why = direct[0]
        elif NONDETERMINISTIC.search(text):
            why = "random values (random(), uuid()): the two engines drew different ones"
        else:
            why = "no statement differed, yet the final state does"
        final_causes.setdefault(why, []).append(r["file"])
    ordered = sorted(causes.items(), key=lambda kv: -(kv[1]["statements"] + kv[1]["follow_on"]))
    duck_right = sum(r["duckdb_right"] for r in ran)
    writers = causes.get(SERIALISED_WRITERS, {})
    serialised = writers.get("statements", 0) + writers.get("follow_on", 0)
    same = sum(r["asof_same"] for r in ran)
    compared_final = [r for r in ran if r["final_same"] is not None]
    divergent = {r["file"]: r["invariant_failures"] for r in ran if r.get("invariant_failures")}
    no_invariants = [r["file"] for r in ran if not r.get("invariants")]
    return {
        "files": len(results),
        "files_run": len(ran),
        "files_skipped": sorted(r["file"] for r in results if r.get("skipped")),
        "files_harness_error": {
            r["file"]: r["harness_error"] for r in results if "harness_error" in r
        },
        "statements_executed": sum(r["executed"] for r in ran),
        "statements_duckdb_right": duck_right,
        "statements_asof_same": same,
        "match_rate": round(same / duck_right, 4) if duck_right else None,
        "statements_serialised_writers": serialised,
        "match_rate_without_serialised_writers": (
            round(same / (duck_right - serialised), 4) if duck_right > serialised else None
        ),
        "agreeing_errors": sum(r["agreeing_errors"] for r in ran),
        "agreeing_errors_same_message": sum(r["same_error_message"] for r in ran),
        "asof_errors_not_asof_error": sum(r["foreign_errors"] for r in ran),
        "files_all_statements_same": sum(1 for r in ran if not r["mismatches"]),
        "files_final_state_compared": len(compared_final),
        "files_final_state_same": sum(1 for r in compared_final if r["final_same"]),
        "files_final_state_different": sorted(
            r["file"] for r in compared_final if not r["final_same"]
        ),
        "files_final_state_different_by_cause": dict(
            sorted(final_causes.items(), key=lambda kv: -len(kv[1]))
        ),
        "files_live_differs_from_reopened_clone_asof_rebuilt": divergent,
        "files_without_invariant_check": no_invariants,
        "causes": [
            {
                "cause": cause,
                "statements": c["statements"],
                "follow_on": c["follow_on"],
                "files": len(c["files"]),
                "example": c["example"],
            }
            for cause, c in ordered
        ],
        "seconds": round(sum(r.get("seconds", 0) for r in results), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.slt.measure", description=__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per file")
    ap.add_argument("--only", nargs="*", default=None, help="glob(s) on the file's path")
    ap.add_argument("--rerun", action="store_true", help="run files that have results too")
    ap.add_argument("--summarize", type=Path, default=None)
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        worker(args.files, args.worker)
        return 0
    out_dir = args.summarize or args.out
    if args.summarize is None:
        root = corpus_dir()
        if root is None:
            print("the DuckDB sqllogictest corpus is not here (set ASOF_SLT_DIR)", file=sys.stderr)
            return 2
        names = [relative(p, root) for p in corpus_files(root)]
        if args.only:
            names = [n for n in names if any(fnmatch.fnmatch(n, g) for g in args.only)]
        run_corpus(names, out_dir, args.timeout, args.rerun)
    summary = summarize(load_results(out_dir / "results.jsonl"))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_summary(summary)
    return 0


def print_summary(s: dict[str, Any]) -> None:
    print(
        f"files: {s['files']} ({s['files_run']} run, {len(s['files_skipped'])} skipped, "
        f"{len(s['files_harness_error'])} harness errors/timeouts)"
    )
    print(
        f"statements: {s['statements_executed']} executed, {s['statements_duckdb_right']} "
        f"DuckDB gets right, asof the same on {s['statements_asof_same']} "
        f"({100 * (s['match_rate'] or 0):.1f}%; "
        f"{100 * (s['match_rate_without_serialised_writers'] or 0):.1f}% without the "
        f"{s['statements_serialised_writers']} that serialised writers account for)"
    )
    print(
        f"final state same as DuckDB's: {s['files_final_state_same']} of "
        f"{s['files_final_state_compared']} files"
    )
    div = s["files_live_differs_from_reopened_clone_asof_rebuilt"]
    print(f"live != reopened/clone/as_of/rebuilt/check: {len(div)} files")
    for f, why in div.items():
        print(f"  {f}: {why}")
    print("causes (statements, follow-on statements, files):")
    for c in s["causes"]:
        print(f"  {c['statements']:5d} {c['follow_on']:5d} {c['files']:4d}  {c['cause']}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
