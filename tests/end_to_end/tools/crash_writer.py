"""A writer the crash tests kill with SIGKILL: it prints each commit after it returns.

Usage: python crash_writer.py DATA_DIR SEED
Every transaction n writes one row to each of two tables (so a partial transaction shows);
between them it clones, runs DDL, checkpoints and seals, so kills land in those too. After
each transaction n it also commits up to four single-row inserts with keys n*10+j into a
table with a primary key (the fast insert path: logged, applied to DuckDB later) and prints
"fast K" after each returns.
"""

from __future__ import annotations

import random
import sys

from asof import Cluster


def main(data: str, seed: int) -> None:
    rng = random.Random(seed)
    with Cluster.open(data) as cluster:
        if "a" not in cluster.databases():
            cluster.sql("CREATE DATABASE a")
        db = cluster.database("a")
        db.sql("CREATE TABLE IF NOT EXISTS t_a (n INT, payload VARCHAR)")
        db.sql("CREATE TABLE IF NOT EXISTS t_b (n INT, twice INT)")
        db.sql("CREATE TABLE IF NOT EXISTS t_c (k BIGINT PRIMARY KEY, note VARCHAR)")
        n = db.sql("SELECT coalesce(max(n), 0) FROM t_a").fetchone()[0]
        while True:
            n += 1
            db.sql("BEGIN")
            db.sql("INSERT INTO t_a VALUES (?, repeat('x', ?))", [n, rng.randint(0, 2000)])
            db.sql("INSERT INTO t_b VALUES (?, ?)", [n, 2 * n])
            if rng.random() < 0.2:
                db.sql("UPDATE t_b SET twice = twice WHERE n = ?", [max(1, n - 1)])
            db.sql("COMMIT")
            print(f"commit {n}", flush=True)
            for j in range(rng.randint(0, 4)):
                db.sql("INSERT INTO t_c VALUES (?, ?)", [n * 10 + j, "fast"])
                print(f"fast {n * 10 + j}", flush=True)
            roll = rng.random()
            if roll < 0.08:
                name = f"c{n}"
                cluster.clone("a", name)
                print(f"clone {name} {n}", flush=True)
            elif roll < 0.14:
                db.sql("CREATE TABLE IF NOT EXISTS scratch (x INT)")
                db.sql("DROP TABLE scratch")
            elif roll < 0.18:
                cluster.checkpoint("a")
            elif roll < 0.22:
                db._rt.recorder.seal()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
