"""Generated hostile SQL: statement kinds x targets x spellings x wrappers.

Each generated statement either raises an asof error and changes nothing (rows, every
sequence, the row id sequence, the log's head, the other database), or succeeds touching
only the user's objects with every change in the log (a rebuild from the log and a fresh
clone equal the live state; `cluster.check(deep=True)` at the end).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hostile import HANDLE_KINDS, WRITABLE, Target, assert_logged, attempt, build, handle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Names that resolve to asof's internals, other databases, or files.
INTERNAL_SEQUENCES = ["_asof.rid", '"_asof"."rid"', "_ASOF.RID", "memory._asof.rid", "rid"]
USER_SEQUENCES = ["s", "S", "main.s", '"s"']
INTERNAL_TABLES = ["_asof.t1", "_asof.state", "_asof.tables", '"_ASOF"."STATE"', "_asof.h1"]
OTHER_CATALOGS = ["b", "_asof_state_1", "_asof_state_2", "system", "temp"]
FUNCTIONS = ["setval", "nextval", "currval", '"NEXTVAL"', "system.main.setval", "SetVal"]
FILE_FUNCTIONS = ["read_blob", "read_text", "glob", "read_csv", "read_duckdb", "read_parquet"]


def _seq_call(fn: str, seq: str) -> str:
    lit = "'" + seq.replace("'", "''") + "'"
    return f"{fn}({lit}, 1)" if fn.lower().endswith("setval") else f"{fn}({lit})"


@st.composite
def expressions(draw) -> str:
    """A scalar expression that tries to reach something."""
    kind = draw(st.sampled_from(["sequence", "setting", "plain"]))
    if kind == "sequence":
        seq = draw(st.sampled_from(INTERNAL_SEQUENCES + USER_SEQUENCES))
        return _seq_call(draw(st.sampled_from(FUNCTIONS)), seq)
    if kind == "setting":
        return draw(
            st.sampled_from(
                [
                    "current_setting('allowed_directories')",
                    "current_setting('enable_external_access')",
                    "getvariable('asof_txn')",
                    "current_database()",
                ]
            )
        )
    return draw(st.sampled_from(["1", "k", "v * 2", "length('x')"]))


@st.composite
def relations(draw, ckpt: str) -> str:
    """Something to read FROM."""
    kind = draw(st.sampled_from(["internal", "catalog", "file", "user", "listing"]))
    if kind == "internal":
        return draw(st.sampled_from(INTERNAL_TABLES))
    if kind == "catalog":
        cat = draw(st.sampled_from(OTHER_CATALOGS))
        return f"{cat}.main.{draw(st.sampled_from(['t', 'b_secret']))}"
    if kind == "file":
        fn = draw(st.sampled_from(FILE_FUNCTIONS))
        return f"{fn}('{ckpt}/{draw(st.sampled_from(['*', '*.duckdb', '../logs/*/wal']))}')"
    if kind == "listing":
        return draw(
            st.sampled_from(
                ["duckdb_databases()", "duckdb_settings()", "duckdb_tables()", "checkpoint()"]
            )
        )
    return "t"


def _quote(sql: str) -> str:
    return "'" + sql.replace("'", "''") + "'"


@st.composite
def wrapped_query(draw, ckpt: str) -> str:
    """A query around an expression and a relation, in one of several wrappers."""
    expr = draw(expressions())
    rel = draw(relations(ckpt))
    base = f"SELECT {expr} AS x FROM {rel}" if rel == "t" else f"SELECT {expr} AS x, * FROM {rel}"
    wrapper = draw(st.sampled_from(["plain", "subquery", "cte", "query", "scalar", "case"]))
    if wrapper == "subquery":
        return f"SELECT * FROM ({base}) AS sub"
    if wrapper == "cte":
        return f"WITH c AS {draw(st.sampled_from(['', 'MATERIALIZED ']))}({base}) SELECT * FROM c"
    if wrapper == "query":
        return f"SELECT * FROM query({_quote(base)})"
    if wrapper == "scalar":
        return f"SELECT (SELECT {expr}) AS y"
    if wrapper == "case":
        return f"SELECT CASE WHEN false THEN {expr} END AS y"
    return base


@st.composite
def statements(draw, ckpt: str) -> list[str]:
    """One hostile statement (or a definition then its use)."""
    kind = draw(
        st.sampled_from(
            [
                "select",
                "insert",
                "update",
                "delete",
                "view",
                "macro",
                "ctas",
                "alter",
                "drop",
                "ddl_internal",
                "shadow",
                "external",
                "default",
                "check",
            ]
        )  # fmt: skip
    )
    expr = draw(expressions())
    if kind == "select":
        return [draw(wrapped_query(ckpt))]
    if kind == "insert":
        return [f"INSERT INTO t SELECT {expr}, 0"]
    if kind == "update":
        return [f"UPDATE t SET v = {expr} WHERE k = 1"]
    if kind == "delete":
        return [f"DELETE FROM t WHERE ({expr}) IS NULL"]
    if kind == "view":
        return [f"CREATE OR REPLACE VIEW hv AS {draw(wrapped_query(ckpt))}", "SELECT * FROM hv"]
    if kind == "macro":
        return [f"CREATE OR REPLACE MACRO hm() AS {expr}", "SELECT hm()"]
    if kind == "ctas":
        return [f"CREATE OR REPLACE TABLE hc AS {draw(wrapped_query(ckpt))}"]
    if kind == "alter":
        target = draw(st.sampled_from(["_asof.rid", '"_asof".rid', "s", "memory._asof.rid"]))
        obj = draw(st.sampled_from(["SEQUENCE", "VIEW"]))
        return [f"ALTER {obj} {target} RENAME TO renamed"]
    if kind == "drop":
        return [
            draw(
                st.sampled_from(
                    [
                        "DROP SEQUENCE s CASCADE",
                        "DROP VIEW IF EXISTS hv CASCADE",
                        "DROP SEQUENCE _asof.rid",
                        "DROP TABLE _asof.t1",
                        "DROP MACRO _asof.versions_since",
                        'DROP TABLE "_asof"."state"',
                    ]
                )  # fmt: skip
            )
        ]
    if kind == "ddl_internal":
        table = draw(st.sampled_from(INTERNAL_TABLES))
        return [
            draw(
                st.sampled_from(
                    [
                        f"UPDATE {table} SET applied_txn = 0",
                        f"DELETE FROM {table}",
                        f"TRUNCATE {table}",
                        f"INSERT INTO {table} SELECT * FROM {table}",
                        f"ALTER TABLE {table} ADD COLUMN hz INT",
                        f"CREATE INDEX hi ON {table} (1)",
                    ]
                )  # fmt: skip
            )
        ]
    if kind == "shadow":
        name = draw(
            st.sampled_from(["getvariable", '"NextVal"', "current_database", "range", "setval"])
        )
        body = "TABLE SELECT 1" if name == "range" else "42"
        args = "(n)" if name != "current_database" else "()"
        return [f"CREATE OR REPLACE MACRO {name}{args} AS {body}"]
    if kind == "external":
        return [
            draw(
                st.sampled_from(
                    [
                        "USE b",
                        "SET search_path = '_asof'",
                        "RESET allowed_directories",
                        "PRAGMA database_list",
                        f"ATTACH '{ckpt}/x.duckdb' AS x",
                        "CHECKPOINT",
                        "SET VARIABLE asof_txn = 1",
                        "DETACH _asof_state_1",
                        "CALL pragma_version()",
                    ]
                )  # fmt: skip
            )
        ]
    if kind == "default":
        return [f"CREATE OR REPLACE TABLE hd (x BIGINT DEFAULT {expr})", "INSERT INTO hd VALUES (DEFAULT)"]  # fmt: skip
    return [f"CREATE OR REPLACE TABLE hk (x BIGINT CHECK ({expr} IS NOT NULL))", "INSERT INTO hk VALUES (1)"]  # fmt: skip


_KEYWORDS = ("SELECT", "FROM", "WHERE", "INSERT", "INTO", "UPDATE", "SET", "CREATE", "AS")


@st.composite
def spelled(draw, sql: str) -> str:
    """`sql` with its keywords' case changed and comments or whitespace between words."""
    words = sql.split(" ")
    out = []
    for w in words:
        if w.upper() in _KEYWORDS:
            w = draw(st.sampled_from([w.upper(), w.lower(), w.capitalize()]))
        out.append(w)
    sep = draw(st.sampled_from([" ", "  ", "\n", " /* x */ ", "\t"]))
    text = sep.join(out)
    return text + draw(st.sampled_from(["", ";", " -- trailing"]))


