"""The runner itself: it must find wrong results, not only confirm right ones."""

from __future__ import annotations

import pytest

from .compare import result_hash
from .engines import AsofEngine, DuckDBEngine
from .parser import SltParseError, parse
from .runner import run_engine

SCRIPT = """
statement ok
CREATE TABLE t (i INTEGER, s VARCHAR, b BOOLEAN, d DOUBLE)

loop i 0 3

statement ok
INSERT INTO t VALUES (${i}, 'v{i}', {i} % 2 = 0, {i} / 3)

endloop

foreach word alpha beta

statement ok
INSERT INTO t VALUES (10, '${word}', NULL, NULL)

endloop

query ITTR rowsort
SELECT * FROM t WHERE i < 3
----
0	v0	true	0.0
1	v1	false	0.3333
2	v2	1	0.66667

query T valuesort
SELECT s FROM t WHERE i = 10
----
alpha
beta

query I nosort total
SELECT sum(i) FROM t
----

query I nosort total
SELECT 23

query T
SELECT NULL UNION ALL SELECT ''
----
NULL
(empty)

statement error
INSERT INTO nowhere VALUES (1)
----
<REGEX>:.*nowhere.*does not exist.*

statement maybe
CREATE TABLE t (i INTEGER)
----
already exists

skipif duckdb
statement ok
THIS IS NOT SQL

onlyif word=beta
statement ok
ALSO NOT SQL

mode skip

statement ok
NOR THIS

mode unskip

query I
SELECT count(*) FROM t
----
5

halt

statement ok
NEVER RUN
"""


@pytest.fixture(params=["duckdb", "asof"])
def engine(request, tmp_path):
    e = DuckDBEngine(tmp_path) if request.param == "duckdb" else AsofEngine(tmp_path)
    yield e
    e.close()


def test_a_correct_script_is_right_everywhere(engine, tmp_path):
    run = run_engine(engine, parse(SCRIPT), tmp_path)
    assert run.skipped is None and not run.harness_errors
    wrong = [(e.key, e.why) for e in run.executed if not e.right]
    assert wrong == [], wrong
    assert len(run.executed) == 14  # 1 + 3 + 2 inserts, 7 checks; skipped ones not run
    assert all("NOT SQL" not in e.sql and "NEVER" not in e.sql for e in run.executed)
    assert run.state is not None and run.state["t"][1] == 5


@pytest.mark.parametrize(
    "script",
    [
        "query I\nSELECT 1\n----\n2\n",
        "query I\nSELECT 1\n----\n1\n1\n",
        "query II\nSELECT 1, 2\n----\n1\t3\n",
        "query I\nSELECT 1, 2\n----\n1\t2\n",  # wrong column count
        "query T\nSELECT 'a'\n----\n(empty)\n",
        "query R\nSELECT 1.0::DOUBLE\n----\n1.1\n",
        "query I\nSELECT 1\n----\n1 values hashing to 00000000000000000000000000000000\n",
        "statement ok\nSELECT error('x')\n",
        "statement error\nSELECT 1\n",
        "statement error\nSELECT error('boom')\n----\nother message\n",
        "query I nosort\nSELECT 2 UNION ALL SELECT 1 ORDER BY 1 DESC\n----\n1\n2\n",
        "query I nosort l\nSELECT 1\n----\n\nquery I nosort l\nSELECT 2\n----\n",
    ],
)
def test_a_wrong_expectation_is_found(script, tmp_path):
    engine = DuckDBEngine(tmp_path)
    try:
        run = run_engine(engine, parse(script), tmp_path)
    finally:
        engine.close()
    assert not all(e.right for e in run.executed), script


def test_hash_lines_compare_md5_of_values(tmp_path):
    values = ["1", "a", "2", "b"]
    script = f"query IT rowsort\nSELECT * FROM (VALUES (2, 'b'), (1, 'a'))\n----\n{result_hash(values)}\n"
    engine = DuckDBEngine(tmp_path)
    try:
        run = run_engine(engine, parse(script), tmp_path)
    finally:
        engine.close()
    assert [e.right for e in run.executed] == [True]


@pytest.mark.parametrize(
    "script",
    ["statement ok\n", "loop i 0\n", "query X\nSELECT 1\n", "endloop\n", "frobnicate\n"],
)
def test_malformed_files_are_refused(script):
    with pytest.raises(SltParseError):
        parse(script)


def test_require_skips_missing_extensions(tmp_path):
    engine = DuckDBEngine(tmp_path)
    try:
        run = run_engine(engine, parse("require no_such_extension\n\nstatement ok\nX\n"), tmp_path)
    finally:
        engine.close()
    assert run.skipped and not run.executed
