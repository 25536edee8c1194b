"""SET, RESET and PRAGMA of the settings that stay inside one session.

DuckDB's settings are mostly global to an instance, and an instance serves every session of a
database (and, for AS OF states, every state the database's host holds), so a setting is
accepted only when three things hold: DuckDB can scope it to one connection (asof always runs
it as `SET SESSION`, and DuckDB itself refuses the global-only ones), it changes how this
session's queries are planned, ordered or explained and never a value the log stores or a
CHECK judges on replay, and it reaches nothing outside the database (no file, no search path
into asof's schema). Session variables (`SET VARIABLE`) are the session's own, as in DuckDB.
Everything else is refused with the reason; docs/security.md keeps the reasoning per setting.
"""

from __future__ import annotations

import attrs

from asof.projections import versions
from asof.projections.naming import quote_ident, quote_literal
from asof.queryapi.errors import NotSupportedError
from asof.queryapi.sql.statements import Statement, Token, unquote

#: Settings a session may change, each scoped to its own connection.
SESSION_SETTINGS = frozenset(
    {
        "default_null_order",  # where NULLs sort when ORDER BY does not say
        "explain_output",  # what EXPLAIN prints
        "immediate_transaction_mode",  # when DuckDB's transaction takes its snapshot
        "index_scan_percentage",  # when the planner picks an index scan
        "index_scan_max_count",
        "scalar_subquery_error_on_multiple_rows",  # a read's error, or its first row
        "order_by_non_integer_literal",  # a binder rule for ORDER BY 'text'
        "max_expression_depth",  # the parser's nesting limit
        "pivot_limit",
        "pivot_filter_threshold",
        "merge_join_threshold",
        "nested_loop_join_threshold",
        "prefer_range_joins",
        "perfect_ht_threshold",
        "ordered_aggregate_threshold",
        "late_materialization_max_rows",
        "dynamic_or_filter_threshold",
        "force_update_to_del_and_insert",  # how DuckDB applies an UPDATE, not what
    }
)

#: Settings DuckDB keeps for a whole instance that change only how fast or how strictly
#: the database works, never a value it stores: accepted for the database (its instance
#: serves every session of it, as a DuckDB database's serves every connection), until the
#: database is next opened. Dependency tracking only refuses more DROPs: a replay, which
#: runs without it, never meets a DROP the live database refused.
DATABASE_SETTINGS = frozenset(
    {
        "threads",
        "disabled_optimizers",
        "wal_autocheckpoint",  # when DuckDB folds the projection file's own WAL
        "max_vacuum_tasks",
        "enable_macro_dependencies",
        "enable_view_dependencies",
    }
)

#: Where names without a schema are looked up. Accepted when every schema named is one of
#: the user's own in this database (queryapi/sql/schemas.py checks them), and kept by the
#: session too, so the SQL front resolves names as DuckDB does.
PATH_SETTINGS = frozenset({"search_path", "schema"})

#: Why some settings users reach for are refused, for the error message.
_REFUSED_WHY = {
    "integer_division": "it changes what expressions compute, and a CHECK is judged again "
    "on every replay of the log",
    "ieee_floating_point_ops": "it changes what expressions compute, and a CHECK is judged "
    "again on every replay of the log",
    "default_collation": "it changes how text compares, and a CHECK is judged again on every "
    "replay of the log",
    "default_order": "asof's own queries rely on ascending order",
    "preserve_insertion_order": "asof matches the rows a write returns by their order",
}

#: DuckDB's policy for which errors fail an open transaction. DuckDB keeps it per
#: instance; asof keeps it per session and decides itself (Session._fails_transaction),
#: so the instance always runs with the lenient value and one session's choice is its own.
INVALIDATION_POLICY = "default_transaction_invalidation_policy"
INVALIDATION_POLICIES = ("ALL_ERRORS_INVALIDATE_TRANSACTION", "SYNTACTIC_ERRORS_DO_NOT_INVALIDATE")


@attrs.frozen
class Setting:
    """A SET or RESET asof runs: `sql` on the session's cursor."""

    sql: str
    name: str  # the setting or variable, lower case
    reset: bool
    variable: bool  # SET VARIABLE / RESET VARIABLE
    value_sql: str | None = None  # a variable's value expression, for the guard to check
    #: For a setting asof keeps itself (not run on DuckDB): the value, upper case.
    kept: str | None = None
    #: For `schema` and `search_path`: the schemas named, in order (empty on RESET).
    path: tuple[str, ...] | None = None
    #: A setting of the database's instance (DATABASE_SETTINGS), not of the session.
    shared: bool = False


