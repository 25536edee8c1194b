"""CREATE, DROP and ALTER: run them against storage names and record what they made.

Tables get a stable id at CREATE; their events carry the SQL that recreates the storage
table exactly, read back from DuckDB's catalog after the statement ran. Other objects
(views, sequences, indexes, macros, types) are recorded as the SQL that made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from asof.eventlog.events import Event, RowOp
from asof.projections import kinds, versions
from asof.projections.apply import apply_event, next_table_id, register_table, set_table_version
from asof.projections.lazy import LAZY_TABLE
from asof.projections.live import DatabaseRuntime
from asof.projections.naming import (
    RESERVED_COLUMNS,
    ROW_ID,
    ROW_ID_SEQUENCE,
    STORAGE_SCHEMA,
    STORED_COLUMNS,
    first_row,
    quote_ident,
    storage_table,
)
from asof.queryapi.errors import NotSupportedError, ProgrammingError
from asof.queryapi.result import Result
from asof.queryapi.sql.definitions import body_after_as, refuse_internal_references
from asof.queryapi.sql.dml import TableInfo, refuse_reserved_names
from asof.queryapi.sql.guard import Guard, with_parameters
from asof.queryapi.sql.statements import (
    Name,
    Statement,
    find_kw,
    read_name,
    skip_words,
)


class Session(Protocol):
    """What DDL needs of the session running it (queryapi/sql/session.py): its cursor inside
    the open write transaction, the events it collects, and its catalog lookups."""

    cur: duckdb.DuckDBPyConnection
    rt: DatabaseRuntime

    def emit(self, event: Event) -> None: ...

    def lookup(
        self, name: Name, *, kinds_allowed: Sequence[str] = ("table", "matview")
    ) -> TableInfo: ...

    def find_table(self, name: str) -> TableInfo | None: ...

    def materialize(self, table_id: int) -> None: ...

    def row_id_mark(self) -> int: ...

    guard: Guard

    def check_expressions(self, table_ids: Sequence[int] | None = None) -> None: ...


_OBJECT_WORDS = {
    "VIEW": "view",
    "SEQUENCE": "sequence",
    "MACRO": "macro",
    "FUNCTION": "macro",
    "TYPE": "type",
    "INDEX": "index",
}


def _main_object(s: Session, name: str) -> str | None:
    """What kind of object (if any) already holds `name` in the user's namespace."""
    table = s.find_table(name)
    if table is not None:
        return table.kind
    row = first_row(
        s.cur,
        "SELECT 'view' FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND lower(view_name) = lower(?) "
        "UNION ALL SELECT 'sequence' FROM duckdb_sequences() WHERE "
        "database_name = current_database() AND schema_name = 'main' "
        "AND lower(sequence_name) = lower(?)",
        [name, name],
    )
    return row[0] if row else None


def _check_schema(name: Name) -> None:
    if len(name.parts) > 2:
        raise NotSupportedError(
            f"a statement names only its own database's objects; drop the {name.parts[0]!r} "
            "qualifier"
        )
    if name.schema is not None and name.schema.lower() != "main":
        raise NotSupportedError(
            f"asof keeps user objects in the main schema; drop the {name.schema!r} qualifier"
        )


#: Names no user object may take: the hidden columns, and `excluded`, which an upsert
#: gives the proposed row (statements on such a table cannot tell the two apart).
RESERVED_NAMES = frozenset({*RESERVED_COLUMNS, "excluded"})


def _check_new_name(name: Name) -> None:
    """A name a statement gives a new object (or a renamed one)."""
    _check_schema(name)
    low = name.name.lower()
    if low in RESERVED_NAMES or low.startswith(STORAGE_SCHEMA):
        raise ProgrammingError(
            f"the name {name.name!r} is reserved by asof (as are names starting with "
            f"{STORAGE_SCHEMA}); choose another"
        )


