"""Merge a transaction's row events per table before they are logged.

A transaction that updates rows one statement at a time would otherwise log one event per
statement, and every later read (AS OF, clones, history) would pay per event. Row events of
one table version commute with everything but that table's own barriers (truncate, alter,
drop), so each run between barriers becomes one event holding the last image of each row.
Rows born and deleted inside the transaction never existed outside it and are left out.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.events import Event, RowOp
from asof.projections import kinds


def coalesce(events: list[Event]) -> list[Event]:
    out: list[Event | list[Event]] = []
    open_runs: dict[tuple[int, int], int] = {}  # (table, version) -> index in out
    for event in events:
        if event.kind == kinds.ROWS and event.rows is not None:
            key = (event.table_id, event.version)
            at = open_runs.get(key)
            if at is None:
                open_runs[key] = len(out)
                out.append([event])
            else:
                out[at].append(event)  # type: ignore[union-attr]
            continue
        if event.table_id is not None:
            for key in [k for k in open_runs if k[0] == event.table_id]:
                del open_runs[key]
        out.append(event)
    merged: list[Event] = []
    for item in out:
        if isinstance(item, list):
            event = item[0] if len(item) == 1 else _merge(item)
            if event is not None:
                merged.append(event)
        else:
            merged.append(item)
    return merged


def _merge(run: list[Event]) -> Event | None:
    rows = pa.concat_tables([e.rows for e in run], promote_options="default")
    n = rows.num_rows
    rows = rows.append_column("__i", pa.array(np.arange(n, dtype=np.int64)))
    by_row = rows.group_by("_rid", use_threads=False).aggregate([("__i", "min"), ("__i", "max")])
    first = by_row.column("__i_min").to_numpy()
    last = by_row.column("__i_max").to_numpy()
    ops = rows.column("_op").to_numpy()
    born = ops[first] == int(RowOp.INSERT)
    gone = ops[last] == int(RowOp.DELETE)
    keep = ~(born & gone)
    take = np.sort(last[keep])
    out = rows.take(pa.array(take)).drop_columns(["__i"])
    if out.num_rows == 0:
        return None
    # A row inserted earlier in this transaction is an insert, whatever happened to it after.
    born_rids = pa.array(rows.column("_rid").to_numpy()[first[born & keep]])
    new_ops = pc.if_else(
        pc.is_in(out.column("_rid"), value_set=born_rids),
        pa.scalar(int(RowOp.INSERT), pa.int8()),
        out.column("_op"),
    )
    out = out.set_column(out.schema.get_field_index("_op"), "_op", new_ops)
    head = run[0]
    return Event(head.kind, head.table_id, head.version, head.data, out)
