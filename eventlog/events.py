"""Events and transactions: the immutable values the log records.

An `Event` is opaque to the log: `kind` and `data` mean something only to the layer that
wrote them. Events that change rows carry an Arrow table whose first two columns are the
row meta columns (`_op`, `_rid`), followed by the table's own columns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import attrs
import pyarrow as pa

from eventlog.hlc import Timestamp


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
    prepared: the log's encoding of `rows`, already under way (see walbulk.prepare) so a
        large commit does not start it only once it is ready to write; not part of the value.
    """

    kind: str
    table_id: int | None = None
    version: int = 0
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_data)
    rows: pa.Table | None = attrs.field(default=None, eq=False)
    prepared: Future[Any] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def row_count(self) -> int:
        return 0 if self.rows is None else self.rows.num_rows


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