#: A rebuild from the log and a fresh clone are compared with the live state after every
#: this many statements that ran (and at the end): each comparison costs a clone.
VERIFY_EVERY = int(os.environ.get("ASOF_HOSTILE_VERIFY_EVERY", "8"))


def _run(target: Target, stmts: list[str], kind: str, tally: Counter) -> None:
    with handle(target, kind) as db:
        for sql in stmts:
            verify = tally["ran"] % VERIFY_EVERY == VERIFY_EVERY - 1
            run = lambda sql=sql: db.sql(sql)  # noqa: E731
            outcome = attempt(target, db, run, writable=kind in WRITABLE, verify=verify)
            tally[outcome] += 1


def _campaign(tmp_path_factory, examples: int) -> Counter:
    target = build(tmp_path_factory.mktemp("generated") / "data")
    ckpt = str(target.checkpoints())
    tally: Counter = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def property_holds(data) -> None:
        stmts = data.draw(statements(ckpt))
        stmts = [data.draw(spelled(s)) for s in stmts]
        kind = data.draw(st.sampled_from(["live"] * 4 + list(HANDLE_KINDS)))
        _run(target, stmts, kind, tally)

    try:
        property_holds()
        assert_logged(target, target.a)
        assert target.cluster.check(deep=True) == []
    finally:
        target.cluster.close()
    return tally


def test_generated_hostile_sql(tmp_path_factory):
    tally = _campaign(tmp_path_factory, int(os.environ.get("ASOF_HOSTILE_EXAMPLES", "200")))
    print(f"hostile statements tried: {sum(tally.values())} ({dict(tally)})")
    assert tally["refused"] > 0 and sum(tally.values()) >= 200


@pytest.mark.slow
def test_generated_hostile_sql_long(tmp_path_factory):
    tally = _campaign(tmp_path_factory, 2000)
    print(f"hostile statements tried: {sum(tally.values())} ({dict(tally)})")
    assert sum(tally.values()) >= 2000
