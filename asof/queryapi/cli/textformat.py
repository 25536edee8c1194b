"""Results as text, the way psql and ysqlsh print them."""

from __future__ import annotations

from decimal import Decimal

from asof.queryapi.result import Result


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float | Decimal):
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    return str(value)


def format_result(result: Result) -> str:
    """An aligned table with a row count, or the affected-row count for DML."""
    columns = result.columns
    if not columns:
        return ""
    rows = result.fetchall()
    if columns == ["Count"] and result.rowcount >= 0:
        return f"({result.rowcount} {'row' if result.rowcount == 1 else 'rows'} affected)"
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) for row in rows if row[i] is not None)
        and any(row[i] is not None for row in rows)
        for i in range(len(columns))
    ]
    head = " " + " | ".join(c.center(w) for c, w in zip(columns, widths, strict=True))
    rule = "-" + "-+-".join("-" * w for w in widths) + "-"
    lines = [head.rstrip(), rule]
    for r in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        lines.append((" " + " | ".join(parts)).rstrip())
    n = len(rows)
    lines.append(f"({n} {'row' if n == 1 else 'rows'})")
    return "\n".join(lines)
