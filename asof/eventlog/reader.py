"""Reading one log: its sealed segments (as its manifest lists them) then its WAL tail.

A `LogView` is a consistent snapshot: segments are immutable and the manifest and tail are
captured together, so a read that races a seal or an append sees each transaction once.
Segments a range cannot touch are skipped without being opened; a fork's cap (`until` of a
segment reference) hides the part of a shared file past the fork point, and a fold point
(see compact.py) hides everything up to it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.errors import CorruptionError
from asof.eventlog.events import Event, Transaction, TransactionInfo, without_rows
from asof.eventlog.manifest import Manifest
from asof.eventlog.rows import concat_images, log_rows
from asof.eventlog.segment import ROWS, TXNS, SegmentCache, TxnRecord
from asof.eventlog.wal import decode_payloads


def tail_range(
    tail: Sequence[Transaction], after_txn: int, until: int | None
) -> Iterator[Transaction]:
    """The tail's transactions in (after_txn, until]; txn ids there are consecutive."""
    start = max(0, after_txn - tail[0].txn_id + 1) if tail else 0
    for i in range(start, len(tail)):
        txn = tail[i]
        if until is not None and txn.ts.physical > until:
            return
        yield txn


def decode_tail(payloads: list[bytes], manifest: Manifest, path: Path) -> list[Transaction]:
    """The WAL's unsealed transactions; frames the manifest already covers are skipped."""
    tail: list[Transaction] = []
    expected = manifest.last_sealed_txn + 1
    for txn in decode_payloads(payloads, path):
        if txn.txn_id < expected and not tail:
            continue  # sealed already: a crash came between manifest and WAL truncation
        if txn.txn_id != expected:
            raise CorruptionError(
                f"WAL {path}: txn {txn.txn_id} where {expected} was expected", str(path)
            )
        tail.append(txn)
        expected += 1
    return tail


def sealed_head(manifest: Manifest, cache: SegmentCache) -> TransactionInfo | None:
    """The newest sealed transaction: from the segments, or the fold point when compaction
    folded every transaction the segments would show."""
    rec = last_visible(manifest, cache)
    folded = manifest.folded
    if folded is not None and (rec is None or rec.txn_id <= folded.txn_id):
        return folded
    return None if rec is None else record_info(rec)


def last_visible(manifest: Manifest, cache: SegmentCache) -> TxnRecord | None:
    """The newest transaction a manifest's segments show, respecting fork caps."""
    for ref in reversed(manifest.segments):
        if ref.kind != TXNS:
            continue
        for rec in reversed(cache.records(ref)):
            if ref.until is None or rec.ts.physical <= ref.until:
                return rec
    return None


def last_txn_id(manifest: Manifest, cache: SegmentCache) -> int:
    """The newest txn id a manifest's segments show; reads a segment only if it is capped."""
    for ref in reversed(manifest.segments):
        if ref.kind != TXNS:
            continue
        if ref.until is None or ref.max_ts <= ref.until:
            return ref.max_txn
        for rec in reversed(cache.records(ref)):
            if rec.ts.physical <= ref.until:
                return rec.txn_id
    return 0


def record_info(rec: TxnRecord) -> TransactionInfo:
    return TransactionInfo(rec.txn_id, rec.ts, rec.sql)


@attrs.frozen
class LogView:
    manifest: Manifest
    tail: Sequence[Transaction]
    cache: SegmentCache

    def _sealed(self, after_txn: int, until: int | None) -> Iterator[tuple[str, TxnRecord]]:
        """(txns segment path, record) of sealed transactions in range, in txn order.

        Stops at the first transaction past `until`, as the memory backend does.
        """
        for ref in self.manifest.segments:
            if ref.kind != TXNS or ref.skip(after_txn, until):
                continue
            for rec in self.cache.records(ref):
                if rec.txn_id <= after_txn:
                    continue
                if until is not None and rec.ts.physical > until:
                    return
                if ref.until is not None and rec.ts.physical > ref.until:
                    break  # the rest of this shared file is past the fork point
                yield ref.path, rec

    def transactions(
        self, after_txn: int = 0, until: int | None = None, with_rows: bool = True
    ) -> Iterator[Transaction]:
        """Without rows, events read back with rows=None (only sealed rows cost a read)."""
        after_txn = max(after_txn, self.manifest.folded_txn)
        by_path = {s.path: s for s in self.manifest.segments}
        for _, rec in self._sealed(after_txn, until):
            events = tuple(
                Event(
                    e.kind,
                    e.table_id,
                    e.version,
                    e.data,
                    self.cache.event_rows(by_path[e.rows_segment], rec.txn_id, e.seq)
                    if with_rows and e.rows_segment is not None
                    else None,
                )
                for e in rec.events
            )
            yield Transaction(rec.txn_id, rec.ts, events, rec.sql)
        for txn in tail_range(self.tail, after_txn, until):
            yield txn if with_rows else without_rows(txn)

    def last_at(self, until: int) -> int:
        """The id of the last transaction with ts.physical <= until (0: none): a binary
        search of the tail, else of each txns segment that may hold it."""
        tail = self.tail
        if tail and tail[0].ts.physical <= until:
            i = bisect.bisect_right(tail, until, key=lambda t: t.ts.physical)
            return tail[i - 1].txn_id
        folded = self.manifest.folded_txn
        last = 0
        for ref in self.manifest.segments:
            if ref.kind != TXNS or ref.max_txn <= max(folded, last) or ref.skip(folded, until):
                continue
            cap = ref.cap(until)
            records = self.cache.records(ref)
            i = bisect.bisect_right(records, cap, key=lambda r: r.ts.physical)
            if i and records[i - 1].txn_id > folded:
                last = max(last, records[i - 1].txn_id)
        return last

    def rows(
        self, table_id: int, version: int, after_txn: int = 0, until: int | None = None
    ) -> pa.Table | None:
        after_txn = max(after_txn, self.manifest.folded_txn)  # inherited files may hold more
        parts: list[pa.Table] = []
        for ref in self.manifest.segments:
            if ref.kind != ROWS or ref.table_id != table_id or ref.version != version:
                continue
            if ref.skip(after_txn, until):
                continue
            table = self.cache.table(ref)
            cap = ref.cap(until)
            if ref.min_txn <= after_txn:
                table = table.filter(pc.greater(table["_txn"], after_txn))
            if cap is not None and ref.max_ts > cap:
                table = table.filter(pc.less_equal(table["_ts"], cap))
            parts.append(table)
        sealed_rows = sum(p.num_rows for p in parts)
        own = log_rows(tail_range(self.tail, after_txn, until), table_id, version)
        if own is not None:
            parts.append(own)
        elif sealed_rows == 0 and (
            not parts or not self._has_row_event(table_id, version, after_txn, until)
        ):
            return None  # as the memory backend: None when no row event is in range
        return concat_images(parts)

    def _has_row_event(
        self, table_id: int, version: int, after_txn: int, until: int | None
    ) -> bool:
        """Whether a sealed event of this table version with (maybe zero) rows is in range."""
        return any(
            e.row_count is not None and e.table_id == table_id and e.version == version
            for _, rec in self._sealed(after_txn, until)
            for e in rec.events
        )
