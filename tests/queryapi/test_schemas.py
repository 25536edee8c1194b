"""Schemas: tables in them read right through every handle kind, and forensics name them."""

from __future__ import annotations

import duckdb
import pytest

from asof import Cluster, NotSupportedError, ProgrammingError
from support import head_ts, tick


def _sales(cluster: Cluster):
    db = cluster.create_database("shop")
    db.sql("CREATE SCHEMA sales")
    db.sql("CREATE TABLE sales.orders (id INT PRIMARY KEY, amount INT)")
    db.sql("CREATE TABLE orders (id INT PRIMARY KEY, note TEXT)")  # same name, main
    db.sql("INSERT INTO sales.orders VALUES (1, 10), (2, 20)")
    db.sql("INSERT INTO orders VALUES (1, 'main')")
    db.sql("CREATE VIEW sales.total AS SELECT sum(amount) AS s FROM sales.orders")
    tick()
    return db


def test_as_of_reads_a_schema_table_at_its_past_state(disk_cluster):
    db = _sales(disk_cluster)
    before = head_ts(db)
    tick()
    db.sql("UPDATE sales.orders SET amount = 99 WHERE id = 1")
    db.sql("INSERT INTO sales.orders VALUES (3, 30)")
    db.sql("UPDATE orders SET note = 'changed'")
    for _ in range(2):  # the first handle and a later one (pooled paths)
        past = db.as_of(before)
        assert past.sql("SELECT * FROM sales.orders ORDER BY id").fetchall() == [(1, 10), (2, 20)]
        assert past.sql("SELECT s FROM sales.total").fetchall() == [(30,)]
        assert past.sql("SELECT note FROM orders").fetchall() == [("main",)]
        assert past.sql("SELECT note FROM main.orders").fetchall() == [("main",)]
        assert sorted(past.tables()) == ["orders", "sales.orders"]
        past.close()
    assert db.sql("SELECT sum(amount) FROM sales.orders").fetchall() == [(149,)]


def test_clones_and_reopen_keep_schemas_apart(tmp_path):
    cluster = Cluster.open(tmp_path / "data")
    db = _sales(cluster)
    cluster.checkpoint("shop")
    cluster.clone("shop", "copy")
    copy = cluster.database("copy")
    copy.sql("INSERT INTO sales.orders VALUES (7, 70)")
    copy.sql("CREATE SCHEMA only_here")
    copy.sql("CREATE TABLE only_here.t AS SELECT 1 AS x")
    assert db.sql("SELECT count(*) FROM sales.orders").fetchall() == [(2,)]
    with pytest.raises(ProgrammingError, match="does not exist"):
        db.sql("SELECT * FROM only_here.t")
    cluster.close()
    cluster = Cluster.open(tmp_path / "data")
    copy = cluster.database("copy")
    assert copy.sql("SELECT sum(amount) FROM sales.orders").fetchall() == [(100,)]
    assert copy.sql("SELECT x FROM only_here.t").fetchall() == [(1,)]
    assert cluster.check(deep=True) == []
    cluster.close()


def test_forensics_name_schema_tables_schema_dot_name(cluster):
    db = _sales(cluster)
    before = head_ts(db)
    tick()
    db.sql("DELETE FROM sales.orders WHERE id = 2")
    history = db.history("sales.orders")
    assert history.num_rows == 3  # two inserts and the delete
    assert db.history("orders").num_rows == 1
    result = cluster.restore_table(db.as_of(before), "sales.orders", db, mode="upsert", key="id")
    assert result.inserted == 1
    assert db.sql("SELECT * FROM sales.orders ORDER BY id").fetchall() == [(1, 10), (2, 20)]
    db.sql("DROP TABLE sales.orders")
    assert cluster.undrop_table(db, "sales.orders").inserted == 2
    assert db.sql("SELECT count(*) FROM sales.orders").fetchall() == [(2,)]
    cluster.clone("shop", "twin")
    cluster.database("twin").sql("UPDATE sales.orders SET amount = 0 WHERE id = 1")
    diff = cluster.diff("shop", "twin")
    assert "sales.orders" in str(diff)
    assert cluster.check(deep=True) == []


