"""The sqllogictest format as DuckDB writes it, read into a flat list of records.

Control flow (loops, skip modes, conditions) is kept as records and decided when the file
runs, so that both engines walk the same records in the same order and every executed
statement gets the same key on both sides.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

SORT_MODES = {"nosort": "nosort", "rowsort": "rowsort", "sort": "rowsort", "valuesort": "valuesort"}
HASH_RE = re.compile(r"^(\d+) values hashing to ([0-9a-z]{32})$")

#: What DuckDB's runner expands these foreach placeholders to.
FOREACH_GROUPS = {
    "<signed>": ["tinyint", "smallint", "integer", "bigint", "hugeint"],
    "<unsigned>": ["utinyint", "usmallint", "uinteger", "ubigint", "uhugeint"],
    "<integral>": [
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "hugeint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "uhugeint",
    ],  # fmt: skip
    "<numeric>": [
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "hugeint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "uhugeint",
        "float",
        "double",
    ],  # fmt: skip
    "<alltypes>": [
        "bool",
        "interval",
        "varchar",
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "hugeint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "uhugeint",
        "float",
        "double",
    ],  # fmt: skip
}


class SltParseError(ValueError):
    """The file is not valid sqllogictest: a harness problem, never an engine's."""


@attrs.frozen
class Condition:
    """`skipif X` / `onlyif X` in front of a record: X is an engine name or `var=value`."""

    skip: bool
    what: str


@attrs.frozen
class Record:
    """One command of the file. `kind` is one of: statement, query, loop, endloop, require,
    mode, halt, load, restart, reconnect, sleep, hash-threshold."""

    kind: str
    line: int
    params: tuple[str, ...] = ()
    sql: str = ""
    #: statement: "ok" | "error" | "maybe"
    expect: str = "ok"
    #: statement error: the expected message (substring, or <REGEX>:/<!REGEX>:)
    error: str = ""
    #: query: the expected column count, sort mode, label and result lines
    columns: int = 0
    sort: str = "nosort"
    label: str | None = None
    results: tuple[str, ...] = ()
    has_results: bool = False
    connection: str | None = None
    conditions: tuple[Condition, ...] = ()
    #: loop: the variable and its values; concurrent for concurrentloop/concurrentforeach
    var: str = ""
    values: tuple[str, ...] = ()
    concurrent: bool = False


def _empty_or_comment(line: str) -> bool:
    return not line or line.startswith("#")


def parse_file(path: str | Path) -> list[Record]:
    return parse(Path(path).read_text(encoding="utf-8"))


def parse(text: str) -> list[Record]:
    lines = [ln.replace("\r", "") for ln in text.split("\n")]
    records: list[Record] = []
    i = 0
    n = len(lines)
    while i < n:
        if _empty_or_comment(lines[i]):
            i += 1
            continue
        conditions: list[Condition] = []
        words = lines[i].split()
        while words and words[0] in ("skipif", "onlyif"):
            if len(words) < 2:
                raise SltParseError(f"line {i + 1}: {words[0]} needs a parameter")
            conditions.append(Condition(words[0] == "skipif", words[1]))
            i += 1
            if i >= n:
                raise SltParseError(f"line {i}: {words[0]} at the end of the file")
            words = lines[i].split()
        head, params = words[0], tuple(words[1:])
        line_no = i + 1
        i += 1
        if head == "statement":
            if not params or params[0] not in ("ok", "error", "maybe"):
                raise SltParseError(f"line {line_no}: statement ok|error|maybe expected")
            sql, i = _extract_sql(lines, i)
            if not sql:
                raise SltParseError(f"line {line_no}: empty statement")
            error = ""
            if i < n and lines[i] == "----":
                if params[0] == "ok":
                    raise SltParseError(f"line {line_no}: statement ok cannot expect an error")
                block, i = _extract_block(lines, i + 1)
                error = "\n".join(block)
            records.append(
                Record(
                    "statement",
                    line_no,
                    params,
                    sql=sql,
                    expect=params[0],
                    error=error,
                    connection=params[1] if len(params) > 1 else None,
                    conditions=tuple(conditions),
                )
            )
        elif head == "query":
            if not params or not params[0] or set(params[0]) - set("TIR"):
                raise SltParseError(f"line {line_no}: query <types> expected (T, I or R)")
            sql, i = _extract_sql(lines, i)
            results: list[str] = []
            has_results = False
            if i < n and lines[i] == "----":
                has_results = True
                results, i = _extract_block(lines, i + 1)
            sort, connection = "nosort", None
            if len(params) > 1:
                if params[1] in SORT_MODES:
                    sort = SORT_MODES[params[1]]
                else:
                    connection = params[1]
            records.append(
                Record(
                    "query",
                    line_no,
                    params,
                    sql=sql,
                    columns=len(params[0]),
                    sort=sort,
                    label=params[2] if len(params) > 2 else None,
                    results=tuple(results),
                    has_results=has_results,
                    connection=connection,
                    conditions=tuple(conditions),
                )
            )
        elif head in ("loop", "concurrentloop"):
            if len(params) != 3:
                raise SltParseError(f"line {line_no}: loop <var> <start> <end> expected")
            try:
                start, end = int(params[1]), int(params[2])
            except ValueError:
                raise SltParseError(f"line {line_no}: loop bounds must be numbers") from None
            records.append(
                Record(
                    "loop",
                    line_no,
                    params,
                    var=params[0],
                    values=tuple(str(v) for v in range(start, end)),
                    concurrent=head == "concurrentloop",
                    conditions=tuple(conditions),
                )
            )
        elif head in ("foreach", "concurrentforeach"):
            if len(params) < 2:
                raise SltParseError(f"line {line_no}: foreach <var> <values...> expected")
            values: list[str] = []
            for p in params[1:]:
                values.extend(FOREACH_GROUPS.get(p, [p]))
            records.append(
                Record(
                    "loop",
                    line_no,
                    params,
                    var=params[0],
                    values=tuple(values),
                    concurrent=head == "concurrentforeach",
                    conditions=tuple(conditions),
                )
            )
        elif head in (
            "endloop",
            "require",
            "require-env",
            "mode",
            "halt",
            "load",
            "restart",
            "reconnect",
            "sleep",
            "hash-threshold",
            "set",
            "reset",
            "tags",
            "test-env",
            "continue",
            "unzip",
        ):
            records.append(Record(head, line_no, params, conditions=tuple(conditions)))
        else:
            raise SltParseError(f"line {line_no}: unknown command {head!r}")
    _check_loops(records)
    return records


def _extract_sql(lines: list[str], i: int) -> tuple[str, int]:
    out = []
    while i < len(lines) and not _empty_or_comment(lines[i]) and lines[i] != "----":
        out.append(lines[i])
        i += 1
    return "\n".join(out), i


def _extract_block(lines: list[str], i: int) -> tuple[list[str], int]:
    out = []
    while i < len(lines) and lines[i] != "":
        out.append(lines[i])
        i += 1
    return out, i


def _check_loops(records: list[Record]) -> None:
    depth = 0
    for r in records:
        if r.kind == "loop":
            depth += 1
        elif r.kind == "endloop":
            depth -= 1
            if depth < 0:
                raise SltParseError(f"line {r.line}: endloop without loop")
    if depth:
        raise SltParseError("missing endloop")


def substitute(text: str, variables: dict[str, str]) -> str:
    """`${var}` and `{var}` of the running loops (DuckDB replaces both, in statements and
    in expected results)."""
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value).replace("{" + name + "}", value)
    return text
