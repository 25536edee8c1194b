"""Kill a writer process with SIGKILL at random moments; nothing committed may be lost.

The default run samples a few kill points; `ASOF_CRASH_KILLS=200 pytest -m slow
tests/test_crash.py` runs the full campaign.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from asof import Cluster

WRITER = Path(__file__).parent / "tools" / "crash_writer.py"


def _run_and_kill(
    data: Path, seed: int, delay: float
) -> tuple[list[int], dict[str, int], list[int]]:
    """Start the writer, kill it after `delay` seconds; return what it reported."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(10)
    err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, f"writer died on its own:\n{err}"
    commits = [int(x.split()[1]) for x in lines if x.startswith("commit ")]
    clones = {x.split()[1]: int(x.split()[2]) for x in lines if x.startswith("clone ")}
    fast = [int(x.split()[1]) for x in lines if x.startswith("fast ")]
    return commits, clones, fast


def _verify(
    data: Path, committed: set[int], clones: dict[str, int], fast: set[int], *, deep: bool
) -> None:
    with Cluster.open(data) as cluster:
        # t_c is the writer's last table: a kill before it was created committed nothing
        if "a" not in cluster.databases() or "t_c" not in cluster.database("a").tables():
            assert not committed, "committed transactions lost with their database"
            assert cluster.check() == []
            return
        db = cluster.database("a")
        a = {r[0] for r in db.sql("SELECT n FROM t_a").fetchall()}
        b = dict(db.sql("SELECT n, twice FROM t_b").fetchall())
        missing = committed - a
        assert not missing, f"committed transactions lost: {sorted(missing)[:10]}"
        assert a == set(b), f"partial transactions: {sorted(a ^ set(b))[:10]}"
        assert all(b[n] == 2 * n for n in b)
        assert a == set(range(1, len(a) + 1)), "a gap in the committed sequence"
        c = {r[0] for r in db.sql("SELECT k FROM t_c").fetchall()}
        lost = fast - c
        assert not lost, f"committed single-row inserts lost: {sorted(lost)[:10]}"
        assert all(k // 10 in a for k in c), "a single-row insert without its transaction"
        assert cluster.check("a", deep=True) == []
        if deep:  # every file and mark; a rebuild of a sample of clones (each takes a while)
            assert cluster.check() == []
            for name in random.Random(len(clones)).sample(sorted(clones), min(len(clones), 30)):
                assert cluster.check(name, deep=True) == [], name
        for name, n in clones.items():
            rows = cluster.database(name).sql("SELECT count(*), max(n) FROM t_a").fetchall()
            assert rows == [(n, n)], f"clone {name} should hold 1..{n}, holds {rows}"


def _campaign(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    data = tmp_path / "data"
    committed: set[int] = set()
    clones: dict[str, int] = {}
    fast: set[int] = set()
    for i in range(kills):
        delay = rng.choice([0.05, 0.2, 0.4, 0.7, 1.0]) * rng.random() + 0.3
        commits, new_clones, new_fast = _run_and_kill(data, seed * 1000 + i, delay)
        committed.update(commits)
        clones.update(new_clones)
        fast.update(new_fast)
        # Each kill point checks the source (deeply) and the clones made since the last one;
        # at the end every clone's rows are checked again and a sample of 30 deeply (a fast
        # fork makes a clone or two per kill point, and rebuilding hundreds takes minutes).
        _verify(data, committed, new_clones, fast, deep=False)
    _verify(data, committed, clones, fast, deep=True)


def test_sigkill_loses_nothing(tmp_path):
    _campaign(tmp_path, kills=int(os.environ.get("ASOF_CRASH_KILLS_CI", "6")), seed=1)


@pytest.mark.slow
def test_sigkill_campaign(tmp_path):
    _campaign(tmp_path, kills=int(os.environ.get("ASOF_CRASH_KILLS", "200")), seed=2)