def test_cascade_drops_the_tables_duckdb_drops_and_the_log_says_so(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE SCHEMA s")
    db.sql("CREATE SEQUENCE s.ids")
    db.sql("CREATE TABLE uses_it (i BIGINT DEFAULT nextval('s.ids'), v INT)")
    db.sql("CREATE TABLE s.inside (v INT)")
    db.sql("CREATE TABLE keeps (v INT)")
    db.sql("INSERT INTO uses_it (v) VALUES (1), (2)")
    db.sql("INSERT INTO s.inside VALUES (3)")
    db.sql("INSERT INTO keeps VALUES (4)")
    disk_cluster.checkpoint("d")  # a clone then reads these tables from the checkpoint
    disk_cluster.clone("d", "c")
    clone = disk_cluster.database("c")
    clone.sql("DROP SCHEMA s CASCADE")
    assert clone.tables() == ["keeps"]
    assert db.tables() == ["keeps", "s.inside", "uses_it"]
    db.sql("DROP SEQUENCE s.ids CASCADE")
    assert db.tables() == ["keeps", "s.inside"]
    dropped = [e.data for t in clone.transactions() for e in t.events if e.kind == "drop_table"]
    assert {d["name"] for d in dropped} == {"uses_it", "inside"}
    assert disk_cluster.check(deep=True) == []
    disk_cluster.clone("c", "c2")
    assert disk_cluster.database("c2").tables() == ["keeps"]


def test_schema_names_that_are_refused(cluster):
    db = cluster.create_database("d")
    for sql in (
        "CREATE SCHEMA _asof_x",
        'CREATE SCHEMA "_ASOF"',
        "CREATE TABLE pg_catalog.t (i INT)",
        "CREATE VIEW information_schema.v AS SELECT 1",
        "DROP SCHEMA main",
        "DROP SCHEMA _asof CASCADE",
    ):
        with pytest.raises((ProgrammingError, NotSupportedError)):
            db.sql(sql)
    db.sql("CREATE SCHEMA s")
    with pytest.raises(NotSupportedError):  # a view reads only this database's schemas
        db.sql("CREATE VIEW s.v AS SELECT * FROM _asof.tables")
    assert db.sql("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 's'").fetchall() == [
        (1,)
    ]


def test_a_projection_from_before_schemas_is_rebuilt(tmp_path):
    cluster = Cluster.open(tmp_path / "data")
    db = cluster.create_database("d")
    db.sql("CREATE TABLE t (i INT)")
    db.sql("INSERT INTO t VALUES (1), (2)")
    db_id = db._rt.db_id
    cluster.close()
    con = duckdb.connect(str(tmp_path / "data" / "projections" / f"{db_id}.duckdb"))
    con.execute("ALTER TABLE _asof.tables DROP COLUMN schema_name")
    con.close()
    cluster = Cluster.open(tmp_path / "data")
    db = cluster.database("d")
    db.sql("CREATE SCHEMA s")
    db.sql("CREATE TABLE s.t AS SELECT * FROM t")
    assert db.sql("SELECT count(*) FROM s.t").fetchall() == [(2,)]
    assert cluster.check(deep=True) == []
    cluster.close()


def test_a_sequence_owned_by_a_table_goes_with_it_and_takes_it_with_cascade(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE SEQUENCE s1")
    db.sql("CREATE TABLE owner (i INT)")
    db.sql("INSERT INTO owner VALUES (1)")
    db.sql("ALTER SEQUENCE s1 OWNED BY owner")
    db.sql("DROP SEQUENCE s1 CASCADE")
    assert db.tables() == []
    db.sql("CREATE TABLE owner (j TEXT)")  # the name is free again
    db.sql("CREATE SEQUENCE s2")
    db.sql("ALTER SEQUENCE s2 OWNED BY owner")
    db.sql("DROP TABLE owner")
    with pytest.raises(ProgrammingError, match="does not exist"):
        db.sql("SELECT nextval('s2')")
    disk_cluster.clone("d", "c")
    assert disk_cluster.database("c").tables() == []
    assert disk_cluster.check(deep=True) == []


def test_a_search_path_resolves_names_as_duckdb_does_and_replays_the_same(disk_cluster):
    db = disk_cluster.create_database("d")
    db.sql("CREATE SCHEMA app")
    db.sql("CREATE TABLE shared (i INT)")  # in main, still found through the path
    db.sql("SET schema = 'app'")
    db.sql("CREATE SEQUENCE ids")
    db.sql("CREATE TABLE items (id BIGINT DEFAULT nextval('ids'), name TEXT)")
    db.sql("INSERT INTO items (name) VALUES ('a'), ('b')")
    db.sql("INSERT INTO shared VALUES (1)")
    db.sql("CREATE VIEW named AS SELECT name FROM items")
    assert db.tables() == ["app.items", "shared"]
    other = disk_cluster.database("d")  # another session: names mean main there
    with pytest.raises(ProgrammingError, match="does not exist"):
        other.sql("SELECT * FROM items")
    other.sql("INSERT INTO app.items (name) VALUES ('c')")  # the default still finds app.ids
    assert other.sql("SELECT id FROM app.items ORDER BY id").fetchall() == [(1,), (2,), (3,)]
    db.sql("USE main")
    with pytest.raises(ProgrammingError, match="does not exist"):
        db.sql("SELECT * FROM items")
    db.sql("USE d.app")
    assert db.sql("SELECT count(*) FROM named").fetchall() == [(3,)]
    for refused in ("SET search_path = '_asof'", "USE elsewhere", "SET schema = 'memory.main'"):
        with pytest.raises(NotSupportedError):
            db.sql(refused)
    with pytest.raises(ProgrammingError, match="No catalog"):
        db.sql("SET search_path = 'missing'")
    disk_cluster.checkpoint("d")
    disk_cluster.clone("d", "c")
    clone = disk_cluster.database("c")
    assert clone.sql("SELECT * FROM app.named ORDER BY name").fetchall() == [("a",), ("b",), ("c",)]
    clone.sql("INSERT INTO app.items (name) VALUES ('d')")
    assert clone.sql("SELECT max(id) FROM app.items").fetchall() == [(4,)]
    assert disk_cluster.check(deep=True) == []
