"""Query results that convert the way DuckDB users expect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa


class Result:
    """A materialised result: rows as Arrow, with DB-API style fetch methods on top."""

    def __init__(self, table: pa.Table | None, *, rowcount: int = -1) -> None:
        self._built = table
        self._pos = 0
        self.rowcount = rowcount

    @property
    def _table(self) -> pa.Table:
        if self._built is None:  # a row count: most callers never look at it as a table
            self._built = pa.table({"Count": pa.array([self.rowcount], pa.int64())})
        return self._built

    @classmethod
    def empty(cls) -> Result:
        return cls(pa.table({}))

    @classmethod
    def count(cls, n: int) -> Result:
        """What DuckDB returns for INSERT/UPDATE/DELETE: one row with the affected count."""
        return cls(None, rowcount=n)

    @property
    def columns(self) -> list[str]:
        return list(self._table.column_names)

    @property
    def description(self) -> list[tuple]:
        return [(f.name, str(f.type), None, None, None, None, None) for f in self._table.schema]

    def arrow(self) -> pa.Table:
        return self._table

    def df(self):
        return self._table.to_pandas()

    def _rows(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        part = self._table.slice(start, max(0, stop - start))
        cols = [c.to_pylist() for c in part.columns]
        return list(zip(*cols, strict=True)) if cols else []

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows(self._pos, self._table.num_rows)
        self._pos = self._table.num_rows
        return rows

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        rows = self._rows(self._pos, self._pos + size)
        self._pos += len(rows)
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"<Result {self._table.num_rows} rows × {self._table.num_columns} columns>"
