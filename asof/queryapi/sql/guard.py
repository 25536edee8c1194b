"""What a user's statement reaches, as DuckDB itself binds it.

Reading the SQL text cannot tell what a statement calls: a view, a macro, a CTE, quoting,
case, `query('...')` or a function named in a string all hide it. So before a statement runs,
DuckDB binds it (`json_serialize_plan`, the unoptimized logical plan: views and macros
expanded, `query()` replaced by the query it names, every function and sequence resolved to
its catalog entry) and the plan is checked here:

* a sequence function (nextval, setval, currval) must name, as a constant, a sequence of the
  user's own database, in one of its schemas (never asof's internal one). asof's row id sequence is reachable only by the
  row id defaults of its own storage tables (nextval, in writes): no user statement may set
  it, read it or move it. A statement that moves a user sequence is a write, and the caller
  runs it on the write path, which logs where the sequence stands.
* a table function must be one that reads nothing outside the database (ranges, unnest,
  catalog listings, table scans), unless the cluster allows external access; a table scan
  must read the statement's own database (or a checkpoint it shares), never another one.
* `current_setting` (settings name the cluster's directories) and `setseed` (it changes
  state a pooled cursor carries to the next handle) are refused.

Parameters are written into the checked text as literals of their values (DuckDB serializes
no plan with unbound parameters). Verdicts are cached per statement text and parameter
values until the database's catalog changes (the caller passes the catalog's epoch).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import duckdb

from asof.projections.naming import ROW_ID_SEQUENCE, STORAGE_SCHEMA, quote_ident, quote_literal
from asof.queryapi.errors import NotSupportedError
from asof.queryapi.sql.settings import PATH_SETTINGS, SESSION_SETTINGS
from asof.queryapi.sql.statements import Token, tokenize, unquote

SEQUENCE_FUNCTIONS = frozenset({"nextval", "setval", "currval"})
MOVING_FUNCTIONS = frozenset({"nextval", "setval"})
#: current_setting names the cluster's directories; setseed changes the connection's random
#: state, which pooled AS OF cursors carry from one handle to the next.
REFUSED_FUNCTIONS = frozenset({"current_setting", "setseed"})

#: Table functions a statement may call when external access is off: none reads a file, a
#: setting, another database or runs SQL of its own. Anything else is refused.
TABLE_FUNCTIONS = frozenset(
    {
        "seq_scan",  # a table
        "arrow_scan",  # asof's own AT (TIMESTAMP => ...) and asof_history() results
        "arrow_scan_dumb",
        "python_arrow_scan",
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "summary",
        "histogram",
        "histogram_values",
        "test_all_types",
        "test_vector_types",
        "pg_timezone_names",
        "icu_calendar_names",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_schemas",
        "duckdb_sequences",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
        "pragma_table_info",
        "pragma_show",
        "pragma_version",
        "pragma_collations",
    }
)

#: Catalogs a statement may read besides its own database: temporary objects, built-ins,
#: and the checkpoints a merge-on-read state shares (projections/lazy.py names them so).
SHARED_CATALOGS = frozenset({"temp", "system"})
CHECKPOINT_PREFIX = "_asof_base_"

_PLAN_SQL = "SELECT json_serialize_plan(?, skip_null := true, skip_empty := true)"


@attrs.frozen
class Reach:
    """What a statement that passed the check does beyond reading."""

    #: User sequences (schema-qualified, lower case) it moves with nextval or setval.
    moves: frozenset[str] = frozenset()
    #: False when DuckDB could not serialize the plan of a statement that reads files,
    #: which only a cluster opened with external access lets through: the caller runs it
    #: where a change is caught afterwards (the write path).
    checked: bool = True


Verdicts = dict[tuple[object, str, bool, Any], tuple[object, Reach]]


class Guard:
    """The check, with its verdicts cached.

    `cache` may be shared by the guards of one database (every AS OF handle has its own
    guard, and a pooled handle costs less than one bind): verdicts are kept per `scope`,
    which names what the cursor's statements bind against (the live catalog, the row
    versions' views, one built state).
    """

    def __init__(
        self,
        *,
        external: bool,
        epoch: Callable[[], object],
        cache: Verdicts | None = None,
        scope: object = None,
    ) -> None:
        self.external = external
        self.scope = scope
        self._epoch = epoch
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._catalog = ""
        self._cache: Verdicts = {} if cache is None else cache

    def check(
        self,
        cur: duckdb.DuckDBPyConnection,
        sql: str,
        params: Any = None,
        *,
        writing: bool = False,
    ) -> Reach:
        """Raise NotSupportedError when `sql` reaches beyond the user's objects; else say
        what it moves. `writing`: the statement is a rewritten write on a storage table,
        whose row id defaults call nextval on asof's row id sequence."""
        epoch = self._epoch()
        values = params_key(params)
        key = (self.scope, sql, writing, values)
        cached = self._cache.get(key) if values is not None else None
        if cached is not None and cached[0] == epoch:
            return cached[1]
        if cur is not self._cursor:
            self._cursor = cur
            self._catalog = cur.execute("SELECT system.main.current_database()").fetchall()[0][0]
        reach = self._inspect(cur, sql, params, writing)
        if values is not None:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[key] = (epoch, reach)
        return reach

    def _inspect(
        self, cur: duckdb.DuckDBPyConnection, sql: str, params: Any, writing: bool
    ) -> Reach:
        try:
            plan = bound_plan(cur, sql, params)
        except duckdb.NotImplementedException:
            if self.external:
                return Reach(checked=False)
            raise
        moves: set[str] = set()
        row_ids = 0  # nextval calls on the row id sequence
        defaults = 0  # of them, the row id defaults of the storage tables written to
        for node in nodes(plan):
            if node.get("type") in ("LOGICAL_INSERT", "LOGICAL_MERGE_INTO"):  # an upsert merges
                defaults += 1  # the default of the rows it inserts, bound into its input
            if "bound_defaults" in node:  # defaults kept for an UPDATE or an upsert
                defaults += sum(1 for d in nodes(node["bound_defaults"]) if _is_row_id_call(d))
            qname = node.get("qname")
            if not isinstance(qname, dict):
                continue
            name = str((qname.get("path") or [""])[-1]).lower()
            if node.get("type") == "LOGICAL_GET":
                self._check_table_function(name, node)
            elif name in SEQUENCE_FUNCTIONS:
                seq = self._check_sequence(name, node, writing)
                if seq is None:
                    row_ids += 1
                elif name in MOVING_FUNCTIONS:
                    moves.add(seq)
            elif name == "current_setting" and _readable_setting(node):
                continue
            elif name in REFUSED_FUNCTIONS:
                raise NotSupportedError(
                    f"{name}() is refused: it reads or changes the server's state, not the "
                    "database's"
                )
        if row_ids > defaults:  # more than the defaults: the statement calls it itself
            raise NotSupportedError(
                f"the sequence {ROW_ID_SEQUENCE} is internal to asof; use your own sequences"
            )
        return Reach(frozenset(moves))

    def _check_table_function(self, name: str, node: dict[str, Any]) -> None:
        if not self.external and name not in TABLE_FUNCTIONS:
            raise NotSupportedError(
                f"the table function {name}() reaches outside the database and is refused; "
                "open the cluster with allow_external_access=True to allow it"
            )
        data = node.get("function_data")
        catalog = data.get("catalog") if isinstance(data, dict) else None
        if isinstance(catalog, str) and not self._own_catalog(catalog):
            raise NotSupportedError(
                "a statement reads only its own database; name tables without a database qualifier"
            )

    def _own_catalog(self, catalog: str) -> bool:
        if catalog == self._catalog or catalog in SHARED_CATALOGS:
            return True
        return catalog.startswith(CHECKPOINT_PREFIX) or self.external

    def _check_sequence(self, name: str, node: dict[str, Any], writing: bool) -> str | None:
        """The user sequence `node` calls `name` on, or None for the row id default."""
        data = node.get("function_data")
        info = data.get("sequence_create_info") if isinstance(data, dict) else None
        path = (info or {}).get("qualified_name", {}).get("path") if info else None
        if not path or len(path) != 3:
            raise NotSupportedError(
                f"{name}() needs the sequence's name as a constant in the statement, as in "
                f"{name}('s'); a name computed or passed as a parameter is refused"
            )
        catalog, schema, seq = (str(p) for p in path)
        if catalog != self._catalog:
            raise NotSupportedError(f"{name}() may use only this database's own sequences")
        if schema.lower() == STORAGE_SCHEMA:
            if writing and name == "nextval" and f"{schema}.{seq}".lower() == ROW_ID_SEQUENCE:
                return None  # a storage table's row id default
            raise NotSupportedError(
                f"the sequence {schema}.{seq} is internal to asof; use your own sequences"
            )
        return f"{schema}.{seq}".lower()


