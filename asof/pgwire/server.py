"""The listener: TCP on loopback by default, optionally a Unix socket, a thread per client.

Shutdown (SIGTERM) stops accepting, ends idle connections at once and lets a busy one
finish its statement first, then closes the cluster, so a statement is either done or never
applied.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from asof.pgwire.auth import AuthPolicy
from asof.pgwire.catalog import answer as catalog_answer
from asof.pgwire.session import Connection
from asof.queryapi import Cluster

if TYPE_CHECKING:
    pass


class Server:
    def __init__(
        self,
        cluster: Cluster,
        *,
        host: str = "127.0.0.1",
        port: int = 5432,
        socket_dir: str | None = None,
        max_connections: int = 100,
        trust_local: bool = False,
        statement_timeout_ms: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.cluster = cluster
        self.host = host
        self.port = port
        self.socket_dir = socket_dir
        self.max_connections = max_connections
        self.auth = AuthPolicy(cluster, trust_local=trust_local)
        self.statement_timeout_ms = statement_timeout_ms
        self.tls = tls
        self.catalog_answer = catalog_answer
        self._pids = itertools.count(os.getpid() * 1000 % 2_000_000_000 + 1)
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._threads: set[threading.Thread] = set()
        self._listeners: list[socket.socket] = []
        self._stopping = threading.Event()
        self.socket_path: Path | None = None

    # --------------------------------------------------------- lifecycle
    def bind(self) -> None:
        """Open the listening sockets (before serve(), so a test can read the port)."""
        tcp = socket.create_server((self.host, self.port), reuse_port=False, backlog=128)
        self.port = tcp.getsockname()[1]
        self._listeners.append(tcp)
        if self.socket_dir is not None:
            path = Path(self.socket_dir) / f".s.PGSQL.{self.port}"
            if path.exists():
                path.unlink()
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.bind(str(path))
            os.chmod(path, 0o700)
            unix.listen(128)
            self._listeners.append(unix)
            self.socket_path = path

    def serve(self) -> None:
        """Accept until shutdown() (from a signal handler or another thread)."""
        if not self._listeners:
            self.bind()
        acceptors = [
            threading.Thread(target=self._accept, args=(s,), daemon=True, name="pgwire-accept")
            for s in self._listeners
        ]
        for t in acceptors:
            t.start()
        self._stopping.wait()
        for s in self._listeners:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in acceptors:
            t.join(timeout=5)
        self._drain()
        if self.socket_path is not None:
            try:
                self.socket_path.unlink()
            except OSError:
                pass

    def shutdown(self) -> None:
        self._stopping.set()

    def _drain(self, timeout: float = 60.0) -> None:
        with self._lock:
            conns = list(self._connections.values())
            threads = list(self._threads)
        for conn in conns:
            conn.shutdown()
        for t in threads:
            t.join(timeout=timeout)

    def _accept(self, listener: socket.socket) -> None:
        local = listener.family == socket.AF_UNIX
        while not self._stopping.is_set():
            try:
                sock, addr = listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                sock.close()
                return
            if not local:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = "local" if local else str(addr[0])
            conn = Connection(self, sock, local, peer)
            t = threading.Thread(target=self._run, args=(conn,), daemon=True, name="pgwire-conn")
            with self._lock:
                self._threads.add(t)
            t.start()

    def _run(self, conn: Connection) -> None:
        try:
            conn.run()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    # -------------------------------------------------------- connections
    def next_pid(self) -> int:
        with self._lock:
            return next(self._pids)

    def admit(self, conn: Connection) -> bool:
        with self._lock:
            if len(self._connections) >= self.max_connections:
                return False
            self._connections[conn.pid] = conn
            return True

    def forget(self, conn: Connection) -> None:
        with self._lock:
            if self._connections.get(conn.pid) is conn:
                del self._connections[conn.pid]

    def cancel(self, pid: int, secret: int) -> None:
        with self._lock:
            conn = self._connections.get(pid)
        if conn is not None and conn.secret == secret:
            conn.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)
