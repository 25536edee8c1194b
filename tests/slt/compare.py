"""Checking an outcome against the file, and one engine's outcome against the other's.

The rules follow DuckDB's own runner: results are compared value by value as strings, then
numerically (floats within 1% + 1e-8) or as booleans where the column's type says so;
`<REGEX>:`/`<!REGEX>:` match whole values or error messages; an expected error message is a
substring of the error; a label or a single `N values hashing to <md5>` line compares MD5s
of the values, each followed by a newline.
"""

from __future__ import annotations

import hashlib
import math
import re
from decimal import Decimal, InvalidOperation

from .engines import Outcome
from .parser import HASH_RE, Record


def sorted_values(rows: tuple[tuple[str, ...], ...], sort: str) -> list[str]:
    """The values in row-major order after the query's sort mode."""
    if sort == "rowsort":
        rows = tuple(sorted(rows))
    values = [v for row in rows for v in row]
    if sort == "valuesort":
        values.sort()
    return values


def result_hash(values: list[str]) -> str:
    md5 = hashlib.md5()
    for v in values:
        md5.update(v.encode("utf-8"))
        md5.update(b"\n")
    return f"{len(values)} values hashing to {md5.hexdigest()}"


def regex_matches(text: str, pattern: str) -> bool:
    want = pattern.startswith("<REGEX>:")
    body = pattern.split(":", 1)[1]
    try:
        found = re.fullmatch(body, text, re.DOTALL) is not None
    except re.error:
        return False
    return found == want


def error_matches(message: str, expected: str) -> bool:
    if not expected or expected in message:
        return True
    if expected.startswith(("<REGEX>:", "<!REGEX>:")):
        return regex_matches(message, expected)
    return False


def _number(text: str) -> float | Decimal | None:
    t = text.strip().lower()
    if t in ("inf", "infinity", "+inf", "+infinity"):
        return math.inf
    if t in ("-inf", "-infinity"):
        return -math.inf
    if t == "nan" or t == "-nan":
        return math.nan
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


def values_equal(actual: str, expected: str, kind: str) -> bool:
    if actual == expected:
        return True
    if expected.startswith(("<REGEX>:", "<!REGEX>:")) and regex_matches(actual, expected):
        return True
    if kind in ("int", "float", "decimal"):
        if actual == "NULL" or expected == "NULL":
            return False
        a, e = _number(actual), _number(expected)
        if a is None or e is None:
            return False
        fa, fe = float(a), float(e)
        if math.isnan(fa) or math.isnan(fe):
            return math.isnan(fa) and math.isnan(fe)
        if kind == "float":
            if math.isinf(fa) or math.isinf(fe):
                return fa == fe
            return abs(fa - fe) <= abs(fe) * 0.01 + 1e-8
        return a == e
    if kind == "bool":
        truth = {"true": 1, "1": 1, "false": 0, "0": 0}
        la, le = truth.get(actual.lower()), truth.get(expected.lower())
        return la is not None and la == le
    return False


def check_statement(record: Record, outcome: Outcome) -> tuple[bool, str]:
    """Whether a `statement` record's expectation holds, and why not."""
    if record.expect == "ok":
        return (True, "") if outcome.ok else (False, "failed: " + outcome.error[:300])
    if outcome.ok:
        return (record.expect == "maybe", "succeeded where an error was expected")
    if not error_matches(outcome.error, record.error):
        return False, "another error: " + outcome.error[:300]
    return True, ""


def check_query(
    record: Record,
    outcome: Outcome,
    expected_lines: list[str],
    labels: dict[str, str],
    hash_threshold: int = 0,
) -> tuple[bool, str]:
    """Whether a `query` record's expected result holds (DuckDB's CheckQueryResult)."""
    if not outcome.ok:
        return False, "failed: " + outcome.error[:300]
    rows = outcome.rows or ()
    ncols = len(outcome.kinds) if outcome.kinds else (len(rows[0]) if rows else 0)
    values = sorted_values(rows, record.sort)
    is_hash = len(expected_lines) == 1 and HASH_RE.match(expected_lines[0]) is not None
    compare_hash = record.label is not None or is_hash
    compare_hash = compare_hash or (hash_threshold > 0 and len(values) > hash_threshold)
    if compare_hash:
        digest = result_hash(values)
        if record.label is not None:
            seen = labels.setdefault(record.label, digest)
            if seen != digest:
                return False, f"label {record.label}: {digest} <> {seen}"
        if is_hash and expected_lines[0] != digest:
            return False, f"{digest} <> {expected_lines[0]}"
        return True, ""
    mismatch_columns = ncols != record.columns
    if ncols == 0:
        return False, "the statement returned no columns"
    nrows = len(rows)
    row_wise = ncols > 1 and len(expected_lines) == nrows
    if not row_wise:
        row_wise = all("\t" in v for v in expected_lines)
    if row_wise:
        expected_rows = len(expected_lines)
    elif len(expected_lines) % ncols:
        return False, f"{len(expected_lines)} expected values for {ncols} columns"
    else:
        expected_rows = len(expected_lines) // ncols
    if expected_rows != nrows:
        return False, f"{nrows} rows, {expected_rows} expected"
    expected = expected_lines
    if row_wise:
        expected = []
        for line in expected_lines:
            parts = [p for p in line.split("\t") if p]  # as DuckDB's split: no empty parts
            if len(parts) != ncols:
                return False, f"expected row {line!r} has not {ncols} values"
            expected.extend(parts)
    kinds = outcome.kinds or ("other",) * ncols
    for i, (a, e) in enumerate(zip(values, expected, strict=False)):
        if not values_equal(a, e, kinds[i % ncols]):
            return False, f"row {i // ncols + 1} column {i % ncols + 1}: {a!r} <> {e!r}"
    if mismatch_columns:
        return False, f"{ncols} columns, {record.columns} expected"
    return True, ""


def same_outcome(record: Record, a: Outcome, b: Outcome) -> tuple[bool, str]:
    """Whether two engines did the same: both ok (and for queries the same rows in the
    query's sort mode) or both failed."""
    if a.ok != b.ok:
        return False, "ok/error differ"
    if not a.ok or record.kind != "query":
        return True, ""
    ra, rb = a.rows or (), b.rows or ()
    if len(a.kinds) != len(b.kinds):
        return False, f"{len(a.kinds)} vs {len(b.kinds)} columns"
    va, vb = sorted_values(ra, record.sort), sorted_values(rb, record.sort)
    if va == vb:
        return True, ""
    if len(ra) != len(rb):
        return False, f"{len(ra)} vs {len(rb)} rows"
    if sorted(ra) == sorted(rb):
        return False, "same rows in another order"
    kinds = a.kinds or ("other",) * (len(ra[0]) if ra else 0)
    if all(
        values_equal(x, y, kinds[i % len(kinds)])
        for i, (x, y) in enumerate(zip(vb, va, strict=True))
    ):
        return True, ""
    return False, "different values"
