"""The public exception hierarchy: one root, PEP 249-style subclasses.

Every message says what went wrong and what to do about it.
"""

from __future__ import annotations

from typing import TypeVar


class AsofError(Exception):
    """Root of every error asof raises."""


class InterfaceError(AsofError):
    """The API was used wrongly (a closed cluster or handle, say)."""


class DatabaseError(AsofError):
    """An error in the database itself."""


class ProgrammingError(DatabaseError):
    """Bad SQL, an unknown name, or a request that cannot be met as asked."""


class ReadOnlyError(ProgrammingError):
    """A write was attempted through a read-only handle (AS OF, a read-only cluster)."""


class NoActiveTransactionError(ProgrammingError):
    """COMMIT or ROLLBACK with no transaction open (as DuckDB refuses them; PostgreSQL only
    warns, SQLSTATE 25P01, so a PostgreSQL front end may turn this into a warning)."""

    sqlstate = "25P01"


class InFailedTransactionError(ProgrammingError):
    """A statement was sent inside a transaction that already failed (SQLSTATE 25P02).

    Nothing of the transaction will be committed; only ROLLBACK ends it. `rolled_back` is
    True when the refused statement was the COMMIT itself: the transaction was then rolled
    back and the session is idle again (PostgreSQL answers such a COMMIT with ROLLBACK).
    """

    sqlstate = "25P02"

    def __init__(self, message: str, *, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


class OperationalError(DatabaseError):
    """I/O failed, a lock could not be taken, or the cluster is busy."""


class SerializationError(OperationalError):
    """The transaction read a snapshot that another commit has since made stale, and its
    first write could lose that commit's update (SQLSTATE 40001); retry the transaction."""

    sqlstate = "40001"


class CorruptionError(OperationalError):
    """A file failed its checksum or could not be decoded."""


class DataError(DatabaseError):
    """A value could not be converted or is out of range."""


class IntegrityError(DatabaseError):
    """A constraint (PRIMARY KEY, UNIQUE, NOT NULL, CHECK) would be violated."""


class NotSupportedError(DatabaseError):
    """The statement is valid but asof does not allow it here."""


class InternalError(DatabaseError):
    """asof reached a state it should never reach; please report it."""


__all__ = [
    "AsofError",
    "InterfaceError",
    "DatabaseError",
    "ProgrammingError",
    "ReadOnlyError",
    "NoActiveTransactionError",
    "InFailedTransactionError",
    "OperationalError",
    "SerializationError",
    "CorruptionError",
    "DataError",
    "IntegrityError",
    "NotSupportedError",
    "InternalError",
]


_E = TypeVar("_E", bound=AsofError)


def syntactic(err: _E, *, before_effects: bool = False) -> _E:
    """Mark `err` as DuckDB's parser, binder and catalog errors are: the ones a session
    with `default_transaction_invalidation_policy = SYNTACTIC_ERRORS_DO_NOT_INVALIDATE`
    survives. `before_effects`: the SQL front raised it before the statement changed
    anything, so even a write's transaction can go on."""
    err.syntactic = True  # type: ignore[attr-defined]
    err.before_effects = before_effects  # type: ignore[attr-defined]
    return err
