"""Reading AS OF values: Unix microseconds as int, integral Decimal, or datetime."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from asof.queryapi.errors import ProgrammingError

MAX_MICROS = 253402300799999999  # 9999-12-31T23:59:59.999999Z


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
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    elif isinstance(value, str) and value.strip().isdigit():
        micros = int(value.strip())
    else:
        raise _bad(value)
    if micros < 0 or micros > MAX_MICROS:
        raise ProgrammingError(
            f"AS OF {value!r} is out of range; give Unix time in microseconds, e.g. "
            "1723243720285350"
        )
    return micros


def _bad(value: object) -> ProgrammingError:
    return ProgrammingError(
        f"AS OF {value!r} is not a time; give Unix time in whole microseconds (int), "
        "e.g. 1723243720285350, or a datetime"
    )


def format_micros(micros: int) -> str:
    """The seed's restore_time format: 2024-08-09 21:42:16.451974 (UTC)."""
    t = dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.UTC)
    t = t.replace(microsecond=micros % 1_000_000)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")
