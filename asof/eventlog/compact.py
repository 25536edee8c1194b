"""Compaction: rewriting a log's own sealed segments into few, and optionally folding history.

Sealing after every few appends leaves many small files, and a reader of one table opens
each of them. Compaction merges the log's own rows segments (one file per table version, per
run of identical row schemas, at most MAX_ROWS rows each) and its txns segments (one file).
A fold point (a transaction a registered checkpoint holds the state at) also leaves out
every row and transaction up to it, drops inherited segments wholly before it and the
checkpoints older than it.

Inherited segments are the fork source's files: they are never rewritten, only dropped from
the manifest. The log's own parts of a rotated WAL file (walseg.py) are always rewritten into
real segments, so that the file can go once no fork refers to it. This module writes and fsyncs the new files and returns the manifest naming
them; the caller replaces the manifest atomically, and `gc` deletes the old files once no
manifest (a fork's, say) names them, so a crash at any point leaves a complete log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.errors import LogError
from asof.eventlog.events import TransactionInfo
from asof.eventlog.fsutil import fsync_dir
from asof.eventlog.hlc import Timestamp
from asof.eventlog.layout import FRAGMENT, file_of
from asof.eventlog.manifest import Manifest
from asof.eventlog.reader import LogView
from asof.eventlog.recorder import CheckpointRef, CompactionReport
from asof.eventlog.segment import (
    ROWS,
    TXN_SCHEMA,
    TXNS,
    SegmentCache,
    SegmentRef,
    TxnRecord,
    concat_rows,
    txn_records,
    write_segment,
)

__all__ = ["MAX_ROWS", "CompactionReport", "Compacted", "compact_manifest", "fold_point"]

#: Rows per merged rows segment: a bigger table version gets several files.
MAX_ROWS = 4 << 20


@attrs.frozen
class Compacted:
    """The outcome of compacting one manifest: the manifest naming the new files."""

    manifest: Manifest
    report: CompactionReport


def fold_point(
    manifest: Manifest, fold_txn: int, fold_ts: Timestamp | None, cache: SegmentCache
) -> TransactionInfo | None:
    """The header of the fold transaction; None when fold_txn does not move the fold.

    Raises LogError when no checkpoint of the manifest is at fold_txn, when the log has no
    such transaction, or when fold_ts is not its timestamp.
    """
    if fold_txn <= manifest.folded_txn:
        return None
    if not any(c.txn_id == fold_txn for c in manifest.checkpoints):
        raise LogError(f"log {manifest.log_id} has no checkpoint at txn {fold_txn} to fold into")
    view = LogView(manifest, (), cache)
    txn = next(iter(view.transactions(fold_txn - 1, None, with_rows=False)), None)
    if txn is None or txn.txn_id != fold_txn:
        raise LogError(f"log {manifest.log_id} has no sealed txn {fold_txn}")
    if fold_ts is not None and fold_ts != txn.ts:
        raise LogError(f"txn {fold_txn} has timestamp {txn.ts}, not {fold_ts}")
    return txn.info


def compact_manifest(
    manifest: Manifest,
    fold: TransactionInfo | None,
    cache: SegmentCache,
    resolve: Callable[[str], Path],
    new_path: Callable[[], str],
) -> Compacted:
    """Write the merged segments of `manifest` (folded at `fold`, if given) and fsync them.

    A file that would come out unchanged is kept as it is; when nothing would change, the
    same manifest comes back and nothing is written.
    """
    fold_txn = manifest.folded_txn if fold is None else fold.txn_id
    inherited = [s for s in manifest.segments if not _is_own(s, manifest)]
    own = [s for s in manifest.segments if _is_own(s, manifest)]
    by_key: dict[tuple[int | None, int], list[SegmentRef]] = {}
    for ref in own:
        if ref.kind == ROWS:
            by_key.setdefault((ref.table_id, ref.version), []).append(ref)
    own_txns = [s for s in own if s.kind == TXNS]
    if (
        fold is None
        and len(own_txns) <= 1
        and all(len(v) == 1 for v in by_key.values())
        and all(_keeps(s, 0) for s in own)
    ):
        return Compacted(manifest, _report(manifest, manifest, 0))

    kept_inherited = [s for s in inherited if s.max_txn > fold_txn]
    dropped = sum(_visible_rows(s, cache) for s in inherited if s.max_txn <= fold_txn)
    records = [r for ref in own_txns for r in txn_records(cache.read(ref)) if r.txn_id > fold_txn]
    uses: dict[str, list[TxnRecord]] = {}
    for rec in records:
        for e in rec.events:
            if e.rows_segment is not None:
                uses.setdefault(e.rows_segment, []).append(rec)

    written: list[SegmentRef] = []
    rows_refs: list[SegmentRef] = []
    remap: dict[str, str] = {}
    for refs in by_key.values():
        for group, table, folded_rows in _groups(refs, fold_txn, cache.read):
            dropped += folded_rows
            txns = sorted({r.txn_id: r for p in group for r in uses.get(p.path, [])}.values(),
                          key=lambda r: r.txn_id)  # fmt: skip
            if not txns:
                continue  # everything in it was folded
            if table is None:  # one file, nothing folded out of it: keep it
                rows_refs.append(group[0])
                continue
            path = new_path()
            size, crc = write_segment(resolve(path), table)
            ref = _ref(path, ROWS, group[0].table_id, group[0].version, txns, table.num_rows,
                       size, crc)  # fmt: skip
            written.append(ref)
            rows_refs.append(ref)
            remap.update((p.path, path) for p in group)

    txns_refs: list[SegmentRef] = []
    if len(own_txns) == 1 and _keeps(own_txns[0], fold_txn) and not remap:
        txns_refs = own_txns
    elif records:
        path = new_path()
        size, crc = write_segment(resolve(path), _records_table(records, remap))
        txns_refs = [_ref(path, TXNS, None, 0, records, len(records), size, crc)]
        written.append(txns_refs[0])
    for directory in {resolve(r.path).parent for r in written}:
        fsync_dir(directory)

    new = attrs.evolve(manifest, segments=(*kept_inherited, *rows_refs, *txns_refs))
    if fold is not None:
        new = attrs.evolve(
            new,
            checkpoints=after_fold(manifest.checkpoints, fold.txn_id),
            folded_txn=fold.txn_id,
            folded_ts=fold.ts,
            folded_sql=fold.sql,
        )
    return Compacted(new, _report(manifest, new, dropped))


def rebase(compacted: Manifest, snapshot: Manifest, current: Manifest) -> Manifest:
    """`compacted` (made from `snapshot`) plus what seals and checkpoints added since.

    Those only ever append to a manifest; anything else means the log changed under the
    compaction, and LogError says so rather than lose it.
    """
    n, k = len(snapshot.segments), len(snapshot.checkpoints)
    if current.segments[:n] != snapshot.segments or current.checkpoints[:k] != (
        snapshot.checkpoints
    ):
        raise LogError(f"log {current.log_id} changed during compaction; try again")
    return attrs.evolve(
        compacted,
        segments=(*compacted.segments, *current.segments[n:]),
        checkpoints=(
            *compacted.checkpoints,
            *after_fold(current.checkpoints[k:], compacted.folded_txn),
        ),
        last_sealed_txn=current.last_sealed_txn,
    )


def after_fold(refs: Sequence[CheckpointRef], fold_txn: int) -> tuple[CheckpointRef, ...]:
    """The checkpoints a log folded at fold_txn keeps: the fold's own and later ones."""
    return tuple(c for c in refs if c.txn_id >= fold_txn)


