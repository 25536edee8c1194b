"""PostgreSQL type OIDs and wire encodings for DuckDB's (Arrow's) column types.

Text output is PostgreSQL's (`t`/`f`, `\\x…` bytea, `+00` offsets, `{1,2}` arrays,
`1 year 2 mons` intervals). Columns are converted a whole Arrow array at a time with Arrow
compute wherever a type allows; only types without an Arrow cast of the right shape
(intervals, bytea, arrays, numeric in binary) fall back to a Python loop.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import struct
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, UNKNOWN, BPCHAR, VARCHAR = 114, 700, 701, 705, 1042, 1043
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID, JSONB = (
    1082,
    1083,
    1114,
    1184,
    1186,
    1700,
    2950,
    3802,
)
ARRAY_OF = {
    BOOL: 1000,
    BYTEA: 1001,
    INT2: 1005,
    INT4: 1007,
    INT8: 1016,
    TEXT: 1009,
    VARCHAR: 1015,
    FLOAT4: 1021,
    FLOAT8: 1022,
    NUMERIC: 1231,
    DATE: 1182,
    TIME: 1183,
    TIMESTAMP: 1115,
    TIMESTAMPTZ: 1185,
    INTERVAL: 1187,
    UUID: 2951,
    JSON: 199,
}
SIZES = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8}
SIZES |= {TIMESTAMP: 8, TIMESTAMPTZ: 8, UUID: 16, INTERVAL: 16, OID: 4, NAME: 64, CHAR: 1}

#: PostgreSQL's names for format_type() and psql's \d.
TYPE_NAMES = {
    BOOL: "boolean",
    BYTEA: "bytea",
    INT2: "smallint",
    INT4: "integer",
    INT8: "bigint",
    TEXT: "text",
    VARCHAR: "character varying",
    FLOAT4: "real",
    FLOAT8: "double precision",
    NUMERIC: "numeric",
    DATE: "date",
    TIME: "time without time zone",
    TIMESTAMP: "timestamp without time zone",
    TIMESTAMPTZ: "timestamp with time zone",
    INTERVAL: "interval",
    UUID: "uuid",
    JSON: "json",
    NAME: "name",
    OID: "oid",
    CHAR: '"char"',
}

PG_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01
PG_EPOCH_MICROS = PG_EPOCH_DAYS * 86_400_000_000


@attrs.frozen
class ColumnType:
    """How one result column travels: its OID, size, modifier, and element OID for arrays."""

    oid: int
    typmod: int = -1
    element: int | None = None

    @property
    def size(self) -> int:
        return SIZES.get(self.oid, -1)


_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def column_type(arrow: pa.DataType, duck: str | None) -> ColumnType:
    """The PostgreSQL type of a column, from its Arrow type and DuckDB's name for it."""
    duck = (duck or "").upper()
    if duck == "UUID":
        return ColumnType(UUID)
    if duck == "JSON":
        return ColumnType(JSON)
    if (
        pa.types.is_list(arrow)
        or pa.types.is_large_list(arrow)
        or pa.types.is_fixed_size_list(arrow)
    ):
        inner = duck[:-2] if duck.endswith("[]") else None
        element = column_type(arrow.value_type, inner).oid
        return ColumnType(ARRAY_OF.get(element, 1009), element=element)
    if pa.types.is_boolean(arrow):
        return ColumnType(BOOL)
    if pa.types.is_int8(arrow) or pa.types.is_int16(arrow) or pa.types.is_uint8(arrow):
        return ColumnType(INT2)
    if pa.types.is_int32(arrow) or pa.types.is_uint16(arrow):
        return ColumnType(INT4)
    if pa.types.is_int64(arrow) or pa.types.is_uint32(arrow):
        return ColumnType(INT8)
    if pa.types.is_uint64(arrow):
        return ColumnType(NUMERIC)
    if pa.types.is_float32(arrow) or pa.types.is_float16(arrow):
        return ColumnType(FLOAT4)
    if pa.types.is_float64(arrow):
        return ColumnType(FLOAT8)
    if pa.types.is_decimal(arrow):
        if duck in ("HUGEINT", "UHUGEINT"):
            return ColumnType(NUMERIC)
        return ColumnType(NUMERIC, ((arrow.precision << 16) | arrow.scale) + 4)
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return ColumnType(TEXT)
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return ColumnType(BYTEA)
    if pa.types.is_date(arrow):
        return ColumnType(DATE)
    if pa.types.is_time(arrow):
        return ColumnType(TIME)
    if pa.types.is_timestamp(arrow):
        return ColumnType(TIMESTAMPTZ if arrow.tz else TIMESTAMP)
    if arrow == pa.month_day_nano_interval() or pa.types.is_duration(arrow):
        return ColumnType(INTERVAL)
    if pa.types.is_null(arrow):
        return ColumnType(TEXT)
    return ColumnType(TEXT)


