"""The public API of asof: clusters, databases, results, errors."""

from asof.queryapi.cluster import Cluster
from asof.queryapi.database import AsOf, Database
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
