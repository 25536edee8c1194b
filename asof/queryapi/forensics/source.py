"""What forensics read from and write into, stated without the handles that provide them.

The public handles (`Database`, `AsOf`) sit above this wing and hand it these values, so
forensics never reach into a handle's insides and the handles can import forensics freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import attrs
import duckdb

from asof.eventlog.events import Transaction
from asof.projections.live import DatabaseRuntime
from asof.queryapi.result import Result
from asof.queryapi.sql.session import Session


@attrs.frozen
class Source:
    """One database's state, live (`ts` None) or as of `ts`, and a cursor reading it.

    Close `cursor` when done; an AS OF handle lends a cursor whose close keeps its snapshot.
    """

    label: str
    runtime: DatabaseRuntime
    ts: int | None
    cursor: duckdb.DuckDBPyConnection


class Readable(Protocol):
    """A handle forensics can read: it gives its state as a `Source`."""

    def source(self) -> Source: ...


class Target(Protocol):
    """A live, writable handle that restores write into, through its own session."""

    @property
    def name(self) -> str: ...

    @property
    def session(self) -> Session: ...

    def sql(self, query: str, params: Any = None) -> Result: ...


class PastReadable(Readable, Protocol):
    def __enter__(self) -> PastReadable: ...

    def __exit__(self, *exc: object) -> None: ...


class Recoverable(Target, Protocol):
    """A live handle whose log undrop reads, and whose past it opens."""

    def transactions(self) -> Iterator[Transaction]: ...

    def as_of(self, ts: Any) -> PastReadable: ...


def as_source(handle: object, what: str) -> Source:
    """`handle`'s state, or a ProgrammingError saying which handles `what` accepts."""
    from asof.queryapi.errors import ProgrammingError

    source = getattr(handle, "source", None)
    if not callable(source):
        raise ProgrammingError(
            f"{what} reads Database or AsOf handles (or database names), not "
            f"{type(handle).__name__}; use cluster.database(name) or db.as_of(ts)"
        )
    return source()
