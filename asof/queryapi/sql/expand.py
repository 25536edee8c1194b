"""Statements DuckDB runs as several: `ALTER TABLE ... ADD COLUMN ... DEFAULT <volatile>`.

DuckDB fills a new column's existing rows with a volatile default (nextval, random, ...) by
running the ALTER as three statements: add the column, UPDATE every row with the default,
then attach the default. asof does the same through its own write path, in one transaction,
so each row's value is logged as the UPDATE computed it and a clone or rebuild reads the
same values back (replaying the default would draw new ones).
"""

from __future__ import annotations

from asof.queryapi.errors import NotSupportedError
from asof.queryapi.sql.statements import Statement, depth_zero, read_name, skip_words, split

#: Words that would follow the default in a column definition: a DEFAULT that is not the
#: definition's last clause is not taken apart (the message says how to write it instead).
_AFTER_DEFAULT = frozenset(
    {"NOT", "CHECK", "PRIMARY", "UNIQUE", "REFERENCES", "CONSTRAINT", "COLLATE", "GENERATED"}
)


def volatile_add_column(st: Statement) -> tuple[list[Statement], str, str, bool]:
    """The three statements of an ADD COLUMN with a volatile default, the table's and the
    column's names, and whether the column was to be added only if it does not exist."""
    toks = st.tokens
    if st.verb != "ALTER" or len(toks) < 2 or toks[1].upper != "TABLE":
        raise _unsupported(st)
    i = skip_words(toks, 2, "IF", "EXISTS")
    if i > 2:
        raise _unsupported(st)
    table, k = read_name(toks, i)
    if k >= len(toks) or toks[k].upper != "ADD":
        raise _unsupported(st)
    k = skip_words(toks, k + 1, "COLUMN")
    j = skip_words(toks, k, "IF", "NOT", "EXISTS")
    if_not_exists = j > k
    column, _ = read_name(toks, j)
    default = next((n for n, t in depth_zero(toks, j) if t.upper == "DEFAULT"), None)
    if default is None or default + 1 >= len(toks):
        raise _unsupported(st)
    if any(t.upper in _AFTER_DEFAULT for _, t in depth_zero(toks, default + 1)):
        raise _unsupported(st)
    sql = st.sql
    table_sql = sql[toks[i].start : table.end]
    column_sql = sql[toks[j].start : column.end]
    definition = sql[toks[j].start : toks[default].start].strip()
    expr = sql[toks[default + 1].start :].strip().rstrip(";")
    parts = [
        f"ALTER TABLE {table_sql} ADD COLUMN {definition}",
        f"UPDATE {table_sql} SET {column_sql} = {expr}",
        f"ALTER TABLE {table_sql} ALTER COLUMN {column_sql} SET DEFAULT {expr}",
    ]
    return [split(p)[0] for p in parts], table.name, column.name, if_not_exists


def _unsupported(st: Statement) -> NotSupportedError:
    return NotSupportedError(
        f"this {st.verb} runs as several statements in DuckDB and is not supported in this "
        "form; add the column, then set its values with UPDATE"
    )
