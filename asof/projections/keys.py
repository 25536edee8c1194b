"""The unique keys of rows the fast insert path committed but DuckDB does not hold yet.

A single-row commit is durable in the log before it reaches the live projection, so a
duplicate key cannot be caught by DuckDB's own index until the rows are applied: this class
holds what DuckDB cannot see yet, beside the live projection that will receive the rows.
"""

from __future__ import annotations

from typing import Any

import attrs
import duckdb

from asof.projections.naming import first_row


@attrs.frozen
class UniqueKey:
    """A PRIMARY KEY or UNIQUE constraint, and the point query that finds a stored row
    with the same key (one DuckDB round trip, through the constraint's own index)."""

    positions: tuple[int, ...]  # of its columns among the user's columns
    probe: str  # `SELECT 1 FROM <storage table> WHERE c1 = ? AND … LIMIT 1`
    #: For a key of one integer column: `SELECT max(c) FROM <storage table>`. A key above
    #: the largest one stored or pending cannot collide, so keys that count up (the usual
    #: ids) need no probe at all.
    ceiling: str | None = None


Key = tuple[Any, ...]


class KeyTracker:
    """What the fast path knows of a database's unique keys beyond DuckDB: the keys of the
    rows still pending (DuckDB does not hold them yet), and for each key of one integer
    column an upper bound of the values stored or pending. Only the write lock's holder
    uses it."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], set[Key]] = {}  # (table id, key index)
        self._ceilings: dict[tuple[int, int], int | None] = {}  # None: no value stored

    def free(
        self,
        cur: duckdb.DuckDBPyConnection,
        table_id: int,
        specs: tuple[UniqueKey, ...],
        keys: list[Key | None],
    ) -> bool:
        """Whether no pending or stored row has any of the new row's unique keys."""
        for n, (spec, key) in enumerate(zip(specs, keys, strict=True)):
            if key is None:
                continue
            slot = (table_id, n)
            if spec.ceiling is not None:
                if slot not in self._ceilings:  # nothing pending: DuckDB has every key
                    found = first_row(cur, spec.ceiling)
                    self._ceilings[slot] = None if found is None else found[0]
                ceiling = self._ceilings[slot]
                if ceiling is None or key[0] > ceiling:
                    continue  # above every key stored or pending
            if key in self._pending.get(slot, ()):
                return False
            if first_row(cur, spec.probe, list(key)) is not None:
                return False
        return True

    def add(self, table_id: int, keys: list[Key | None]) -> None:
        """Note a committed row's keys as pending."""
        for n, key in enumerate(keys):
            if key is None:
                continue
            slot = (table_id, n)
            self._pending.setdefault(slot, set()).add(key)
            if slot in self._ceilings:
                ceiling = self._ceilings[slot]
                self._ceilings[slot] = key[0] if ceiling is None else max(ceiling, key[0])

    def applied(self) -> None:
        """The pending rows are in DuckDB now (the bounds still hold)."""
        self._pending.clear()

    def forget_bounds(self) -> None:
        """A general write may store larger keys: look the bounds up again."""
        self._ceilings.clear()
