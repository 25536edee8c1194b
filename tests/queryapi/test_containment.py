"""Statements that would leave the database are refused unless the cluster allows them."""

from __future__ import annotations

import pytest

from asof import AsofError, Cluster, NotSupportedError
from support import head_ts

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


# ------------------------------------------------------------------------------------------
# User SQL reaches only the user's own objects, on every kind of handle (tests/queryapi/
# hostile.py builds the cluster and the handles). Each statement is refused with an asof
# error and changes nothing, or (only where noted) runs with every change in the log.

from hostile import HANDLE_KINDS, WRITABLE, Target, attempt, build, handle  # noqa: E402

#: asof's row id sequence, spelled every way DuckDB resolves to it.
INTERNAL_SEQUENCE = [
    "SELECT setval('_asof.rid', 1)",
    "SELECT nextval('_asof.rid')",
    "SELECT \"nextval\"('_asof.rid')",
    "select NEXTVAL('_ASOF.RID')",
    'SELECT nextval(\'"_asof"."rid"\')',
    "SELECT /* hi */ setval (\n '_asof.rid' , 1 ) -- bye",
    "SELECT system.main.setval('_asof.rid', 1)",
    "SELECT currval('_asof.rid')",
    "SELECT * FROM (SELECT 1 AS one, (SELECT setval('_asof.rid', 1)) AS x)",
    "WITH x AS (SELECT setval('_asof.rid', 1) AS y) SELECT * FROM x",
    "WITH x AS MATERIALIZED (SELECT setval('_asof.rid', 1) AS y) SELECT * FROM x",
    "SELECT * FROM query('SELECT setval(''_asof.rid'', 1)')",
    "SELECT * FROM query_table('t') WHERE setval('_asof.rid', 1) > 0",
    "SELECT k FROM t WHERE k = (SELECT setval('_asof.rid', 1))",
    "SELECT CASE WHEN false THEN setval('_asof.rid', 1) END",
    "EXPLAIN ANALYZE SELECT setval('_asof.rid', 1)",
    "INSERT INTO t SELECT setval('_asof.rid', 1), 0",
    "UPDATE t SET v = setval('_asof.rid', 1)",
    "DELETE FROM t WHERE setval('_asof.rid', 1) > 0",
    "CREATE TABLE z AS SELECT setval('_asof.rid', 1) AS x",
    "CREATE TABLE z (x BIGINT DEFAULT setval('_asof.rid', 1))",
    "CREATE TABLE z (x BIGINT CHECK (setval('_asof.rid', 1) > 0))",
    "ALTER TABLE t ADD COLUMN z BIGINT DEFAULT setval('_asof.rid', 1)",
    "CREATE MATERIALIZED VIEW z AS SELECT setval('_asof.rid', 1) AS x",
]

#: The internal schema and its objects.
INTERNAL_SCHEMA = [
    "UPDATE _asof.state SET applied_txn = 0",
    'DELETE FROM "_ASOF"."TABLES"',
    "INSERT INTO _asof.tables VALUES (99, 'x', 1, 'table', NULL)",
    "TRUNCATE _asof.state",
    "DROP TABLE _asof.t1",
    "DROP SEQUENCE _asof.rid",
    'DROP SEQUENCE "_asof"."rid"',
    "DROP MACRO _asof.versions_since",
    "CREATE OR REPLACE MACRO _asof.versions_since() AS 0",
    "CREATE VIEW _asof.v AS SELECT 1",
    "CREATE SEQUENCE _asof.s2",
    "ALTER VIEW _asof.v RENAME TO w",
    "ALTER SEQUENCE _asof.rid OWNED BY t.k",
    "ALTER TABLE _asof.t1 ADD COLUMN z INT",
    "CREATE INDEX i ON _asof.t1 (k)",
    "CREATE TABLE memory.main.z (x INT)",
    "CREATE SCHEMA _asof_mine",
    'CREATE SCHEMA "_ASOF2"',
    "CREATE TABLE information_schema.z (x INT)",
    "CREATE VIEW pg_catalog.z AS SELECT 1",
    "CREATE TABLE temp.main.z (x INT)",
    "DROP SCHEMA _asof CASCADE",
    "DROP SCHEMA main CASCADE",
]

