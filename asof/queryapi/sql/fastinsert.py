"""Single-row `INSERT … VALUES (?, …)` without a DuckDB round trip before the commit.

A one-row insert of parameters into a table with no CHECK, foreign key, default, generated
column or unique index can fail only on NOT NULL, PRIMARY KEY or UNIQUE and on its values'
types, and those are checked here: each value must be of a Python type that converts to the
column's Arrow type exactly as DuckDB would store it (integers within the column's range, no
lone surrogates in strings), and each key must be found neither among the rows still pending
nor by a point query on the stored ones (`UniqueKey`).
Such a row's image (with its new row id) is known without asking DuckDB, so the commit logs
its values (`RowValues`, WAL format 3) and returns, and the projection applies it later,
together with the rows committed after it, before anything reads the projection
(`DatabaseRuntime.sync`). Every other statement, and every value that does not pass the
checks, takes the general path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import duckdb
import pyarrow as pa

from asof.eventlog.events import RowOp, RowValues
from asof.projections.keys import Key, UniqueKey
from asof.projections.naming import (
    HIDDEN_COLUMNS,
    ROW_ID,
    STORAGE_SCHEMA,
    STORED_COLUMNS,
    quote_ident,
    storage_table,
)
from asof.queryapi.sql.dml import TableInfo
from asof.queryapi.sql.statements import Name, Statement, read_name, unquote

#: Doubles hold every integer up to 2**53 exactly; beyond, leave the rounding to DuckDB.
_EXACT_INT_IN_DOUBLE = 1 << 53


@attrs.frozen
class SimpleInsert:
    """`INSERT INTO name [(columns)] VALUES (?, …)`: the shape the fast path accepts."""

    name: Name
    columns: tuple[str, ...] | None  # None: every column, in table order
    width: int  # number of `?` placeholders


@attrs.frozen
class FastTable:
    """A table the fast path may insert into, with its event-layout Arrow schema."""

    info: TableInfo
    schema: pa.Schema  # `_op`, row id, then the user's columns
    schema_bytes: bytes  # `schema` as an IPC schema message, for the log (RowValues)
    kinds: tuple[str, ...]  # per user column: "int", "float", "bool" or "str"
    bounds: tuple[tuple[int, int], ...]  # per user column: the integer range it holds
    not_null: tuple[bool, ...]  # per user column: whether it is NOT NULL
    keys: tuple[UniqueKey, ...] = ()  # PRIMARY KEY and UNIQUE constraints


def parse_simple_insert(st: Statement) -> SimpleInsert | None:
    """The statement as a SimpleInsert, or None if it has any other shape."""
    if st.sql in _parsed:
        return _parsed[st.sql]
    found = _parse(st)
    if len(_parsed) >= 256:
        _parsed.clear()
    _parsed[st.sql] = found
    return found


_parsed: dict[str, SimpleInsert | None] = {}


def _parse(st: Statement) -> SimpleInsert | None:
    toks = st.tokens
    if len(toks) < 7 or toks[0].upper != "INSERT" or toks[1].upper != "INTO":
        return None
    try:
        name, i = read_name(toks, 2)
    except Exception:
        return None
    if len(name.parts) > 2:
        return None
    columns: tuple[str, ...] | None = None
    if i < len(toks) and toks[i].text == "(":
        names: list[str] = []
        i += 1
        while i < len(toks):
            tok = toks[i]
            if tok.kind not in ("identifier", "keyword"):
                return None
            names.append(unquote(tok.text))
            if i + 1 >= len(toks):
                return None
            sep = toks[i + 1].text
            i += 2
            if sep == ")":
                break
            if sep != ",":
                return None
        columns = tuple(names)
    if i + 1 >= len(toks) or toks[i].upper != "VALUES" or toks[i + 1].text != "(":
        return None
    width = 0
    i += 2
    while i + 1 < len(toks):
        if toks[i].text != "?":
            return None
        width += 1
        sep = toks[i + 1].text
        i += 2
        if sep == ")":
            return SimpleInsert(name, columns, width) if i == len(toks) else None
        if sep != ",":
            return None
    return None


_KINDS = (
    (pa.types.is_integer, "int"),
    (pa.types.is_float64, "float"),
    (pa.types.is_boolean, "bool"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "str"),
)


def fast_table(cur: duckdb.DuckDBPyConnection, info: TableInfo) -> FastTable | None:
    """`info`'s table as a FastTable, or None if an insert into it could fail in ways only
    DuckDB can judge or compute a value (CHECK, foreign keys, defaults, generated columns,
    unique indexes, other column types). NOT NULL is checked here, and PRIMARY KEY and
    UNIQUE by a point query (`UniqueKey`)."""
    if info.kind != "table" or info.generated:
        return None
    table = f"t{int(info.table_id)}"
    found = cur.execute(
        "SELECT "
        "(SELECT count(*) FROM duckdb_indexes() WHERE database_name = current_database() "
        " AND schema_name = ? AND table_name = ? AND is_unique), "
        "(SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        " AND schema_name = ? AND table_name = ? AND NOT list_contains(?, column_name) "
        " AND column_default IS NOT NULL), "
        "(SELECT bool_or(contains(upper(sql), 'COLLATE')) FROM duckdb_tables() "
        " WHERE database_name = current_database() AND schema_name = ? AND table_name = ?)",
        [STORAGE_SCHEMA, table] * 2 + [sorted(HIDDEN_COLUMNS)] + [STORAGE_SCHEMA, table],
    ).fetchall()
    unique_indexes, defaults, collated = found[0]
    if unique_indexes or defaults:
        return None
    constraints = cur.execute(
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
        [STORAGE_SCHEMA, table],
    ).fetchall()
    if any(kind not in _JUDGED for kind, _ in constraints):
        return None
    stored_table = storage_table(info.table_id)
    stored = cur.sql(f"SELECT {STORED_COLUMNS} FROM {stored_table} LIMIT 0").to_arrow_table()
    if stored.column_names != [*info.columns, ROW_ID]:
        return None
    required = {n.lower() for kind, names in constraints if kind == "NOT NULL" for n in names}
    where = {c.lower(): i for i, c in enumerate(info.columns)}
    keys: list[UniqueKey] = []
    for kind, names in constraints:
        if kind == "NOT NULL":
            continue
        if any(n.lower() not in where for n in names):
            return None
        positions = tuple(where[n.lower()] for n in names)
        types = [stored.schema.field(p).type for p in positions]
        if collated and any(pa.types.is_string(t) or pa.types.is_large_string(t) for t in types):
            return None  # a collated key may compare unlike Python's ==: DuckDB decides
        test = " AND ".join(f"{quote_ident(n)} = ?" for n in names)
        ceiling = None
        if len(names) == 1 and pa.types.is_integer(types[0]):
            ceiling = f"SELECT max({quote_ident(names[0])}) FROM {stored_table}"
        keys.append(
            UniqueKey(positions, f"SELECT 1 FROM {stored_table} WHERE {test} LIMIT 1", ceiling)
        )
    kinds: list[str] = []
    bounds: list[tuple[int, int]] = []
    for field in stored.schema:
        if field.name == ROW_ID:
            continue
        kind = next((k for test, k in _KINDS if test(field.type)), None)
        if kind is None or field.metadata:
            return None
        kinds.append(kind)
        bounds.append(_int_bounds(field.type) if kind == "int" else (0, 0))
    schema = pa.schema(
        [
            pa.field("_op", pa.int8()),
            stored.schema.field(ROW_ID),
            *(stored.schema.field(c) for c in info.columns),
        ]
    )
    return FastTable(
        info,
        schema,
        schema.serialize().to_pybytes(),
        tuple(kinds),
        tuple(bounds),
        tuple(c.lower() in required for c in info.columns),
        tuple(keys),
    )


_JUDGED = frozenset({"NOT NULL", "PRIMARY KEY", "UNIQUE"})


def _int_bounds(t: pa.DataType) -> tuple[int, int]:
    bits = t.bit_width
    if pa.types.is_signed_integer(t):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def row_values(
    table: FastTable, insert: SimpleInsert, params: Sequence[Any], row_id: int
) -> RowValues | None:
    """The inserted row in event layout, or None when DuckDB must judge the values."""
    if isinstance(params, dict) or len(params) != insert.width:
        return None
    columns = table.info.columns
    if insert.columns is None:
        if insert.width != len(columns):
            return None
        values = list(params)
    else:
        index = {c.lower(): i for i, c in enumerate(columns)}
        positions = [index.get(c.lower()) for c in insert.columns]
        if None in positions or len(set(positions)) != len(positions):
            return None
        values = [None] * len(columns)  # no defaults: omitted columns are NULL
        for pos, value in zip(positions, params, strict=True):
            values[pos] = value  # type: ignore[index]
    for value, kind, bounds, not_null in zip(
        values, table.kinds, table.bounds, table.not_null, strict=True
    ):
        if value is None:
            if not_null:
                return None  # DuckDB raises the constraint error
        elif not _convertible(value, kind, bounds):
            return None
    return RowValues(table.schema, table.schema_bytes, (_INSERT_OP, row_id, *values))


def row_keys(table: FastTable, row: RowValues) -> list[Key | None] | None:
    """The row's value of each unique key (None: a NULL in it, so it cannot collide), or
    None when a key holds a value only DuckDB can compare (NaN, which its index holds equal
    to NaN)."""
    values = row.values[2:]
    keys: list[Key | None] = []
    for spec in table.keys:
        key = tuple(values[p] for p in spec.positions)
        if any(v is None for v in key):
            keys.append(None)
        elif any(v != v for v in key):
            return None
        else:
            keys.append(key)
    return keys


_INSERT_OP = int(RowOp.INSERT)


def _convertible(value: Any, kind: str, bounds: tuple[int, int]) -> bool:
    """Whether Arrow stores `value` in the column exactly as DuckDB's INSERT would."""
    t = type(value)
    if kind == "int":
        return t is int and bounds[0] <= value <= bounds[1]
    if kind == "float":
        return t is float or (t is int and -_EXACT_INT_IN_DOUBLE <= value <= _EXACT_INT_IN_DOUBLE)
    if kind == "bool":
        return t is bool
    return t is str and "\x00" not in value and (value.isascii() or _utf8(value))


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeError:  # lone surrogates
        return False
    return True
