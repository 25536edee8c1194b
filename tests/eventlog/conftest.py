"""Shared fixtures for the event log tests: typed row tables and transaction comparison."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal

import pyarrow as pa
import pytest

from asof.eventlog.events import Transaction

ROW_SCHEMA = pa.schema(
    [
        pa.field("_op", pa.int8(), nullable=False),
        pa.field("_rid", pa.int64(), nullable=False),
        pa.field("i", pa.int32()),
        pa.field("dec", pa.decimal128(12, 3), metadata={"unit": "EUR"}),
        pa.field("big", pa.decimal256(40, 5)),
        pa.field("s", pa.string()),
        pa.field("b", pa.binary()),
        pa.field("flag", pa.bool_()),
        pa.field("f", pa.float64()),
        pa.field("tags", pa.list_(pa.int64())),
        pa.field("point", pa.struct([("x", pa.int16()), ("label", pa.large_string())])),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("naive", pa.timestamp("ns")),
        pa.field("day", pa.date32()),
        pa.field("clock", pa.time64("us")),
        pa.field("attrs", pa.map_(pa.string(), pa.int32())),
        pa.field("nothing", pa.null()),
    ],
    metadata={b"table": b"t1"},
)


def _typed_rows(n: int, start: int = 0, op: int = 0) -> pa.Table:
    ids = range(start, start + n)

    def maybe(i: int, value: object) -> object:
        return None if i % 3 == 2 else value

    columns = {
        "_op": [op] * n,
        "_rid": list(ids),
        "i": [maybe(i, i * 7) for i in ids],
        "dec": [maybe(i, Decimal(i) / 1000) for i in ids],
        "big": [maybe(i, Decimal(f"{10**30 + i}.{i % 100000:05d}")) for i in ids],
        "s": [maybe(i, f"row {i} é✓") for i in ids],
        "b": [maybe(i, bytes([i % 256]) * 3) for i in ids],
        "flag": [maybe(i, i % 2 == 0) for i in ids],
        "f": [maybe(i, float("inf") if i % 5 == 0 else i / 3) for i in ids],
        "tags": [maybe(i, list(range(i % 4))) for i in ids],
        "point": [maybe(i, {"x": i % 100, "label": f"p{i}"}) for i in ids],
        "at": [
            maybe(i, dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i)) for i in ids
        ],
        "naive": [maybe(i, dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=i)) for i in ids],
        "day": [maybe(i, dt.date(2020, 1, 1) + dt.timedelta(days=i)) for i in ids],
        "clock": [maybe(i, dt.time(12, 0, i % 60)) for i in ids],
        "attrs": [maybe(i, [("k", i)]) for i in ids],
        "nothing": [None] * n,
    }
    return pa.table(columns, schema=ROW_SCHEMA)


@pytest.fixture
def typed_rows() -> Callable[..., pa.Table]:
    """make(n, start=0, op=0): n rows touching most Arrow types, with nulls and metadata."""
    return _typed_rows


def same_rows(a: pa.Table | None, b: pa.Table | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.schema.equals(b.schema, check_metadata=True) and a.equals(b)


def _assert_same_txns(got: Iterable[Transaction], want: Iterable[Transaction]) -> None:
    got, want = list(got), list(want)
    assert [t.txn_id for t in got] == [t.txn_id for t in want]
    for g, w in zip(got, want, strict=True):
        assert g == w  # header and events, rows excluded (Event.rows has eq=False)
        for ge, we in zip(g.events, w.events, strict=True):
            assert same_rows(ge.rows, we.rows), (g.txn_id, ge.kind)


@pytest.fixture
def assert_same_txns() -> Callable[[Iterable[Transaction], Iterable[Transaction]], None]:
    """Compare transactions including their row tables (schema, metadata and values)."""
    return _assert_same_txns


@pytest.fixture
def rows_equal() -> Callable[[pa.Table | None, pa.Table | None], bool]:
    return same_rows
