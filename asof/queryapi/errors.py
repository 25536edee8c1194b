"""The public exception hierarchy: one root, PEP 249-style subclasses.

Every message says what went wrong and what to do about it.
"""

from __future__ import annotations


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


class OperationalError(DatabaseError):
    """I/O failed, a lock could not be taken, or the cluster is busy."""


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
    "OperationalError",
    "CorruptionError",
    "DataError",
    "IntegrityError",
    "NotSupportedError",
    "InternalError",
]