def _refuse_shadowing(s: Session) -> None:
    """asof's own SQL calls DuckDB's functions by their plain names (nextval, getvariable,
    current_database, range, ...), and a macro of the same name would take their place."""
    row = first_row(
        s.cur,
        "SELECT min(function_name) FROM system.main.duckdb_functions() "
        "WHERE database_name = system.main.current_database() AND schema_name = 'main' "
        "AND lower(function_name) IN (SELECT lower(function_name) FROM "
        "system.main.duckdb_functions() WHERE database_name = 'system')",
    )
    if row is not None and row[0] is not None:
        raise ProgrammingError(
            f"{row[0]!r} is the name of a DuckDB function; give the macro another name"
        )


def _check_query(s: Session, query: str, params: Any = None) -> None:
    """A query a DDL statement runs (CREATE TABLE ... AS, materialized views) passes the
    same check as a user's query (queryapi/sql/guard.py), and its columns are checked
    before it runs: a refusal after it ran could not take back a sequence it moved."""
    s.guard.check(s.cur, query, params, writing=True)
    described = s.cur.execute(f"DESCRIBE {with_parameters(query, params)}").fetchall()
    reserved = sorted(str(r[0]) for r in described if str(r[0]).lower() in RESERVED_COLUMNS)
    if reserved:
        raise ProgrammingError(f"the column name {reserved[0]} is reserved by asof; rename it")


def _storage_ddl(s: Session, table_id: int) -> str:
    return s.cur.execute(
        "SELECT sql FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [STORAGE_SCHEMA, f"t{table_id}"],
    ).fetchall()[0][0]


def _replace(sql: str, start: int, end: int, text: str) -> str:
    return sql[:start] + text + sql[end:]


def _refuse_row_id_column(s: Session, table_id: int) -> None:
    cols = s.cur.execute(
        "SELECT min(column_name) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? AND list_contains(?, lower(column_name))",
        [STORAGE_SCHEMA, f"t{table_id}", sorted(RESERVED_COLUMNS)],
    ).fetchall()[0][0]
    if cols:
        raise ProgrammingError(f"the column name {cols} is reserved by asof; rename it")


def _add_hidden_columns(s: Session, table_id: int) -> None:
    s.cur.execute(
        f"ALTER TABLE {storage_table(table_id)} ADD COLUMN {ROW_ID} BIGINT "
        f"DEFAULT system.main.nextval('{ROW_ID_SEQUENCE}');\n{versions.add_from_column_sql(table_id)};\n"
        f"{versions.create_history_sql(table_id)}"
    )


# ------------------------------------------------------------------- CREATE
def create(s: Session, st: Statement, params: Any) -> Result:
    toks = st.tokens
    i = skip_words(toks, 1, "OR", "REPLACE")
    or_replace = i > 1
    word = toks[i].upper
    if word == "UNIQUE":
        word = "INDEX"
        i += 1
    if word == "TABLE":
        return _create_table(s, st, i + 1, or_replace, params)
    if word == "SCHEMA":
        raise NotSupportedError(
            "asof keeps user objects in the main schema; CREATE SCHEMA is not supported"
        )
    if word in ("DATABASE",):
        raise ProgrammingError("CREATE DATABASE is a cluster statement; run it with cluster.sql()")
    if word not in _OBJECT_WORDS:
        raise NotSupportedError(f"CREATE {word} is not supported by asof")
    obj = _OBJECT_WORDS[word]
    j = skip_words(toks, i + 1, "IF", "NOT", "EXISTS")
    name, k = read_name(toks, j)
    sql = st.sql
    if obj == "index":
        _check_new_name(name)
        on = find_kw(toks, {"ON"}, k)
        if on is None:
            raise ProgrammingError("CREATE INDEX needs ON <table>; check the SQL syntax")
        target, _ = read_name(toks, on + 1)
        table = s.lookup(target, kinds_allowed=("table",))
        sql = _replace(sql, target.start, target.end, storage_table(table.table_id))
        s.materialize(table.table_id)
        table_id = table.table_id
    else:
        _check_new_name(name)
        held = _main_object(s, name.name)
        if held in ("table", "matview"):
            raise ProgrammingError(
                f"{name.name!r} is already a {'table' if held == 'table' else 'materialized view'};"
                " choose another name"
            )
        table_id = None
        if obj in ("view", "macro"):
            body = body_after_as(sql, toks, k)
            if body is not None:
                refuse_internal_references(s.cur, body, obj)
    s.cur.execute(sql, params)
    if obj == "macro":
        _refuse_shadowing(s)
        s.check_expressions()  # a CHECK or a default may call the macro
    s.emit(kinds.ddl(obj, name.name, "create", sql, table_id=table_id))
    return Result.empty()


