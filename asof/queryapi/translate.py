"""Turn errors from DuckDB and the event log into asof's hierarchy, with advice."""

from __future__ import annotations

import duckdb

from asof.clone.errors import CatalogError, CloneDisabled, CloneFailed, CloneInProgress
from asof.eventlog.errors import CorruptionError as LogCorruption
from asof.eventlog.errors import LogError, LogIOError
from asof.projections.errors import ProjectionError, ReadOnlyProjection, WriteLockTimeout
from asof.queryapi import errors as e


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(exc: BaseException, *, rolled_back: bool = False) -> e.AsofError:
    """The asof error for `exc`; already-asof errors pass through unchanged."""
    if isinstance(exc, e.AsofError):
        return exc
    tail = "; the transaction was rolled back" if rolled_back else ""
    msg = _first_line(exc)
    if isinstance(exc, ReadOnlyProjection):
        return e.ReadOnlyError(msg)
    if isinstance(exc, (WriteLockTimeout, ProjectionError)):
        return e.OperationalError(msg)
    if isinstance(exc, CloneInProgress):
        return e.OperationalError(msg)
    if isinstance(exc, CloneDisabled):
        return e.NotSupportedError(msg)
    if isinstance(exc, CloneFailed):
        return e.OperationalError(msg)
    if isinstance(exc, CatalogError):
        return e.ProgrammingError(msg)
    if isinstance(exc, LogCorruption):
        return e.CorruptionError(f"{msg}; run `asof check` and restore the named file")
    if isinstance(exc, LogIOError):
        return e.OperationalError(
            f"could not write the log: {msg}{tail}; free space or fix the disk, then retry"
        )
    if isinstance(exc, LogError):
        return e.OperationalError(f"{msg}{tail}")
    if isinstance(exc, duckdb.ConstraintException):
        return e.IntegrityError(f"{msg}{tail}")
    if isinstance(exc, duckdb.PermissionException):
        return e.NotSupportedError(
            f"{msg}{tail}; asof keeps statements inside the database unless the cluster is "
            "opened with allow_external_access=True"
        )
    if isinstance(exc, (duckdb.ConversionException, duckdb.OutOfRangeException)):
        return e.DataError(f"{msg}{tail}")
    if isinstance(exc, duckdb.InvalidInputException):
        if "parameter" in msg.lower() or "prepared" in msg.lower():
            return e.ProgrammingError(f"{msg}{tail}; pass one value per placeholder")
        return e.DataError(f"{msg}{tail}")
    if isinstance(exc, duckdb.NotImplementedException):
        return e.NotSupportedError(f"{msg}{tail}")
    if isinstance(
        exc,
        (
            duckdb.ParserException,
            duckdb.BinderException,
            duckdb.CatalogException,
            duckdb.SyntaxException,
        ),
    ):
        return e.syntactic(e.ProgrammingError(f"{msg}{tail}"))
    if isinstance(exc, duckdb.DependencyException):
        return e.ProgrammingError(f"{msg}{tail}")
    if isinstance(exc, duckdb.TransactionException) and "constraint violation" in msg.lower():
        return e.IntegrityError(f"{msg}{tail}")  # a key checked at COMMIT
    if isinstance(exc, duckdb.ConnectionException):  # its projection was reopened under it
        return e.OperationalError(f"{msg}{tail}; retry with a new handle")
    if isinstance(exc, duckdb.FatalException):
        return e.OperationalError(
            f"{msg}{tail}; the projection is reopened from the log at the next statement"
        )
    if isinstance(exc, duckdb.TransactionException):
        return e.OperationalError(f"{msg}{tail}; retry the transaction")
    if isinstance(exc, duckdb.Error) and ("checksum" in msg.lower() or "corrupt" in msg.lower()):
        return e.CorruptionError(f"{msg}; run `asof check` and restore the named file")
    if isinstance(exc, (duckdb.IOException, OSError)):
        return e.OperationalError(f"{msg}{tail}")
    if isinstance(exc, duckdb.Error):
        return e.DatabaseError(f"{msg}{tail}")
    return e.InternalError(f"{type(exc).__name__}: {msg}{tail}")


def translating(fn):
    """Make a public method raise only asof errors (generators too)."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except e.AsofError:
                raise
            except Exception as exc:
                raise translate(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except e.AsofError:
            raise
        except Exception as exc:
            raise translate(exc) from None
        if inspect.isgenerator(result):
            return _translated(result)
        return result

    return wrapper


def _translated(gen):
    try:
        yield from gen
    except e.AsofError:
        raise
    except Exception as exc:
        raise translate(exc) from None
