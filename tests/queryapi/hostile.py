"""A cluster to attack and the handles to attack it through (test_containment.py,
test_hostile_sql.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from asof import AsofError, Cluster
from support import digest, head_ts, tick, user_state

HANDLE_KINDS = (
    "live",
    "as_of_now",
    "as_of_versions",
    "as_of_built",
    "fresh_clone",
    "written_clone",
    "read_only",
)
WRITABLE = {"live", "fresh_clone", "written_clone"}
_names = (f"c{i}" for i in itertools.count())


@attrs.define
class Target:
    """The attacked cluster: database `a` (tables t, u, sequence s, a checkpoint, row
    changes after it) and database `b`, whose secret no handle on `a` may see."""

    path: Path
    cluster: Cluster
    ts_versions: int  # only row changes follow: AS OF reads row versions
    ts_built: int  # a DDL follows: AS OF builds the state from checkpoint + log
    secret: str = "b-secret-7f3a"

    _handles: dict[str, Any] = attrs.field(factory=dict)

    @property
    def a(self):
        return self._handle("a")

    @property
    def b(self):
        return self._handle("b")

    def _handle(self, name: str):
        """One handle per database and cluster (a handle's verdicts are cached)."""
        key = f"{id(self.cluster)}:{name}"
        if key not in self._handles:
            self._handles[key] = self.cluster.database(name)
        return self._handles[key]

    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def snapshot(self, db) -> dict[str, Any]:
        head = db._rt.recorder.head()  # the log's head, without reading the whole log
        return {
            "digest": digest(db),
            "head": head.txn_id if head is not None else 0,
            "b": digest(self.b),
        }


def build(path: Path) -> Target:
    cluster = Cluster.open(path)
    cluster.sql("CREATE DATABASE b")
    b = cluster.database("b")
    b.sql("CREATE TABLE b_secret (x TEXT); INSERT INTO b_secret VALUES ('b-secret-7f3a')")
    cluster.checkpoint("b")
    cluster.sql("CREATE DATABASE a")
    a = cluster.database("a")
    a.sql("CREATE SEQUENCE s; CREATE TABLE t (k BIGINT, v BIGINT)")
    a.sql("INSERT INTO t SELECT i, i FROM range(5) AS r(i)")
    tick()
    ts_built = head_ts(a)
    tick()
    a.sql("CREATE TABLE u (k BIGINT DEFAULT nextval('s'), v TEXT)")
    a.sql("INSERT INTO u (v) VALUES ('one'), ('two')")
    cluster.checkpoint("a")
    a.sql("UPDATE t SET v = v + 10 WHERE k < 2")
    tick()
    ts_versions = head_ts(a)
    tick()
    a.sql("DELETE FROM t WHERE k = 4")
    return Target(path, cluster, ts_versions, ts_built)


@contextmanager
def handle(target: Target, kind: str) -> Iterator[Any]:
    """A handle of `kind` on database `a` (or on a clone of it)."""
    cluster = target.cluster
    a = target.a
    if kind == "live":
        yield a
    elif kind == "as_of_now":
        with a.as_of(head_ts(a)) as h:
            yield h
    elif kind == "as_of_versions":
        with a.as_of(target.ts_versions) as h:
            yield h
    elif kind == "as_of_built":
        with a.as_of(target.ts_built, rebuild=True) as h:
            yield h
    elif kind in ("fresh_clone", "written_clone"):
        name = next(_names)
        cluster.clone("a", name)
        clone = cluster.database(name)
        if kind == "written_clone":
            clone.sql("INSERT INTO t VALUES (100, 100)")
        try:
            yield clone
        finally:
            clone.close()
            cluster.sql(f"DROP DATABASE {name}")
    elif kind == "read_only":
        with Cluster.open(target.path, read_only=True) as ro:
            yield ro.database("a")
    else:  # pragma: no cover - a typo in a test
        raise ValueError(kind)


def attempt(
    target: Target, db, run: Callable[[], Any], *, writable: bool, verify: bool = True
) -> str:
    """Run `run` (a hostile statement through `db`, a handle on `a` or a clone of it). It
    either raises an asof error and changes nothing (rows, sequences, row ids, the log's
    head, the other database), or succeeds with every change in the log. Returns which."""
    live = db if writable else target.a
    before = target.snapshot(live)
    try:
        run()
    except AsofError as exc:
        after = target.snapshot(live)
        # A statement that failed after taking row ids leaves a gap, as a sequence does in
        # PostgreSQL; the row id sequence never goes back.
        assert rid_of(after) >= rid_of(before), f"refused ({exc}) yet set the row ids back"
        assert _without_rid(after) == _without_rid(before), f"refused ({exc}) yet changed"
        return "refused"
    except Exception as exc:  # pragma: no cover - what the test exists to catch
        raise AssertionError(f"a non-asof error escaped: {type(exc).__name__}: {exc}") from exc
    after = target.snapshot(live)
    assert after["b"] == before["b"]
    if not writable:
        assert after == before, "a read-only handle changed something"
        return "ran"
    assert rid_of(after) >= rid_of(before), "the row id sequence went back"
    if verify:
        assert_logged(target, live)
    return "ran"


def _without_rid(snapshot: dict[str, Any]) -> dict[str, Any]:
    digest = dict(snapshot["digest"])
    digest["sequences"] = [s for s in digest["sequences"] if s[0] != "_asof"]
    return {**snapshot, "digest": digest}


def rid_of(snapshot: dict[str, Any]) -> int:
    for schema, name, value in snapshot["digest"]["sequences"]:
        if schema == "_asof" and name == "rid":
            return value or 0
    return 0


def assert_logged(target: Target, db) -> None:
    """The live state equals a rebuild from the log and a fresh clone of it."""
    live = user_state(db)
    with db.as_of(head_ts(db), rebuild=True) as rebuilt:
        got = _comparable(user_state(rebuilt))
        assert got == _comparable(live), f"rebuild differs: {got} != {_comparable(live)}"
    name = next(_names)
    target.cluster.clone(db.name, name)
    clone = target.cluster.database(name)
    try:
        assert _comparable(user_state(clone)) == _comparable(live), "fresh clone differs"
    finally:
        clone.close()
        target.cluster.sql(f"DROP DATABASE {name}")


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    return {"tables": state["tables"], "sequences": state["sequences"]}