def parse(st: Statement) -> Setting:
    """The SET, RESET or PRAGMA `st` as asof will run it, or NotSupportedError."""
    toks = [t for t in st.tokens if t.kind != "comment"]
    verb = st.verb
    if verb == "PRAGMA":
        return _pragma(st, toks)
    if verb not in ("SET", "RESET"):
        raise NotSupportedError(f"{verb} statements are not supported by asof")
    reset = verb == "RESET"
    i = 1
    if i < len(toks) and toks[i].upper == "SESSION":
        i += 1
    elif i < len(toks) and toks[i].upper == "GLOBAL":
        i += 1
        if i >= len(toks) or unquote(toks[i].text).lower() not in DATABASE_SETTINGS:
            raise NotSupportedError(
                f"{verb} GLOBAL is refused: a setting applies to one session in asof (or, "
                f"for {', '.join(sorted(DATABASE_SETTINGS))}, to its database); drop GLOBAL"
            )
    if i < len(toks) and toks[i].upper == "VARIABLE":
        return _variable(st, toks, i + 1, reset)
    if i >= len(toks):
        raise NotSupportedError(f"{verb} needs a setting's name")
    name = unquote(toks[i].text).lower()
    if name == INVALIDATION_POLICY:
        value = INVALIDATION_POLICIES[0] if reset else _policy(st, toks, i + 1)
        return Setting("", name, reset=reset, variable=False, kept=value)
    if name in PATH_SETTINGS:
        if reset:
            return Setting("RESET SESSION search_path", name, True, False, path=())
        path = _path(_value(st, toks, i + 1, f"SET {name}"))
        if not path or (name == "schema" and len(path) > 1):
            raise NotSupportedError(f"SET {name} needs a schema's name")
        return Setting(
            f"SET SESSION search_path = {quote_literal(path_text(path))}",
            "search_path",
            False,
            False,
            path=path,
        )
    if name in DATABASE_SETTINGS:
        if reset:
            return Setting(f"RESET GLOBAL {name}", name, reset=True, variable=False, shared=True)
        value = _value(st, toks, i + 1, f"SET {name}")
        return Setting(f"SET GLOBAL {name} = {value}", name, False, False, shared=True)
    _allowed(name, verb)
    if reset:
        return Setting(f"RESET SESSION {name}", name, reset=True, variable=False)
    value = _value(st, toks, i + 1, f"SET {name}")
    return Setting(f"SET SESSION {name} = {value}", name, reset=False, variable=False)


def _pragma(st: Statement, toks: list[Token]) -> Setting:
    """`PRAGMA name = value` is DuckDB's spelling of SET; other PRAGMAs are calls."""
    if len(toks) < 3 or toks[2].text != "=":
        raise NotSupportedError(
            "PRAGMA statements are refused, except PRAGMA <setting> = <value> of a session "
            "setting; for table information query pragma_table_info('t')"
        )
    name = unquote(toks[1].text).lower()
    value = _rest(st, toks, 3)
    if name in DATABASE_SETTINGS:
        return Setting(f"SET GLOBAL {name} = {value}", name, False, False, shared=True)
    _allowed(name, "PRAGMA")
    return Setting(f"SET SESSION {name} = {value}", name, reset=False, variable=False)


def _variable(st: Statement, toks: list[Token], i: int, reset: bool) -> Setting:
    if i >= len(toks):
        raise NotSupportedError("SET VARIABLE needs a name")
    name = unquote(toks[i].text).lower()
    if name == versions.TXN_VARIABLE:
        raise NotSupportedError(
            f"the variable {versions.TXN_VARIABLE} is reserved by asof; use another name"
        )
    if reset:
        return Setting(st.sql, name, reset=True, variable=True)
    value = _value(st, toks, i + 1, f"SET VARIABLE {name}")
    return Setting(st.sql, name, reset=False, variable=True, value_sql=value)


def path_text(path: tuple[str, ...]) -> str:
    """A search path as DuckDB's `search_path` setting spells it: quoted names, commas."""
    return ",".join(quote_ident(p) for p in path)


def _path(value: str) -> tuple[str, ...]:
    """The schemas of a search path value: a string ('a,"B c"') or a bare name."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1].replace("''", "'")
    parts, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return tuple(unquote(p.strip()) for p in parts if p.strip())


def _policy(st: Statement, toks: list[Token], j: int) -> str:
    value = unquote(_value(st, toks, j, f"SET {INVALIDATION_POLICY}").strip("'\"")).upper()
    if value not in INVALIDATION_POLICIES:
        raise NotSupportedError(
            f"Invalid Input Error: {INVALIDATION_POLICY} is one of "
            f"{', '.join(INVALIDATION_POLICIES)}"
        )
    return value


def _allowed(name: str, verb: str) -> None:
    if name in SESSION_SETTINGS:
        return
    why = _REFUSED_WHY.get(name)
    if why is None:
        why = (
            "it is not a setting asof scopes to one session (those are "
            f"{', '.join(sorted(SESSION_SETTINGS))}); open the cluster with "
            "allow_external_access=True to allow any setting"
        )
    raise NotSupportedError(f"{verb} {name} is refused: {why}")


def _value(st: Statement, toks: list[Token], j: int, what: str) -> str:
    """The value after `name [=|TO]` at token `j`."""
    if j < len(toks) and (toks[j].text == "=" or toks[j].upper == "TO"):
        j += 1
    value = _rest(st, toks, j)
    if not value:
        raise NotSupportedError(f"{what} needs a value")
    return value


def _rest(st: Statement, toks: list[Token], j: int) -> str:
    """The statement's text from token `j` on, without a trailing `;` or comment."""
    if j >= len(toks):
        return ""
    end = toks[-1].end
    if toks[-1].text == ";":
        end = toks[-2].end if len(toks) > j + 1 else toks[j].start
    return st.sql[toks[j].start : end].strip()
