"""The pg_catalog answers psql's meta-commands need (`\\l`, `\\dt`, `\\d`, `\\d t1`, `\\dn`).

psql sends fixed, version-specific catalog queries; DuckDB's own pg_catalog answers some
of them differently or not at all, and would show asof's internals (the `_asof` schema, the
storage tables with `_rid` and `_asof_from`). So the queries psql 15 sends are recognised
by their shape and answered from asof's own metadata: the cluster's databases, and per
database its tables (`_asof.tables`), views, sequences and indexes, each shown in schema
`public`. Anything else runs on DuckDB unchanged.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING

import attrs
import pyarrow as pa

from asof.queryapi import Result

if TYPE_CHECKING:
    from asof.pgwire.execute import Executor, Outcome

SCHEMA = "public"
KIND_NAMES = {"r": "table", "v": "view", "m": "materialized view", "i": "index", "S": "sequence"}
#: Catalogs psql reads for features asof does not have: the answer is no rows.
EMPTY_CATALOGS = (
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_inherits",
    "pg_trigger",
    "pg_rewrite",
    "pg_foreign_table",
    "pg_event_trigger",
    "pg_description",
)


@attrs.frozen
class Relation:
    name: str
    kind: str  # r v m i S
    storage: str | None = None  # _asof.t<id> for tables
    table: str | None = None  # for an index: the table it indexes
    definition: str | None = None  # for an index: DuckDB's CREATE INDEX
    schema: str = SCHEMA  # the user's `main` is PostgreSQL's `public`

    @property
    def oid(self) -> int:
        key = (
            f"{self.kind}:{self.name}"
            if self.schema == SCHEMA
            else f"{self.kind}:{self.schema}.{self.name}"
        )
        return 16384 + zlib.crc32(key.encode()) % 1_000_000_000


#: The user's own schemas as DuckDB lists them (its catalog schemas and asof's left out).
_USER_SCHEMA_SQL = "schema_name NOT IN ('_asof', 'pg_catalog', 'information_schema')"


def _pg_schema(schema: str | None) -> str:
    return SCHEMA if schema is None or schema == "main" else schema


def answer(ex: Executor, sql: str) -> Outcome | None:
    """psql's catalog query answered from asof's metadata, or None to run `sql` as is."""
    if "pg_catalog." not in sql:
        return None
    text = " ".join(sql.split())
    if "FROM pg_catalog.pg_database d" in text and '"Access privileges"' in text:
        return _databases(ex)
    if "FROM pg_catalog.pg_namespace n" in text and "nspowner" in text and '"Name"' in text:
        return _schemas(ex)
    if "FROM pg_catalog.pg_class c" in text and '"Schema"' in text and "c.relkind IN (" in text:
        return _relation_list(ex, text)
    if text.startswith("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"):
        return _lookup(ex, text)
    oid = _oid(text)
    if oid is not None:
        if text.startswith("SELECT c.relchecks, c.relkind"):
            return _relation_flags(ex, oid, text)
        if "FROM pg_catalog.pg_attribute a" in text and "a.attrelid = " in text:
            return _attributes(ex, oid, text)
        if "FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i" in text:
            return _indexes(ex, oid)
    if any(f"pg_catalog.{name}" in text for name in EMPTY_CATALOGS):
        return _empty_like(sql)
    return None


# ---------------------------------------------------------------- results
def _table(names: list[str], rows: list[list[str | None]]) -> Outcome:
    from asof.pgwire.execute import Outcome

    columns = {f"c{i}": pa.array([row[i] for row in rows], pa.string()) for i in range(len(names))}
    table = pa.table(columns) if names else pa.table({})
    return Outcome(
        f"SELECT {len(rows)}", Result(table, types=["VARCHAR"] * len(names)), tuple(names)
    )


def _empty_like(sql: str) -> Outcome:
    from asof.pgwire import colnames

    names = colnames.postgres_names(sql) or ("?column?",)
    return _table(list(names), [])


def _oid(text: str) -> int | None:
    m = re.search(r"(?:c\.oid|a\.attrelid|pol\.polrelid|stxrelid|i\.inhrelid) = '(\d+)'", text)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------- metadata
def relations(ex: Executor) -> list[Relation]:
    """Every object psql lists, internals left out."""
    db = ex.db
    out: list[Relation] = []
    tables = db.sql(
        "SELECT table_id, name, kind, schema_name FROM _asof.tables ORDER BY name"
    ).fetchall()
    names = {(_pg_schema(schema), name) for _, name, _, schema in tables}
    storage_names = {}
    for table_id, name, kind, schema in tables:
        storage = f"_asof.t{table_id}"
        storage_names[f"t{table_id}"] = (name, _pg_schema(schema))
        out.append(
            Relation(name, "m" if kind == "matview" else "r", storage, schema=_pg_schema(schema))
        )
    for schema, name in db.sql(
        "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = "
        f"current_database() AND {_USER_SCHEMA_SQL} AND NOT internal ORDER BY view_name"
    ).fetchall():
        if (_pg_schema(schema), name) not in names:
            out.append(Relation(name, "v", schema=_pg_schema(schema)))
    for schema, name in db.sql(
        "SELECT schema_name, sequence_name FROM duckdb_sequences() WHERE database_name = "
        f"current_database() AND {_USER_SCHEMA_SQL} ORDER BY sequence_name"
    ).fetchall():
        out.append(Relation(name, "S", schema=_pg_schema(schema)))
    for index_name, table_name, sql in db.sql(
        "SELECT index_name, table_name, sql FROM duckdb_indexes() "
        "WHERE database_name = current_database() AND schema_name = '_asof'"
    ).fetchall():
        owner = storage_names.get(table_name)
        if owner is not None:
            out.append(Relation(index_name, "i", table=owner[0], definition=sql, schema=owner[1]))
    return out


def _schemas(ex: Executor) -> Outcome:
    """`\\dn`: `public` (the user's `main`) and the schemas the user made."""
    made = ex.db.sql(
        "SELECT DISTINCT schema_name FROM duckdb_schemas() WHERE database_name = "
        f"current_database() AND {_USER_SCHEMA_SQL} AND schema_name <> 'main' ORDER BY 1"
    ).fetchall()
    rows: list[list[str | None]] = [[SCHEMA, "pg_database_owner"]]
    rows += [[name, ex.user] for (name,) in made]
    return _table(["Name", "Owner"], rows)


def _by_oid(ex: Executor, oid: int) -> Relation | None:
    return next((r for r in relations(ex) if r.oid == oid), None)


def _databases(ex: Executor) -> Outcome:
    rows: list[list[str | None]] = [
        [name, ex.user, "UTF8", "C", "C", None, "libc", None]
        for name in sorted(ex.cluster.databases())
    ]
    names = [
        "Name",
        "Owner",
        "Encoding",
        "Collate",
        "Ctype",
        "ICU Locale",
        "Locale Provider",
        "Access privileges",
    ]
    return _table(names, rows)


def _pattern(text: str, column: str) -> re.Pattern[str] | None:
    m = re.search(rf"{re.escape(column)} OPERATOR\(pg_catalog\.~\) '((?:[^']|'')*)'", text)
    if m is None:
        return None
    try:
        return re.compile(m.group(1).replace("''", "'"))
    except re.error:
        return re.compile(re.escape(m.group(1)))


def _schema_matches(text: str, schema: str = SCHEMA) -> bool:
    wanted = _pattern(text, "n.nspname")
    if wanted is None:  # no pattern: psql means the search path, which is `public`
        return schema == SCHEMA or "pg_catalog.pg_table_is_visible" not in text
    return bool(wanted.search(schema))


def _relation_list(ex: Executor, text: str) -> Outcome:
    m = re.search(r"c\.relkind IN \(([^)]*)\)", text)
    kinds = set(re.findall(r"'(\w)'", m.group(1))) if m else set()
    name = _pattern(text, "c.relname")
    rows: list[list[str | None]] = []
    for rel in relations(ex):
        if not _schema_matches(text, rel.schema):
            continue
        if rel.kind in kinds and (name is None or name.search(rel.name)):
            row: list[str | None] = [rel.schema, rel.name, KIND_NAMES[rel.kind], ex.user]
            if '"Table"' in text:
                row.append(rel.table)
            rows.append(row)
    rows.sort(key=lambda r: (r[0] or "", r[1] or ""))
    names = ["Schema", "Name", "Type", "Owner"] + (["Table"] if '"Table"' in text else [])
    return _table(names, rows)


def _lookup(ex: Executor, text: str) -> Outcome:
    name = _pattern(text, "c.relname")
    rows: list[list[str | None]] = []
    for rel in relations(ex):
        if _schema_matches(text, rel.schema) and (name is None or name.search(rel.name)):
            rows.append([str(rel.oid), rel.schema, rel.name])
    rows.sort(key=lambda r: (r[1] or "", r[2] or ""))
    return _table(["oid", "nspname", "relname"], rows)


def _relation_flags(ex: Executor, oid: int, text: str) -> Outcome:
    rel = _by_oid(ex, oid)
    rows: list[list[str | None]] = []
    if rel is not None:
        has_index = any(r.kind == "i" and r.table == rel.name for r in relations(ex)) or bool(
            rel.storage and _constraints(ex, rel.storage, "PRIMARY KEY", "UNIQUE")
        )
        rows.append(
            [
                "0",
                rel.kind,
                "t" if has_index else "f",
                "f",
                "f",
                "f",
                "f",
                "f",
                "f",
                "",
                "0",
                "",
                "p",
                "d",
                "heap" if rel.kind in "rm" else None,
            ]
        )
    names = [
        "relchecks",
        "relkind",
        "relhasindex",
        "relhasrules",
        "relhastriggers",
        "relrowsecurity",
        "relforcerowsecurity",
        "relhasoids",
        "relispartition",
        "?column?",
        "reltablespace",
        "reloftype",
        "relpersistence",
        "relreplident",
        "amname",
    ]
    return _table(names, rows)


def _constraints(ex: Executor, storage: str, *kinds: str) -> list[tuple[str, list[str]]]:
    table = storage.split(".", 1)[1]
    found = ex.db.sql(
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND schema_name = '_asof' AND table_name = ?",
        [table],
    ).fetchall()
    return [(k, list(cols)) for k, cols in found if k in kinds]


def _attributes(ex: Executor, oid: int, text: str) -> Outcome:
    from asof.pgwire import colnames

    rel = _by_oid(ex, oid)
    names = list(colnames.postgres_names(text) or ())
    rows: list[list[str | None]] = []
    if rel is not None and rel.kind in "rmv":
        if rel.storage is not None:
            schema, _, table = rel.storage.rpartition(".")
        else:  # a view, in its own schema
            schema, table = ("main" if rel.schema == SCHEMA else rel.schema), rel.name
        cols = ex.db.sql(
            "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [schema or "main", table],
        ).fetchall()
        for column, dtype, nullable, default in cols:
            if column.startswith("_rid") or column.startswith("_asof"):
                continue
            pg_type = format_type(dtype)
            row: list[str | None] = [
                column,
                pg_type,
                pg_default(default, pg_type),
                "f" if nullable else "t",
                None,
                "",
                "",
            ]
            rows.append(row + [None] * (len(names) - len(row)))
    return _table(names or ["attname"], [r[: len(names)] for r in rows])


def _indexes(ex: Executor, oid: int) -> Outcome:
    rel = _by_oid(ex, oid)
    rows: list[list[str | None]] = []
    if rel is not None and rel.storage is not None:
        for kind, cols in _constraints(ex, rel.storage, "PRIMARY KEY", "UNIQUE"):
            primary = kind == "PRIMARY KEY"
            name = f"{rel.name}_{'pkey' if primary else '_'.join(cols) + '_key'}"
            column_list = ", ".join(cols)
            rows.append(
                [
                    name,
                    "t" if primary else "f",
                    "t",
                    "f",
                    "t",
                    f"CREATE UNIQUE INDEX {name} ON {rel.schema}.{rel.name} USING btree ({column_list})",
                    f"{kind} ({column_list})",
                    "p" if primary else "u",
                    "f",
                    "f",
                    "f",
                    "0",
                ]
            )
        for index in relations(ex):
            if index.kind == "i" and index.table == rel.name:
                m = re.search(r"\((.*)\)\s*;?\s*$", index.definition or "")
                unique = "UNIQUE" in (index.definition or "").upper().split("INDEX")[0]
                cols = m.group(1) if m else ""
                rows.append(
                    [
                        index.name,
                        "f",
                        "t" if unique else "f",
                        "f",
                        "t",
                        f"CREATE {'UNIQUE ' if unique else ''}INDEX {index.name} ON {rel.schema}."
                        f"{rel.name} USING btree ({cols})",
                        None,
                        None,
                        None,
                        None,
                        "f",
                        "0",
                    ]
                )
    rows.sort(key=lambda r: (r[1] != "t", r[0] or ""))
    names = [
        "relname",
        "indisprimary",
        "indisunique",
        "indisclustered",
        "indisvalid",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "contype",
        "condeferrable",
        "condeferred",
        "indisreplident",
        "reltablespace",
    ]
    return _table(names, rows)


_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "BLOB": "bytea",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "JSON": "json",
}


def format_type(duck: str) -> str:
    """pg_catalog.format_type for a DuckDB type name."""
    duck = duck.upper()
    if duck.endswith("[]"):
        return format_type(duck[:-2]) + "[]"
    m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", duck)
    if m:
        return f"numeric({m.group(1)},{m.group(2)})"
    return _TYPES.get(duck, duck.lower())


def pg_default(default: str | None, pg_type: str) -> str | None:
    """A column default as pg_get_expr shows it (`'x'::text`, `nextval('s'::regclass)`)."""
    if default is None:
        return None
    m = re.fullmatch(r"nextval\('([^']*)'\)", default)
    if m:
        return f"nextval('{m.group(1)}'::regclass)"
    if re.fullmatch(r"'(?:[^']|'')*'", default):
        return f"{default}::{pg_type.split('(')[0]}"
    if re.fullmatch(r"CAST\((.*) AS [A-Z ]+\)", default):
        inner = re.fullmatch(r"CAST\((.*) AS [A-Z ]+\)", default)
        assert inner is not None
        return f"{inner.group(1)}::{pg_type}"
    return default
