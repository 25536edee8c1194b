"""Rewrite INSERT / UPDATE / DELETE / TRUNCATE so their row changes can be captured.

Only the target is touched: it becomes the storage table (aliased to the name the user wrote,
so qualified column references still resolve) and the statement gains `RETURNING *`, which
yields the full new image of every changed row, hidden row id included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from asof.projections.naming import (
    RESERVED_COLUMNS,
    ROW_ID,
    VERSION_FROM,
    VERSION_TO,
    display_name,
    history_table,
    quote_ident,
    storage_table,
)
from asof.projections.versions import TXN_VARIABLE
from asof.projections.views import capture_list, captured_column
from asof.queryapi.errors import ProgrammingError
from asof.queryapi.sql.statements import (
    Name,
    Statement,
    Token,
    depth_zero,
    find_kw,
    matching_paren,
    read_name,
    skip_words,
    unquote,
)


@attrs.frozen
class TableInfo:
    """What the SQL front needs to know of one user table."""

    table_id: int
    name: str
    version: int
    kind: str  # "table" or "matview"
    columns: tuple[str, ...]  # the user's columns in storage order, the row id excluded
    generated: frozenset[str] = frozenset()  # computed columns: never inserted into
    schema: str = "main"
    #: Columns the log takes as text (projections/views.py, TEXT_LOGGED) and INTERVAL
    #: columns, whose values are checked against what Arrow can carry.
    text_logged: frozenset[str] = frozenset()
    intervals: frozenset[str] = frozenset()

    @property
    def display(self) -> str:
        """The name asof reports: `schema.name` outside `main`."""
        return display_name(self.name, self.schema)


@attrs.frozen
class DmlPlan:
    table: TableInfo
    verb: str  # INSERT, UPDATE, DELETE, TRUNCATE
    sql: str
    capture: str  # "returning": rows come back; "readback": read new row ids; "truncate"
    user_returning: bool = False
    conflict: bool = False  # ON CONFLICT / OR REPLACE: some returned rows are updates
    # INSERT ... <query> filling every column: the query alone, and the column each of its
    # output columns goes to (bulkinsert.py may then capture the rows as Arrow first).
    source: str | None = None
    targets: tuple[str, ...] = ()
    # UPDATE: the statement sets the rows' `_asof_from` itself (else the commit stamps them)
    stamped: bool = False
    # Autocommit UPDATE/DELETE with a plain WHERE: SQL that copies the rows it will change to
    # their history table first, and which of the statement's `?` parameters it takes
    # (start, count). Without it the commit reads the old versions from a snapshot.
    history: str | None = None
    history_params: tuple[int, int] = (0, 0)


Lookup = Callable[[Name], TableInfo]

_QUERY_STARTS = {"SELECT", "WITH", "VALUES", "FROM", "TABLE", "("}
_STAMP = f"{VERSION_FROM} = system.main.getvariable('{TXN_VARIABLE}')"


def plan_dml(stmt: Statement, lookup: Lookup, *, autocommit: bool = True) -> DmlPlan:
    """How to run one INSERT, UPDATE, DELETE or TRUNCATE on the storage tables.

    `autocommit`: the statement is its own transaction. Only then does an UPDATE set its
    rows' `_asof_from` itself: in an explicit transaction the commit may move the rows to
    the table's end (projections/versions.py), and a stamp in place would have widened
    the min/max of the row groups they leave, which AS OF reads prune by. And only then
    may the rows' old versions be copied to history before the statement (`history`):
    in a longer transaction a row may change twice, and only its first version is history.
    """
    toks = stmt.tokens
    refuse_reserved_names(stmt.tokens)
    if toks[0].upper == "TRUNCATE":
        name, _ = read_name(toks, skip_words(toks, 1, "TABLE"))
        table = _writable(lookup(name))
        return DmlPlan(
            table, "TRUNCATE", f"DELETE FROM {storage_table(table.table_id)}", "truncate"
        )
    vi = find_kw(toks, {"INSERT", "UPDATE", "DELETE"})
    if vi is None:
        raise ProgrammingError("could not find the statement's INSERT, UPDATE or DELETE")
    verb = toks[vi].upper
    conflict = False
    if verb == "INSERT":
        i = vi + 1
        if toks[i].upper == "OR":
            conflict = True
            i += 2
        if i >= len(toks) or toks[i].upper != "INTO":
            raise ProgrammingError("expected INTO after INSERT; check the SQL syntax")
        name, j = read_name(toks, i + 1)
    elif verb == "UPDATE":
        name, j = read_name(toks, vi + 1)
    else:
        if vi + 1 >= len(toks) or toks[vi + 1].upper != "FROM":
            raise ProgrammingError("expected FROM after DELETE; check the SQL syntax")
        name, j = read_name(toks, vi + 2)
    table = _writable(lookup(name))

    has_alias = False
    qualifier = quote_ident(name.name)
    if j + 1 < len(toks) and toks[j].upper == "AS":
        has_alias = True
        qualifier = toks[j + 1].text
        j += 2
    elif verb != "INSERT" and j < len(toks) and toks[j].kind == "identifier":
        has_alias = True
        qualifier = toks[j].text
        j += 1
    target = storage_table(table.table_id)
    if not has_alias:
        target += f" AS {quote_ident(name.name)}"
    edits: list[tuple[int, int, str]] = [(name.start, name.end, target)]
    source: tuple[str, tuple[str, ...]] | None = None

    if verb == "INSERT":
        if j + 1 < len(toks) and toks[j].upper == "BY" and toks[j + 1].upper == "POSITION":
            # BY POSITION is the default: drop it so the storage column list can go there.
            edits.append((toks[j].start, toks[j + 1].end, ""))
            j += 2
        at = _positional_insert_at(stmt, j)
        if at is not None:
            cols = ", ".join(quote_ident(c) for c in table.columns if c not in table.generated)
            edits.append((at, at, f" ({cols}) "))
        if vi == 0 and not conflict:
            source = _insert_source(stmt, j, at is not None, table)
        on = find_kw(toks, {"ON"}, j)
        if on is not None and on + 1 < len(toks) and toks[on + 1].upper == "CONFLICT":
            conflict = True
    history, history_params = None, (0, 0)
    if autocommit and verb in ("UPDATE", "DELETE") and vi == 0:
        history, history_params = _history_first(stmt, j, table.table_id, qualifier)
    stamped = False
    if verb == "UPDATE" and autocommit:
        # The changed rows' new versions carry this transaction (projections/versions.py).
        at = find_kw(toks, {"SET"}, j)
        if at is not None:
            edits.append((toks[at].end, toks[at].end, f" {_STAMP},"))
            stamped = True

    ret = find_kw(toks, {"RETURNING"}, j)
    if ret is not None:
        # Name the captured columns apart so the user's own names come back unchanged.
        # INSERT ... RETURNING sees only the target (under a name that depends on ON
        # CONFLICT), so its columns go unqualified; UPDATE/DELETE may join other tables.
        prefix = "" if verb == "INSERT" else f"{qualifier}."
        captured = ", ".join(
            f"{captured_column(c, c in table.text_logged, prefix)} AS {quote_ident(f'__asof_{k}')}"
            for k, c in enumerate([*table.columns, ROW_ID])
        )
        edits.append((toks[ret].start, toks[ret].end, f"RETURNING {captured}, "))
        edits.extend(_hide_row_id_in_stars(toks, ret))
        capture, user_returning = "returning", True
    elif verb == "INSERT" and not conflict and not _inserts_values(toks, j):
        capture, user_returning = "readback", False
    else:
        returning = (
            capture_list(table.columns, table.text_logged)
            if table.text_logged
            else f"* EXCLUDE ({VERSION_FROM})"
        )
        edits.append((len(stmt.sql), len(stmt.sql), f" RETURNING {returning}"))
        capture, user_returning = "returning", False
    query, targets = source if source is not None and capture == "readback" else (None, ())
    return DmlPlan(
        table,
        verb,
        _apply_edits(stmt.sql, edits),
        capture,
        user_returning,
        conflict,
        source=query,
        targets=targets,
        stamped=stamped,
        history=history,
        history_params=history_params,
    )


# What a WHERE clause may hold for `_history_first` to evaluate it a second time: columns,
# constants, `?` parameters, comparisons and arithmetic. No function call (random() would
# pick other rows), no subquery, no named parameter.
_PREDICATE_WORDS = frozenset(
    {"AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "LIKE", "ILIKE"}
    | {"DISTINCT", "FROM"}  # IS [NOT] DISTINCT FROM
)
_PREDICATE_OPERATORS = frozenset(
    {"=", "==", "<", ">", "<=", ">=", "<>", "!=", "(", ")", ",", ".", "+", "-", "*", "/"}
    | {"%", "?", "::"}
)


def _history_first(
    stmt: Statement, j: int, table_id: int, qualifier: str
) -> tuple[str | None, tuple[int, int]]:
    """For `UPDATE t SET … [WHERE p]` or `DELETE FROM t [WHERE p]` (no FROM or USING), the
    INSERT that copies the rows `p` picks, as they are before the statement, to the
    table's history with `_asof_to` = this transaction, and the (start, count) of the
    statement's `?` parameters it takes; None when `p` is not plain."""
    toks = stmt.tokens
    ret = find_kw(toks, {"RETURNING"}, j)
    end = len(toks) if ret is None else ret
    where = find_kw(toks, {"WHERE"}, j)
    head_end = end if where is None else where
    joined = find_kw(toks, {"FROM", "USING"}, j)
    if joined is not None and joined < head_end:
        return None, (0, 0)
    predicate = toks[where + 1 : end] if where is not None else ()
    for i, t in enumerate(predicate):
        after_cast = i > 0 and predicate[i - 1].text == "::"
        nxt = predicate[i + 1].text if i + 1 < len(predicate) else ""
        if nxt == "(" and (t.kind == "identifier" or after_cast):
            return None, (0, 0)  # a function call, or a parameterised type
        if t.kind == "keyword" and not after_cast and t.upper not in _PREDICATE_WORDS:
            return None, (0, 0)
        if t.kind == "operator" and t.text not in _PREDICATE_OPERATORS:
            return None, (0, 0)
    before = sum(1 for t in toks[:head_end] if t.text == "?" and t.kind == "operator")
    inside = sum(1 for t in predicate if t.text == "?" and t.kind == "operator")
    sql = (
        f"INSERT INTO {history_table(table_id)} BY NAME SELECT *, "
        f"CAST(system.main.getvariable('{TXN_VARIABLE}') AS BIGINT) AS {VERSION_TO} "
        f"FROM {storage_table(table_id)} AS {qualifier}"
    )
    if predicate:
        sql += f" WHERE {stmt.sql[predicate[0].start : predicate[-1].end]}"
    return sql, (before, inside)