#: Macros named like the built-ins asof's own SQL calls.
SHADOWING = [
    "CREATE MACRO getvariable(x) AS 42",
    'CREATE MACRO "NextVal"(x) AS 7',
    "CREATE OR REPLACE MACRO current_database() AS 'elsewhere'",
    "CREATE MACRO range(n) AS TABLE SELECT 1 AS range",
    "CREATE FUNCTION setval(a, b) AS 1",
    "CREATE MACRO main.duckdb_sequences() AS TABLE SELECT 1",
]

#: Other databases, the checkpoint directory, settings, files.
OUTSIDE = [
    "SELECT * FROM duckdb_databases()",
    "SELECT database_name, path FROM duckdb_databases()",
    "SELECT current_setting('allowed_directories')",
    "SELECT setseed(0.5)",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM read_blob('{ckpt}/*')",
    "SELECT * FROM read_text('{ckpt}/*')",
    "SELECT * FROM glob('{ckpt}/*')",
    "SELECT * FROM read_duckdb('{ckpt}/x.duckdb')",
    "SELECT * FROM query_table('{ckpt}/x.duckdb')",
    "SELECT * FROM pragma_database_size()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM checkpoint()",
    "SELECT * FROM b.main.b_secret",
    "SELECT * FROM b_secret",
    "ATTACH '{ckpt}/x.duckdb' AS x",
    "DETACH _asof_state_1",
    "USE _asof_state_1",
    "SET search_path = '_asof'",
    "RESET allowed_directories",
    "PRAGMA database_list",
]

#: Objects that would break what asof keeps track of.
BREAKING = [
    'CREATE TABLE "_rid" (x INT)',
    "CREATE TABLE _ASOF_FROM (x INT)",
    "CREATE TABLE excluded (x INT)",
    "CREATE VIEW _asof_rel_0 AS SELECT 1",
    "ALTER TABLE t RENAME TO excluded",
    "PREPARE p AS SELECT setval('_asof.rid', 1)",
]

#: CHECK constraints that would judge a row differently when the log is replayed (a
#: clone, a rebuild): one that moves a sequence moves it again on every replay.
UNREPEATABLE_CHECKS = [
    "CREATE TABLE z (x BIGINT CHECK (nextval('s') IS NOT NULL))",
    "CREATE OR REPLACE TABLE z (x BIGINT CHECK (\"NEXTVAL\"('s') > 0))",
    "CREATE TABLE z (x BIGINT CHECK (currval('s') > 0))",
    "CREATE TABLE z (x BIGINT CHECK (setval('s', 5) > 0))",
    "CREATE TABLE z (x DOUBLE CHECK (x < random()))",
    "CREATE TABLE z (x TIMESTAMP CHECK (x < now()))",
    "CREATE TABLE z (x TEXT CHECK (x <> current_database()))",
    "CREATE TABLE z (x UUID CHECK (x <> gen_random_uuid()))",
]

#: Definitions the log keeps over asof's internal tables: clones and rebuilds lay those out
#: differently, so the log would stop replaying.
INTERNAL_DEFINITIONS = [
    "CREATE VIEW z AS SELECT * FROM _asof.h1",
    'CREATE OR REPLACE VIEW z AS SELECT * FROM "_ASOF"."STATE"',
    "CREATE VIEW z AS SELECT * FROM t WHERE k IN (SELECT 1 FROM _asof.tables)",
    "CREATE VIEW z AS SELECT * FROM query('SELECT * FROM _asof.t1')",
    "CREATE VIEW z AS SELECT * FROM query_table('_asof.t1')",
    "CREATE VIEW z AS WITH c AS (SELECT * FROM _asof.t1) SELECT * FROM c",
    "CREATE MACRO z() AS TABLE SELECT * FROM _asof.h1",
    "CREATE MACRO z() AS (SELECT count(*) FROM _asof.state)",
    "CREATE MATERIALIZED VIEW z AS SELECT * FROM _asof.t1",
    "CREATE VIEW z AS SELECT * FROM b.main.b_secret",
    # refused for a reserved column only after the query had moved a sequence
    "CREATE OR REPLACE TABLE z AS SELECT setval('s', 1) AS x, * FROM _asof.t1",
    "CREATE TABLE z AS SELECT nextval('s') AS _rid",
    "CREATE MATERIALIZED VIEW z AS SELECT nextval('s') AS _asof_from",
]

