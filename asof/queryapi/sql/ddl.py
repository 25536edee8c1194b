"""CREATE, DROP and ALTER: run them against storage names and record what they made.

Tables get a stable id at CREATE; their events carry the SQL that recreates the storage
table exactly, read back from DuckDB's catalog after the statement ran. Other objects
(views, sequences, indexes, macros, types) are recorded as the SQL that made them.
"""

from __future__ import annotations

import re
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
    MAIN_SCHEMA,
    RESERVED_COLUMNS,
    ROW_ID,
    ROW_ID_SEQUENCE,
    STORAGE_SCHEMA,
    STORED_COLUMNS,
    TABLES_TABLE,
    VERSION_FROM,
    display_name,
    first_row,
    quote_ident,
    storage_table,
)
from asof.projections.views import CHECKED, TEXT_LOGGED, capture_list, logged_types
from asof.queryapi.errors import NotSupportedError, ProgrammingError, syntactic
from asof.queryapi.result import Result
from asof.queryapi.sql.definitions import body_after_as, refuse_internal_references
from asof.queryapi.sql.dml import TableInfo, refuse_reserved_names
from asof.queryapi.sql.guard import Guard, with_parameters
from asof.queryapi.sql.logtypes import check_intervals
from asof.queryapi.sql.schemas import check_schema_name, require_schema
from asof.queryapi.sql.statements import (
    Name,
    Statement,
    Token,
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

    def find_table(self, name: str, schema: str = MAIN_SCHEMA) -> TableInfo | None: ...

    def schema_for(self, name: Name, *, creating: bool = False) -> str: ...

    @property
    def search_path(self) -> tuple[str, ...]: ...

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


def _object_in(s: Session, name: str, schema: str = MAIN_SCHEMA) -> str | None:
    """What kind of object (if any) already holds `name` in one of the user's schemas."""
    table = s.find_table(name, schema)
    if table is not None:
        return table.kind
    row = first_row(
        s.cur,
        "SELECT 'view' FROM duckdb_views() WHERE database_name = current_database() "
        "AND lower(schema_name) = lower($2) AND lower(view_name) = lower($1) "
        "UNION ALL SELECT 'sequence' FROM duckdb_sequences() WHERE "
        "database_name = current_database() AND lower(schema_name) = lower($2) "
        "AND lower(sequence_name) = lower($1)",
        [name, schema],
    )
    return row[0] if row else None


#: Names no user object may take: the hidden columns, and `excluded`, which an upsert
#: gives the proposed row (statements on such a table cannot tell the two apart).
RESERVED_NAMES = frozenset({*RESERVED_COLUMNS, "excluded"})


def _check_new_name(s: Session, name: Name) -> str:
    """A name a statement gives a new object (or a renamed one); its schema."""
    schema = s.schema_for(name, creating=True)
    low = name.name.lower()
    if low in RESERVED_NAMES or low.startswith(STORAGE_SCHEMA):
        raise ProgrammingError(
            f"the name {name.name!r} is reserved by asof (as are names starting with "
            f"{STORAGE_SCHEMA}); choose another"
        )
    return schema


def _refuse_shadowing(s: Session) -> None:
    """asof's own SQL calls DuckDB's functions by their plain names (nextval, getvariable,
    current_database, range, ...), and a macro of the same name would take their place."""
    row = first_row(
        s.cur,
        "SELECT min(function_name) FROM system.main.duckdb_functions() "
        "WHERE database_name = system.main.current_database() AND schema_name <> '_asof' "
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
        return _create_schema(s, st, i + 1)
    if word in ("DATABASE",):
        raise ProgrammingError("CREATE DATABASE is a cluster statement; run it with cluster.sql()")
    if word not in _OBJECT_WORDS:
        raise NotSupportedError(f"CREATE {word} is not supported by asof")
    obj = _OBJECT_WORDS[word]
    j = skip_words(toks, i + 1, "IF", "NOT", "EXISTS")
    name, k = read_name(toks, j)
    sql = st.sql
    schema = _check_new_name(s, name)
    if obj == "index":
        on = find_kw(toks, {"ON"}, k)
        if on is None:
            raise ProgrammingError("CREATE INDEX needs ON <table>; check the SQL syntax")
        target, _ = read_name(toks, on + 1)
        table = s.lookup(target, kinds_allowed=("table",))
        sql = _replace(sql, target.start, target.end, storage_table(table.table_id))
        if name.schema is not None:  # indexes live beside their storage table
            sql = _replace(sql, name.start, name.end, quote_ident(name.name))
        s.materialize(table.table_id)
        table_id = table.table_id
    else:
        held = _object_in(s, name.name, schema)
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
    schema = _check_new_name(s, name)
    require_schema(s.cur, schema)
    held = _object_in(s, name.name, schema)
    if held == "table":
        if if_not_exists:
            return Result.empty()
        if not or_replace:
            raise syntactic(
                ProgrammingError(
                    f"Catalog Error: table {display_name(name.name, schema)!r} already exists; "
                    "use CREATE OR REPLACE TABLE or another name"
                ),
                before_effects=True,
            )
        drop_table(s, s.lookup(name))
    elif held is not None:
        raise ProgrammingError(f"{name.name!r} is already a {held}; choose another name")
    _refuse_foreign_keys(toks, k)
    table_id = next_table_id(s.cur)
    sql = _replace(st.sql, name.start, name.end, storage_table(table_id))
    select = find_kw(toks, {"AS"}, k)
    if select is not None and select + 1 < len(toks):
        _check_query(s, st.sql[toks[select + 1].start :], params)
    s.cur.execute(sql, params)
    _refuse_row_id_column(s, table_id)
    _qualify_defaults(s, table_id)
    s.check_expressions([table_id])
    _add_hidden_columns(s, table_id)
    event = kinds.create_table(table_id, name.name, _storage_ddl(s, table_id), schema=schema)
    register_table(s.cur, event)
    s.emit(event)
    if find_kw(toks, {"AS"}, k) is not None:  # CREATE TABLE ... AS: its rows are log values
        _capture_all(s, table_id, 1)
    return Result.empty()


# --------------------------------------------------------------------- DROP
def drop_table(s: Session, table: TableInfo) -> None:
    event = kinds.drop_table(table.table_id, table.name, table.schema)
    apply_event(s.cur, event)
    s.emit(event)


def _create_schema(s: Session, st: Statement, i: int) -> Result:
    j = skip_words(st.tokens, i, "IF", "NOT", "EXISTS")
    name, _ = read_name(st.tokens, j)
    if len(name.parts) > 1:
        raise NotSupportedError(
            f"a statement names only its own database's objects; drop the {name.parts[0]!r} "
            "qualifier"
        )
    check_schema_name(name.name)
    if name.name.lower() in ("main",) and j > i:
        return Result.empty()
    s.cur.execute(st.sql)
    s.emit(kinds.ddl("schema", name.name, "create", st.sql))
    return Result.empty()


def _drop_schema(s: Session, st: Statement) -> Result:
    toks = st.tokens
    i = skip_words(toks, 2, "IF", "EXISTS")
    names = []
    while i < len(toks):
        name, i = read_name(toks, i)
        if len(name.parts) > 1:
            raise NotSupportedError("name the schema without a database qualifier")
        check_schema_name(name.name)
        if name.name.lower() == MAIN_SCHEMA:
            raise ProgrammingError(
                'Catalog Error: Cannot drop entry "main" because it is an internal system entry'
            )
        names.append(name.name)
        if i < len(toks) and toks[i].text == ",":
            i += 1
            continue
        break
    cascade = find_kw(toks, {"CASCADE"}) is not None
    if cascade:  # its tables go first, as DuckDB drops them: storage and all
        for schema in names:
            rows = s.cur.execute(
                f"SELECT name FROM {TABLES_TABLE} WHERE lower(schema_name) = lower(?) "
                "ORDER BY table_id",
                [schema],
            ).fetchall()
            for (table,) in rows:
                info = s.find_table(table, schema)
                if info is not None:
                    drop_table(s, info)
    _run_drop(s, st.sql, kinds.ddl("schema", ",".join(names), "drop", st.sql), cascade)
    return Result.empty()


def _run_drop(s: Session, sql: str, event: Event, cascade: bool) -> None:
    """Run a DROP and log it. With CASCADE, DuckDB also drops the tables whose defaults
    call a sequence it drops, and the views that own one: each such table is logged as
    dropped after the statement, so a replay drops the same tables. (A column of an ENUM
    type keeps its values, not the type's name, so a dropped type takes no table with it.)

    A table a clone still reads from a shared checkpoint is a view here, which DuckDB's
    CASCADE does not see, and making it a real table first would not help (DuckDB cannot
    commit the drop of a table changed in the same transaction): the defaults of its
    checkpoint's columns say which sequences it calls."""
    shared = _shared_sequences(s) if cascade else {}
    before = _sequences(s) if shared else set()
    s.cur.execute(sql)
    s.emit(event)  # first: on replay it drops what it drops, then the tables go as here
    if not cascade:
        return
    # A table DuckDB dropped (its default called the sequence), or whose view it dropped
    # (the view owned the sequence: ALTER SEQUENCE ... OWNED BY).
    gone = s.cur.execute(
        f"SELECT table_id FROM {TABLES_TABLE} AS t WHERE (table_id NOT IN "
        f"(SELECT table_id FROM {LAZY_TABLE}) AND 't' || table_id NOT IN "
        "(SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ?)) OR NOT EXISTS (SELECT 1 FROM duckdb_views() AS v WHERE "
        "v.database_name = current_database() AND v.schema_name = coalesce(t.schema_name, "
        "'main') AND v.view_name = t.name) ORDER BY table_id",
        [STORAGE_SCHEMA],
    ).fetchall()
    dropped = {r[0] for r in gone}
    if shared:
        lost = before - _sequences(s)
        dropped |= {table_id for table_id, calls in shared.items() if calls & lost}
    for table_id in sorted(dropped):
        row = first_row(
            s.cur, f"SELECT name, schema_name FROM {TABLES_TABLE} WHERE table_id = ?", [table_id]
        )
        if row is not None:
            drop = kinds.drop_table(table_id, row[0], row[1])
            apply_event(s.cur, drop)
            s.emit(drop)


def _qualify_defaults(s: Session, table_id: int) -> None:
    """Under a search path, `DEFAULT nextval('seq')` names a sequence the path finds; the
    storage table lives in `_asof`, where DuckDB would look the name up again at every
    insert of another session and in every copy of the table. So such a default is
    rewritten with the sequence's schema, as DuckDB bound it."""
    if not s.search_path:
        return
    rows = s.cur.execute(
        "SELECT column_name, column_default FROM duckdb_columns() WHERE database_name = "
        "current_database() AND schema_name = ? AND table_name = ? "
        "AND column_default IS NOT NULL",
        [STORAGE_SCHEMA, f"t{table_id}"],
    ).fetchall()
    for column, default in rows:
        qualified = _NEXTVAL_CALL.sub(lambda m: _qualified_call(s, m), default)
        if qualified != default:
            s.cur.execute(
                f"ALTER TABLE {storage_table(table_id)} ALTER COLUMN {quote_ident(column)} "
                f"SET DEFAULT {qualified}"
            )


_NEXTVAL_CALL = re.compile(r"\b(nextval|currval)\s*\(\s*'((?:[^'.]|'')*)'\s*\)", re.IGNORECASE)


def _qualified_call(s: Session, m: re.Match[str]) -> str:
    name = m.group(2).replace("''", "'")
    for schema in (*s.search_path, MAIN_SCHEMA):
        found = first_row(
            s.cur,
            "SELECT 1 FROM duckdb_sequences() WHERE database_name = current_database() "
            "AND schema_name = ? AND sequence_name = ?",
            [schema, name],
        )
        if found is not None:
            target = f"{schema}.{name}".replace("'", "''")
            return f"{m.group(1)}('{target}')"
    return m.group(0)


_NEXTVAL = re.compile(r"nextval\s*\(\s*'((?:[^']|'')*)'", re.IGNORECASE)


def _shared_sequences(s: Session) -> dict[int, set[str]]:
    """Per table still read from a checkpoint: the sequences its defaults call, as
    `schema.name` in lower case."""
    rows = s.cur.execute(
        f"SELECT l.table_id, c.column_default FROM {LAZY_TABLE} AS l "
        "JOIN duckdb_columns() AS c ON c.database_name = l.alias AND c.schema_name = ? "
        "AND c.table_name = 't' || l.table_id AND c.column_default IS NOT NULL",
        [STORAGE_SCHEMA],
    ).fetchall()
    out: dict[int, set[str]] = {}
    for table_id, default in rows:
        for name in _NEXTVAL.findall(default):
            name = name.replace("''", "'").lower()
            out.setdefault(table_id, set()).add(name if "." in name else f"main.{name}")
    return out


def _sequences(s: Session) -> set[str]:
    return {
        r[0]
        for r in s.cur.execute(
            "SELECT lower(schema_name || '.' || sequence_name) FROM duckdb_sequences() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }


def drop(s: Session, st: Statement) -> Result:
    toks = st.tokens
    word = toks[1].upper if len(toks) > 1 else ""
    if word == "DATABASE":
        raise ProgrammingError("DROP DATABASE is a cluster statement; run it with cluster.sql()")
    if word == "SCHEMA":
        return _drop_schema(s, st)
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
        for n, name in enumerate(names):
            schema = s.schema_for(name)
            table = s.find_table(name.name, schema)
            if table is None or table.kind != "table":
                if table is not None:
                    raise ProgrammingError(
                        f"{name.name!r} is a materialized view; use DROP MATERIALIZED VIEW"
                    )
                if _object_in(s, name.name, schema) == "view":
                    raise ProgrammingError(f"{name.name!r} is a view; use DROP VIEW")
                if if_exists:
                    continue
                raise syntactic(
                    ProgrammingError(
                        f"Catalog Error: table {display_name(name.name, schema)!r} does not "
                        f"exist in database {s.rt.name!r}; list tables with SHOW TABLES"
                    ),
                    before_effects=n == 0,
                )
            drop_table(s, table)
        return Result.empty()
    if word not in _OBJECT_WORDS:
        raise NotSupportedError(f"DROP {word} is not supported by asof")
    obj = _OBJECT_WORDS[word]
    sql = st.sql
    table_id = None
    for name in reversed(names):
        schema = s.schema_for(name)
        if obj == "view" and s.find_table(name.name, schema) is not None:
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
    event = kinds.ddl(obj, ",".join(n.name for n in names), "drop", sql, table_id=table_id)
    _run_drop(s, sql, event, find_kw(toks, {"CASCADE"}) is not None)
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
        schema = s.schema_for(name)
        if word == "VIEW" and s.find_table(name.name, schema) is not None:
            raise ProgrammingError(f"{name.name!r} is a table; use ALTER TABLE")
        rename = find_kw(toks, {"RENAME"}, k)
        if rename is not None and skip_words(toks, rename + 1, "TO") > rename + 1:
            _check_new_name(s, read_name(toks, rename + 2)[0])
        s.cur.execute(st.sql)
        s.emit(kinds.ddl(_OBJECT_WORDS[word], "", "alter", st.sql))
        return Result.empty()
    i = skip_words(toks, 2, "IF", "EXISTS")
    if_exists = i > 2
    name, k = read_name(toks, i)
    schema = s.schema_for(name)
    table = s.find_table(name.name, schema)
    if table is None or table.kind != "table":
        if table is None and if_exists:
            return Result.empty()
        if table is not None:
            raise ProgrammingError(f"{name.name!r} is a materialized view and cannot be altered")
        raise syntactic(
            ProgrammingError(
                f"Catalog Error: table {display_name(name.name, schema)!r} does not exist in "
                f"database {s.rt.name!r}; list tables with SHOW TABLES"
            ),
            before_effects=True,
        )
    action = toks[k].upper if k < len(toks) else ""
    if action == "RENAME" and k + 1 < len(toks) and toks[k + 1].upper == "TO":
        new, _ = read_name(toks, k + 2)
        if new.schema is not None and new.schema.lower() != table.schema.lower():
            raise ProgrammingError("a rename keeps a table in its schema; name it without one")
        _check_new_name(s, new)
        held = _object_in(s, new.name, table.schema)
        if held is not None and new.name.lower() != table.name.lower():
            raise ProgrammingError(f"{new.name!r} already exists; choose another name")
        _refuse_rename_with_indexes(s, table)
        event = kinds.rename_table(table.table_id, table.name, new.name, table.schema)
        apply_event(s.cur, event)
        s.emit(event)
        return Result.empty()
    refuse_reserved_names(toks[k:])
    sql = _replace(st.sql, name.start, name.end, storage_table(table.table_id))
    s.materialize(table.table_id)
    s.cur.execute(f"{sql};\n{versions.new_history_sql(table.table_id)}")
    _qualify_defaults(s, table.table_id)
    s.check_expressions([table.table_id])
    version = table.version + 1
    set_table_version(s.cur, table.table_id, version)
    s.emit(kinds.alter_table(table.table_id, version, sql, _storage_ddl(s, table.table_id)))
    if action in _REWRITING_ACTIONS and not _is_constraint_change(toks, k):
        # The statement may have computed values (a volatile DEFAULT, a USING expression):
        # log the resulting images so replay is exact.
        _capture_all(s, table.table_id, version, op=RowOp.UPDATE)
    return Result.empty()


def _refuse_foreign_keys(toks: Sequence[Token], k: int) -> None:
    """Foreign keys are not supported yet: DuckDB checks them statement by statement, and
    a replay of the log (clones, AS OF, rebuilds) applies a table's changes in another
    order than the statements made them, so a key checked then could refuse the replay.
    Said plainly, instead of DuckDB's "table does not exist" for the user's table."""
    body_end = find_kw(toks, {"AS"}, k)
    for t in toks[k : body_end if body_end is not None else len(toks)]:
        if t.kind == "keyword" and t.upper == "REFERENCES":
            raise NotSupportedError(
                "foreign keys (REFERENCES) are not supported by asof; declare the column "
                "without REFERENCES and check the key in the application or with a query"
            )


def _refuse_rename_with_indexes(s: Session, table: TableInfo) -> None:
    """DuckDB refuses to rename a table that has an index (the index depends on it); the
    rename only touches the table's view here, so the refusal is asof's to make."""
    row = first_row(
        s.cur,
        "SELECT count(*) FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ? "
        f"AND (database_name = current_database() OR database_name IN "
        f"(SELECT alias FROM {LAZY_TABLE}))",
        [STORAGE_SCHEMA, f"t{table.table_id}"],
    )
    if row is not None and row[0]:
        raise ProgrammingError(
            f'Dependency Error: Cannot alter entry "{table.name}" because there are entries '
            "that depend on it; drop its indexes first"
        )


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
        schema = _check_new_name(s, name)
        require_schema(s.cur, schema)
        if k >= len(toks) or toks[k].upper != "AS":
            raise ProgrammingError("CREATE MATERIALIZED VIEW needs AS <query>")
        query = st.sql[toks[k + 1].start :]
        held = _object_in(s, name.name, schema)
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
            table_id,
            name.name,
            _storage_ddl(s, table_id),
            table_kind="matview",
            definition=query,
            schema=schema,
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
    info = s.find_table(name.name, s.schema_for(name))
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
    special = logged_types(s.cur, table_id)
    checked = [c for c, t in special.items() if t == CHECKED]
    check_intervals(
        s.cur, table_id, checked, f"SELECT {ROW_ID} FROM {storage_table(table_id)}{where}"
    )
    text = [c for c, t in special.items() if t in TEXT_LOGGED]
    select = STORED_COLUMNS
    if text:
        columns = [
            r[0]
            for r in s.cur.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = "
                "current_database() AND schema_name = ? AND table_name = ? "
                "AND column_name NOT IN (?, ?) ORDER BY column_index",
                [STORAGE_SCHEMA, f"t{table_id}", ROW_ID, VERSION_FROM],
            ).fetchall()
        ]
        select = capture_list(columns, text)
    rows: pa.Table = s.cur.sql(
        f"SELECT {select} FROM {storage_table(table_id)}{where}"
    ).to_arrow_table()
    if rows.num_rows:
        s.emit(kinds.rows_event(table_id, version, kinds.event_rows(rows, op)))
