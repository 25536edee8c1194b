"""Turning the row images of transactions into the flat tables readers want."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from asof.eventlog.events import Transaction


def log_rows(txns: Iterable[Transaction], table_id: int, version: int) -> pa.Table | None:
    """The row images of one table version in `txns`, with the log meta columns first.

    Built in one concatenation: reads after many small transactions (single-row updates)
    must not pay per event.
    """
    tables: list[pa.Table] = []
    txn_ids: list[int] = []
    stamps: list[int] = []
    seqs: list[int] = []
    for txn in txns:
        for seq, event in enumerate(txn.events):
            if event.rows is None or event.table_id != table_id or event.version != version:
                continue
            tables.append(event.rows)
            txn_ids.append(txn.txn_id)
            stamps.append(txn.ts.physical)
            seqs.append(seq)
    if not tables:
        return None
    return prefix_log_meta(tables, txn_ids, stamps, seqs)


def prefix_log_meta(
    tables: list[pa.Table], txn_ids: list[int], stamps: list[int], seqs: list[int]
) -> pa.Table:
    """Concatenate event row tables and prefix `_txn`, `_ts` and `_seq`, one value per
    event repeated over its rows: one pass, however many events."""
    body = concat_images(tables)
    counts = np.fromiter((t.num_rows for t in tables), dtype=np.int64, count=len(tables))
    meta = {
        "_txn": pa.array(np.repeat(np.asarray(txn_ids, dtype=np.int64), counts)),
        "_ts": pa.array(np.repeat(np.asarray(stamps, dtype=np.int64), counts)),
        "_seq": pa.array(np.repeat(np.asarray(seqs, dtype=np.int32), counts)),
    }
    for i, (name, arr) in enumerate(meta.items()):
        body = body.add_column(i, name, arr)
    return body


def concat_images(tables: list[pa.Table]) -> pa.Table:
    """Row images of one table version, concatenated. A column the log once took as
    Arrow's own type and now takes as text (TIME WITH TIME ZONE, whose offset Arrow drops)
    is made text throughout: the older values had lost their offset already."""
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = {
            f.name
            for t in tables
            for f in t.schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        }
        unified = []
        for t in tables:
            for i, f in enumerate(t.schema):
                if f.name in text and not pa.types.is_string(f.type):
                    t = t.set_column(
                        i, pa.field(f.name, pa.string()), t.column(i).cast(pa.string())
                    )
            unified.append(t)
        return pa.concat_tables(unified, promote_options="default")
