"""Sealing: turning the WAL tail into immutable segment files.

Rows are regrouped by table version, so a reader of one table opens only that table's
segments; the transactions themselves (headers and the non-row part of events) go into one
txns segment that names, for each row event, the segment holding its rows. The files are
written and fsync'd here; making them part of the log (the manifest) is the caller's step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from asof.eventlog.events import Transaction
from asof.eventlog.fsutil import fsync_dir
from asof.eventlog.rows import prefix_log_meta
from asof.eventlog.segment import ROWS, TXNS, SegmentRef, concat_rows, txn_table, write_segment


class _Run:
    """Consecutive row events of one table version with one schema: one rows segment.

    A version's schema normally never changes; if it does (metadata, say), a new run keeps
    each file uniform instead of failing the seal.
    """

    def __init__(self, key: tuple[int | None, int], schema: pa.Schema, path: str) -> None:
        self.key = key
        self.schema = schema
        self.path = path
        self.parts: list[pa.Table] = []
        self.txns: list[int] = []
        self.stamps: list[int] = []
        self.seqs: list[int] = []

    def add(self, rows: pa.Table, txn: Transaction, seq: int) -> None:
        self.parts.append(rows)
        self.txns.append(txn.txn_id)
        self.stamps.append(txn.ts.physical)
        self.seqs.append(seq)

    def table(self) -> pa.Table:
        """The rows segment's content."""
        return concat_rows([prefix_log_meta(self.parts, self.txns, self.stamps, self.seqs)])

    def ref(self, rows: int, size: int, crc: int) -> SegmentRef:
        table_id, version = self.key
        return SegmentRef(
            self.path, ROWS, table_id, version, min(self.txns), max(self.txns),
            min(self.stamps), max(self.stamps), rows, size, crc,
        )  # fmt: skip

    def write(self, resolve: Callable[[str], Path]) -> SegmentRef:
        table = self.table()
        size, crc = write_segment(resolve(self.path), table)
        return self.ref(table.num_rows, size, crc)


def plan(
    tail: Sequence[Transaction], new_path: Callable[[], str]
) -> tuple[list[_Run], dict[tuple[int, int], str]]:
    """Group the tail's row events into runs; map (txn_id, seq) to the run's path."""
    chains: dict[tuple[int | None, int], list[_Run]] = {}
    runs: list[_Run] = []
    located: dict[tuple[int, int], str] = {}
    for txn in tail:
        for seq, event in enumerate(txn.events):
            if event.rows is None:
                continue
            chain = chains.setdefault((event.table_id, event.version), [])
            if not chain or not chain[-1].schema.equals(event.rows.schema, check_metadata=True):
                chain.append(_Run((event.table_id, event.version), event.rows.schema, new_path()))
                runs.append(chain[-1])
            chain[-1].add(event.rows, txn, seq)
            located[(txn.txn_id, seq)] = chain[-1].path
    return runs, located


def write_segments(
    tail: Sequence[Transaction],
    runs: Sequence[_Run],
    located: dict[tuple[int, int], str],
    txns_path: str,
    resolve: Callable[[str], Path],
) -> list[SegmentRef]:
    """Write (and fsync, with their directories) every segment of one seal.

    Returns their references: the rows segments, then the txns segment.
    """
    refs = [run.write(resolve) for run in runs]
    size, crc = write_segment(resolve(txns_path), txn_table(tail, located))
    refs.append(txns_ref(tail, txns_path, size, crc))
    for directory in {resolve(r.path).parent for r in refs}:
        fsync_dir(directory)
    return refs


def txns_ref(tail: Sequence[Transaction], path: str, size: int, crc: int) -> SegmentRef:
    """The reference to the txns segment of `tail`."""
    stamps = [t.ts.physical for t in tail]
    return SegmentRef(
        path, TXNS, None, 0, tail[0].txn_id, tail[-1].txn_id,
        min(stamps), max(stamps), len(tail), size, crc,
    )  # fmt: skip
