"""SQLSTATE codes and PostgreSQL-style messages for asof's errors.

Clients branch on the SQLSTATE (psycopg raises `UniqueViolation` for 23505, ORMs retry on
40001), so the code matters more than the text; the text of the few errors psql users see
every day (an unknown table) is PostgreSQL's own.
"""

from __future__ import annotations

import re

import attrs

from asof.queryapi import errors as e
from asof.queryapi.sql.statements import tokenize, unquote

UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"
UNDEFINED_FUNCTION = "42883"
DUPLICATE_TABLE = "42P07"
SYNTAX_ERROR = "42601"
UNIQUE_VIOLATION = "23505"
NOT_NULL_VIOLATION = "23502"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
READ_ONLY = "25006"
IN_FAILED_TRANSACTION = "25P02"
QUERY_CANCELED = "57014"
ADMIN_SHUTDOWN = "57P01"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
UNDEFINED_DATABASE = "3D000"
DUPLICATE_DATABASE = "42P04"
SERIALIZATION_FAILURE = "40001"
LOCK_NOT_AVAILABLE = "55P03"
FEATURE_NOT_SUPPORTED = "0A000"
PROTOCOL_VIOLATION = "08P01"
TOO_MANY_CONNECTIONS = "53300"
INVALID_TEXT = "22P02"
DIVISION_BY_ZERO = "22012"
OUT_OF_RANGE = "22003"
DATA_EXCEPTION = "22000"
INTEGRITY = "23000"
UNDEFINED_PREPARED = "26000"
UNDEFINED_CURSOR = "34000"
DUPLICATE_PREPARED = "42P05"
SYSTEM_ERROR = "58000"
DATA_CORRUPTED = "XX001"
INTERNAL = "XX000"
ACCESS_RULE = "42000"
UNDEFINED_OBJECT = "42704"


@attrs.frozen
class PgError(Exception):
    """An error as the client will see it: severity, SQLSTATE, message, and where."""

    code: str
    message: str
    detail: str | None = None
    hint: str | None = None
    position: int | None = None  # 1-based character offset into the query
    severity: str = "ERROR"

    def fields(self) -> list[tuple[str, str]]:
        out = [("S", self.severity), ("V", self.severity), ("C", self.code), ("M", self.message)]
        if self.detail:
            out.append(("D", self.detail))
        if self.hint:
            out.append(("H", self.hint))
        if self.position is not None:
            out.append(("P", str(self.position)))
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


_PREFIX = re.compile(r"^[A-Z][A-Za-z ]* Error: ")
_NO_TABLE = re.compile(r"Table with name (\S+?) does not exist")
_NO_COLUMN = re.compile(r'Referenced column "?([^"\s]+)"? not found')
_EXISTS = re.compile(r"(Table|View|Sequence|Index) with name (\S+?) already exists")


