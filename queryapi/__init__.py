"""The public API of asof: clusters, databases, results, errors."""

from queryapi.cluster import Cluster
from queryapi.database import AsOf, Database
from queryapi.errors import (
    AsofError,
    CorruptionError,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
)
from queryapi.result import Result

__all__ = [
    "Cluster",
    "Database",
    "AsOf",
    "Result",
    "AsofError",
    "CorruptionError",
    "DatabaseError",
    "DataError",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "ReadOnlyError",
]
