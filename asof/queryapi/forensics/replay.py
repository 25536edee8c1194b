"""Walk a database's past forward, one transaction or one time step at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from asof.eventlog.recorder import Recorder
from asof.queryapi.errors import ProgrammingError
from asof.queryapi.progress import track
from asof.queryapi.timeref import to_micros


def _step_micros(step: Any) -> int | None:
    if step is None:
        return None
    if isinstance(step, dt.timedelta):
        micros = (step.days * 86400 + step.seconds) * 1_000_000 + step.microseconds
    elif isinstance(step, int) and not isinstance(step, bool):
        micros = step
    else:
        raise ProgrammingError("step must be microseconds (int) or a datetime.timedelta")
    if micros <= 0:
        raise ProgrammingError("step must be positive")
    return micros


def replay_times(recorder: Recorder, since: Any, until: Any, step: Any = None) -> list[int]:
    """The times replay visits: `since`, then each commit (or each step) up to `until`."""
    lo, hi = to_micros(since), to_micros(until)
    if hi < lo:
        raise ProgrammingError(f"until ({hi}) is before since ({lo}); swap them")
    every = _step_micros(step)
    if every is not None:
        times = list(range(lo, hi + 1, every))
        return times if times[-1] == hi else [*times, hi]
    commits = [t.ts.physical for t in recorder.transactions(until=hi, with_rows=False)]
    return [lo, *sorted({t for t in commits if t > lo})]


def replay(
    name: str,
    recorder: Recorder,
    as_of: Callable[[int], Any],
    since: Any,
    until: Any,
    step: Any = None,
    *,
    progress: bool | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (ts, AS OF handle) from `since` to `until`: after every transaction (step=None)
    or every `step` (µs or timedelta). Each handle is independent; close it when done."""
    times = replay_times(recorder, since, until, step)
    for ts in track(times, total=len(times), desc=f"replay {name}", progress=progress):
        yield ts, as_of(ts)
