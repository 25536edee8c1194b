"""Threads and processes: serialised writers, snapshot readers, one writing process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from asof import Cluster, OperationalError, ReadOnlyError, SerializationError
from support import head_ts, tick


def test_no_lost_updates(cluster):
    cluster.sql("CREATE DATABASE d")
    cluster.database("d").sql(
        "CREATE TABLE c (id INT PRIMARY KEY, v INT); INSERT INTO c VALUES (1, 0)"
    )
    threads, per_thread = 6, 40

    def work():
        db = cluster.database("d")  # a handle per thread: its own session
        for i in range(per_thread):
            if i % 2:
                db.sql("UPDATE c SET v = v + 1 WHERE id = 1")
            else:  # read, then write what was read: retried when another commit came between
                while True:
                    db.sql("BEGIN")
                    (v,) = db.sql("SELECT v FROM c WHERE id = 1").fetchone()
                    try:
                        db.sql("UPDATE c SET v = ? WHERE id = 1", [v + 1])
                    except SerializationError:
                        db.sql("ROLLBACK")
                        continue
                    db.sql("COMMIT")
                    break

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    db = cluster.database("d")
    assert db.sql("SELECT v FROM c").fetchall() == [(threads * per_thread,)]
    assert len(list(db.transactions())) == 2 + threads * per_thread


def test_readers_never_see_half_a_transaction(cluster):
    cluster.sql("CREATE DATABASE bank")
    setup = cluster.database("bank")
    setup.sql("CREATE TABLE acct (id INT PRIMARY KEY, bal INT)")
    setup.sql("INSERT INTO acct SELECT i, 100 FROM range(10) r(i)")
    stop = threading.Event()
    bad: list[int] = []

    def transfer(seed: int):
        db = cluster.database("bank")
        i = 0
        while not stop.is_set():
            a, b = (seed + i) % 10, (seed + 3 * i + 1) % 10
            i += 1
            if a == b:
                continue
            db.sql("BEGIN")
            db.sql("UPDATE acct SET bal = bal - 7 WHERE id = ?", [a])
            db.sql("UPDATE acct SET bal = bal + 7 WHERE id = ?", [b])
            db.sql("COMMIT")

    def read():
        db = cluster.database("bank")
        while not stop.is_set():
            (total,) = db.sql("SELECT sum(bal) FROM acct").fetchone()
            if total != 1000:
                bad.append(total)

    workers = [threading.Thread(target=transfer, args=(s,)) for s in range(3)]
    workers += [threading.Thread(target=read) for _ in range(2)]
    for w in workers:
        w.start()
    time.sleep(1.5)
    stop.set()
    for w in workers:
        w.join()
    assert bad == []
    db = cluster.database("bank")
    for txn in list(db.transactions())[-20:]:
        (total,) = db.as_of(txn.ts.physical).sql("SELECT sum(bal) FROM acct").fetchone()
        assert total == 1000


def test_as_of_is_stable_while_writers_run(cluster):
    cluster.sql("CREATE DATABASE d")
    db = cluster.database("d")
    db.sql("CREATE TABLE t (x INT)")
    db.sql("INSERT INTO t SELECT * FROM range(100)")
    tick()
    ts = head_ts(db)
    first = db.as_of(ts).sql("SELECT count(*), sum(x) FROM t").fetchall()
    stop = threading.Event()

    def write():
        w = cluster.database("d")
        while not stop.is_set():
            w.sql("INSERT INTO t VALUES (1)")

    t = threading.Thread(target=write)
    t.start()
    try:
        for _ in range(10):
            assert db.as_of(ts).sql("SELECT count(*), sum(x) FROM t").fetchall() == first
    finally:
        stop.set()
        t.join()


def test_writers_on_source_and_clones_at_once(cluster):
    cluster.sql("CREATE DATABASE src")
    cluster.database("src").sql("CREATE TABLE t (who VARCHAR, i INT)")
    cluster.clone("src", "c1")
    cluster.clone("src", "c2")

    def write(name: str):
        db = cluster.database(name)
        for i in range(30):
            db.sql("INSERT INTO t VALUES (?, ?)", [name, i])

    ts = [threading.Thread(target=write, args=(n,)) for n in ("src", "c1", "c2")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for name in ("src", "c1", "c2"):
        rows = cluster.database(name).sql("SELECT who, count(*) FROM t GROUP BY who").fetchall()
        assert rows == [(name, 30)]


def test_a_second_writing_process_is_refused_with_the_holders_pid(tmp_path):
    data = tmp_path / "data"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from asof import Cluster
            c = Cluster.open({str(data)!r})
            c.sql("CREATE DATABASE d")
            c.database("d").sql("CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2)")
            print("ready", flush=True)
            sys.stdin.readline()
            c.database("d").sql("INSERT INTO t VALUES (3)")
            print("more", flush=True)
            sys.stdin.readline()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(OperationalError, match=str(holder.pid)):
            Cluster.open(data)
        with Cluster.open(data, read_only=True) as ro:
            db = ro.database("d")
            assert db.sql("SELECT count(*) FROM t").fetchall() == [(2,)]
            with pytest.raises(ReadOnlyError):
                db.sql("INSERT INTO t VALUES (9)")
            with pytest.raises(ReadOnlyError):
                ro.sql("CREATE DATABASE x")
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "more"
        with Cluster.open(data, read_only=True) as ro:
            assert ro.database("d").sql("SELECT count(*) FROM t").fetchall() == [(3,)]
    finally:
        holder.stdin.close()
        holder.wait(10)