#: Settings `current_setting` may read: the session's own, which name no directory.
READABLE_SETTINGS = frozenset({*SESSION_SETTINGS, *PATH_SETTINGS})


def _readable_setting(node: dict[str, Any]) -> bool:
    """`current_setting('x')` of a constant name a session may set itself."""
    children = node.get("children") or []
    if len(children) != 1 or children[0].get("type") != "VALUE_CONSTANT":
        return False
    value = (children[0].get("value") or {}).get("value")
    return isinstance(value, str) and value.lower() in READABLE_SETTINGS


def _is_row_id_call(node: dict[str, Any]) -> bool:
    qname = node.get("qname")
    if not isinstance(qname, dict) or (qname.get("path") or [""])[-1] != "nextval":
        return False
    data = node.get("function_data")
    info = data.get("sequence_create_info") if isinstance(data, dict) else None
    path = (info or {}).get("qualified_name", {}).get("path") if info else None
    return bool(path) and ".".join(path[-2:]).lower() == ROW_ID_SEQUENCE


def bound_plan(cur: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    """DuckDB's logical plan of `sql` bound on `cur`, its parameters written in as
    literals; a statement that does not bind raises DuckDB's own error (the caller
    translates it)."""
    text = with_parameters(sql, params)
    plan = _plan(cur, text)
    if plan.get("error") and "process-local" in str(plan.get("error_message")):
        # asof's own code reads Arrow tables registered on the cursor (time travel in SQL,
        # restores): bind empty stand-ins of the same columns in their place.
        text = _without_registered(cur, text)
        plan = _plan(cur, text)
    if plan.get("error"):
        raise _duckdb_error(plan)
    return plan


def _plan(cur: duckdb.DuckDBPyConnection, text: str) -> Any:
    raw = cur.execute(_PLAN_SQL, [text]).fetchall()[0][0]
    if not raw:  # DuckDB 2.0 serializes no plan that filters on a BIT constant, say
        raise duckdb.NotImplementedException(
            "DuckDB cannot describe this statement's plan, and asof checks every plan before "
            "it runs; write the constant another way (a BIT column compared as text: "
            "a::VARCHAR = '110')"
        )
    return json.loads(raw)


def parse_tree(cur: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """DuckDB's parse tree of the query `sql` (`json_serialize_sql`: nothing bound, macros
    not expanded), or None when DuckDB cannot describe it."""
    try:
        tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except duckdb.Error:
        return None
    return None if tree.get("error") else tree


def _without_registered(cur: duckdb.DuckDBPyConnection, sql: str) -> str:
    """`sql` with each relation registered on `cur` (Arrow tables: only asof registers
    any, users cannot) replaced by an empty subquery with the same columns."""
    rows = cur.execute(
        "SELECT v.view_name, list(c.column_name ORDER BY c.column_index), "
        "list(c.data_type ORDER BY c.column_index) FROM duckdb_views() AS v "
        "JOIN duckdb_columns() AS c ON c.database_name = v.database_name "
        "AND c.schema_name = v.schema_name AND c.table_name = v.view_name "
        "WHERE v.temporary AND v.sql LIKE '%arrow_scan%' GROUP BY v.view_name"
    ).fetchall()
    stand_ins = {
        name.lower(): "(SELECT "
        + ", ".join(
            f"CAST(NULL AS {t}) AS {quote_ident(c)}" for c, t in zip(cols, types, strict=True)
        )
        + " WHERE false)"
        for name, cols, types in rows
    }
    toks = tokenize(sql)
    for i in reversed(range(len(toks))):
        t = toks[i]
        stand_in = stand_ins.get(unquote(t.text).lower()) if t.kind == "identifier" else None
        if stand_in is None:
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        aliased = nxt is not None and (nxt.upper == "AS" or nxt.kind == "identifier")
        alias = "" if aliased else f" AS {quote_ident(t.text)}"
        sql = f"{sql[: t.start]}{stand_in}{alias}{sql[t.end :]}"
    return sql


def with_parameters(sql: str, params: Any) -> str:
    """`sql` with each parameter (`?`, `$1`, `$name`) replaced by its value as a literal:
    DuckDB serializes no plan with unbound parameters, and a stand-in value would bind
    differently (a NULL folds the call it is passed to away, a sequence named by a
    parameter binds to whatever the stand-in names)."""
    toks = tokenize(sql)
    edits: list[tuple[int, int, str]] = []
    position = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "operator" and t.text == "?":
            edits.append((t.start, t.end, _literal(_param(params, position))))
            position += 1
        elif t.kind == "operator" and t.text == "$" and _adjacent(toks, i):
            ref = toks[i + 1].text
            key: int | str = int(ref) - 1 if ref.isdigit() else ref
            edits.append((t.start, toks[i + 1].end, _literal(_param(params, key))))
            i += 1
        i += 1
    for start, end, text in reversed(edits):
        sql = f"{sql[:start]}{text}{sql[end:]}"
    return sql


_MISSING = object()


def _param(params: Any, key: int | str) -> Any:
    try:
        return params[key] if params is not None else _MISSING
    except (IndexError, KeyError, TypeError):
        return _MISSING


def _literal(value: Any) -> str:
    """A SQL literal that binds as the parameter would."""
    if value is _MISSING or value is None:
        return "NULL"  # a missing one fails the statement itself, later
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST({quote_literal(repr(value))} AS DOUBLE)"
    if isinstance(value, Decimal):
        return f"CAST({quote_literal(str(value))} AS DECIMAL(38, {max(0, -value.as_tuple().exponent)}))"  # type: ignore[operator]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"from_hex({quote_literal(bytes(value).hex())})"
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
        return f"CAST({quote_literal(value.isoformat())} AS {kind})"
    if isinstance(value, dt.date):
        return f"CAST({quote_literal(value.isoformat())} AS DATE)"
    if isinstance(value, dt.time):
        return f"CAST({quote_literal(value.isoformat())} AS TIME)"
    if isinstance(value, dt.timedelta):
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return f"to_microseconds({micros})"
    if isinstance(value, uuid.UUID):
        return f"CAST({quote_literal(str(value))} AS UUID)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{quote_literal(str(k))}: {_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    return quote_literal(str(value))  # a string literal casts to what the context needs


def params_key(params: Any) -> Any:
    """A cache key for parameter values (None when they cannot be one).

    Only a text (or bytes) value can bind differently: it may name a sequence, a table or
    a query. A number, a time or a NULL names nothing outside the user's own objects
    (`?::VARCHAR` spells digits), and DuckDB binds the same plan whatever it is, so such
    values are keyed by their type alone: a single-row UPDATE by key is checked once."""
    if params is None:
        return ()
    items = params.items() if isinstance(params, dict) else enumerate(params)
    try:
        key = tuple(
            (k, type(v).__name__, v if isinstance(v, str | bytes) else None) for k, v in items
        )
        hash(key)
    except TypeError:
        return None
    return key


def _adjacent(toks: tuple[Token, ...], i: int) -> bool:
    return i + 1 < len(toks) and toks[i + 1].start == toks[i].end


_ERRORS: dict[str, type[duckdb.Error]] = {
    "binder": duckdb.BinderException,
    "catalog": duckdb.CatalogException,
    "parser": duckdb.ParserException,
    "conversion": duckdb.ConversionException,
    "out of range": duckdb.OutOfRangeException,
    "invalid input": duckdb.InvalidInputException,
    "not implemented": duckdb.NotImplementedException,
    "constraint": duckdb.ConstraintException,
    "permission": duckdb.PermissionException,
}


def _duckdb_error(plan: dict[str, Any]) -> duckdb.Error:
    kind = str(plan.get("error_type", "")).lower()
    message = str(plan.get("error_message", "the statement could not be bound"))
    label = kind.title() if kind else "Binder"
    return _ERRORS.get(kind, duckdb.BinderException)(f"{label} Error: {message}")


def nodes(obj: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a plan, depth first (iterative: plans nest deeply)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            yield o
            stack.extend(v for v in o.values() if isinstance(v, dict | list))
        elif isinstance(o, list):
            stack.extend(v for v in o if isinstance(v, dict | list))
