"""Values the log's Arrow encoding could not carry whole, caught before they are logged.

An INTERVAL travels as Arrow's month-day-nanosecond interval: months and days fit, but the
time part, microseconds in DuckDB, becomes nanoseconds in an int64, which wraps past about
292 years (`INTERVAL '9223372036854775807 microseconds'`). A wrapped value would be a
different value in every clone, AS OF state and rebuild than in the live table, so a write
holding one is refused instead. (TIME WITH TIME ZONE, the other such type, is logged as its
text: projections/views.py.)
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from asof.projections.naming import ROW_ID, quote_ident, storage_table
from asof.queryapi.errors import DataError

#: The largest time part, in microseconds, whose nanoseconds fit an int64.
MAX_MICROS = (2**63 - 1) // 1000


def _overflows(column: str) -> str:
    return overflow_sql(quote_ident(column))


def overflow_sql(c: str) -> str:
    """True when the INTERVAL `c` (an SQL expression) holds more than Arrow carries."""
    return (
        f"abs(datepart('hour', {c})::HUGEINT * 3600000000 + datepart('minute', {c}) * 60000000"
        f" + datepart('microseconds', {c})) > {MAX_MICROS}"
    )


def check_intervals(
    cur: duckdb.DuckDBPyConnection, table_id: int, columns: Iterable[str], rows: str
) -> None:
    """Refuse the write when a row it logs (`rows`: a query of their row ids) holds an
    INTERVAL whose time part Arrow cannot carry."""
    cols = sorted(columns)
    if not cols:
        return
    found = cur.execute(
        f"SELECT count(*) FROM {storage_table(table_id)} WHERE {ROW_ID} IN ({rows}) AND ("
        + " OR ".join(_overflows(c) for c in cols)
        + ")"
    ).fetchall()[0][0]
    if found:
        raise DataError(TOO_LONG)


TOO_LONG = (
    f"an INTERVAL's time part is beyond {MAX_MICROS} microseconds (about 292 years), more "
    "than the log can hold exactly; keep whole days and months in the day and month parts "
    "(INTERVAL '400 years' is 4800 months)"
)


def guarded(expr: str) -> str:
    """`expr`, an INTERVAL, or DuckDB's error if the log could not hold it: for captures
    that turn a query's result into Arrow before anything else sees it."""
    message = TOO_LONG.replace("'", "''")
    return f"CASE WHEN {overflow_sql(expr)} THEN error('{message}') ELSE {expr} END"