def _create_table(s: Session, st: Statement, i: int, or_replace: bool, params: Any) -> Result:
    toks = st.tokens
    j = skip_words(toks, i, "IF", "NOT", "EXISTS")
    if_not_exists = j > i
    name, k = read_name(toks, j)
    _check_new_name(name)
    held = _main_object(s, name.name)
    if held == "table":
        if if_not_exists:
            return Result.empty()
        if not or_replace:
            raise ProgrammingError(
                f"table {name.name!r} already exists; use CREATE OR REPLACE TABLE or another name"
            )
        drop_table(s, s.lookup(name))
    elif held is not None:
        raise ProgrammingError(f"{name.name!r} is already a {held}; choose another name")
    table_id = next_table_id(s.cur)
    sql = _replace(st.sql, name.start, name.end, storage_table(table_id))
    select = find_kw(toks, {"AS"}, k)
    if select is not None and select + 1 < len(toks):
        _check_query(s, st.sql[toks[select + 1].start :], params)
    s.cur.execute(sql, params)
    _refuse_row_id_column(s, table_id)
    s.check_expressions([table_id])
    _add_hidden_columns(s, table_id)
    event = kinds.create_table(table_id, name.name, _storage_ddl(s, table_id))
    register_table(s.cur, event)
    s.emit(event)
    if find_kw(toks, {"AS"}, k) is not None:  # CREATE TABLE ... AS: its rows are log values
        _capture_all(s, table_id, 1)
    return Result.empty()


# --------------------------------------------------------------------- DROP
def drop_table(s: Session, table) -> None:
    event = kinds.drop_table(table.table_id, table.name)
    apply_event(s.cur, event)
    s.emit(event)


def drop(s: Session, st: Statement) -> Result:
    toks = st.tokens
    word = toks[1].upper if len(toks) > 1 else ""
    if word == "DATABASE":
        raise ProgrammingError("DROP DATABASE is a cluster statement; run it with cluster.sql()")
    if word == "SCHEMA":
        raise NotSupportedError(
            "asof keeps user objects in the main schema; DROP SCHEMA is not supported"
        )
    if find_kw(toks, {"CASCADE"}) is not None:
        raise NotSupportedError(
            "DROP ... CASCADE would drop objects asof keeps track of (a table whose default "
            "uses a sequence); drop them one at a time"
        )
    i = skip_words(toks, 2, "IF", "EXISTS")
    if_exists = i > 2
    names = []
    while i < len(toks):
        name, i = read_name(toks, i)
        names.append(name)
        if i < len(toks) and toks[i].text == ",":
            i += 1
            continue
        break
    if word == "TABLE":
        for name in names:
            _check_schema(name)
            table = s.find_table(name.name)
            if table is None or table.kind != "table":
                if table is not None:
                    raise ProgrammingError(
                        f"{name.name!r} is a materialized view; use DROP MATERIALIZED VIEW"
                    )
                if _main_object(s, name.name) == "view":
                    raise ProgrammingError(f"{name.name!r} is a view; use DROP VIEW")
                if if_exists:
                    continue
                raise ProgrammingError(
                    f"table {name.name!r} does not exist in database {s.rt.name!r}; "
                    "list tables with SHOW TABLES"
                )
            drop_table(s, table)
        return Result.empty()
    if word not in _OBJECT_WORDS:
        raise NotSupportedError(f"DROP {word} is not supported by asof")
    obj = _OBJECT_WORDS[word]
    sql = st.sql
    table_id = None
    for name in reversed(names):
        _check_schema(name)
        if obj == "view" and s.find_table(name.name) is not None:
            raise ProgrammingError(f"{name.name!r} is a table; use DROP TABLE")
        if obj == "index":
            if len(names) > 1:
                raise NotSupportedError("drop indexes one at a time")
            table_id = _index_table(s, name.name)
            if table_id is None and not if_exists:
                raise ProgrammingError(f"index {name.name!r} does not exist")
            if table_id is not None:
                s.materialize(table_id)
            sql = _replace(sql, name.start, name.end, f"{STORAGE_SCHEMA}.{quote_ident(name.name)}")
    s.cur.execute(sql)
    s.emit(kinds.ddl(obj, ",".join(n.name for n in names), "drop", sql, table_id=table_id))
    return Result.empty()