def from_asof(exc: BaseException, query: str = "") -> PgError:
    """The PgError for an asof error raised while running `query`."""
    if isinstance(exc, PgError):
        return exc
    raw = str(exc)
    text = _PREFIX.sub("", raw)
    if isinstance(exc, e.ReadOnlyError):
        return PgError(READ_ONLY, f"cannot execute this statement in a read-only state: {text}")
    if isinstance(exc, e.IntegrityError):
        low = text.lower()
        if "not null" in low:
            code = NOT_NULL_VIOLATION
        elif "foreign key" in low:
            code = FOREIGN_KEY_VIOLATION
        elif "check constraint" in low:
            code = CHECK_VIOLATION
        elif "duplicate key" in low or "unique" in low or "primary key" in low:
            code = UNIQUE_VIOLATION
        else:
            code = INTEGRITY
        return PgError(code, text)
    if isinstance(exc, e.DataError):
        low = text.lower()
        if "division by zero" in low or "divide by zero" in low:
            return PgError(DIVISION_BY_ZERO, "division by zero")
        if "out of range" in low or "overflow" in low:
            return PgError(OUT_OF_RANGE, text)
        if "conversion" in low or "could not convert" in low or "invalid input" in low:
            return PgError(INVALID_TEXT, text)
        return PgError(DATA_EXCEPTION, text)
    if isinstance(exc, e.NotSupportedError):
        return PgError(FEATURE_NOT_SUPPORTED, text)
    if isinstance(exc, e.ProgrammingError):
        return _programming(raw, text, query)
    if isinstance(exc, e.CorruptionError):
        return PgError(DATA_CORRUPTED, text)
    if isinstance(exc, e.OperationalError):
        low = text.lower()
        if "interrupt" in low:
            return PgError(QUERY_CANCELED, "canceling statement due to user request")
        if "conflict" in low or "serializ" in low:
            return PgError(SERIALIZATION_FAILURE, text)
        if "lock" in low and ("timeout" in low or "timed out" in low or "waited" in low):
            return PgError(LOCK_NOT_AVAILABLE, text)
        return PgError(SYSTEM_ERROR, text)
    if isinstance(exc, e.DatabaseError) and "interrupt" in text.lower():
        return PgError(QUERY_CANCELED, "canceling statement due to user request")
    if isinstance(exc, e.InterfaceError):
        return PgError(SYSTEM_ERROR, text)
    if isinstance(exc, e.AsofError):
        return PgError(INTERNAL, text)
    return PgError(INTERNAL, f"{type(exc).__name__}: {text}")


def _programming(raw: str, text: str, query: str) -> PgError:
    low = text.lower()
    if (m := _NO_TABLE.search(text)) is not None:
        name = m.group(1)
        return PgError(
            UNDEFINED_TABLE,
            f'relation "{name}" does not exist',
            position=_position(query, name.rsplit(".", 1)[-1]),
        )
    if re.search(r"table '([^']+)' does not exist", text):
        name = re.search(r"table '([^']+)' does not exist", text).group(1)  # type: ignore[union-attr]
        return PgError(UNDEFINED_TABLE, f'relation "{name}" does not exist')
    if (m := _NO_COLUMN.search(text)) is not None:
        name = m.group(1)
        return PgError(
            UNDEFINED_COLUMN,
            f'column "{name}" does not exist',
            position=_position(query, name.rsplit(".", 1)[-1]),
        )
    if (m := _EXISTS.search(text)) is not None:
        return PgError(DUPLICATE_TABLE, f'relation "{m.group(2)}" already exists')
    if raw.startswith(("Parser Error", "Syntax Error")):
        near = re.search(r'at or near "([^"]*)"', text)
        return PgError(
            SYNTAX_ERROR,
            f'syntax error at or near "{near.group(1)}"' if near else text,
            position=_position(query, near.group(1)) if near else None,
        )
    if (m := re.match(r"database '([^']+)' (does not exist|already exists)", text)) is not None:
        code = UNDEFINED_DATABASE if m.group(2) == "does not exist" else DUPLICATE_DATABASE
        return PgError(code, f'database "{m.group(1)}" {m.group(2)}')
    if "function" in low and ("does not exist" in low or "no function matches" in low):
        return PgError(UNDEFINED_FUNCTION, text)
    if raw.startswith("Catalog Error") and "does not exist" in low:
        return PgError(UNDEFINED_OBJECT, text)
    return PgError(ACCESS_RULE if not raw.startswith("Binder") else SYNTAX_ERROR, text)


def _position(query: str, word: str) -> int | None:
    """Where `word` first stands as a token in `query` (1-based, in characters)."""
    if not query or not word:
        return None
    try:
        tokens = tokenize(query)
    except Exception:
        tokens = ()
    for tok in tokens:
        if unquote(tok.text).lower() == word.lower():
            return tok.start + 1
    at = query.lower().find(word.lower())
    return at + 1 if at >= 0 else None


def cancelled(reason: str) -> PgError:
    return PgError(QUERY_CANCELED, f"canceling statement due to {reason}")
