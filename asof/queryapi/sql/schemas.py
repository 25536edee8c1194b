"""Schemas: the user's namespaces inside one database.

A schema is a catalog object like a view: `CREATE SCHEMA` and `DROP SCHEMA` are logged as
the SQL that made them, so clones, AS OF states and rebuilds have the same schemas. A table
in a schema keeps its storage table in asof's internal schema like every other table; its
schema is recorded with it (`_asof.tables.schema_name`, and `schema` in its table events
when it is not `main`), and its view, the name users query, is created in that schema.

Names without a schema mean `main`, unless the session set a search path (`SET schema`,
`SET search_path`, `USE`): then they are looked up as DuckDB does, through the path and
then `main`, and events the session logs carry the path, so a replay resolves the same
names. The schemas no user object may enter are asof's own
(`_asof`, and any name starting with it) and DuckDB's catalog schemas.
"""

from __future__ import annotations

import duckdb

from asof.projections.naming import MAIN_SCHEMA, STORAGE_SCHEMA, first_row
from asof.queryapi.errors import NotSupportedError, ProgrammingError
from asof.queryapi.sql.statements import Name

#: DuckDB's catalog schemas: their contents are DuckDB's, not the user's.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})


def user_schema(name: Name) -> str:
    """The schema a name written in a statement points into (`main` when it has none);
    refused when it points outside the user's own schemas."""
    if len(name.parts) > 2:
        raise NotSupportedError(
            f"a statement names only its own database's objects; drop the {name.parts[0]!r} "
            "qualifier"
        )
    schema = name.schema
    if schema is None:
        return MAIN_SCHEMA
    check_schema_name(schema)
    return schema


def check_schema_name(schema: str) -> None:
    low = schema.lower()
    if low.startswith(STORAGE_SCHEMA):
        raise ProgrammingError(
            f"the schema {schema!r} is internal to asof (as are names starting with "
            f"{STORAGE_SCHEMA})"
        )
    if low in SYSTEM_SCHEMAS or low == "temp":
        raise ProgrammingError(f"the schema {schema!r} belongs to DuckDB; use a schema of your own")


def check_path_schema(cur: duckdb.DuckDBPyConnection, schema: str) -> None:
    """A schema `SET schema` or `search_path` may name: `main` or one of the user's."""
    if "." in schema:
        raise NotSupportedError(
            f"SET search_path names only this database's schemas; drop the qualifier of {schema!r}"
        )
    try:
        check_schema_name(schema)
    except ProgrammingError as exc:
        raise NotSupportedError(str(exc)) from None
    if schema.lower() != MAIN_SCHEMA and not schema_exists(cur, schema):
        raise ProgrammingError(
            f'Catalog Error: SET search_path: No catalog + schema named "{schema}" found.'
        )


def schema_exists(cur: duckdb.DuckDBPyConnection, schema: str) -> bool:
    return (
        first_row(
            cur,
            "SELECT 1 FROM duckdb_schemas() WHERE database_name = current_database() "
            "AND lower(schema_name) = lower(?)",
            [schema],
        )
        is not None
    )


def require_schema(cur: duckdb.DuckDBPyConnection, schema: str) -> None:
    """DuckDB's own error for a missing schema, before asof rewrites a name it holds."""
    if schema.lower() != MAIN_SCHEMA and not schema_exists(cur, schema):
        raise ProgrammingError(f"Catalog Error: Schema with name {schema} does not exist!")


def split_display(name: str) -> tuple[str, str]:
    """A table name as the Python API takes it (`t`, or `schema.t`) as (schema, name).
    A plain name never splits, so a table in `main` whose name has a dot is still found
    by callers that try the whole name first."""
    schema, dot, table = name.partition(".")
    if not dot or not schema or not table:
        return MAIN_SCHEMA, name
    return schema, table