# ---------------------------------------------------------------- text output
def _strip_fraction(s: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(s, r"\.?0+$", "")


def text_column(arr: pa.Array, ctype: ColumnType) -> pa.Array:
    """The column as PostgreSQL's text output (a string array with the same nulls)."""
    t = arr.type
    if ctype.oid in (TEXT, VARCHAR, JSON, UUID) and (
        pa.types.is_string(t) or pa.types.is_large_string(t)
    ):
        return arr
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if ctype.oid == BOOL:
        return pc.if_else(arr, "t", "f")
    if ctype.oid in (INT2, INT4, INT8) or pa.types.is_decimal(t) or pa.types.is_uint64(t):
        return pc.cast(arr, pa.string())
    if ctype.oid in (FLOAT4, FLOAT8):
        s = pc.cast(arr, pa.string())
        special = pc.or_(pc.is_nan(arr), pc.is_inf(arr))
        if not pc.any(special).as_py():
            return s
        s = pc.replace_substring_regex(s, r"^inf$", "Infinity")
        s = pc.replace_substring_regex(s, r"^-inf$", "-Infinity")
        return pc.replace_substring_regex(s, r"^-?nan$", "NaN")
    if ctype.oid == DATE:
        return pc.cast(arr, pa.string())
    if ctype.oid == TIME:
        return _strip_fraction(pc.cast(pc.cast(arr, pa.time64("us")), pa.string()))
    if ctype.oid == TIMESTAMP:
        return _strip_fraction(pc.cast(pc.cast(arr, pa.timestamp("us")), pa.string()))
    if ctype.oid == TIMESTAMPTZ:
        naive = arr.view(pa.timestamp(t.unit)) if t.tz else arr
        s = _strip_fraction(pc.cast(pc.cast(naive, pa.timestamp("us")), pa.string()))
        return pc.binary_join_element_wise(s, pa.scalar("+00"), "")
    return pa.array([None if v is None else text_value(v) for v in arr.to_pylist()], pa.string())


def text_value(v: Any) -> str:
    """One Python value (as Arrow's to_pylist gives it) in PostgreSQL's text form."""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (bytes, bytearray)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, pa.MonthDayNano):
        return interval_text(v.months, v.days, v.nanoseconds // 1000)
    if isinstance(v, datetime.timedelta):
        return interval_text(0, v.days, v.seconds * 1_000_000 + v.microseconds)
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.UTC).replace(tzinfo=None)
            return _fraction(v.isoformat(" ")) + "+00"
        return _fraction(v.isoformat(" "))
    if isinstance(v, datetime.time):
        return _fraction(v.isoformat())
    if isinstance(v, list):
        return "{" + ",".join(_array_item(x) for x in v) + "}"
    if isinstance(v, dict):
        return json.dumps(v, default=str)
    return str(v)


def _fraction(s: str) -> str:
    return re.sub(r"\.?0+$", "", s) if "." in s else s


def _array_item(x: Any) -> str:
    if x is None:
        return "NULL"
    s = text_value(x)
    if isinstance(x, list):
        return s
    if s == "" or s.upper() == "NULL" or re.search(r'[{},"\\\s]', s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def interval_text(months: int, days: int, micros: int) -> str:
    """PostgreSQL's `postgres` IntervalStyle: `1 year 2 mons 3 days 04:05:06.5`."""
    parts: list[str] = []
    years, mons = divmod(abs(months), 12)
    sign = -1 if months < 0 else 1
    if years:
        parts.append(f"{sign * years} year{'s' if sign * years != 1 else ''}")
    if mons:
        parts.append(f"{sign * mons} mon{'s' if sign * mons != 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if micros or not parts:
        neg = micros < 0
        hours, rest = divmod(abs(micros), 3_600_000_000)
        mins, rest = divmod(rest, 60_000_000)
        secs, frac = divmod(rest, 1_000_000)
        clock = f"{'-' if neg else ''}{hours:02d}:{mins:02d}:{secs:02d}"
        if frac:
            clock += f".{frac:06d}".rstrip("0")
        parts.append(clock)
    return " ".join(parts)


# -------------------------------------------------------------- binary output
def binary_column(arr: pa.Array, ctype: ColumnType) -> pa.Array:
    """The column in PostgreSQL's binary format (a binary array with the same nulls)."""
    oid = ctype.oid
    t = arr.type
    if oid in (TEXT, VARCHAR, JSON) and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return arr.cast(pa.binary()) if pa.types.is_string(t) else arr.cast(pa.large_binary())
    if oid == BYTEA and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        return arr
    fixed = _FIXED.get(oid)
    if fixed is not None and not pa.types.is_decimal(t):
        dtype, prepare = fixed
        values = prepare(arr)
        return _fixed_width(values.astype(dtype), arr)
    if oid == INTERVAL:
        return _py_binary(arr, _interval_binary)
    if oid == NUMERIC:
        return _py_binary(arr, lambda v: numeric_binary(decimal.Decimal(v)))
    if oid == UUID:
        return _py_binary(arr, lambda v: uuid.UUID(str(v)).bytes)
    raise NotImplementedError(f"binary output of {TYPE_NAMES.get(oid, oid)} is not supported")


def _int_values(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False))


def _bool_values(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False)).astype(np.uint8)