CLASSES = (
    INTERNAL_SEQUENCE,
    INTERNAL_SCHEMA,
    SHADOWING,
    OUTSIDE,
    BREAKING,
    UNREPEATABLE_CHECKS,
    INTERNAL_DEFINITIONS,
)
REFUSED = [sql for group in CLASSES for sql in group]
#: The default run: every statement on the live handle, and a few of each class on every
#: kind of handle; the whole product is a slow test.
QUICK = [(sql, "live") for sql in REFUSED] + [
    (sql, kind) for group in CLASSES for sql in group[:3] for kind in HANDLE_KINDS[1:]
]


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Target:
    t = build(tmp_path_factory.mktemp("hostile") / "data")
    yield t
    t.cluster.close()


@pytest.mark.parametrize(("sql", "kind"), QUICK)
def test_hostile_statements_are_refused_and_change_nothing(target, kind, sql):
    _refused(target, kind, sql)


@pytest.mark.slow
@pytest.mark.parametrize("kind", HANDLE_KINDS[1:])
@pytest.mark.parametrize("sql", REFUSED)
def test_every_hostile_statement_on_every_handle(target, kind, sql):
    _refused(target, kind, sql)


def _refused(target: Target, kind: str, sql: str) -> None:
    text = sql.format(ckpt=target.checkpoints())
    with handle(target, kind) as db:
        outcome = attempt(target, db, lambda: db.sql(text), writable=kind in WRITABLE)
    assert outcome == "refused", f"{text!r} ran on a {kind} handle"


#: Reads that move the user's own sequences: logged on writable handles, refused on
#: read-only ones; never a move the log does not hold.
SEQUENCE_MOVES = [
    ("SELECT nextval('s')", None),
    ("SELECT \"NEXTVAL\"('S')", None),
    ("SELECT setval('s', 1000)", None),
    ("SELECT setval('s', 3)", None),  # back: a clone must not hand 4.. out a second time
    ("SELECT * FROM query('SELECT nextval(''s'')')", None),
    ("SELECT nextval(?)", ["s"]),
    ("SELECT x FROM (SELECT nextval('s') AS x) WHERE x > 0", None),
    ("WITH n AS (SELECT nextval('s') AS x) SELECT * FROM n", None),
    ("SELECT max(nextval('s')) FROM range(3)", None),
]


MOVES_QUICK = [(sql, params, "live") for sql, params in SEQUENCE_MOVES] + [
    (sql, params, kind) for sql, params in SEQUENCE_MOVES[2:5] for kind in HANDLE_KINDS[1:]
]


@pytest.mark.parametrize(("sql", "params", "kind"), MOVES_QUICK)
def test_a_read_that_moves_a_sequence_is_logged_or_refused(target, kind, sql, params):
    _moves(target, kind, sql, params)


@pytest.mark.slow
@pytest.mark.parametrize("kind", HANDLE_KINDS[1:])
@pytest.mark.parametrize(("sql", "params"), SEQUENCE_MOVES)
def test_every_sequence_move_on_every_handle(target, kind, sql, params):
    _moves(target, kind, sql, params)


def _moves(target: Target, kind: str, sql: str, params) -> None:
    with handle(target, kind) as db:
        writable = kind in WRITABLE
        outcome = attempt(target, db, lambda: db.sql(sql, params), writable=writable)
    assert outcome == ("ran" if writable else "refused")


