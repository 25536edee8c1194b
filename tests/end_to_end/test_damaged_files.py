"""Damaged caches, missing manifests, several bad files at once, read-only media."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from asof import Cluster, CorruptionError
from asof.eventlog.segment import ROWS
from asof.eventlog.wal import HEADER_SIZE, scan_file


def _cluster(data: Path) -> dict[str, str]:
    with Cluster.open(data) as cluster:
        for name in ("a", "b"):
            cluster.sql(f"CREATE DATABASE {name}")
            db = cluster.database(name)
            db.sql("CREATE TABLE t (x INT, s VARCHAR)")
            db.sql("INSERT INTO t SELECT i, 'row ' || i FROM range(500) r(i)")
            db._rt.recorder.seal()
            db.sql("INSERT INTO t SELECT i, 'more ' || i FROM range(500, 800) r(i)")
            db._rt.recorder.seal()
        return {n: cluster._record(n).db_id for n in ("a", "b")}


def _rows(cluster: Cluster, name: str) -> list[tuple]:
    return cluster.database(name).sql("SELECT count(*), sum(x), max(s) FROM t").fetchall()


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_projection_is_reported_then_rebuilt_from_the_log(tmp_path, damage, caplog):
    data = tmp_path / "data"
    ids = _cluster(data)
    with Cluster.open(data) as cluster:
        expected = _rows(cluster, "a")
    path = data / "projections" / f"{ids['a']}.duckdb"
    raw = path.read_bytes()
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    path.write_bytes(
        {"empty": b"", "truncated": raw[: len(raw) // 3], "garbage": os.urandom(len(raw))}[damage]
    )
    with Cluster.open(data) as cluster:
        problems = cluster.check(deep=True)  # reports, never raises, changes nothing
        assert any(str(path) in p and "rebuilt" in p for p in problems), problems
        assert not any(ids["b"] in p for p in problems)
    with Cluster.open(data) as cluster:
        assert _rows(cluster, "a") == expected  # the next open rebuilt it
        assert "rebuilding" in caplog.text or damage == "empty"
        assert cluster.check(deep=True) == []


def _bad_segments(data: Path, db_id: str) -> list[Path]:
    with Cluster.open(data) as cluster:
        refs = cluster.store.open(db_id).manifest.segments
        return [cluster.store.resolve(r.path) for r in refs if r.kind == ROWS]


def test_check_deep_lists_every_bad_segment(tmp_path):
    data = tmp_path / "data"
    ids = _cluster(data)
    bad = _bad_segments(data, ids["a"]) + _bad_segments(data, ids["b"])
    for path in bad:
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    with Cluster.open(data) as cluster:  # the projections are sound; the rebuild is not
        problems = cluster.check(deep=True)
    for path in bad:
        assert any(path.name in p for p in problems), (path.name, problems)


def test_a_deleted_manifest_is_named(tmp_path):
    data = tmp_path / "data"
    ids = _cluster(data)
    manifest = data / "logs" / ids["a"] / "manifest.json"
    manifest.unlink()
    with Cluster.open(data) as cluster:
        with pytest.raises(CorruptionError, match=str(manifest)):
            _rows(cluster, "a")
        assert any(str(manifest) in p for p in cluster.check())
        assert _rows(cluster, "b")[0][0] == 800
    catalog = data / "logs" / "catalog" / "manifest.json"
    catalog.unlink()
    with pytest.raises(CorruptionError, match=str(catalog)):
        Cluster.open(data)


def test_a_deleted_log_directory_is_named(tmp_path):
    data = tmp_path / "data"
    ids = _cluster(data)
    shutil.rmtree(data / "logs" / ids["a"])
    with Cluster.open(data) as cluster:
        with pytest.raises(CorruptionError, match=ids["a"]):
            _rows(cluster, "a")
        assert any(ids["a"] in p for p in cluster.check())
        assert _rows(cluster, "b")[0][0] == 800


def test_read_only_open_never_opens_a_file_for_writing(tmp_path, monkeypatch):
    """Read-only media: every open for writing, and every mkdir, under the data directory
    fails with EROFS, as on a read-only mount."""
    data = tmp_path / "data"
    _cluster(data)
    with Cluster.open(data) as cluster:
        expected = _rows(cluster, "a")
        db = cluster.database("a")
        db.sql("INSERT INTO t VALUES (-1, 'in the wal')")  # left unsealed below
        expected_wal = _rows(cluster, "a")
        shutil.copytree(data, tmp_path / "ro")  # a crash image: the WAL holds a frame
    assert expected != expected_wal
    ro = (tmp_path / "ro").resolve()
    real_open, real_mkdir = os.open, os.mkdir
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def read_only_open(path, flags, *args, **kwargs):
        if str(Path(path).resolve()).startswith(str(ro)) and flags & writes:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def read_only_mkdir(path, *args, **kwargs):
        if str(Path(path).resolve()).startswith(str(ro)):
            if Path(path).exists():
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(os, "mkdir", read_only_mkdir)
    with Cluster.open(ro, read_only=True) as cluster:
        assert _rows(cluster, "a") == expected_wal
        assert _rows(cluster, "b")[0][0] == 800
        assert cluster.check() == []
    wal = next(p for p in ro.rglob("wal") if scan_file(p).frames)
    assert scan_file(wal).good_end > HEADER_SIZE


def test_a_log_the_catalog_lost_proves_the_catalog_wal_lost_commits(tmp_path):
    """Without the commit mark (clusters made before it), a database log holding
    transactions that the catalog does not know is the proof."""
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        cluster.sql("CREATE DATABASE a")
        cluster.sql("CREATE DATABASE b")
        cluster.database("b").sql("CREATE TABLE t (x INT)")
    wal = data / "logs" / "catalog" / "wal"
    (data / "logs" / "catalog" / "committed").unlink()
    frames = scan_file(wal).frames
    cut = wal.read_bytes()[: frames[-1].offset]
    wal.write_bytes(cut)  # CREATE DATABASE b, cut cleanly at a frame boundary
    with pytest.raises(CorruptionError, match=f"{wal}.*no database in the catalog owns"):
        Cluster.open(data)
    from click.testing import CliRunner

    from asof.queryapi.cli import main

    result = CliRunner().invoke(main, ["--data", str(data), "check"])
    assert result.exit_code == 1 and str(wal) in result.output
    assert wal.read_bytes() == cut  # nothing was cut or repaired
