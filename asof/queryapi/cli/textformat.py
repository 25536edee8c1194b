"""Results as text, the way psql prints them, and as CSV, JSON or Markdown.

Values are spelled as PostgreSQL spells them (`t`/`f`, `{1,NULL}`, `1 day 02:00:00`,
`\\x0a`), not as Python would (`True`, `[1, None]`, `1 day, 2:00:00`): people paste them back
into SQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from asof.queryapi.result import Result

#: Output modes of `asof sql --format` and the shell's `\pset format`.
FORMATS = ("aligned", "csv", "json", "markdown")


def pg_interval(value: dt.timedelta) -> str:
    """An interval in PostgreSQL's default output style (`3 days 04:05:06.5`)."""
    negative = value < dt.timedelta(0)
    if negative:
        value = -value
    days, rest = value.days, value.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        clock += f".{value.microseconds:06d}".rstrip("0")
    if clock != "00:00:00" or not parts:
        parts.append(clock)
    text = " ".join(parts)
    return f"-{text}" if negative and text != "00:00:00" else text


def _quote_element(text: str) -> str:
    if text == "" or any(c in text for c in ' ,{}"\\') or text.upper() == "NULL":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def pg_text(value: Any) -> str | None:
    """PostgreSQL's text form of a value; None for SQL NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        if value.tzinfo is not None and text.endswith(":00") and text[-6] in "+-":
            text = text[:-3]  # +00:00 -> +00, as PostgreSQL prints whole-hour offsets
        return text
    if isinstance(value, dt.timedelta):
        return pg_interval(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        inner = (pg_text(v) for v in value)
        return "{" + ",".join("NULL" if v is None else _quote_element(v) for v in inner) + "}"
    if isinstance(value, dict):
        items = (f"{pg_text(k)}={'NULL' if v is None else pg_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, uuid.UUID | dt.date | dt.time):
        return str(value)
    return str(value)


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    values = [r[i] for r in rows if r[i] is not None]
    return bool(values) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
    )


def aligned(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, footer: bool = True) -> str:
    """psql's aligned table: centred headers, numbers to the right, a row-count footer."""
    cells = [["" if (t := pg_text(v)) is None else t for v in row] for row in rows]
    widths = [
        max([len(c)] + [len(line) for r in cells for line in r[i].split("\n")])
        for i, c in enumerate(columns)
    ]
    numeric = [_numeric(rows, i) for i in range(len(columns))]
    head = " " + " | ".join(c.center(w) for c, w in zip(columns, widths, strict=True))
    rule = "-" + "-+-".join("-" * w for w in widths) + "-"
    lines = [head.rstrip(), rule]
    for r in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        lines.append((" " + " | ".join(parts)).rstrip())
    if footer:
        n = len(rows)
        lines.append(f"({n} {'row' if n == 1 else 'rows'})")
    return "\n".join(lines)


def expanded(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """psql's `\\x` display: one block per record, a line per column."""
    if not rows:
        return "(0 rows)"
    width = max(len(c) for c in columns)
    out = []
    for n, row in enumerate(rows, 1):
        out.append(f"-[ RECORD {n} ]" + "-" * max(0, width - 8))
        for c, v in zip(columns, row, strict=True):
            text = pg_text(v)
            out.append(f"{c.ljust(width)} | {'' if text is None else text}".rstrip())
    return "\n".join(out)


def as_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if (t := pg_text(v)) is None else t for v in row])
    return buf.getvalue().rstrip("\n")


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else pg_text(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(pg_text(k)): _json_value(v) for k, v in value.items()}
    return pg_text(value)


def as_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return json.dumps(records, indent=2, ensure_ascii=False)


def as_markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        text = pg_text(v)
        return "" if text is None else text.replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def format_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str = "aligned",
    *,
    expand: bool = False,
) -> str:
    if fmt == "csv":
        return as_csv(columns, rows)
    if fmt == "json":
        return as_json(columns, rows)
    if fmt == "markdown":
        return as_markdown(columns, rows)
    return expanded(columns, rows) if expand else aligned(columns, rows)


def format_result(result: Result, fmt: str = "aligned", *, expand: bool = False) -> str:
    """A result as text; the affected-row count for DML, nothing for a statement without
    rows."""
    columns = result.columns
    if not columns:
        return ""
    if columns == ["Count"] and result.rowcount >= 0:
        return f"({result.rowcount} {'row' if result.rowcount == 1 else 'rows'} affected)"
    return format_rows(columns, result.fetchall(), fmt, expand=expand)
