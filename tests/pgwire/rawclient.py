"""A minimal protocol-3.0 client that shows every message, to test what drivers hide
(PortalSuspended, Describe, skip-to-Sync, EmptyQueryResponse, hostile bytes)."""

from __future__ import annotations

import socket
import struct


class Raw:
    def __init__(self, path: str | None = None, port: int | None = None) -> None:
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port or 0))
        self.sock.settimeout(30)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def msg(self, kind: bytes, body: bytes = b"") -> None:
        self.send(kind + struct.pack("!i", len(body) + 4) + body)

    def startup(self, user: str, database: str) -> list[tuple[bytes, bytes]]:
        body = struct.pack("!i", 196608)
        body += b"user\x00" + user.encode() + b"\x00database\x00" + database.encode() + b"\x00\x00"
        self.send(struct.pack("!i", len(body) + 4) + body)
        return self.until(b"Z", b"E")

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self) -> tuple[bytes, bytes]:
        head = self._read(5)
        (length,) = struct.unpack("!i", head[1:])
        return head[:1], self._read(length - 4)

    def until(self, *kinds: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            kind, body = self.read()
            out.append((kind, body))
            if kind in kinds:
                return out

    def query(self, sql: str) -> list[tuple[bytes, bytes]]:
        self.msg(b"Q", sql.encode() + b"\x00")
        return self.until(b"Z")

    def parse(self, name: str, sql: str, oids: tuple[int, ...] = ()) -> None:
        body = name.encode() + b"\x00" + sql.encode() + b"\x00" + struct.pack("!h", len(oids))
        body += b"".join(struct.pack("!i", o) for o in oids)
        self.msg(b"P", body)

    def bind(
        self,
        portal: str,
        stmt: str,
        params: tuple[bytes | None, ...] = (),
        result_formats: tuple[int, ...] = (),
    ) -> None:
        body = portal.encode() + b"\x00" + stmt.encode() + b"\x00" + struct.pack("!h", 0)
        body += struct.pack("!h", len(params))
        for p in params:
            body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
        body += struct.pack("!h", len(result_formats))
        body += b"".join(struct.pack("!h", f) for f in result_formats)
        self.msg(b"B", body)

    def describe(self, what: bytes, name: str) -> None:
        self.msg(b"D", what + name.encode() + b"\x00")

    def execute(self, portal: str, limit: int = 0) -> None:
        self.msg(b"E", portal.encode() + b"\x00" + struct.pack("!i", limit))

    def sync(self) -> list[tuple[bytes, bytes]]:
        self.msg(b"S")
        return self.until(b"Z")

    def close(self) -> None:
        try:
            self.msg(b"X")
        except OSError:
            pass
        self.sock.close()


def rows(messages: list[tuple[bytes, bytes]]) -> list[list[str | None]]:
    out = []
    for kind, body in messages:
        if kind != b"D":
            continue
        (n,) = struct.unpack_from("!h", body)
        pos = 2
        row: list[str | None] = []
        for _ in range(n):
            (size,) = struct.unpack_from("!i", body, pos)
            pos += 4
            if size < 0:
                row.append(None)
            else:
                row.append(body[pos : pos + size].decode())
                pos += size
        out.append(row)
    return out


def kinds(messages: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(k for k, _ in messages)


def tags(messages: list[tuple[bytes, bytes]]) -> list[str]:
    return [body[:-1].decode() for kind, body in messages if kind == b"C"]


def error_fields(messages: list[tuple[bytes, bytes]]) -> dict[str, str]:
    for kind, body in messages:
        if kind == b"E":
            return {part[:1].decode(): part[1:].decode() for part in body.split(b"\x00") if part}
    return {}


def names(messages: list[tuple[bytes, bytes]]) -> list[str]:
    for kind, body in messages:
        if kind == b"T":
            (n,) = struct.unpack_from("!h", body)
            pos = 2
            out = []
            for _ in range(n):
                end = body.index(b"\x00", pos)
                out.append(body[pos:end].decode())
                pos = end + 1 + 18
            return out
    return []
