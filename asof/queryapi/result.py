"""Query results that convert the way DuckDB users expect."""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import duckdb
import pyarrow as pa

from asof.queryapi.errors import AsofError, DataError, InterfaceError, ProgrammingError

#: Rows per batch a streaming result reads from DuckDB at a time.
BATCH_ROWS = 65_536


class Result:
    """A query's rows as Arrow, with DB-API style fetch methods on top.

    A query's result streams: DuckDB produces batches as fetches ask for them, so
    `fetchone()` of a large result reads one batch, not the whole result. Whatever needs
    every row (`fetchall`, `arrow`, `df`, `len`) reads the rest, and so does the next
    statement on the same handle (DuckDB runs one result per connection at a time): rows
    not fetched yet stay fetchable after it.
    """

    def __init__(
        self,
        table: pa.Table | None,
        *,
        rowcount: int = -1,
        types: Sequence[str] | None = None,
        reader: pa.RecordBatchReader | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._built = table
        self._reader = reader
        #: A streamed result's schema, kept for when it turns out to have no rows.
        self._stream_schema = reader.schema if reader is not None else None
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._batches: list[pa.RecordBatch] = []
        self._read_rows = 0
        self._pos = 0
        self.rowcount = rowcount
        #: DuckDB's name of each column's type (UUID and JSON are plain strings in Arrow).
        self.types: list[str] | None = list(types) if types else None
        # DuckDB's type of each column, where Arrow alone would give other Python values.
        self._convert = _converters(types) if types else {}

    @classmethod
    def of(
        cls,
        rel: duckdb.DuckDBPyRelation | None,
        *,
        lock: AbstractContextManager[Any] | None = None,
    ) -> Result:
        """A query's result, typed the way DuckDB's own fetchall types it, streaming its
        rows (`lock` is held while a fetch reads from the connection)."""
        if rel is None:
            return cls.empty()
        types = [str(t) for t in rel.types]
        if any(t in _AS_TEXT for t in types):
            rel = rel.project(
                ", ".join(
                    f"CAST(#{i + 1} AS VARCHAR) AS {_ident(n)}"
                    if t in _AS_TEXT
                    else f"#{i + 1} AS {_ident(n)}"
                    for i, (n, t) in enumerate(zip(rel.columns, types, strict=True))
                )
            )
        return cls(None, types=types, reader=rel.to_arrow_reader(BATCH_ROWS), lock=lock)

    @property
    def streaming(self) -> bool:
        """Rows are still to be read from DuckDB."""
        return self._reader is not None

    def _read_until(self, rows: int | None) -> None:
        """Read batches until `rows` rows are in (None: all of them)."""
        if self._reader is None:
            return
        with self._lock:
            while self._reader is not None and (rows is None or self._read_rows < rows):
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    self._finish()
                    break
                except (duckdb.Error, pa.ArrowException, OSError) as exc:
                    self._finish()
                    raise _stream_error(exc) from None
                self._batches.append(batch)
                self._read_rows += batch.num_rows

    def _finish(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def drain(self) -> None:
        """Read every row still in DuckDB, so the connection is free for another query."""
        self._read_until(None)

    @property
    def _schema(self) -> pa.Schema:
        if self._built is not None:
            return self._built.schema
        if self._stream_schema is not None:
            return self._stream_schema
        return self._table.schema

    def _so_far(self) -> pa.Table:
        """The rows read so far, as one table (zero-copy over the batches)."""
        if self._built is not None or self._stream_schema is None:
            return self._table
        return pa.Table.from_batches(self._batches, self._stream_schema)

    @property
    def _table(self) -> pa.Table:
        if self._built is None:
            if self._stream_schema is not None:
                self.drain()
                self._built = pa.Table.from_batches(self._batches, self._stream_schema)
                self._batches = []
            else:  # a row count: most callers never look at it as a table
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
        return list(self._schema.names)

    @property
    def description(self) -> list[tuple]:
        return [(f.name, str(f.type), None, None, None, None, None) for f in self._schema]

    def arrow(self) -> pa.Table:
        return self._table

    def df(self):
        try:
            return self._table.to_pandas()
        except (OverflowError, ValueError, NotImplementedError, pa.ArrowException) as exc:
            raise _unconvertible(self._table.schema, None, exc, "pandas") from None

    def pl(self) -> Any:
        """The rows as a polars DataFrame (polars is not a dependency of asof)."""
        try:
            import polars
        except ImportError:
            raise InterfaceError(
                "Result.pl() needs polars: pip install polars (or use .arrow() or .df())"
            ) from None
        return polars.from_arrow(self._table)

    def fetchnumpy(self) -> dict[str, Any]:
        """Every column as a NumPy array, by name, as DuckDB's fetchnumpy gives them."""
        try:
            return {
                name: column.to_numpy()
                for name, column in zip(self._table.column_names, self._table.columns, strict=True)
            }
        except (OverflowError, ValueError, NotImplementedError, pa.ArrowException) as exc:
            raise _unconvertible(self._table.schema, None, exc, "NumPy") from None

    def fetch_record_batch(self, rows_per_batch: int = BATCH_ROWS) -> pa.RecordBatchReader:
        """The rows not fetched yet as an Arrow stream of batches of `rows_per_batch` rows.
        It reads from DuckDB as it is read, like the result's own fetches."""
        if isinstance(rows_per_batch, bool) or not isinstance(rows_per_batch, int):
            raise ProgrammingError("rows_per_batch takes a whole number > 0")
        if rows_per_batch <= 0:
            raise ProgrammingError("rows_per_batch takes a whole number > 0")
        start = self._pos

        def batches() -> Iterator[pa.RecordBatch]:
            pos = start
            while True:
                self._read_until(pos + rows_per_batch)
                have = self._so_far()
                if pos >= have.num_rows:
                    return
                part = have.slice(pos, rows_per_batch)
                pos += part.num_rows
                self._pos = pos
                yield from part.combine_chunks().to_batches(rows_per_batch)

        return pa.RecordBatchReader.from_batches(self._schema, batches())

    def show(self, max_rows: int = 20) -> None:
        """Print the first rows as a table (reading only those from DuckDB)."""
        print(self._preview(max_rows))

    def _preview(self, max_rows: int) -> str:
        self._read_until(max_rows + 1)
        have = self._so_far()
        shown = have.slice(0, max_rows)
        names = shown.column_names
        rows = [["NULL" if v is None else str(v) for v in r] for r in self._rows(0, shown.num_rows)]
        widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = [
            line,
            "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)) + " |",
            line,
        ]
        out += [
            "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
            for r in rows
        ]
        out.append(line)
        more = have.num_rows > max_rows or self._reader is not None
        total = "more rows" if self._reader is not None else f"{have.num_rows} rows"
        out.append(f"{total} ({shown.num_rows} shown)" if more else f"{have.num_rows} rows")
        return "\n".join(out)

    def _rows(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        self._read_until(stop)
        have = self._so_far()
        stop = min(stop, have.num_rows)
        part = have.slice(start, max(0, stop - start))
        cols = []
        for i, column in enumerate(part.columns):
            try:
                values = column.to_pylist()
                convert = self._convert.get(i)
                if convert is not None:
                    values = [None if v is None else convert(v) for v in values]
            except (OverflowError, ValueError, pa.ArrowException) as exc:
                raise _unconvertible(part.schema, i, exc, "Python") from None
            cols.append(values)
        return list(zip(*cols, strict=True)) if cols else []

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows(self._pos, self._table.num_rows)
        self._pos = self._table.num_rows
        return rows

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ProgrammingError(f"fetchmany(size) takes a whole number >= 0, not {size!r}")
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
        if self._built is None and self._stream_schema is None:
            return f"<Result rowcount={self.rowcount}>" if self.rowcount >= 0 else "<Result>"
        if not self._schema.names:
            return "<Result 0 columns>"
        try:
            return self._preview(10)
        except AsofError as exc:
            return f"<Result: {exc}>"


#: DuckDB's error names, as a failure inside an Arrow stream reports them (the stream
#: raises an OSError carrying DuckDB's message), mapped back to DuckDB's exceptions.
_DUCKDB_ERRORS = {
    "Invalid Input Error": duckdb.InvalidInputException,
    "Conversion Error": duckdb.ConversionException,
    "Out of Range Error": duckdb.OutOfRangeException,
    "Constraint Error": duckdb.ConstraintException,
    "Binder Error": duckdb.BinderException,
    "Catalog Error": duckdb.CatalogException,
    "Not implemented Error": duckdb.NotImplementedException,
    "INTERRUPT Error": duckdb.InterruptException,
    "Out of Memory Error": duckdb.OutOfMemoryException,
}


def _stream_error(exc: BaseException) -> Exception:
    """The asof error for a failure while a result streams."""
    from asof.queryapi.translate import translate

    if not isinstance(exc, duckdb.Error):
        text = str(exc)
        for prefix, kind in _DUCKDB_ERRORS.items():
            if text.startswith(prefix):
                exc = kind(text)
                break
    return translate(exc)


def _unconvertible(schema: pa.Schema, index: int | None, exc: BaseException, to: str) -> DataError:
    """A value DuckDB holds but Python or pandas cannot: infinite or far dates and
    timestamps, intervals beyond timedelta's range."""
    where = (
        f"column {schema.names[index]!r} ({schema.types[index]})"
        if index is not None
        else "a column"
    )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(
        f"{where} holds a value {to} cannot represent ({first}), such as 'infinity'::DATE or "
        "a year past 9999; fetch it as text with CAST(... AS VARCHAR), or read .arrow()"
    )


#: Types Arrow would give other values for (TIME WITH TIME ZONE without its offset, BIT as
#: DuckDB's internal bytes): results carry their text, and fetches convert it as DuckDB's
#: own client does (a time with its offset; BIT is a string there too).
_AS_TEXT = frozenset({"TIME WITH TIME ZONE", "BIT"})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _timetz(text: str) -> datetime.time | str:
    """DuckDB's text of a TIME WITH TIME ZONE ('23:59:59.123456-07:30') as Python's; like
    DuckDB's client, the text itself when Python has no such time (24:00:00)."""
    cut = max(text.rfind("+"), text.rfind("-"))
    clock, offset = text[:cut], text[cut:]
    sign = -1 if offset[:1] == "-" else 1
    try:
        parts = [int(p) for p in offset[1:].split(":")] + [0, 0]
        delta = datetime.timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2])
        return datetime.time.fromisoformat(clock).replace(tzinfo=datetime.timezone(sign * delta))
    except ValueError:
        return text


def _interval(v: Any) -> datetime.timedelta:
    # As DuckDB's Python client does: a month counts 30 days.
    return datetime.timedelta(days=v.months * 30 + v.days, microseconds=v.nanoseconds // 1000)


def _converters(types: Sequence[str]) -> dict[int, Callable[[Any], Any]]:
    """Per column, what turns Arrow's Python value into DuckDB's (UUID, MAP, INTERVAL and
    HUGEINT travel through Arrow as text, entry lists, month-day-nano and decimals)."""
    out: dict[int, Callable[[Any], Any]] = {}
    for i, t in enumerate(types):
        if t == "UUID":
            out[i] = uuid.UUID
        elif t.startswith("MAP(") and t.endswith(")") and not t.endswith("[]"):
            out[i] = dict
        elif t == "INTERVAL":
            out[i] = _interval
        elif t == "TIME WITH TIME ZONE":
            out[i] = _timetz
        elif t in ("HUGEINT", "UHUGEINT"):
            out[i] = int
    return out
