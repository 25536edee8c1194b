"""The public API of asof: clusters, databases, results, errors."""

from asof.queryapi.cluster import Cluster
from asof.queryapi.database import AsOf, Database
from asof.queryapi.dbapi import (
    Connection,
    Cursor,
    Error,
    Warning,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)
from asof.queryapi.errors import (
    AsofError,
    CorruptionError,
    DatabaseError,
    DataError,
    InFailedTransactionError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NoActiveTransactionError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
    SerializationError,
)
from asof.queryapi.result import Result

__all__ = [
    "connect",
    "Connection",
    "Cursor",
    "Error",
    "Warning",
    "apilevel",
    "paramstyle",
    "threadsafety",
    "Cluster",
    "Database",
    "AsOf",
    "Result",
    "AsofError",
    "CorruptionError",
    "DatabaseError",
    "DataError",
    "InFailedTransactionError",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NoActiveTransactionError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "ReadOnlyError",
    "SerializationError",
]