def _insert_source(
    stmt: Statement, j: int, positional: bool, table: TableInfo
) -> tuple[str, tuple[str, ...]] | None:
    """The query of `INSERT INTO t [(columns)] <query>` and the table column each of its
    output columns fills, when it fills every column of a table without generated ones
    (so no default or computed value is involved); None otherwise."""
    toks = stmt.tokens
    if table.generated or j >= len(toks):
        return None
    if positional:
        targets, q = table.columns, j
    else:
        if toks[j].text != "(":
            return None  # BY NAME, DEFAULT VALUES
        close = matching_paren(toks, j)
        names = toks[j + 1 : close]
        if any(t.text != "," for t in names[1::2]) or len(names) % 2 == 0:
            return None
        by_lower = {c.lower(): c for c in table.columns}
        targets = tuple(by_lower.get(unquote(t.text).lower(), "") for t in names[::2])
        if "" in targets or sorted(targets) != sorted(table.columns):
            return None
        q = close + 1
    if q >= len(toks) or toks[q].upper not in _QUERY_STARTS or toks[q].upper == "VALUES":
        return None
    return stmt.sql[toks[q].start :], targets


def _inserts_values(toks, j: int) -> bool:
    """INSERT ... VALUES: a few literal rows, cheaper to capture with RETURNING."""
    first = find_kw(toks, {"VALUES", "SELECT", "FROM", "WITH", "TABLE", "DEFAULT"}, j)
    return first is not None and toks[first].upper == "VALUES"


