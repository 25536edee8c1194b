"""cluster.diff: row-id matching over shared history, value matching otherwise, schemas."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asof import Cluster, ProgrammingError
from support import head_ts, seed, tick


def test_seed_clone_against_production(cluster):
    db, ts = seed(cluster)
    cluster.clone("production_db", "c", as_of=ts)
    c = cluster.database("c")
    d = cluster.diff(c, db)
    assert set(d.tables) == {"t1", "t2"}
    assert d.tables["t1"].schema_changes[0].kind == "table_only_in_a"
    assert d.tables["t1"].only_in_a.num_rows == 5
    t2 = d.tables["t2"]
    assert t2.matched_by == "row_id"
    assert (t2.only_in_a.num_rows, t2.only_in_b.num_rows, t2.changed.num_rows) == (0, 2, 0)
    assert "t2: 0 only in a, 2 only in b, 0 changed" in d.summary()
    assert cluster.diff(db, db).is_empty


def test_changed_rows_and_schema_changes(cluster):
    db, _ = seed(cluster)
    before = head_ts(db)
    tick()
    db.sql("UPDATE t2 SET c1 = 'x' WHERE key <= 2")
    db.sql("ALTER TABLE t2 ADD COLUMN extra INT")
    d = cluster.diff(db.as_of(before), db, table="t2")
    t2 = d.tables["t2"]
    assert [c.kind for c in t2.schema_changes] == ["column_added"]
    assert t2.changed.num_rows == 7  # every row gained a column
    changed = {r["new_key"]: r for r in t2.changed.to_pylist()}
    assert changed[1]["new_c1"] == "x" and changed[1]["old_c1"] != "x"
    assert "old_extra" not in t2.changed.column_names
    with pytest.raises(ProgrammingError):
        cluster.diff(db, db, table="nope")
    with pytest.raises(ProgrammingError):
        cluster.diff(db, 42)
    by_name = cluster.diff("production_db", db)  # a name reads that database's live state
    assert by_name.tables == {} or all(
        t.only_in_a.num_rows == t.only_in_b.num_rows == t.changed.num_rows == 0
        for t in by_name.tables.values()
    )


def test_unrelated_databases_match_by_value(cluster):
    for name in ("a", "b"):
        cluster.sql(f"CREATE DATABASE {name}")
        cluster.database(name).sql("CREATE TABLE t (k INT, v TEXT)")
    cluster.database("a").sql("INSERT INTO t VALUES (1, 'x'), (1, 'x'), (2, 'y')")
    cluster.database("b").sql("INSERT INTO t VALUES (1, 'x'), (3, 'z')")
    d = cluster.diff(cluster.database("a"), cluster.database("b"))
    t = d.tables["t"]
    assert t.matched_by == "value" and t.changed.num_rows == 0
    assert sorted(r[1:] for r in _tuples(t.only_in_a)) == [(1, "x"), (2, "y")]
    assert [r[1:] for r in _tuples(t.only_in_b)] == [(3, "z")]


def test_rows_inserted_on_both_sides_after_a_clone_are_not_paired(cluster):
    db, ts = seed(cluster)
    cluster.clone("production_db", "c")
    c = cluster.database("c")
    db.sql("INSERT INTO t2 VALUES (100, 'prod')")
    c.sql("INSERT INTO t2 VALUES (100, 'clone')")
    t2 = cluster.diff(db, c).tables["t2"]
    assert t2.changed.num_rows == 0
    assert [r[1:] for r in _tuples(t2.only_in_a)] == [(100, "prod")]
    assert [r[1:] for r in _tuples(t2.only_in_b)] == [(100, "clone")]


def _tuples(table):
    return [tuple(r.values()) for r in table.to_pylist()]


def apply_diff(rows_a: list[tuple], table_diff, columns: list[str]) -> Counter:
    """a's rows (k, v) with the diff applied: remove only_in_a and old values, add the rest."""
    state = Counter(rows_a)
    for r in table_diff.only_in_a.to_pylist():
        state[tuple(r[c] for c in columns)] -= 1
    for r in table_diff.changed.to_pylist():
        state[tuple(r["old_" + c] for c in columns)] -= 1
        state[tuple(r["new_" + c] for c in columns)] += 1
    for r in table_diff.only_in_b.to_pylist():
        state[tuple(r[c] for c in columns)] += 1
    return +state


ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "delete"]),
        st.integers(0, 6),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=12,
)


def run(db, op, k, v):
    if op == "insert":
        db.sql("INSERT INTO t VALUES (?, ?)", [k, v])
    elif op == "update":
        db.sql("UPDATE t SET v = ? WHERE k = ?", [v, k])
    else:
        db.sql("DELETE FROM t WHERE k = ?", [k])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=ops, on_source=ops, on_clone=ops)
def test_diff_applied_to_a_gives_b(first, on_source, on_clone):
    with Cluster.open(None) as cluster:
        cluster.sql("CREATE DATABASE s")
        db = cluster.database("s")
        db.sql("CREATE TABLE t (k INT, v INT)")
        for step in first:
            run(db, *step)
        mark = head_ts(db)
        tick()
        cluster.clone("s", "c", as_of=mark)
        c = cluster.database("c")
        for step in on_source:
            run(db, *step)
        for step in on_clone:
            run(c, *step)
        for a, b in ((db.as_of(mark), db), (c, db), (db, c)):
            rows_a = a.sql("SELECT k, v FROM t").fetchall()
            rows_b = Counter(b.sql("SELECT k, v FROM t").fetchall())
            d = cluster.diff(a, b)
            td = d.tables.get("t")
            if td is None:
                assert Counter(rows_a) == rows_b
            else:
                assert apply_diff(rows_a, td, ["k", "v"]) == rows_b
