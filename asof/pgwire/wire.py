"""What the protocol's helpers (login, COPY) need of a connection, and a connection of
its server, written down as Protocols so that no module imports the one that calls it."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, Protocol

from asof.pgwire.execute import Executor
from asof.pgwire.messages import Reader
from asof.queryapi import Cluster


class Wire(Protocol):
    """One client connection, as the login exchange and COPY use it."""

    user: str
    local: bool
    peer: str
    reader: Reader
    executor: Executor | None

    def send(self, data: bytes) -> None: ...

    def flush(self) -> None: ...


class Host(Protocol):
    """The server, as a connection uses it."""

    cluster: Cluster
    auth: Any
    tls: ssl.SSLContext | None
    statement_timeout_ms: int
    catalog_answer: Callable[..., Any]

    def next_pid(self) -> int: ...

    def admit(self, conn: Any) -> bool: ...

    def forget(self, conn: Any) -> None: ...

    def cancel(self, pid: int, secret: int) -> None: ...


__all__ = ["Wire", "Host"]
