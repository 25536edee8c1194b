"""Events and transactions: the immutable values the log records.

An `Event` is opaque to the log: `kind` and `data` mean something only to the layer that
wrote them. Events that change rows carry an Arrow table whose first two columns are the
row meta columns (`_op`, `_rid`), followed by the table's own columns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import attrs
import pyarrow as pa

from asof.eventlog.hlc import Timestamp


class RowOp(enum.IntEnum):
    """What happened to one row; stored in the `_op` column as int8."""

    INSERT = 0
    UPDATE = 1
    DELETE = 2


#: Meta columns of `Event.rows`, in order, before the table's own columns.
ROW_META = ("_op", "_rid")
#: Meta columns of rows read back from the log (segments or WAL), in order.
LOG_ROW_META = ("_txn", "_ts", "_seq", "_op", "_rid")


def _freeze_data(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@attrs.frozen
class Event:
    """One change inside a transaction.

    kind: what the change is (the projections define the kinds).
    table_id: the stable id of the table it touches, if any; rows are stored per table.
    version: the table's schema version the rows conform to.
    data: JSON-serialisable details (names, DDL, sequence values, ...).
    rows: row images for row changes: `_op` int8, `_rid` int64, then the table's columns.
        A writer may pass one row as RowValues; what reads the log back gets a table.
    prepared: the log's encoding of `rows`, already under way (see walbulk.prepare) so a
        large commit does not start it only once it is ready to write; not part of the value.
    """

    kind: str
    table_id: int | None = None
    version: int = 0
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_data)
    rows: pa.Table | RowValues | None = attrs.field(default=None, eq=False)
    prepared: Future[Any] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def row_count(self) -> int:
        return 0 if self.rows is None else self.rows.num_rows


@attrs.frozen
class RowValues:
    """One row image as plain Python values, not yet an Arrow table.

    A single-row commit logs the values as they are (WAL format 3) and leaves building
    Arrow to whoever reads many such rows at once (`rows_table`): a one-row table costs
    about as much to build and serialise as the rest of the commit's Python together.

    schema: the event layout (`_op`, `_rid`, then the table's columns).
    schema_bytes: `schema` as an IPC schema message, which the WAL frame carries.
    values: `(op, rid, *columns)`, each already known to convert to its field's type.
    """

    schema: pa.Schema = attrs.field(eq=False)
    schema_bytes: bytes
    values: tuple[Any, ...]

    @property
    def num_rows(self) -> int:
        return 1


def rows_table(schema: pa.Schema, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """Rows of Python values (one tuple per row, in `schema`'s order) as one Arrow table."""
    columns = zip(*rows, strict=True) if rows else ([] for _ in schema)
    arrays = [pa.array(list(c), f.type) for c, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def materialize(txns: Sequence[Transaction]) -> list[Transaction]:
    """`txns` with every RowValues made a one-row table, built a table at a time.

    Runs once per single-row commit (at a seal, or the first read of the WAL tail), so it
    stays lean: one pass to find the rows, one table per schema, then zero-copy slices.
    """
    places: list[tuple[int, int, RowValues]] = []
    groups: dict[bytes, list[int]] = {}  # schema message -> indexes into places
    for i, txn in enumerate(txns):
        for j, event in enumerate(txn.events):
            rows = event.rows
            if type(rows) is RowValues:
                groups.setdefault(rows.schema_bytes, []).append(len(places))
                places.append((i, j, rows))
    out = list(txns)
    if not places:
        return out
    tables: list[pa.Table | None] = [None] * len(places)
    for members in groups.values():
        first = places[members[0]][2]
        table = rows_table(first.schema, [places[m][2].values for m in members])
        for n, m in enumerate(members):
            tables[m] = table.slice(n, 1)
    for (i, j, _), table in zip(places, tables, strict=True):
        txn = out[i]
        events = list(txn.events)
        e = events[j]
        events[j] = Event(e.kind, e.table_id, e.version, e.data, table)
        out[i] = Transaction(txn.txn_id, txn.ts, tuple(events), txn.sql)
    return out


@attrs.frozen
class TransactionInfo:
    """The header of a committed transaction, without its row images."""

    txn_id: int
    ts: Timestamp
    sql: str | None = None


@attrs.frozen
class Transaction:
    """One atomic commit: its events, in the order they happened, under one timestamp."""

    txn_id: int
    ts: Timestamp
    events: tuple[Event, ...]
    sql: str | None = None

    @property
    def info(self) -> TransactionInfo:
        return TransactionInfo(self.txn_id, self.ts, self.sql)


def without_rows(txn: Transaction) -> Transaction:
    """`txn` with its events' row images left out: what readers asking for headers get."""
    events = tuple(e if e.rows is None else attrs.evolve(e, rows=None) for e in txn.events)
    return attrs.evolve(txn, events=events)
