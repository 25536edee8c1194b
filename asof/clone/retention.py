"""How far back a database can be read: its retention window.

A database's history reaches back to when the oldest database in its lineage was created
(a clone carries its sources' history), limited by the retention its snapshot schedules
set (7 days without one) and by what compaction has already folded into a checkpoint.
"""

from __future__ import annotations

import attrs

from asof.clone.catalog import Catalog, DatabaseRecord
from asof.eventlog.hlc import HybridClock
from asof.eventlog.recorder import Recorder


@attrs.frozen
class Window:
    """The earliest and latest times (Unix µs) AS OF can read; both inclusive."""

    earliest: int
    latest: int

    def __contains__(self, micros: object) -> bool:
        return isinstance(micros, int) and self.earliest <= micros <= self.latest


def lineage_start(catalog: Catalog, rec: DatabaseRecord) -> int:
    """When the oldest history a database carries began (its root source's creation)."""
    while rec.source_id is not None:
        source = catalog.by_id(rec.source_id)
        if source is None:
            break
        rec = source
    return rec.created.physical


def retention_micros(catalog: Catalog, rec: DatabaseRecord) -> int:
    return catalog.settings.retention_minutes(rec.db_id) * 60_000_000


def window(catalog: Catalog, clock: HybridClock, rec: DatabaseRecord, recorder: Recorder) -> Window:
    """The window of `rec`, whose log is `recorder`, as of now."""
    now = clock.peek_physical()
    earliest = max(lineage_start(catalog, rec), now - retention_micros(catalog, rec))
    folded = recorder.history_start()
    if folded is not None:  # compaction folded older history into a checkpoint
        earliest = max(earliest, folded.ts.physical)
    return Window(earliest, now)


def horizon(catalog: Catalog, clock: HybridClock, rec: DatabaseRecord) -> int:
    """The time before which history may be folded away by compaction."""
    return clock.peek_physical() - retention_micros(catalog, rec)
