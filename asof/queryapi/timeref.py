"""Reading AS OF values: Unix microseconds as int, integral Decimal, or aware datetime.

A datetime without a time zone is refused: asof has no session time zone, and reading
`datetime.now()` (local time, naive) as UTC would silently open a state hours away from the
one meant. SQL's `AT (TIMESTAMP => TIMESTAMP '...')` reads its zone-less literal as UTC, as
DuckDB does, and says so in the README.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from asof.queryapi.errors import ProgrammingError

MAX_MICROS = 253402300799999999  # 9999-12-31T23:59:59.999999Z
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_micros(value: object) -> int:
    """A Unix timestamp in microseconds, or ProgrammingError saying what is accepted."""
    if isinstance(value, bool):
        raise _bad(value)
    if isinstance(value, int):
        micros = value
    elif isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise _bad(value)
        micros = int(value)
    elif isinstance(value, dt.datetime):
        micros = _datetime_micros(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        micros = int(value.strip())
    else:
        raise _bad(value)
    if micros < 0 or micros > MAX_MICROS:
        raise ProgrammingError(
            f"AS OF {_show(value)} is out of range; give Unix time in microseconds from 0 to "
            f"{MAX_MICROS} (year 9999), e.g. 1723243720285350"
        )
    return micros


def _datetime_micros(value: dt.datetime) -> int:
    try:
        offset = value.utcoffset()
    except Exception as exc:  # a tzinfo whose utcoffset() raises or returns junk
        raise ProgrammingError(f"AS OF {_show(value)}: its time zone failed: {exc}") from None
    if offset is None:
        raise ProgrammingError(
            f"AS OF {_show(value)} has no time zone; pass an aware datetime, e.g. "
            "datetime.now(timezone.utc) or dt.replace(tzinfo=timezone.utc), or Unix µs"
        )
    naive = value.replace(tzinfo=None)
    delta = naive - dt.datetime(1970, 1, 1) - offset  # no aware arithmetic: it can overflow
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bad(value: object) -> ProgrammingError:
    return ProgrammingError(
        f"AS OF {_show(value)} is not a time; give Unix time in whole microseconds (int), "
        "e.g. 1723243720285350, or a timezone-aware datetime"
    )


def format_micros(micros: int) -> str:
    """The seed's restore_time format: 2024-08-09 21:42:16.451974 (UTC)."""
    t = _EPOCH + dt.timedelta(microseconds=micros)  # exact: no float on the way
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")
