"""Progress bars for long forensic jobs: shown in terminals and notebooks, silent elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def wants_progress(progress: bool | None) -> bool:
    """An explicit choice wins; by default show a bar only when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def track(
    items: Iterable[T], *, total: int | None, desc: str, progress: bool | None
) -> Iterator[T]:
    """Iterate `items`, drawing a tqdm bar (tqdm.auto picks the notebook widget) if wanted."""
    if not wants_progress(progress):
        yield from items
        return
    from tqdm.auto import tqdm

    with tqdm(items, total=total, desc=desc, unit="step", leave=False) as bar:
        yield from bar
