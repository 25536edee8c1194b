"""`asof check`: verify a cluster without changing it.

Checks every checksum the store keeps (manifests, segments, checkpoints, WAL frames), every
projection's high-water mark against its log, and with `deep`, that each projection holds
exactly what a rebuild from the log holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from projections.lazy import build_at
from projections.naming import (
    STATE_TABLE,
    STORED_COLUMNS,
    TABLES_TABLE,
    quote_literal,
    storage_table,
)
from projections.projection import connect
from queryapi.errors import AsofError

if TYPE_CHECKING:
    from clone.catalog import DatabaseRecord
    from queryapi.cluster import Cluster


def check_cluster(
    cluster: Cluster, database: str | None = None, *, deep: bool = False
) -> list[str]:
    """Human-readable problems; an empty list means the cluster is sound."""
    records = [cluster._record(database)] if database else cluster.catalog.live()
    problems: list[str] = []
    verify = getattr(cluster.store, "verify", None)
    if verify is not None:
        ids = [r.db_id for r in records] + ([] if database else ["catalog"])
        for log_id in ids:
            problems += [_name(cluster, p) for p in verify(log_id)]
    for rec in records:
        problems += _check_projection(cluster, rec, deep)
    return problems


def _name(cluster: Cluster, problem: str) -> str:
    for rec in cluster.catalog.live():
        problem = problem.replace(f"log {rec.db_id}", f"database {rec.name!r} (log {rec.db_id})")
    return problem


def _check_projection(cluster: Cluster, rec: DatabaseRecord, deep: bool) -> list[str]:
    label = f"database {rec.name!r}"
    try:
        rt = cluster._runtime(rec)
        head = rt.recorder.head()
    except AsofError as exc:
        return [f"{label}: {exc}"]
    except Exception as exc:  # a damaged log surfaces here as its own error
        return [f"{label}: {exc}"]
    applied = _applied_on_disk(rt)
    out = []
    if applied is not None and head is not None and applied > head.txn_id:
        out.append(
            f"{label}: projection holds transaction {applied} but the log ends at "
            f"{head.txn_id}; delete {rt.projection_path} to rebuild it from the log"
        )
    if applied is not None and head is None and applied > 0:
        out.append(f"{label}: projection holds transactions the empty log lacks")
    if deep and not out:
        try:
            out += _compare_with_rebuild(rt, label)
        except (AsofError, duckdb.Error, OSError) as exc:
            out.append(f"{label}: cannot rebuild from the log: {exc}")
    return out


def _applied_on_disk(rt) -> int | None:
    """The projection's high-water mark as stored, before any catch-up."""
    if rt._projection is not None:
        info = rt._projection.applied()
        return info.txn_id if info else 0
    if not rt.projection_path.exists():
        return None
    con = duckdb.connect(str(rt.projection_path), read_only=True)
    try:
        return con.execute(f"SELECT applied_txn FROM {STATE_TABLE}").fetchall()[0][0]
    finally:
        con.close()


def table_digests(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Row count and an order-independent hash of every user table."""
    out = {}
    for table_id, name in con.execute(f"SELECT table_id, name FROM {TABLES_TABLE}").fetchall():
        out[name] = con.execute(
            f"SELECT count(*), sum(hash(t)::HUGEINT) "
            f"FROM (SELECT {STORED_COLUMNS} FROM {storage_table(table_id)}) t"
        ).fetchall()[0]
    return out


def _compare_with_rebuild(rt, label: str) -> list[str]:
    live_cur = rt.cursor()
    try:
        live = table_digests(live_cur)
        head = live_cur.execute(f"SELECT applied_ts FROM {STATE_TABLE}").fetchall()[0][0]
    finally:
        live_cur.close()
    con = connect(None, rt.store)
    try:
        build_at(con, rt.store, rt.recorder, head or None)
        rebuilt = table_digests(con)
    finally:
        con.close()
    out = []
    for name in sorted(set(live) | set(rebuilt)):
        if live.get(name) != rebuilt.get(name):
            out.append(
                f"{label}: table {quote_literal(name)} differs from its rebuild from the log "
                f"(projection {live.get(name)}, log {rebuilt.get(name)}); delete "
                f"{rt.projection_path} to rebuild it"
            )
    return out