def _date_values(arr: pa.Array) -> np.ndarray:
    return _int_values(arr.cast(pa.int32())).astype(np.int64) - PG_EPOCH_DAYS


def _ts_values(arr: pa.Array) -> np.ndarray:
    t = arr.type
    naive = arr.view(pa.timestamp(t.unit)) if t.tz else arr
    micros = naive.cast(pa.timestamp("us")).view(pa.int64())
    return _int_values(micros) - PG_EPOCH_MICROS


def _time_values(arr: pa.Array) -> np.ndarray:
    return _int_values(arr.cast(pa.time64("us")).view(pa.int64()))


_FIXED: dict[int, tuple[str, Callable[[pa.Array], np.ndarray]]] = {
    BOOL: ("u1", _bool_values),
    INT2: (">i2", _int_values),
    INT4: (">i4", _int_values),
    INT8: (">i8", _int_values),
    FLOAT4: (">f4", _int_values),
    FLOAT8: (">f8", _int_values),
    DATE: (">i4", _date_values),
    TIMESTAMP: (">i8", _ts_values),
    TIMESTAMPTZ: (">i8", _ts_values),
    TIME: (">i8", _time_values),
}


def _fixed_width(values: np.ndarray, like: pa.Array) -> pa.Array:
    width = values.dtype.itemsize
    n = len(values)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    valid = like.is_valid()
    mask = None if like.null_count == 0 else pa.array(valid).buffers()[1]
    data = pa.py_buffer(np.ascontiguousarray(values).view(np.uint8).tobytes())
    out = pa.Array.from_buffers(pa.binary(), n, [mask, pa.py_buffer(offsets.tobytes()), data])
    return out


def _py_binary(arr: pa.Array, fn: Callable[[Any], bytes]) -> pa.Array:
    return pa.array([None if v is None else fn(v) for v in arr.to_pylist()], pa.binary())