def _keeps(ref: SegmentRef, fold_txn: int) -> bool:
    """Whether a lone own segment stays as it is: nothing folded out of it, and a real file
    (the parts of a rotated WAL become segments, so the file can go once forks let it)."""
    return ref.min_txn > fold_txn and FRAGMENT not in ref.path


def _is_own(ref: SegmentRef, manifest: Manifest) -> bool:
    return ref.until is None and ref.min_txn > manifest.inherited_txn


def _groups(
    refs: Sequence[SegmentRef], fold_txn: int, read: Callable[[SegmentRef], pa.Table]
) -> Iterator[tuple[list[SegmentRef], pa.Table | None, int]]:
    """Consecutive segments of one table version to merge into one file, with the merged
    rows after the fold (None: a lone segment nothing was folded out of) and the number of
    rows folded away. Reads one group at a time."""
    if len(refs) == 1 and _keeps(refs[0], fold_txn):
        yield list(refs), None, 0
        return
    group: list[SegmentRef] = []
    parts: list[pa.Table] = []
    rows = folded = 0
    for ref in refs:
        table = read(ref)
        if parts and (rows + table.num_rows > MAX_ROWS or not parts[0].schema.equals(
            table.schema, check_metadata=True
        )):  # fmt: skip
            yield group, _merge(group, parts, fold_txn), folded
            group, parts, rows, folded = [], [], 0, 0
        if ref.min_txn <= fold_txn:
            kept = table.filter(pc.greater(table["_txn"], fold_txn))
            folded += table.num_rows - kept.num_rows
            table = kept
        group.append(ref)
        parts.append(table)
        rows += table.num_rows
    if group:
        yield group, _merge(group, parts, fold_txn), folded


