"""Result column names as PostgreSQL derives them (`count`, `?column?`, `numeric`, …).

DuckDB names an unaliased expression by its text (`count_star()`, `(1 + 1)`); PostgreSQL
by FigureColname's rules, and clients rely on that (psql's `\\gset` makes variables of the
names). The query is parsed with pglast (PostgreSQL's own parser) only to read the target
list; the query itself still runs on DuckDB unchanged.
"""

from __future__ import annotations

import functools

from pglast import ast, parse_sql
from pglast.enums import MinMaxOp, SQLValueFunctionOp, SubLinkType

_SVF_NAMES = {
    SQLValueFunctionOp.SVFOP_CURRENT_DATE: "current_date",
    SQLValueFunctionOp.SVFOP_CURRENT_TIME: "current_time",
    SQLValueFunctionOp.SVFOP_CURRENT_TIME_N: "current_time",
    SQLValueFunctionOp.SVFOP_CURRENT_TIMESTAMP: "current_timestamp",
    SQLValueFunctionOp.SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp",
    SQLValueFunctionOp.SVFOP_LOCALTIME: "localtime",
    SQLValueFunctionOp.SVFOP_LOCALTIME_N: "localtime",
    SQLValueFunctionOp.SVFOP_LOCALTIMESTAMP: "localtimestamp",
    SQLValueFunctionOp.SVFOP_LOCALTIMESTAMP_N: "localtimestamp",
    SQLValueFunctionOp.SVFOP_CURRENT_ROLE: "current_role",
    SQLValueFunctionOp.SVFOP_CURRENT_USER: "current_user",
    SQLValueFunctionOp.SVFOP_USER: "user",
    SQLValueFunctionOp.SVFOP_SESSION_USER: "session_user",
    SQLValueFunctionOp.SVFOP_CURRENT_CATALOG: "current_catalog",
    SQLValueFunctionOp.SVFOP_CURRENT_SCHEMA: "current_schema",
}

#: Functions whose PostgreSQL 15 result column is named differently from the call.
_FUNC_ALIASES = {"extract": "extract"}


@functools.lru_cache(maxsize=512)
def postgres_names(sql: str) -> tuple[str, ...] | None:
    """The column names PostgreSQL gives a single SELECT's result, or None when they
    cannot be told from the text alone (a `*`, a parse PostgreSQL would refuse)."""
    try:
        stmts = parse_sql(sql)
    except Exception:
        return None
    if len(stmts) != 1:
        return None
    stmt = stmts[0].stmt
    while isinstance(stmt, ast.SelectStmt) and stmt.larg is not None:
        stmt = stmt.larg  # a set operation takes its names from the leftmost query
    if not isinstance(stmt, ast.SelectStmt) or not stmt.targetList:
        return None
    names = []
    for target in stmt.targetList:
        if not isinstance(target, ast.ResTarget):
            return None
        if target.name:
            names.append(target.name)
            continue
        if _has_star(target.val):
            return None
        names.append(_figure(target.val)[0] or "?column?")
    return tuple(names)


def _has_star(node: object) -> bool:
    return isinstance(node, ast.ColumnRef) and any(
        isinstance(f, ast.A_Star) for f in node.fields or ()
    )


def _last_string(items: object) -> str | None:
    for item in reversed(tuple(items or ())):  # type: ignore[call-overload]
        if isinstance(item, ast.String):
            return item.sval
        return None
    return None


def _figure(node: object) -> tuple[str | None, int]:
    """FigureColnameInternal: a name and its strength (2 strong, 1 weak, 0 none)."""
    if isinstance(node, ast.ColumnRef):
        name = _last_string(node.fields)
        return (name, 2) if name else (None, 0)
    if isinstance(node, ast.A_Indirection):
        name = _last_string(node.indirection)
        return (name, 2) if name else _figure(node.arg)
    if isinstance(node, ast.FuncCall):
        name = _last_string(node.funcname)
        return (_FUNC_ALIASES.get(name or "", name), 2) if name else (None, 0)
    if isinstance(node, ast.A_Expr):
        if getattr(node.kind, "name", "") == "AEXPR_NULLIF":
            return "nullif", 2
        return None, 0
    if isinstance(node, ast.TypeCast):
        name, strength = _figure(node.arg)
        if strength <= 1 and node.typeName is not None:
            type_name = _last_string(node.typeName.names)
            if type_name:
                return type_name, 1
        return name, strength
    if isinstance(node, ast.CollateClause):
        return _figure(node.arg)
    if isinstance(node, ast.GroupingFunc):
        return "grouping", 2
    if isinstance(node, ast.SubLink):
        kind = node.subLinkType
        if kind == SubLinkType.EXISTS_SUBLINK:
            return "exists", 2
        if kind == SubLinkType.ARRAY_SUBLINK:
            return "array", 2
        if kind == SubLinkType.EXPR_SUBLINK and isinstance(node.subselect, ast.SelectStmt):
            targets = node.subselect.targetList or ()
            if targets and isinstance(targets[0], ast.ResTarget):
                inner = targets[0]
                if inner.name:
                    return inner.name, 2
                name, _ = _figure(inner.val)
                return (name, 2) if name else ("?column?", 2)
        return None, 0
    if isinstance(node, ast.CaseExpr):
        return "case", 1
    if isinstance(node, ast.A_ArrayExpr):
        return "array", 1
    if isinstance(node, ast.RowExpr):
        return "row", 1
    if isinstance(node, ast.CoalesceExpr):
        return "coalesce", 2
    if isinstance(node, ast.MinMaxExpr):
        return ("greatest" if node.op == MinMaxOp.IS_GREATEST else "least"), 2
    if isinstance(node, ast.SQLValueFunction):
        return _SVF_NAMES.get(node.op), 2
    return None, 0
