"""A fresh clone is served from the state host until its first write creates its file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

from asof import Cluster
from support import table_rows, tick

ROWS = sorted(((i, i % 3) for i in range(20)), key=repr)  # table_rows' order


def _rows(rows) -> list[tuple]:
    return sorted(rows, key=repr)


def _source(cluster: Cluster) -> None:
    cluster.sql("CREATE DATABASE p")
    p = cluster.database("p")
    p.sql("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    p.sql("INSERT INTO t SELECT i, i % 3 FROM range(20) r(i)")
    p.sql("CREATE VIEW big AS SELECT * FROM t WHERE v = 2")
    cluster.checkpoint("p")
    tick()


def test_reads_before_and_after_the_first_write(disk_cluster):
    _source(disk_cluster)
    disk_cluster.clone("p", "c")
    reader = disk_cluster.database("c")
    writer = disk_cluster.database("c")
    rt = reader._rt
    assert table_rows(reader, "t") == ROWS
    assert rt.hosted and not rt.projection_path.exists()
    assert sorted(reader.sql("SELECT k FROM big").fetchall()) == sorted(
        (k,) for k, v in ROWS if v == 2
    )
    writer.sql("INSERT INTO t VALUES (100, 2)")
    assert not rt.hosted and rt.projection_path.exists()
    # The handle that read the hosted state moves to the file at its next statement.
    assert table_rows(reader, "t") == _rows([*ROWS, (100, 2)])
    assert (100,) in reader.sql("SELECT k FROM big").fetchall()
    reader.sql("UPDATE t SET v = 0 WHERE k = 100")
    assert writer.sql("SELECT v FROM t WHERE k = 100").fetchall() == [(0,)]
    assert table_rows(disk_cluster.database("p"), "t") == ROWS
    assert disk_cluster.check("c", deep=True) == []


def test_an_unwritten_clone_leaves_no_file_and_reopens(tmp_path):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        _source(cluster)
        cluster.clone("p", "c")
        assert table_rows(cluster.database("c"), "t") == ROWS
        path = cluster.database("c")._rt.projection_path
    assert not path.exists()
    with Cluster.open(data) as cluster:
        c = cluster.database("c")
        assert table_rows(c, "t") == ROWS
        c.sql("DELETE FROM t WHERE k < 10")
    assert path.exists()
    with Cluster.open(data) as cluster:
        c = cluster.database("c")
        assert table_rows(c, "t") == _rows((k, v) for k, v in ROWS if k >= 10)
        assert not c._rt.hosted
        assert cluster.check(deep=True) == []


def test_a_checkpoint_of_a_fresh_clone_gives_it_its_file(disk_cluster):
    _source(disk_cluster)
    disk_cluster.clone("p", "c")
    c = disk_cluster.database("c")
    assert table_rows(c, "t") == ROWS
    assert disk_cluster.checkpoint("c") is None  # the inherited checkpoint is at its head
    assert not c._rt.hosted
    assert table_rows(c, "t") == ROWS


def test_an_interrupted_promotion_is_rebuilt(tmp_path):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        _source(cluster)
        cluster.clone("p", "c")
        path = cluster.database("c")._rt.projection_path
    # What a crash while the file was being created leaves: a file without the build mark.
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE half (x INT)")
    con.close()
    with Cluster.open(data) as cluster:
        c = cluster.database("c")
        assert table_rows(c, "t") == ROWS
        c.sql("INSERT INTO t VALUES (200, 1)")
    with Cluster.open(data) as cluster:
        assert table_rows(cluster.database("c"), "t") == _rows([*ROWS, (200, 1)])


def test_a_killed_writer_loses_nothing_it_committed_to_a_fresh_clone(tmp_path):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        _source(cluster)
        cluster.clone("p", "c")
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from asof import Cluster
        cluster = Cluster.open({str(data)!r})
        c = cluster.database("c")
        assert c.sql("SELECT count(*) FROM t").fetchall() == [(20,)]
        c.sql("INSERT INTO t VALUES (300, 0)")
        c.sql("UPDATE t SET v = 9 WHERE k = 1")
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ)
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "committed" in proc.stdout
    with Cluster.open(data) as cluster:
        c = cluster.database("c")
        expected = _rows([(k, 9 if k == 1 else v) for k, v in ROWS] + [(300, 0)])
        assert table_rows(c, "t") == expected
        assert cluster.check(deep=True) == []