def _index_table(s: Session, index: str) -> int | None:
    """The table id an index belongs to, looking in shared checkpoints for lazy tables."""
    row = first_row(
        s.cur,
        "SELECT table_name FROM duckdb_indexes() WHERE schema_name = ? "
        "AND lower(index_name) = lower(?) AND (database_name = current_database() "
        f"OR database_name IN (SELECT alias FROM {LAZY_TABLE}))",
        [STORAGE_SCHEMA, index],
    )
    return int(row[0][1:]) if row else None


# -------------------------------------------------------------------- ALTER
_REWRITING_ACTIONS = ("ADD", "ALTER")


def alter(s: Session, st: Statement) -> Result:
    toks = st.tokens
    word = toks[1].upper if len(toks) > 1 else ""
    if word != "TABLE":
        if toks[0].upper == "COMMENT":
            raise NotSupportedError("COMMENT ON is not supported by asof")
        if word not in _OBJECT_WORDS:
            raise NotSupportedError(f"ALTER {word} is not supported by asof")
        name, k = read_name(toks, skip_words(toks, 2, "IF", "EXISTS"))
        _check_schema(name)
        if word == "VIEW" and s.find_table(name.name) is not None:
            raise ProgrammingError(f"{name.name!r} is a table; use ALTER TABLE")
        rename = find_kw(toks, {"RENAME"}, k)
        if rename is not None and skip_words(toks, rename + 1, "TO") > rename + 1:
            _check_new_name(read_name(toks, rename + 2)[0])
        s.cur.execute(st.sql)
        s.emit(kinds.ddl(_OBJECT_WORDS[word], "", "alter", st.sql))
        return Result.empty()
    i = skip_words(toks, 2, "IF", "EXISTS")
    if_exists = i > 2
    name, k = read_name(toks, i)
    _check_schema(name)
    table = s.find_table(name.name)
    if table is None or table.kind != "table":
        if table is None and if_exists:
            return Result.empty()
        if table is not None:
            raise ProgrammingError(f"{name.name!r} is a materialized view and cannot be altered")
        raise ProgrammingError(
            f"table {name.name!r} does not exist in database {s.rt.name!r}; "
            "list tables with SHOW TABLES"
        )
    action = toks[k].upper if k < len(toks) else ""
    if action == "RENAME" and k + 1 < len(toks) and toks[k + 1].upper == "TO":
        new, _ = read_name(toks, k + 2)
        _check_new_name(new)
        if _main_object(s, new.name) is not None:
            raise ProgrammingError(f"{new.name!r} already exists; choose another name")
        event = kinds.rename_table(table.table_id, table.name, new.name)
        apply_event(s.cur, event)
        s.emit(event)
        return Result.empty()
    refuse_reserved_names(toks[k:])
    sql = _replace(st.sql, name.start, name.end, storage_table(table.table_id))
    s.materialize(table.table_id)
    s.cur.execute(f"{sql};\n{versions.new_history_sql(table.table_id)}")
    s.check_expressions([table.table_id])
    version = table.version + 1
    set_table_version(s.cur, table.table_id, version)
    s.emit(kinds.alter_table(table.table_id, version, sql, _storage_ddl(s, table.table_id)))
    if action in _REWRITING_ACTIONS and not _is_constraint_change(toks, k):
        # The statement may have computed values (a volatile DEFAULT, a USING expression):
        # log the resulting images so replay is exact.
        _capture_all(s, table.table_id, version, op=RowOp.UPDATE)
    return Result.empty()


