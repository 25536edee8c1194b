"""What the handles of one cluster share: the catalog, the clock, the cache of past
states, and whether the cluster is still open.

`Cluster` makes one and gives it to every `Database` and `AsOf` handle, so the handles need
nothing of the `Cluster` class itself and the two modules import in one direction only.
"""

from __future__ import annotations

from collections.abc import Callable

from asof.clone import retention
from asof.clone.catalog import Catalog
from asof.clone.operations import CloneRecord
from asof.eventlog.hlc import HybridClock
from asof.projections.live import DatabaseRuntime
from asof.projections.snapshots import StateCache
from asof.queryapi.errors import InterfaceError, ProgrammingError
from asof.queryapi.result import Result
from asof.queryapi.timeref import format_micros


class ClusterContext:
    def __init__(
        self,
        catalog: Catalog,
        clock: HybridClock,
        states: StateCache,
        run_sql: Callable[[str], Result],
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.states = states
        self.run_sql = run_sql
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise InterfaceError("the cluster is closed; open it again with Cluster.open()")

    def window(self, rt: DatabaseRuntime) -> retention.Window:
        rec = self.catalog.by_id(rt.db_id)
        if rec is None:
            raise ProgrammingError(f"database {rt.name!r} was dropped")
        return retention.window(self.catalog, self.clock, rec, rt.recorder)

    def check_window(self, rt: DatabaseRuntime, micros: int) -> None:
        """Refuse an AS OF outside the window, naming the times that would work."""
        w = self.window(rt)
        if micros not in w:
            where = "before" if micros < w.earliest else "after"
            raise ProgrammingError(
                f"AS OF {micros} ({format_micros(micros)} UTC) is {where} the window of "
                f"database {rt.name!r}: choose a time from {w.earliest} "
                f"({format_micros(w.earliest)}) to {w.latest} ({format_micros(w.latest)}) UTC"
            )

    def clones_of(self, db_id: str) -> list[CloneRecord]:
        return self.catalog.clones.list(db_id, None)
