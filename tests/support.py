"""Helpers shared by the test modules (import from here, not from conftest)."""

from __future__ import annotations

import time


def head_ts(db) -> int:
    """The physical commit time of the database's newest transaction."""
    return list(db.transactions())[-1].ts.physical


def tick() -> None:
    """Let the wall clock move so consecutive commits get distinct microseconds."""
    time.sleep(0.002)


def table_rows(handle, table: str) -> list[tuple]:
    return sorted(handle.sql(f'SELECT * FROM "{table}"').fetchall(), key=repr)