def test_views_and_macros_that_wrap_nextval(target):
    db = target.a
    db.sql("CREATE OR REPLACE VIEW moves AS SELECT nextval('s') AS n")
    db.sql("CREATE OR REPLACE MACRO bump() AS nextval('s')")
    db.sql("CREATE OR REPLACE MACRO reset_rid() AS setval('_asof.rid', 1)")
    db.sql("CREATE OR REPLACE VIEW resets AS SELECT setval('_asof.rid', 1) AS n")
    for sql in ("SELECT * FROM moves", "SELECT bump()", "SELECT * FROM (SELECT bump())"):
        assert attempt(target, db, lambda sql=sql: db.sql(sql), writable=True) == "ran"
    for kind in ("as_of_now", "fresh_clone", "read_only"):
        with handle(target, kind) as h:
            for sql in ("SELECT * FROM moves", "SELECT bump()", "SELECT reset_rid()"):
                run = lambda h=h, sql=sql: h.sql(sql)  # noqa: E731
                logged = kind in WRITABLE and "reset" not in sql
                expected = "ran" if logged else "refused"
                assert attempt(target, h, run, writable=kind in WRITABLE) == expected
    for sql in (
        "SELECT reset_rid()",
        "SELECT * FROM resets",
        "INSERT INTO t SELECT reset_rid(), 1",
    ):
        assert attempt(target, db, lambda sql=sql: db.sql(sql), writable=True) == "refused"
    # A CHECK that calls a macro, then the macro replaced by one that sets the row ids back.
    db.sql("CREATE OR REPLACE MACRO positive(x) AS x > 0")
    db.sql("CREATE TABLE guarded (x INT CHECK (positive(x)))")
    replace = lambda: db.sql("CREATE OR REPLACE MACRO positive(x) AS setval('_asof.rid', 1) > 0")  # noqa: E731
    assert attempt(target, db, replace, writable=True) == "refused"
    db.sql("INSERT INTO guarded VALUES (1)")
    assert target.cluster.check("a", deep=True) == []


def test_a_check_gives_the_same_answer_on_replay(target):
    """A CHECK runs again whenever its rows are replayed from the log; one that called a
    sequence, a random or the moment would move the sequence twice or reject the row."""
    db = target.a
    db.sql("CREATE OR REPLACE MACRO small(x) AS x < 1000")
    db.sql("CREATE TABLE judged (x INT CHECK (small(x)))")
    for body in ("x < nextval('s')", "x < random() * 2000", "now() IS NOT NULL"):
        swap = lambda body=body: db.sql(f"CREATE OR REPLACE MACRO small(x) AS {body}")  # noqa: E731
        assert attempt(target, db, swap, writable=True) == "refused"
    insert = lambda: db.sql("INSERT INTO judged VALUES (1), (2)")  # noqa: E731
    assert attempt(target, db, insert, writable=True) == "ran"  # and a rebuild agrees
    assert target.cluster.check("a", deep=True) == []


def test_a_database_sees_only_itself(target):
    """Catalog listings on every handle name nothing of database b, and hosted handles
    (AS OF states built in the state host, an unwritten clone) have b nowhere in reach."""
    listings = [
        "SELECT DISTINCT database_name FROM duckdb_tables()",
        "SELECT DISTINCT database_name FROM duckdb_columns()",
        "SELECT table_catalog, table_name FROM information_schema.tables",
        "SHOW ALL TABLES",
    ]
    secret_names = {"b_secret", target.secret, str(target.path)}
    for kind in HANDLE_KINDS:
        with handle(target, kind) as db:
            for sql in listings:
                text = repr(db.sql(sql).fetchall())
                assert not any(name in text for name in secret_names), (kind, sql, text)


def test_state_hosts_are_per_database(target):
    """Built states of different databases never share a DuckDB instance."""
    a, b = target.a, target.b
    with a.as_of(target.ts_built, rebuild=True) as ha, b.as_of(head_ts(b), rebuild=True) as hb:
        cat_a = ha.sql("SELECT current_database()").fetchall()[0][0]
        cat_b = hb.sql("SELECT current_database()").fetchall()[0][0]
        listed_a = {r[0] for r in ha.sql("SELECT database_name FROM duckdb_schemas()").fetchall()}
        assert cat_b not in listed_a or cat_b == cat_a
        with pytest.raises(AsofError):
            ha.sql("SELECT * FROM b_secret")


