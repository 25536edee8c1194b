"""ADD COLUMN with a volatile default fills existing rows as DuckDB does, and logs them."""

from __future__ import annotations

import duckdb
import pytest

from asof import NotSupportedError, ProgrammingError
from support import head_ts, user_state

SETUP = "CREATE TABLE t (i INTEGER); INSERT INTO t VALUES (1), (2), (3); CREATE SEQUENCE seq"
STEPS = [
    "ALTER TABLE t ADD COLUMN m INTEGER DEFAULT nextval('seq')",
    "ALTER TABLE t ADD n BIGINT DEFAULT currval('seq') * 10",
    "ALTER TABLE t ADD COLUMN IF NOT EXISTS m INTEGER DEFAULT nextval('seq')",
    "INSERT INTO t (i) VALUES (4)",
]


@pytest.fixture
def db(cluster):
    cluster.sql("CREATE DATABASE d")
    d = cluster.database("d")
    d.sql(SETUP)
    return d


def test_matches_duckdb_and_the_log(cluster, db):
    ref = duckdb.connect()
    ref.execute(SETUP)
    for sql in STEPS:
        db.sql(sql)
        ref.execute(sql)
    query = "SELECT * FROM t ORDER BY i"
    assert db.sql(query).fetchall() == ref.execute(query).fetchall()
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert user_state(rebuilt)["tables"] == user_state(db)["tables"]
    cluster.clone("d", "c")
    assert user_state(cluster.database("c"))["tables"] == user_state(db)["tables"]


def test_random_defaults_are_logged_as_drawn(cluster, db):
    db.sql("ALTER TABLE t ADD COLUMN r DOUBLE DEFAULT random()")
    live = db.sql("SELECT i, r FROM t ORDER BY i").fetchall()
    assert len({r for _, r in live}) == 3
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert rebuilt.sql("SELECT i, r FROM t ORDER BY i").fetchall() == live


def test_a_failure_changes_nothing_and_says_so_plainly(db):
    before = user_state(db)
    with pytest.raises(ProgrammingError, match="nope") as err:
        db.sql("ALTER TABLE t ADD COLUMN bad INTEGER DEFAULT nextval('nope')")
    assert "ROLLBACK" not in str(err.value)
    assert user_state(db) == before
    db.sql("INSERT INTO t VALUES (9)")  # no transaction was left open
    assert db.sql("SELECT count(*) FROM t").fetchall() == [(4,)]


def test_inside_a_transaction_it_rolls_back_with_it(db):
    before = user_state(db)
    db.sql("BEGIN")
    db.sql("ALTER TABLE t ADD COLUMN m INTEGER DEFAULT nextval('seq')")
    db.sql("ROLLBACK")
    assert user_state(db)["tables"] == before["tables"]


def test_other_forms_are_refused_with_a_way_forward(db):
    with pytest.raises(NotSupportedError, match="add the column, then set its values"):
        db.sql("ALTER TABLE t ADD COLUMN z INTEGER DEFAULT nextval('seq') NOT NULL")
