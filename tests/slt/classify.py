"""Why asof's outcome differs from DuckDB's: one cause per differing statement.

The first rule that matches wins; rules look at asof's error message, DuckDB's, and the
statement's text. A difference that follows an earlier one in the same file and matches no
asof-specific rule is counted as a follow-on (a table asof refused to create makes every
later statement on it differ, which says nothing new).
"""

from __future__ import annotations

import re
from typing import Any

FOLLOW_ON = "follow-on of an earlier difference in the file"

#: Statements asof does differently because it serialises writers (a second connection's
#: write waits for the first one's COMMIT, and a single-threaded script cannot commit it):
#: the write-write concurrency the match rate is quoted without.
SERIALISED_WRITERS = (
    "serialised writers: another connection's open write transaction holds the lock"
)

CATALOG_SQL = re.compile(
    r"\b(duckdb_\w+|information_schema\.|pg_catalog\.|sqlite_master|pragma_\w+\s*\(|"
    r"show\s+(all\s+)?tables|describe\b|\bshow\b|table_info|database_size|current_schema)",
    re.I,
)
FK_SQL = re.compile(r"\b(references|foreign\s+key)\b", re.I)

#: (cause, pattern on asof's error) in order of precedence
ASOF_ERROR_RULES: tuple[tuple[str, str], ...] = (
    ("SET refused (external access)", r"^SET statements reach outside"),
    ("PRAGMA refused (external access)", r"^PRAGMA statements reach outside"),
    ("CALL/CHECKPOINT refused (external access)", r"^CALL statements reach outside"),
    ("other external access refused", r"reach outside the database|external access"),
    ("schemas (CREATE SCHEMA, qualified names)", r"main schema|CREATE SCHEMA"),
    ("temporary objects", r"temporary objects"),
    ("prepared statements (PREPARE/EXECUTE)", r"PREPARE|EXECUTE|DEALLOCATE"),
    ("COMMENT ON", r"COMMENT ON"),
    ("rowid", r"rowid"),
    (SERIALISED_WRITERS, r"locked by another write transaction"),
    ("reserved column names", r"_rid|_asof_from|_asof_to|reserved"),
    (
        "view and EXPLAIN forms refused (CREATE SECURE VIEW, CREATE RECURSIVE VIEW, "
        "EXPLAIN ANALYZE of a write)",
        r"(CREATE SECURE|CREATE RECURSIVE|EXPLAIN_ANALYZE_WRITE) .*not supported",
    ),
    (
        "CREATE VIEW IF NOT EXISTS over an existing table's name fails",
        r"is already a table; choose another name",
    ),
    ("MULTI statements refused (ALTER ... DEFAULT nextval())", r"MULTI statements"),
    (
        "table-qualified columns in CHECK or ALTER ... USING",
        r"Table does not contain column .* referenced in (check constraint|alter statement)",
    ),
    ("ATTACH/USE/DETACH", r"ATTACH|DETACH|\bUSE\b"),
)


def normalise(message: str) -> str:
    """An error message with names, numbers and positions taken out, to group by."""
    first = message.strip().split("\n", 1)[0]
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "?", first)
    first = re.sub(r"\d+", "N", first)
    return first[:90]


def classify(m: dict[str, Any]) -> str:
    """One mismatch (as measure.py stores it) to its cause."""
    sql = m["sql"]
    d_ok, a_ok = m["duckdb_ok"], m["asof_ok"]
    a_err, d_err = m.get("asof_error", ""), m.get("duckdb_error", "")
    if not a_ok:
        for cause, pattern in ASOF_ERROR_RULES:
            if re.search(pattern, a_err):
                return cause
        if FK_SQL.search(sql):
            return "foreign keys"
        if m.get("foreign_error"):
            return f"internal error, not an asof error ({m.get('asof_class')})"
    if m.get("follows"):
        return FOLLOW_ON
    if not a_ok and re.match(r"table .* already exists; use CREATE OR REPLACE", a_err):
        return "a table DuckDB dropped by DROP ... CASCADE stays in asof's catalog"
    if FK_SQL.search(sql):
        return "foreign keys"
    if a_ok and d_ok:
        if re.match(r"\s*EXPLAIN\b", sql, re.I):
            return "EXPLAIN shows asof's plan (views over storage tables)"
        if re.search(r"TIMETZ|TIME WITH TIME ZONE|INTERVAL|\bROW\s*\(", sql, re.I):
            return (
                "values lost on the way through Arrow (TIME WITH TIME ZONE offsets, "
                "INTERVALs beyond int64 nanoseconds, unnamed ROW structs)"
            )
        if CATALOG_SQL.search(sql):
            return "catalog functions show asof's internal objects (different rows)"
        why = m.get("why", "")
        if "another order" in why:
            return "same rows in another order (no ORDER BY)"
        if "rows" in why:
            return "different row counts"
        return "different values"
    if a_ok and not d_ok:
        if "Conflict" in d_err or "conflict" in d_err:
            return "DuckDB write-write conflict (cannot happen: asof serialises writers)"
        if "no transaction is active" in d_err:
            return "COMMIT/ROLLBACK without a transaction succeed"
        if "transaction is aborted" in d_err:
            return (
                "a failed statement ends the transaction at once (DuckDB keeps it aborted "
                "until ROLLBACK)"
            )
        if "read-only" in d_err:
            return "BEGIN TRANSACTION READ ONLY is not enforced"
        if "Cannot drop column" in d_err:
            return "DROP COLUMN of a table's last column is accepted"
        if "Dependency Error" in d_err:
            return "dependencies not enforced (DuckDB's Dependency Error)"
        kind = d_err.split(":", 1)[0] if ":" in d_err else "error"
        return f"asof succeeds where DuckDB fails ({kind})"
    if CATALOG_SQL.search(sql):
        return "catalog functions: asof fails"
    return "asof fails where DuckDB succeeds: " + normalise(a_err)
