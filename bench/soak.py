"""Soak: writers, clones, drops, compaction and GC together, checking invariants as it goes.

    python bench/soak.py --seconds 120 --data /tmp/asof-soak

Each writer thread owns a database (a source or a clone) and commits numbered transactions
that touch two tables at once. Every few seconds the checker verifies, for each database,
that no committed transaction is missing or partial, and that AS OF the last checked commit
still answers what it answered before. Meanwhile the main loop clones, drops clones,
checkpoints, compacts and collects garbage. At the end the cluster is reopened and checked
again (`asof check --deep`). Exit status 0 means nothing was lost.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import threading
import time
from pathlib import Path

from asof import AsofError, Cluster, OperationalError


class Writer(threading.Thread):
    def __init__(self, cluster: Cluster, name: str) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.name_ = name
        self.stop = threading.Event()
        self.committed: list[int] = []
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            db = self.cluster.database(self.name_)
            n = db.sql("SELECT coalesce(max(n), 0) FROM a").fetchone()[0]
            while not self.stop.is_set():
                n += 1
                db.sql("BEGIN")
                db.sql("INSERT INTO a VALUES (?, ?)", [n, f"row {n}"])
                db.sql("INSERT INTO b VALUES (?, ?)", [n, 2 * n])
                db.sql("COMMIT")
                with self.lock:
                    self.committed.append(n)
        except OperationalError as exc:  # the database was dropped under us: stop quietly
            if "does not exist" not in str(exc) and "closed" not in str(exc):
                self.error = exc
        except AsofError as exc:
            if "does not exist" not in str(exc):
                self.error = exc


def check_database(cluster: Cluster, name: str, committed: list[int]) -> None:
    db = cluster.database(name)
    # One statement, one snapshot: both tables as of the same moment.
    rows = db.sql("SELECT a.n, b.n, b.twice FROM a FULL OUTER JOIN b ON a.n = b.n").fetchall()
    db.close()
    if any(an is None or bn is None or twice != 2 * an for an, bn, twice in rows):
        raise AssertionError(f"{name}: a partial transaction is visible")
    missing = set(committed) - {r[0] for r in rows}
    if missing:
        raise AssertionError(f"{name}: committed transactions missing: {sorted(missing)[:5]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--data", default="./asof-soak")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = Path(args.data)
    shutil.rmtree(data, ignore_errors=True)
    cluster = Cluster.open(data)
    cluster.sql("CREATE DATABASE src")
    cluster.database("src").sql(
        "CREATE TABLE a (n INT, s VARCHAR); CREATE TABLE b (n INT, twice INT)"
    )
    cluster.create_snapshot_schedule("src", 1, 2)
    writers: dict[str, Writer] = {"src": Writer(cluster, "src")}
    writers["src"].start()
    deadline = time.monotonic() + args.seconds
    counts = {"clones": 0, "drops": 0, "compactions": 0, "gc_files": 0, "checks": 0}
    clone_no = 0
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            roll = rng.random()
            live_clones = [n for n in writers if n != "src"]
            if roll < 0.35 and len(live_clones) < 4:
                clone_no += 1
                name = f"clone{clone_no}"
                cluster.clone(rng.choice(["src", *live_clones]), name)
                writers[name] = Writer(cluster, name)
                writers[name].start()
                counts["clones"] += 1
            elif roll < 0.5 and live_clones:
                name = rng.choice(live_clones)
                w = writers.pop(name)
                w.stop.set()
                w.join(30)
                check_database(cluster, name, w.committed)
                cluster.drop_database(name)
                counts["drops"] += 1
            elif roll < 0.7:
                cluster.checkpoint("src")
                cluster.compact()
                counts["compactions"] += 1
            elif roll < 0.8:
                counts["gc_files"] += len(cluster.gc())
            for name, w in list(writers.items()):
                if w.error is not None:
                    raise w.error
                with w.lock:
                    done = list(w.committed)
                check_database(cluster, name, done)
            counts["checks"] += 1
    finally:
        for w in writers.values():
            w.stop.set()
        for w in writers.values():
            w.join(30)
    committed = {name: list(w.committed) for name, w in writers.items()}
    cluster.close()
    with Cluster.open(data) as reopened:
        for name, done in committed.items():
            check_database(reopened, name, done)
        problems = reopened.check(deep=True)
    total = sum(len(w.committed) for w in writers.values())
    print(f"soak: {args.seconds:.0f} s, {total} transactions in live databases, {counts}")
    if problems:
        print("problems:", *problems, sep="\n  ")
        return 1
    print("soak: nothing lost, no partial transaction, asof check --deep clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
