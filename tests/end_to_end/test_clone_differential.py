"""Random workloads on a source and its clones, against plain DuckDB references.

Every database (source or clone) has a reference DuckDB connection. A clone made at time T
gets a reference loaded with what its source's reference held at T; from then on both sides
of every database take the same random statements. After each commit each database must
equal its reference, and every clone must equal, right after creation, its source at T.
"""

from __future__ import annotations

import time

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asof import Cluster

TABLES = ["t1", "t2"]


def _state(run, tables) -> dict[str, list]:
    return {t: sorted(run(f"SELECT * FROM {t}").fetchall(), key=repr) for t in sorted(tables)}


class Twin:
    """A database in asof and its reference in plain DuckDB, with the tables it holds."""

    def __init__(self, db, ref, schemas: dict[str, list[str]]) -> None:
        self.db = db
        self.ref = ref
        self.schemas = {k: list(v) for k, v in schemas.items()}  # table -> column definitions
        self.commits: list[tuple[int, dict, dict]] = []  # (ts, state, schemas)

    def run(self, sql: str) -> None:
        self.db.sql(sql)
        self.ref.execute(sql)
        time.sleep(0.001)  # distinct microseconds per commit, so AS OF T is unambiguous
        ts = list(self.db.transactions())[-1].ts.physical
        state = _state(self.ref.execute, self.schemas)
        self.commits.append((ts, state, {k: list(v) for k, v in self.schemas.items()}))

    def check(self) -> None:
        assert _state(self.db.sql, self.schemas) == _state(self.ref.execute, self.schemas)


def _statement(draw, twin: Twin) -> str | None:
    table = draw(st.sampled_from(TABLES), "table")
    if table not in twin.schemas:
        twin.schemas[table] = ["k INTEGER", "v VARCHAR"]
        return f"CREATE TABLE {table} (k INTEGER, v VARCHAR)"
    kind = draw(
        st.sampled_from(["insert", "insert", "update", "delete", "truncate", "drop", "alter"]),
        "kind",
    )
    if kind == "insert":
        rows = draw(st.lists(st.integers(0, 30), min_size=1, max_size=5), "rows")
        cols = len(twin.schemas[table])
        values = ", ".join(
            "(" + ", ".join([str(k), f"'v{k}'", *(["7"] * (cols - 2))]) + ")" for k in rows
        )
        return f"INSERT INTO {table} VALUES {values}"
    if kind == "update":
        m = draw(st.integers(1, 4), "mod")
        return f"UPDATE {table} SET v = v || 'x' WHERE k % {m} = 0"
    if kind == "delete":
        return f"DELETE FROM {table} WHERE k < {draw(st.integers(0, 30), 'below')}"
    if kind == "truncate":
        return f"TRUNCATE {table}"
    if kind == "drop":
        del twin.schemas[table]
        return f"DROP TABLE {table}"
    col = f"c{len(twin.schemas[table])}"
    twin.schemas[table].append(f"{col} INTEGER")
    return f"ALTER TABLE {table} ADD COLUMN {col} INTEGER DEFAULT 7"


def _reference_at(state: dict, schemas: dict) -> duckdb.DuckDBPyConnection:
    ref = duckdb.connect()
    for table, cols in schemas.items():
        ref.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
        for row in state[table]:
            ref.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", list(row))
    return ref


def run_program(data, steps: int) -> None:
    cluster = Cluster.open(None)
    cluster.sql("CREATE DATABASE src")
    twins = {"src": Twin(cluster.database("src"), duckdb.connect(), {})}
    clones = 0
    try:
        for _ in range(steps):
            action = data.draw(st.sampled_from(["stmt"] * 4 + ["clone"]), "action")
            if action == "clone":
                name = data.draw(st.sampled_from(sorted(twins)), "clone source")
                source = twins[name]
                if not source.commits:
                    continue
                ts, state, schemas = data.draw(st.sampled_from(source.commits), "as of")
                clones += 1
                target = f"clone{clones}"
                cluster.clone(name, target, as_of=ts)
                twin = Twin(cluster.database(target), _reference_at(state, schemas), schemas)
                twin.check()  # exactly the source at T
                twin.commits = [(ts, state, schemas)]
                twins[target] = twin
                continue
            name = data.draw(st.sampled_from(sorted(twins)), "database")
            twin = twins[name]
            sql = _statement(lambda s, label: data.draw(s, label), twin)
            twin.run(sql)
            for other in twins.values():  # isolation: every database still equals its own
                other.check()
        for name, twin in twins.items():
            for ts, state, schemas in twin.commits[-3:]:
                got = _state(twin.db.as_of(ts).sql, schemas)
                assert got == state, f"{name} AS OF {ts}"
    finally:
        for twin in twins.values():
            twin.ref.close()
        cluster.close()


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=25, deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_clones_equal_their_source_at_t_and_stay_independent(data):
    run_program(data, steps=25)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_clones_equal_their_source_at_t_and_stay_independent_long(data):
    run_program(data, steps=60)