def test_refusals_name_the_statement_as_written(target):
    db = target.a
    with pytest.raises(NotSupportedError, match="^USE other is refused"):
        db.sql("USE other")
    for sql, verb in [("RESET memory_limit", "RESET"), ("SET memory_limit = '1GB'", "SET")]:
        with pytest.raises(NotSupportedError, match=f"^{verb} memory_limit is refused"):
            db.sql(sql)
    with target.a.as_of(target.ts_versions) as h:
        with pytest.raises(AsofError, match="^USE is not allowed"):
            h.sql("USE other")


def test_sequence_set_back_replays_exactly(target):
    db = target.a
    db.sql("CREATE SEQUENCE back")
    db.sql("SELECT nextval('back') FROM range(10)")
    db.sql("SELECT setval('back', 2)")
    assert db.sql("SELECT nextval('back')").fetchall() == [(3,)]
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        assert rebuilt.sql("SELECT currval('back')").fetchall() == [(3,)]
    target.cluster.clone("a", "back_clone")
    assert target.cluster.database("back_clone").sql("SELECT nextval('back')").fetchall() == [(4,)]


def test_the_cli_shell_is_contained(tmp_path):
    from click.testing import CliRunner

    from asof.queryapi.cli import main

    t = build(tmp_path / "data")
    before = t.snapshot(t.a)
    t.cluster.close()
    runner = CliRunner()
    for sql in INTERNAL_SEQUENCE[:8] + OUTSIDE[:8] + ["SELECT * FROM b_secret"]:
        text = sql.format(ckpt=tmp_path / "data" / "checkpoints")
        result = runner.invoke(main, ["--data", str(tmp_path / "data"), "sql", "a", "-c", text])
        assert result.exit_code != 0, (text, result.output)
        assert "Traceback" not in result.output
    shell = runner.invoke(
        main,
        ["--data", str(tmp_path / "data"), "sql", "a"],
        input="SELECT setval('_asof.rid', 1);\nSELECT * FROM duckdb_databases();\n\\q\n",
    )
    assert "internal to asof" in shell.output and "duckdb_databases" in shell.output
    with Cluster.open(tmp_path / "data") as cluster:
        t.cluster = cluster
        assert t.snapshot(t.a) == before


#: Parameters name what the text does not: checked with their values bound.
PARAMETERIZED = [
    ("SELECT setval(?, 1)", ["_asof.rid"]),
    ("SELECT nextval(?)", ["_asof.rid"]),
    ("SELECT nextval($1)", ["_ASOF.RID"]),
    ("SELECT setval($seq, $v)", {"seq": "_asof.rid", "v": 1}),
    ("SELECT nextval(?::VARCHAR || '')", ["_asof.rid"]),
    ("SELECT * FROM query(?)", ["SELECT setval('_asof.rid', 1)"]),
    ("SELECT * FROM query_table(?)", ["b.main.b_secret"]),
    ("SELECT * FROM read_blob(?)", ["{ckpt}/*"]),
    ("UPDATE t SET v = setval(?, ?) WHERE k = ?", ["_asof.rid", 1, 1]),
    ("INSERT INTO t SELECT nextval(?), ?", ["_asof.rid", 0]),
]


@pytest.mark.parametrize("kind", ["live", "as_of_versions", "fresh_clone"])
@pytest.mark.parametrize(("sql", "params"), PARAMETERIZED)
def test_parameters_are_checked_with_their_values(target, kind, sql, params):
    if isinstance(params, list):
        params = [p.format(ckpt=target.checkpoints()) if isinstance(p, str) else p for p in params]
    with handle(target, kind) as db:
        run = lambda: db.sql(sql, params)  # noqa: E731
        assert attempt(target, db, run, writable=kind in WRITABLE) == "refused"
    # The same text with a harmless value still runs, and its verdict is not reused.
    if sql == "SELECT nextval(?)":
        assert attempt(target, target.a, lambda: target.a.sql(sql, ["s"]), writable=True) == "ran"
        again = lambda: target.a.sql(sql, ["_asof.rid"])  # noqa: E731
        assert attempt(target, target.a, again, writable=True) == "refused"