def _is_constraint_change(toks, k: int) -> bool:
    nxt = toks[k + 1].upper if k + 1 < len(toks) else ""
    return nxt in ("PRIMARY", "UNIQUE", "CONSTRAINT", "CHECK", "FOREIGN")


# ------------------------------------------------------ materialized views
def matview(s: Session, st: Statement) -> Result:
    toks = st.tokens
    if st.type == "CREATE_MATVIEW":
        i = skip_words(toks, 1, "OR", "REPLACE")
        or_replace = i > 1
        j = skip_words(toks, i + 2, "IF", "NOT", "EXISTS")
        name, k = read_name(toks, j)
        _check_new_name(name)
        if k >= len(toks) or toks[k].upper != "AS":
            raise ProgrammingError("CREATE MATERIALIZED VIEW needs AS <query>")
        query = st.sql[toks[k + 1].start :]
        held = _main_object(s, name.name)
        if held == "matview" and or_replace:
            drop_table(s, s.lookup(name, kinds_allowed=("matview",)))
        elif held == "matview" and j > i + 2:
            return Result.empty()
        elif held is not None:
            raise ProgrammingError(f"{name.name!r} is already a {held}; choose another name")
        table_id = next_table_id(s.cur)
        refuse_internal_references(s.cur, query, "materialized view")
        _check_query(s, query)
        s.cur.execute(f"CREATE TABLE {storage_table(table_id)} AS {query}")
        _refuse_row_id_column(s, table_id)
        _add_hidden_columns(s, table_id)
        event = kinds.create_table(
            table_id, name.name, _storage_ddl(s, table_id), table_kind="matview", definition=query
        )
        register_table(s.cur, event)
        s.emit(event)
        _capture_all(s, table_id, 1)
        return Result.empty()
    if st.type == "REFRESH_MATVIEW":
        name, _ = read_name(toks, 3)
        info = s.lookup(name, kinds_allowed=("matview",))
        definition = s.cur.execute(
            "SELECT definition FROM _asof.tables WHERE table_id = ?", [info.table_id]
        ).fetchall()[0][0]
        event = kinds.Event(kinds.MATVIEW_REFRESH, info.table_id, info.version, {"name": info.name})
        apply_event(s.cur, event)
        s.emit(event)
        before = s.row_id_mark()
        _check_query(s, definition)
        cols = ", ".join(quote_ident(c) for c in info.columns)
        s.cur.execute(
            f"INSERT INTO {storage_table(info.table_id)} ({cols}) SELECT * FROM ({definition})"
        )
        _capture_all(s, info.table_id, info.version, after=before)
        return Result.empty()
    # DROP MATERIALIZED VIEW
    i = skip_words(toks, 3, "IF", "EXISTS")
    name, _ = read_name(toks, i)
    info = s.find_table(name.name)
    if info is None or info.kind != "matview":
        if i > 3:
            return Result.empty()
        raise ProgrammingError(f"materialized view {name.name!r} does not exist")
    drop_table(s, info)
    return Result.empty()


def _capture_all(
    s: Session,
    table_id: int,
    version: int,
    *,
    op: RowOp = RowOp.INSERT,
    after: int | None = None,
) -> None:
    """Log the rows a statement just wrote (all of them, or those with row ids past `after`)."""
    where = "" if after is None else f" WHERE {ROW_ID} > {after}"
    rows: pa.Table = s.cur.sql(
        f"SELECT {STORED_COLUMNS} FROM {storage_table(table_id)}{where}"
    ).to_arrow_table()
    if rows.num_rows:
        s.emit(kinds.rows_event(table_id, version, kinds.event_rows(rows, op)))
