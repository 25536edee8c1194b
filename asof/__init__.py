"""asof: an event-sourced temporal database with instant, zero-copy, point-in-time clones.

The package has four layers, each importing only the ones below it:

* `asof.eventlog`: the append-only log of hybrid-timestamped events (WAL, Arrow IPC
  segments, manifests, checkpoints' references) and its storage backends;
* `asof.projections`: DuckDB states built from the log: the live projection, AS OF states,
  checkpoints, row versions;
* `asof.clone`: the cluster catalog: databases, clone lineage, schedules, flags, retention;
* `asof.queryapi`: what users hold: `Cluster`, `Database`, `AsOf`, `Result`, the SQL front,
  forensics and the command line.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asof.queryapi import (
        AsOf,
        AsofError,
        Cluster,
        Connection,
        CorruptionError,
        Cursor,
        Database,
        DatabaseError,
        DataError,
        Error,
        InFailedTransactionError,
        IntegrityError,
        InterfaceError,
        InternalError,
        NoActiveTransactionError,
        NotSupportedError,
        OperationalError,
        ProgrammingError,
        ReadOnlyError,
        Result,
        SerializationError,
        Warning,
        apilevel,
        connect,
        paramstyle,
        threadsafety,
    )

try:
    __version__ = version("asof")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    # The public names live in asof.queryapi, which loads DuckDB and every layer. Resolving
    # them on first use keeps `import asof.eventlog` (and `asof --version`) light.
    if name in __all__ and name != "__version__":
        from asof import queryapi

        return getattr(queryapi, name)
    raise AttributeError(f"module 'asof' has no attribute {name!r}")


__all__ = [
    "__version__",
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
