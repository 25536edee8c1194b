"""Which shared files reads in progress still need, so gc leaves them alone.

A read works from the manifest it started with; a compaction may replace that manifest and a
gc may then delete files only the old one named, while the read still has files to open.
Each log view registers its manifest here for as long as the view lives (a read's iterator
keeps its view alive), and gc spares every file those manifests name.
"""

from __future__ import annotations

import threading
import weakref

from asof.eventlog.layout import file_of
from asof.eventlog.manifest import Manifest
from asof.eventlog.reader import LogView


class ReadHolds:
    """Manifests held by live log views, counted per view. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Manifest, int]] = {}  # keyed by id: the tuple keeps it

    def hold(self, view: LogView) -> None:
        """Keep `view`'s files from gc for as long as the view lives."""
        manifest = view.manifest
        key = id(manifest)
        with self._lock:
            held = self._held.get(key)
            self._held[key] = (manifest, held[1] + 1 if held else 1)
        weakref.finalize(view, self._let_go, key)

    def _let_go(self, key: int) -> None:
        with self._lock:
            manifest, count = self._held[key]
            if count > 1:
                self._held[key] = (manifest, count - 1)
            else:
                del self._held[key]

    def files(self) -> set[str]:
        """The shared files (rotated WAL parts by their file) of every held manifest."""
        with self._lock:
            held = [m for m, _ in self._held.values()]
        return {file_of(s.path) for m in held for s in m.segments}
