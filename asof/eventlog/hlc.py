"""Hybrid logical clock: commit timestamps that never repeat and never fall behind the wall."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import attrs


def wall_clock_micros() -> int:
    """Unix time in microseconds from the system clock."""
    return time.time_ns() // 1000


@attrs.frozen(order=True)
class Timestamp:
    """A hybrid timestamp: physical Unix microseconds plus a logical counter for ties.

    `AS OF T` compares `physical` only; `logical` orders commits inside one microsecond or
    while the wall clock is behind an earlier commit.
    """

    physical: int
    logical: int = 0

    def __str__(self) -> str:
        return f"{self.physical}.{self.logical}"


class HybridClock:
    """Issues strictly increasing timestamps, even when the wall clock steps back.

    Thread-safe. Seed it with the newest timestamp found in the logs so timestamps keep
    increasing across restarts.
    """

    def __init__(
        self,
        wall: Callable[[], int] = wall_clock_micros,
        last: Timestamp | None = None,
    ) -> None:
        self._wall = wall
        self._last = last or Timestamp(0, 0)
        self._lock = threading.Lock()

    @property
    def last(self) -> Timestamp:
        return self._last

    def now(self) -> Timestamp:
        """A timestamp later than every one issued or observed before."""
        with self._lock:
            wall = self._wall()
            if wall > self._last.physical:
                ts = Timestamp(wall, 0)
            else:
                ts = Timestamp(self._last.physical, self._last.logical + 1)
            self._last = ts
            return ts

    def observe(self, ts: Timestamp) -> None:
        """Move the clock past a timestamp seen elsewhere (a log read on open)."""
        with self._lock:
            if ts > self._last:
                self._last = ts

    def peek_physical(self) -> int:
        """The physical time `now()` would use, without issuing a timestamp."""
        with self._lock:
            return max(self._wall(), self._last.physical)
