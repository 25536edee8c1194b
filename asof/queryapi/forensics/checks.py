"""`asof check`: verify a cluster without changing it.

Checks every checksum the store keeps (manifests, segments, checkpoints, WAL frames), every
projection's high-water mark against its log, and with `deep`, that each projection holds
exactly what a rebuild from the log holds.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import duckdb

from asof.eventlog.errors import LogError
from asof.eventlog.recorder import Store
from asof.projections.build import build_at
from asof.projections.live import DatabaseRuntime
from asof.projections.naming import (
    DISPLAY_NAME_SQL,
    STATE_TABLE,
    STORED_COLUMNS,
    TABLES_TABLE,
    quote_literal,
    storage_table,
)
from asof.projections.projection import connect
from asof.queryapi.errors import AsofError


@attrs.frozen
class CheckTarget:
    """A database to check: its name and log id, and its runtime (a callable, so that a
    database whose log cannot even be opened is reported rather than raised)."""

    name: str
    db_id: str
    runtime: Callable[[], DatabaseRuntime]


def check_databases(
    store: Store, targets: list[CheckTarget], *, catalog: bool, deep: bool = False
) -> list[str]:
    """Human-readable problems; an empty list means everything checked is sound. `catalog`:
    verify the catalog's own log too."""
    problems: list[str] = []
    verify = getattr(store, "verify", None)
    if verify is not None:
        ids = [t.db_id for t in targets] + (["catalog"] if catalog else [])
        for log_id in ids:
            problems += [_name(targets, p) for p in verify(log_id)]
    for target in targets:
        problems += _check_projection(target, deep)
    return problems


def _name(targets: list[CheckTarget], problem: str) -> str:
    for t in targets:
        problem = problem.replace(f"log {t.db_id}", f"database {t.name!r} (log {t.db_id})")
    return problem


def _check_projection(target: CheckTarget, deep: bool) -> list[str]:
    label = f"database {target.name!r}"
    try:
        rt = target.runtime()
        head = rt.recorder.head()
    except Exception as exc:  # asof's errors, or a damaged log's own
        return [f"{label}: {exc}"]
    try:
        applied = rt.stored_high_water()
    except duckdb.Error as exc:  # a cache: reported, and rebuilt when next opened
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [
            f"{label}: projection {rt.projection_path} is damaged ({first}); it is rebuilt "
            "from the log when the database is next opened"
        ]
    out = []
    last = head.txn_id if head is not None else 0
    if applied is not None and applied > last:
        try:  # the projection proves the log lost committed transactions
            rt.recorder.require(applied, f"the projection {rt.projection_path}")
        except LogError as exc:
            out.append(f"{label}: {exc}")
    if deep and not out:
        try:
            out += _compare_with_rebuild(rt, label)
        except (AsofError, LogError, duckdb.Error, OSError) as exc:
            out.append(f"{label}: cannot rebuild from the log: {exc}")
    return out


def table_digests(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Row count and an order-independent hash of every user table."""
    out = {}
    for table_id, name in con.execute(
        f"SELECT table_id, {DISPLAY_NAME_SQL} FROM {TABLES_TABLE}"
    ).fetchall():
        out[name] = con.execute(
            f"SELECT count(*), sum(hash(t)::HUGEINT) "
            f"FROM (SELECT {STORED_COLUMNS} FROM {storage_table(table_id)}) t"
        ).fetchall()[0]
    return out


def _compare_with_rebuild(rt: DatabaseRuntime, label: str) -> list[str]:
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
