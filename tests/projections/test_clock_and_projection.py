"""The hybrid clock, and projections: caught up on open, rebuilt identically from the log."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from asof import Cluster
from asof.eventlog.hlc import HybridClock, Timestamp
from asof.eventlog.ipc import IpcStore
from asof.projections import replay as replay_module
from asof.queryapi.forensics.checks import table_digests


def test_clock_is_strictly_increasing_and_never_behind_the_wall():
    wall = [1_000]
    clock = HybridClock(lambda: wall[0])
    seen = []
    for step in [0, 0, 5, -3, -100, 0, 200, -1]:  # the wall clock stalls and steps back
        wall[0] += step
        ts = clock.now()
        assert ts.physical >= wall[0]
        seen.append(ts)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[3] == Timestamp(1_005, 1)  # stepped back: physical holds, logical counts


def test_clock_observes_and_survives_restarts(tmp_path):
    wall = [2_000_000_000_000_000]
    with Cluster(IpcStore(tmp_path / "d"), wall=lambda: wall[0]) as cluster:
        cluster.sql("CREATE DATABASE d")
        db = cluster.database("d")
        db.sql("CREATE TABLE t (x INT)")
        db.sql("INSERT INTO t VALUES (1)")
        last = list(db.transactions())[-1].ts
    wall[0] -= 3_600_000_000  # the machine's clock went back an hour while it was down
    with Cluster(IpcStore(tmp_path / "d"), wall=lambda: wall[0]) as cluster:
        db = cluster.database("d")
        db.sql("INSERT INTO t VALUES (2)")
        newest = list(db.transactions())[-1].ts
        assert newest > last
        # The wall clock is behind the log: the physical part holds and the logical counts.
        assert newest == Timestamp(last.physical, last.logical + 1)


def _workload(db) -> None:
    db.sql("CREATE SEQUENCE s")
    db.sql("CREATE TABLE t (id BIGINT DEFAULT nextval('s') PRIMARY KEY, v VARCHAR, n DOUBLE)")
    db.sql("INSERT INTO t (v, n) SELECT 'v' || i, random() FROM range(500) r(i)")
    db.sql("UPDATE t SET v = upper(v) WHERE id % 3 = 0")
    db.sql("DELETE FROM t WHERE id % 7 = 0")
    db.sql("ALTER TABLE t ADD COLUMN w INT DEFAULT 4")
    db.sql("CREATE VIEW big AS SELECT * FROM t WHERE n > 0.5")
    db.sql("CREATE TABLE u AS SELECT id, now() AS at FROM t WHERE id < 50")
    db.sql("BEGIN; INSERT INTO t (v, n) VALUES ('in txn', 1); ROLLBACK")
    db.sql("TRUNCATE u")
    db.sql("INSERT INTO u SELECT id, now() FROM t WHERE id < 20")


def _digests(db) -> dict:
    cur = db._rt.projection.cursor()
    try:
        return table_digests(cur)
    finally:
        cur.close()


def test_deleting_the_projection_rebuilds_an_identical_state(tmp_path):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE d")
        db = cluster.database("d")
        _workload(db)
        cluster.checkpoint("d")
        db.sql("INSERT INTO t (v, n) VALUES ('after checkpoint', 2)")
        before = _digests(db)
        seq = db.sql("SELECT nextval('s')").fetchall()
        before_seq = db.sql("SELECT currval('s')").fetchall()
        db_id = db.id
    for p in (data / "projections").glob(f"{db_id}*"):
        p.unlink()
    with Cluster.open(data) as cluster:
        db = cluster.database("d")
        assert _digests(db) == before
        assert db.sql("SELECT nextval('s')").fetchall() == [(seq[0][0] + 1,)]
        assert before_seq == seq
        assert cluster.check(deep=True) == []


def test_open_catches_up_without_replaying_what_it_holds(tmp_path, monkeypatch):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE d")
        _workload(cluster.database("d"))
    calls = []
    real = replay_module.replay

    def counting(con, recorder, *, after_txn=0, until=None):
        calls.append(after_txn)
        return real(con, recorder, after_txn=after_txn, until=until)

    monkeypatch.setattr("asof.projections.projection.replay", counting)
    with Cluster.open(data) as cluster:
        db = cluster.database("d")
        db.sql("SELECT count(*) FROM t").fetchall()
    assert calls == []  # the projection was current: nothing replayed


def test_a_fresh_process_sees_the_same_state(tmp_path):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE d")
        db = cluster.database("d")
        _workload(db)
        expected = {k: list(v) for k, v in _digests(db).items()}
    script = textwrap.dedent(f"""
        import json
        from asof import Cluster
        from asof.queryapi.forensics.checks import table_digests
        with Cluster.open({str(data)!r}) as c:
            cur = c.database("d")._rt.projection.cursor()
            print(json.dumps({{k: [v[0], str(v[1])] for k, v in table_digests(cur).items()}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    import json

    got = json.loads(out.stdout)
    assert got == {k: [v[0], str(v[1])] for k, v in expected.items()}
