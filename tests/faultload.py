"""The workload of the fault campaign and its referee: a plain DuckDB fed only what asof
acknowledged.

Each operation is one call a user makes (one statement, or one explicit transaction, or a
checkpoint, seal, compaction or clone). After it, asof must have either succeeded, and the
reference then runs it too, or raised OperationalError (a fault) or IntegrityError (the
reference must refuse it as well), and the reference does not run it. At any point the
live database, after a reopen, a fresh clone and a rebuild from the log must all equal
the reference; each clone made along the way must equal the reference as it was then.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import duckdb
import pytest

from asof import Cluster, CorruptionError, IntegrityError, OperationalError
from asof.queryapi.translate import translate

SETUP = [
    "CREATE TABLE t (k INT, v INT)",  # single-row inserts take the fast path
    "CREATE TABLE p (id INT PRIMARY KEY, v INT)",  # keyed fast path, integrity errors
    "INSERT INTO t SELECT i, i % 7 FROM range(50) r(i)",
    "INSERT INTO p SELECT i, i FROM range(20) r(i)",
]


class Workload:
    """Runs operations against one database of `cluster` and keeps the reference."""

    def __init__(self, cluster: Cluster, name: str = "d", seed: int = 0) -> None:
        self.cluster = cluster
        self.name = name
        self.rng = random.Random(seed)
        self.ref = duckdb.connect()
        self.n = 1000  # counter for fresh keys and names
        self.acked = 0
        self.refused = 0  # IntegrityError, the reference refusing it too
        self.failed = 0  # OperationalError while a fault was armed
        self.clones: dict[str, dict[str, list[tuple]]] = {}  # clone -> reference state then
        cluster.sql(f"CREATE DATABASE {name}")
        for sql in SETUP:
            self.sql(sql)

    @property
    def db(self):
        return self.cluster.database(self.name)

    # --------------------------------------------------------------- running
    def sql(self, sql: str, params=None, *, must: bool = True) -> bool:
        """Run one call on asof; feed it to the reference if acknowledged."""
        try:
            self.db.sql(sql, params)
        except IntegrityError:
            self.refused += 1
            with pytest.raises(duckdb.Error):  # the reference refuses it too
                self._ref(sql, params)
            return False
        except OperationalError as exc:
            assert not isinstance(exc, CorruptionError), exc
            assert not must, f"{sql!r} failed with no fault armed: {exc}"
            self.failed += 1
            return False
        self.acked += 1
        self._ref(sql, params)
        return True

    def _ref(self, sql: str, params) -> None:
        try:
            self.ref.execute(sql, params)
        except duckdb.Error:
            try:
                self.ref.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise

    def maintenance(self, what: Callable[[], object], *, must: bool) -> bool:
        try:
            what()
        except OperationalError as exc:
            assert not isinstance(exc, CorruptionError), exc
            assert not must, f"maintenance failed with no fault armed: {exc}"
            self.failed += 1
            return False
        return True

    def op(self, *, must: bool = False) -> None:
        """One random operation of the mix."""
        self.n += 1
        n, rng = self.n, self.rng
        kind = rng.choice(
            ["fast", "fast", "fast", "keyed", "insert", "update", "delete", "txn", "dup"]
            + ["ddl", "rejected", "checkpoint", "seal", "compact", "clone"]
        )
        if kind == "fast":
            self.sql("INSERT INTO t VALUES (?, ?)", [n, n % 13], must=must)
        elif kind == "keyed":
            self.sql("INSERT INTO p VALUES (?, ?)", [n, -n], must=must)
        elif kind == "insert":
            self.sql(f"INSERT INTO t VALUES ({n}, 1), ({n + 1}, 2)", must=must)
        elif kind == "update":
            self.sql(f"UPDATE t SET v = v + 1 WHERE k % 5 = {n % 5}", must=must)
        elif kind == "delete":
            self.sql(f"DELETE FROM t WHERE k % 17 = {n % 17}", must=must)
        elif kind == "txn":
            self.sql(
                f"BEGIN; INSERT INTO p VALUES ({n}, {n}); "
                f"UPDATE t SET v = v * 2 WHERE k = {n % 50}; DELETE FROM p WHERE id = {n % 20}; "
                "COMMIT",
                must=must,
            )
        elif kind == "dup":
            self.sql("INSERT INTO p VALUES (?, 0)", [rng.choice(self._keys())], must=must)
        elif kind == "ddl":
            self.sql(
                f"BEGIN; CREATE TABLE x{n} (a INT PRIMARY KEY, b VARCHAR); "
                f"INSERT INTO x{n} VALUES ({n}, 'x'), ({n + 1}, 'y'); "
                f"CREATE INDEX i{n} ON x{n} (b); COMMIT",
                must=must,
            )
        elif kind == "rejected":  # DuckDB itself refuses this only at COMMIT
            self.sql(
                f"BEGIN; CREATE TABLE r{n} (i INT, j INT); INSERT INTO r{n} VALUES (1, 1); "
                f"ALTER TABLE r{n} ADD PRIMARY KEY (j); INSERT INTO r{n} VALUES (2, 1); COMMIT",
                must=must,
            )
        elif kind == "checkpoint":
            self.maintenance(lambda: self.cluster.checkpoint(self.name), must=must)
        elif kind == "seal":
            self.maintenance(self._seal, must=must)
        elif kind == "compact":
            self.maintenance(lambda: self.cluster.compact(self.name), must=must)
        elif kind == "clone":
            self.clone(f"c{n}", must=must)

    def _seal(self) -> None:
        """What a seal on size or count does (there is no public call for it)."""
        try:
            self.db._rt.recorder.seal()
        except Exception as exc:
            raise translate(exc) from None

    def _keys(self) -> list[int]:
        return [r[0] for r in self.ref.execute("SELECT id FROM p").fetchall()] or [0]

    def clone(self, target: str, *, must: bool) -> bool:
        ok = self.maintenance(lambda: self.cluster.clone(self.name, target), must=must)
        if ok:
            self.clones[target] = self.reference_state()
        else:
            assert target not in self.cluster.databases(), f"failed clone {target} exists"
        return ok

    # -------------------------------------------------------------- checking
    def reference_state(self) -> dict[str, list[tuple]]:
        tables = [
            r[0]
            for r in self.ref.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        ]
        return {t: _rows(self.ref, t) for t in sorted(tables)}

    def check(self, handle, what: str, expected: dict[str, list[tuple]] | None = None) -> None:
        expected = self.reference_state() if expected is None else expected
        tables = handle.sql("SELECT name FROM _asof.tables WHERE kind = 'table'").fetchall()
        assert sorted(r[0] for r in tables) == sorted(expected), f"{what}: tables differ"
        for t, rows in expected.items():
            assert _rows(handle, t) == rows, f"{what}: table {t} differs"

    def deep_check(self) -> None:
        """Live, a rebuild from the log, a fresh clone, the clones made so far, check()."""
        self.check(self.db, "live")
        head = list(self.db.transactions())[-1].ts.physical
        self.check(self.db.as_of(head, rebuild=True), "rebuild from the log")
        final = f"final{self.n}"
        self.n += 1
        self.clone(final, must=True)
        self.check(self.cluster.database(final), "fresh clone")
        for name, state in self.clones.items():
            self.check(self.cluster.database(name), f"clone {name}", state)
        assert self.cluster.check(deep=True) == []


def _rows(con, table: str) -> list[tuple]:
    return sorted(con.sql(f'SELECT * FROM "{table}"').fetchall(), key=repr)
