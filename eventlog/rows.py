"""Turning the row images of transactions into the flat tables readers want."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from eventlog.events import Transaction


def log_rows(txns: Iterable[Transaction], table_id: int, version: int) -> pa.Table | None:
    """The row images of one table version in `txns`, with the log meta columns first."""
    parts: list[pa.Table] = []
    for txn in txns:
        for seq, event in enumerate(txn.events):
            if event.rows is None or event.table_id != table_id or event.version != version:
                continue
            parts.append(with_log_meta(event.rows, txn.txn_id, txn.ts.physical, seq))
    if not parts:
        return None
    return pa.concat_tables(parts)


def with_log_meta(rows: pa.Table, txn_id: int, ts: int, seq: int) -> pa.Table:
    """Prefix `_txn`, `_ts` and `_seq` columns to an event's rows."""
    n = rows.num_rows
    table = rows.add_column(0, "_seq", pa.repeat(pa.scalar(seq, pa.int32()), n))
    table = table.add_column(0, "_ts", pa.repeat(pa.scalar(ts, pa.int64()), n))
    return table.add_column(0, "_txn", pa.repeat(pa.scalar(txn_id, pa.int64()), n))
