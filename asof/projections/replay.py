"""Fold a range of the log into a projection, set-wise rather than event by event.

Row events of one table between two of its barriers (truncate, alter, drop, ...) commute with
everything else, so they are read as one batch and folded with a window function: the last
image of each row id wins. The cost follows the events in the range, not the table size.
"""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.events import RowOp, TransactionInfo
from asof.eventlog.recorder import Recorder
from asof.projections import kinds, versions
from asof.projections.apply import (
    advance_row_ids,
    apply_event,
    apply_rows,
    set_applied,
    table_of,
)

_fold_names = (f"_asof_fold_{i}" for i in itertools.count())

Position = tuple[int, int]  # (txn_id, event index in the transaction)


class _Pending:
    """Row events of one table version waiting to be folded, from `start` on."""

    __slots__ = ("version", "start")

    def __init__(self, version: int, start: Position) -> None:
        self.version = version
        self.start = start


def replay(
    con: duckdb.DuckDBPyConnection,
    recorder: Recorder,
    *,
    after_txn: int = 0,
    until: int | None = None,
) -> TransactionInfo | None:
    """Apply every transaction in (after_txn, until]; return the last one applied.

    The caller owns the DuckDB transaction, so a failure leaves the projection unchanged.
    """
    pending: dict[int, _Pending] = {}
    top = [0]  # the highest row id the range handed out, deleted rows' included
    last: TransactionInfo | None = None

    def flush(table_id: int, end: Position | None) -> None:
        job = pending.pop(table_id)
        top[0] = max(
            top[0], _fold_rows(con, recorder, table_id, job.version, job.start, end, until)
        )

    for txn in recorder.transactions(after_txn=after_txn, until=until, with_rows=False):
        for seq, event in enumerate(txn.events):
            tid = event.table_id
            if event.kind == kinds.ROWS:
                tid = table_of(event)
                job = pending.get(tid)
                if job is not None and job.version != event.version:
                    flush(tid, (txn.txn_id, seq))
                    job = None
                if job is None:
                    pending[tid] = _Pending(event.version, (txn.txn_id, seq))
                continue
            if tid is not None and tid in pending:
                if event.kind in (kinds.DROP_TABLE, kinds.TRUNCATE, kinds.MATVIEW_REFRESH):
                    del pending[tid]  # everything pending is wiped by this event anyway
                else:
                    flush(tid, (txn.txn_id, seq))
            apply_event(con, event)
        last = txn.info
    for tid in list(pending):
        flush(tid, None)
    if last is not None:
        advance_row_ids(con, top[0])
        set_applied(con, last)
        con.execute(versions.restart_sql(last.txn_id))  # the versions these replaced were not kept
    return last


def _fold_rows(
    con: duckdb.DuckDBPyConnection,
    recorder: Recorder,
    table_id: int,
    version: int,
    start: Position,
    end: Position | None,
    until: int | None,
) -> int:
    """Fold one run of row events into the table; return the highest row id it saw."""
    batch = recorder.rows(table_id, version, after_txn=start[0] - 1, until=until)
    if batch is None or batch.num_rows == 0:
        return 0
    top = pc.max(batch.column("_rid")).as_py() or 0
    name = next(_fold_names)
    con.register(name, batch)
    try:
        bounds = [f"(_txn, _seq) >= ({start[0]}, {start[1]})"]
        if end is not None:
            bounds.append(f"(_txn, _seq) < ({end[0]}, {end[1]})")
        folded: pa.Table = con.sql(
            f"SELECT * FROM {name} WHERE {' AND '.join(bounds)} "
            "QUALIFY row_number() OVER (PARTITION BY _rid ORDER BY _txn DESC, _seq DESC) = 1"
        ).to_arrow_table()
    finally:
        con.unregister(name)
    # A row whose last image is an insert was born inside the range, so the base lacks it;
    # apply_rows deletes only rows whose last image is an update or delete.
    apply_rows(con, table_id, folded)
    return top


__all__ = ["replay", "RowOp"]
