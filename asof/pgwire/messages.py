"""PostgreSQL protocol 3.0 framing: reading client messages, building server messages.

Every server message is a type byte, a big-endian int32 length that counts itself, and a
body; the startup packet has no type byte. Only framing lives here: what a message means is
the session's business.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Sequence

import attrs

PROTOCOL_3 = 196608  # 3.0
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

#: A client message larger than this is refused (PostgreSQL's own limit is 1 GiB).
MAX_MESSAGE = 256 * 1024 * 1024
MAX_STARTUP = 10_000

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")


class ProtocolViolation(Exception):
    """The client sent bytes that are not a valid message (SQLSTATE 08P01)."""


class ClientGone(Exception):
    """The connection closed while a message was expected or sent."""


@attrs.frozen
class Startup:
    """The first packet: a protocol version or a special request code, and its body."""

    code: int
    body: bytes

    def parameters(self) -> dict[str, str]:
        parts = self.body.split(b"\x00")
        out: dict[str, str] = {}
        for key, value in zip(parts[0::2], parts[1::2], strict=False):
            if not key:
                break
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        return out


class Reader:
    """Reads whole messages from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def exact(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            try:
                chunk = self.sock.recv(min(n, 1 << 20))
            except (ConnectionError, OSError):
                raise ClientGone() from None
            if not chunk:
                raise ClientGone()
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def startup(self) -> Startup:
        (length,) = _I32.unpack(self.exact(4))
        if length < 8 or length > MAX_STARTUP:
            raise ProtocolViolation(f"invalid startup packet length {length}")
        body = self.exact(length - 4)
        (code,) = _I32.unpack(body[:4])
        return Startup(code, body[4:])

    def message(self) -> tuple[bytes, bytes]:
        head = self.exact(5)
        kind = head[:1]
        (length,) = _I32.unpack(head[1:])
        if length < 4 or length > MAX_MESSAGE:
            raise ProtocolViolation(f"invalid message length {length} for type {kind!r}")
        return kind, self.exact(length - 4)


class Body:
    """A cursor over a message body, for the client messages' fields."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def cstr(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        text = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return text

    def int16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolViolation("message too short")
        (v,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return v

    def int32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ProtocolViolation("message too short")
        (v,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation("message too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


# ------------------------------------------------------------------ server messages
def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def authentication(code: int, extra: bytes = b"") -> bytes:
    return message(b"R", _I32.pack(code) + extra)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def ready_for_query(status: str) -> bytes:
    return message(b"Z", status.encode())


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


EMPTY_QUERY = message(b"I")
PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
COPY_DONE = message(b"c")


@attrs.frozen
class Field:
    """One column of a RowDescription."""

    name: str
    type_oid: int
    type_size: int = -1
    type_mod: int = -1
    format: int = 0
    table_oid: int = 0
    column: int = 0


def row_description(fields: Sequence[Field]) -> bytes:
    parts = [_I16.pack(len(fields))]
    for f in fields:
        parts.append(cstr(f.name))
        parts.append(
            struct.pack(
                "!ihihih", f.table_oid, f.column, f.type_oid, f.type_size, f.type_mod, f.format
            )
        )
    return message(b"T", b"".join(parts))


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", _I16.pack(len(oids)) + b"".join(_I32.pack(o) for o in oids))


def data_row(values: Sequence[bytes | None]) -> bytes:
    parts = [_I16.pack(len(values))]
    for v in values:
        if v is None:
            parts.append(_I32.pack(-1))
        else:
            parts.append(_I32.pack(len(v)))
            parts.append(v)
    return message(b"D", b"".join(parts))


def notice_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(code.encode() + cstr(value) for code, value in fields) + b"\x00"


def error_response(fields: Iterable[tuple[str, str]]) -> bytes:
    return message(b"E", notice_fields(fields))


def notice_response(fields: Iterable[tuple[str, str]]) -> bytes:
    return message(b"N", notice_fields(fields))


def copy_response(kind: bytes, text_format: bool, columns: int) -> bytes:
    """CopyInResponse ('G') or CopyOutResponse ('H'): the overall format and each column's."""
    fmt = 0 if text_format else 1
    return message(
        kind, struct.pack("!bh", fmt, columns) + b"".join(_I16.pack(fmt) for _ in range(columns))
    )


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)
