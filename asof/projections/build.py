"""Building a state from the log: the nearest checkpoint, attached and shared, then the
transactions after it."""

from __future__ import annotations

import duckdb

from asof.eventlog.events import TransactionInfo
from asof.eventlog.recorder import Recorder, Store
from asof.projections.apply import bootstrap
from asof.projections.checkpoint import nearest_checkpoint, verify_checkpoint
from asof.projections.lazy import BASES_TABLE, load_lazy_base
from asof.projections.replay import replay


def build_at(
    con: duckdb.DuckDBPyConnection, store: Store, recorder: Recorder, until: int | None
) -> TransactionInfo | None:
    """Fill an empty database with the state at `until`: nearest checkpoint, shared, plus the
    log after it. Returns the last transaction included."""
    ref = nearest_checkpoint(recorder, until)
    if ref is None:
        bootstrap(con)
        base = None
    else:
        base = load_lazy_base(con, store, ref.path)
    last = replay(con, recorder, after_txn=base.txn_id if base else 0, until=until)
    return last or base


def damaged_bases(con: duckdb.DuckDBPyConnection, store: Store, recorder: Recorder) -> list[str]:
    """The attached checkpoints whose bytes no longer match their recorded checksum."""
    try:
        paths = {r[0] for r in con.execute(f"SELECT path FROM {BASES_TABLE}").fetchall()}
    except duckdb.Error:
        return []
    out = []
    for ref in recorder.checkpoints():
        if ref.path in paths:
            problem = verify_checkpoint(store, ref)
            if problem is not None:
                out.append(problem)
    return out