def _interval_binary(v: Any) -> bytes:
    if isinstance(v, datetime.timedelta):
        return struct.pack("!qii", v.seconds * 1_000_000 + v.microseconds, v.days, 0)
    return struct.pack("!qii", v.nanoseconds // 1000, v.days, v.months)


def numeric_binary(value: decimal.Decimal) -> bytes:
    """NUMERIC's binary form: base-10000 digits with a weight, sign and display scale."""
    if value.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exp = value.as_tuple()
    assert isinstance(exp, int)
    dscale = max(0, -exp)
    text = "".join(map(str, digits))
    if exp > 0:
        text += "0" * exp
        exp = 0
    if len(text) < -exp:
        text = "0" * (-exp - len(text)) + text
    int_part = text[: len(text) + exp] if exp else text
    frac_part = text[len(text) + exp :] if exp else ""
    int_part = int_part.lstrip("0")
    pad_int = (-len(int_part)) % 4
    int_part = "0" * pad_int + int_part
    frac_part = frac_part + "0" * ((-len(frac_part)) % 4)
    groups = [int(int_part[i : i + 4]) for i in range(0, len(int_part), 4)]
    weight = len(groups) - 1
    groups += [int(frac_part[i : i + 4]) for i in range(0, len(frac_part), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    head = struct.pack("!hhHh", len(groups), weight, 0x4000 if sign else 0, dscale)
    return head + b"".join(struct.pack("!H", g) for g in groups)


# ------------------------------------------------------------------ DataRows
def data_rows(columns: list[pa.Array]) -> bytes:
    """DataRow messages for equal-length string/binary arrays, built with numpy.

    Each row is 'D', its length, the column count, then per field its length (-1 for NULL)
    and its bytes; the bytes are scattered from the arrays' buffers in one go per column.
    """
    n = len(columns[0]) if columns else 0
    if n == 0:
        return b""
    parts = []
    for arr in columns:
        if not (pa.types.is_large_binary(arr.type) or pa.types.is_large_string(arr.type)):
            arr = (
                arr.cast(pa.large_binary())
                if not pa.types.is_string(arr.type)
                else arr.cast(pa.large_string())
            )
        bufs = arr.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
        data = (
            np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
        )
        first, last = int(offsets[0]), int(offsets[-1])
        lengths = np.diff(offsets)
        src = data[first:last]
        if arr.null_count:
            valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))
            field_len = np.where(valid, lengths, -1)
            if np.any(lengths[~valid]):  # a NULL may still own bytes in the buffer
                src = src[np.repeat(valid, lengths)]
            lengths = np.where(valid, lengths, 0)
        else:
            field_len = lengths
        parts.append((src, lengths, field_len))
    ncols = len(columns)
    row_len = 4 + 2 + sum(4 + p[1] for p in parts)
    total = row_len + 1
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(total[:-1], out=starts[1:])
    out = np.empty(int(starts[-1] + total[-1]), dtype=np.uint8)
    out[starts] = ord("D")
    _put(out, starts + 1, row_len.astype(">i4"))
    _put(out, starts + 5, np.full(n, ncols, dtype=">i2"))
    pos = starts + 7
    for src, lengths, field_len in parts:
        _put(out, pos, field_len.astype(">i4"))
        pos = pos + 4
        if len(src):
            begin = np.zeros(n, dtype=np.int64)
            np.cumsum(lengths[:-1], out=begin[1:])
            dest = np.arange(len(src), dtype=np.int64) + np.repeat(pos - begin, lengths)
            out[dest] = src
        pos = pos + lengths
    return out.tobytes()


def _put(out: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    raw = values.view(np.uint8).reshape(len(values), values.dtype.itemsize)
    for j in range(values.dtype.itemsize):
        out[at + j] = raw[:, j]


# ---------------------------------------------------------------- parameters
def decode_param(oid: int, fmt: int, data: bytes | None) -> Any:
    """A bound parameter as the Python value DuckDB should receive."""
    if data is None:
        return None
    if fmt == 1:
        return _decode_binary(oid, data)
    text = data.decode("utf-8")
    if oid in (INT2, INT4, INT8, OID):
        return int(text)
    if oid in (FLOAT4, FLOAT8):
        return float(text)
    if oid == NUMERIC:
        return decimal.Decimal(text)
    if oid == BOOL:
        return text.lower() in ("t", "true", "1", "yes", "on", "y")
    if oid == BYTEA:
        return bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()
    if oid == UUID:
        return uuid.UUID(text)
    if oid == DATE:
        return datetime.date.fromisoformat(text)
    if oid == TIMESTAMP:
        return datetime.datetime.fromisoformat(text)
    if oid == TIMESTAMPTZ:
        return datetime.datetime.fromisoformat(_iso_offset(text))
    return text


def _iso_offset(text: str) -> str:
    # PostgreSQL writes "+00" or "+05:30"; fromisoformat wants hours and minutes.
    m = re.search(r"([+-]\d{2})$", text)
    return text + ":00" if m else text


def _decode_binary(oid: int, data: bytes) -> Any:
    if oid == INT2:
        return struct.unpack("!h", data)[0]
    if oid == INT4 or oid == OID:
        return struct.unpack("!i", data)[0]
    if oid == INT8:
        return struct.unpack("!q", data)[0]
    if oid == FLOAT4:
        return struct.unpack("!f", data)[0]
    if oid == FLOAT8:
        return struct.unpack("!d", data)[0]
    if oid == BOOL:
        return data != b"\x00"
    if oid == BYTEA:
        return bytes(data)
    if oid == UUID:
        return uuid.UUID(bytes=bytes(data))
    if oid == DATE:
        return datetime.date(2000, 1, 1) + datetime.timedelta(days=struct.unpack("!i", data)[0])
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        micros = struct.unpack("!q", data)[0]
        ts = datetime.datetime(2000, 1, 1) + datetime.timedelta(microseconds=micros)
        return ts.replace(tzinfo=datetime.UTC) if oid == TIMESTAMPTZ else ts
    if oid == NUMERIC:
        return _numeric_from_binary(data)
    if oid in (TEXT, VARCHAR, BPCHAR, NAME, JSON, UNKNOWN, 0):
        return data.decode("utf-8")
    if oid == JSONB:
        return data[1:].decode("utf-8")
    raise NotImplementedError(f"binary parameters of type {oid} are not supported")


def _numeric_from_binary(data: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", data)
    if sign == 0xC000:
        return decimal.Decimal("NaN")
    digits = struct.unpack_from(f"!{ndigits}H", data, 8)
    value = decimal.Decimal(0)
    for i, d in enumerate(digits):
        value += decimal.Decimal(d).scaleb(4 * (weight - i))
    value = -value if sign == 0x4000 else value
    return value.quantize(decimal.Decimal(1).scaleb(-dscale)) if dscale else value