def _merge(group: list[SegmentRef], parts: list[pa.Table], fold_txn: int) -> pa.Table | None:
    if len(group) == 1 and _keeps(group[0], fold_txn):
        return None
    return concat_rows(parts)


def _ref(
    path: str,
    kind: str,
    table_id: int | None,
    version: int,
    txns: Sequence[TxnRecord],
    count: int,
    size: int,
    crc: int,
) -> SegmentRef:
    stamps = [t.ts.physical for t in txns]
    return SegmentRef(
        path, kind, table_id, version, txns[0].txn_id, txns[-1].txn_id,
        min(stamps), max(stamps), count, size, crc,
    )  # fmt: skip


def _records_table(records: Sequence[TxnRecord], remap: dict[str, str]) -> pa.Table:
    """A txns segment's content for decoded records, pointing at the merged rows files."""
    events = [
        [
            {
                "seq": e.seq,
                "kind": e.kind,
                "table_id": e.table_id,
                "version": e.version,
                "data": json.dumps(e.data),
                "row_count": e.row_count,
                "rows_segment": remap.get(e.rows_segment, e.rows_segment)
                if e.rows_segment is not None
                else None,
            }
            for e in r.events
        ]
        for r in records
    ]
    columns = {
        "txn_id": [r.txn_id for r in records],
        "ts_physical": [r.ts.physical for r in records],
        "ts_logical": [r.ts.logical for r in records],
        "sql": [r.sql for r in records],
        "events": events,
    }
    return pa.table(columns, schema=TXN_SCHEMA)


def _visible_rows(ref: SegmentRef, cache: SegmentCache) -> int:
    """Rows a dropped inherited segment showed this log (reads it only if it is capped)."""
    if ref.kind != ROWS:
        return 0
    if ref.until is None or ref.max_ts <= ref.until:
        return ref.row_count
    return int(pc.sum(pc.less_equal(cache.table(ref)["_ts"], ref.until)).as_py() or 0)


def _report(before: Manifest, after: Manifest, rows_dropped: int) -> CompactionReport:
    return CompactionReport(
        segments_before=len(before.segments),
        segments_after=len(after.segments),
        bytes_before=_file_bytes(before),
        bytes_after=_file_bytes(after),
        rows_dropped=rows_dropped,
    )


def _file_bytes(manifest: Manifest) -> int:
    """Bytes of the files a manifest names: references into one rotated WAL count it once."""
    return sum({file_of(s.path): s.size for s in manifest.segments}.values())
