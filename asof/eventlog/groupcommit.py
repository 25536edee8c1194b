"""Group commit: when many threads append at once, one write and one fsync serve them all.

An fsync costs far more than encoding a transaction, so making each thread wait for its own
would cap a log at one commit per fsync. Instead the first waiting thread leads: it takes
every queued item, commits them as one batch, and hands each waiter its result. Items that
arrive meanwhile queue up for the next leader, one of their own threads. Every caller still
returns only after its own item is durable, and a failed batch fails each of its items.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import attrs

from asof.eventlog.errors import LogError, LogIOError

T = TypeVar("T")
R = TypeVar("R")


@attrs.define
class _Slot(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Serialises batches of `commit(items) -> results` (one result per item, in order).

    `commit` either commits every item of its batch or raises and commits none.
    """

    def __init__(self, commit: Callable[[list[T]], list[R]]) -> None:
        self._commit = commit
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[_Slot[T, R]] = []
        self._busy = False

    def submit(self, item: T) -> R:
        """Commit `item`, possibly with others; return its result once it is committed."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cv:
            self._queue.append(slot)
            while self._busy and not slot.done:
                self._cv.wait()
            batch: list[_Slot[T, R]] = []
            if not slot.done:
                self._busy = True
                batch, self._queue = self._queue, []
        if batch:
            self._lead(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        results: list[R] | None = None
        failure: BaseException | None = None
        try:
            results = self._commit([s.item for s in batch])
        except BaseException as exc:
            failure = exc
        finally:
            with self._cv:
                for i, slot in enumerate(batch):
                    slot.done = True
                    if results is not None:
                        slot.result = results[i]
                    else:
                        slot.error = _error_for(failure, first=i == 0)
                self._busy = False
                self._cv.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Run a block while no batch commits (seal, manifest changes, close)."""
        with self._cv:
            while self._busy:
                self._cv.wait()
            self._busy = True
        try:
            yield
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()


def _error_for(failure: BaseException | None, *, first: bool) -> BaseException:
    """The exception one waiter raises: its own object, so tracebacks do not mix."""
    if failure is None:
        return LogIOError("commit interrupted")
    if first:
        return failure
    if isinstance(failure, LogError):
        error = copy.copy(failure)  # same class, message and attributes
        error.__cause__ = failure.__cause__
        return error
    return LogIOError(f"commit failed: {failure!r}")
