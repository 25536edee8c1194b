"""Statements that would leave the database are refused unless the cluster allows them."""

from __future__ import annotations

import pytest

from asof import Cluster, NotSupportedError

WAYS_OUT = [
    "ATTACH '{tmp}/other.db' AS other",
    "COPY t TO '{tmp}/out.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "SELECT * FROM read_csv('{tmp}/in.csv')",
    "SELECT * FROM read_parquet('{tmp}/in.parquet')",
    "SELECT * FROM glob('{tmp}/*')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET enable_external_access",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "USE other",
    "SELECT * FROM read_text('/etc/hostname')",
]


@pytest.fixture
def sandbox(tmp_path):
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    return tmp_path


@pytest.mark.parametrize("template", WAYS_OUT)
def test_every_way_out_is_refused(sandbox, template):
    with Cluster.open(sandbox / "data") as cluster:
        cluster.sql("CREATE DATABASE d")
        db = cluster.database("d")
        db.sql("CREATE TABLE t (x INT); INSERT INTO t VALUES (1)")
        with pytest.raises(NotSupportedError, match="allow_external_access"):
            db.sql(template.format(tmp=sandbox))
        assert db.sql("SELECT * FROM t").fetchall() == [(1,)]
    assert not (sandbox / "out.csv").exists()
    assert not (sandbox / "export").exists()


def test_python_variables_are_not_visible_to_sql(cluster):
    import pyarrow as pa

    secret = pa.table({"x": [42]})  # noqa: F841  (DuckDB would find it by name)
    cluster.sql("CREATE DATABASE d")
    with pytest.raises(Exception, match="secret"):
        cluster.database("d").sql("SELECT * FROM secret")


def test_allowed_when_the_cluster_is_opened_for_it(sandbox):
    with Cluster.open(sandbox / "data", allow_external_access=True) as cluster:
        cluster.sql("CREATE DATABASE d")
        db = cluster.database("d")
        db.sql(f"CREATE TABLE t AS SELECT * FROM read_csv('{sandbox}/in.csv')")
        assert db.sql("SELECT a, b FROM t").fetchall() == [(1, 2)]
        db.sql(f"COPY t TO '{sandbox}/out.csv'")
        assert (sandbox / "out.csv").read_text().startswith("a,b")
        with pytest.raises(NotSupportedError, match="INSERT INTO t SELECT"):
            db.sql(f"COPY t FROM '{sandbox}/in.csv'")
        db.sql(f"INSERT INTO t SELECT * FROM read_csv('{sandbox}/in.csv')")
        assert db.sql("SELECT count(*) FROM t").fetchall() == [(2,)]
        rows = db.as_of(list(db.transactions())[-1].ts.physical).sql("SELECT * FROM t")
        assert rows.fetchall() == [(1, 2), (1, 2)]