def _hide_row_id_in_stars(toks, ret: int) -> list[tuple[int, int, str]]:
    """Edits that keep the hidden row id out of each `*` of the user's RETURNING list."""
    edits = []
    for i, t in depth_zero(toks, ret + 1):
        prev = toks[i - 1]
        if t.text != "*" or not (prev.upper == "RETURNING" or prev.text in (",", ".")):
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if (
            nxt is not None
            and nxt.upper == "EXCLUDE"
            and i + 2 < len(toks)
            and toks[i + 2].text == "("
        ):
            edits.append((toks[i + 2].end, toks[i + 2].end, f"{ROW_ID}, {VERSION_FROM}, "))
        else:
            edits.append((t.end, t.end, f" EXCLUDE ({ROW_ID}, {VERSION_FROM})"))
    return edits


def _positional_insert_at(stmt: Statement, j: int) -> int | None:
    """Where to add an explicit column list, or None when the statement names its columns."""
    toks = stmt.tokens
    if j >= len(toks):
        return len(stmt.sql)
    if toks[j].text == "(":
        inner = toks[j + 1].upper if j + 1 < len(toks) else ""
        if inner not in _QUERY_STARTS:
            matching_paren(toks, j)
            return None
        return toks[j].start
    if toks[j].upper in ("BY", "DEFAULT"):
        return None
    return toks[j].start


def _apply_edits(sql: str, edits: list[tuple[int, int, str]]) -> str:
    out = sql
    for start, end, text in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + text + out[end:]
    return out


def _writable(table: TableInfo) -> TableInfo:
    if table.kind == "matview":
        raise ProgrammingError(
            f"{table.name!r} is a materialized view; change its source tables and run "
            f"REFRESH MATERIALIZED VIEW {table.name}"
        )
    return table


def refuse_reserved_names(tokens: Sequence[Token]) -> None:
    """Refuse an identifier among `tokens` that names one of asof's hidden columns."""
    for t in tokens:
        if t.kind == "identifier" and unquote(t.text).lower() in RESERVED_COLUMNS:
            raise ProgrammingError(
                f"the column name {unquote(t.text)} is reserved by asof; rename it"
            )
