"""A log's commit mark: the id of its last committed transaction, in a file of its own.

A WAL cut exactly at a frame boundary looks like a WAL that never had the frames after the
cut, so a log whose every transaction matters and which commits rarely (the catalog) can
keep a second durable record: after each commit's fsync, the mark is overwritten in place
(one 16-byte write, inside one disk block, and an fdatasync). On open, a WAL that ends
before the mark has lost committed transactions. A crash between the WAL's fsync and the
mark's leaves the mark one commit behind, which proves less, never something false.

    magic b"AWM1" | u64 txn_id | u32 crc32(previous 12 bytes)
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from asof.eventlog.errors import CorruptionError
from asof.eventlog.fsutil import fsync_dir

MAGIC = b"AWM1"
_BODY = struct.Struct("<4sQ")
_CRC = struct.Struct("<I")
SIZE = _BODY.size + _CRC.size


def encode(txn_id: int) -> bytes:
    body = _BODY.pack(MAGIC, txn_id)
    return body + _CRC.pack(zlib.crc32(body))


def read(path: Path) -> int | None:
    """The marked txn id; None when there is no mark; CorruptionError naming the file when
    it does not check."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if (
        len(raw) != SIZE
        or raw[:4] != MAGIC
        or zlib.crc32(raw[: _BODY.size]) != int.from_bytes(raw[_BODY.size :], "little")
    ):
        raise CorruptionError(f"commit mark {path} fails its checksum", str(path))
    return _BODY.unpack_from(raw)[1]


class CommitMark:
    """The open mark file of a log's writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def write(self, txn_id: int) -> None:
        """Record `txn_id` durably; OSError when that fails (the commit itself stands)."""
        created = False
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileExistsError:
                self._fd = os.open(self.path, os.O_RDWR)
        data = encode(txn_id)
        if os.pwrite(self._fd, data, 0) != len(data):
            raise OSError(f"short write to {self.path}")
        (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self._fd)
        if created:
            fsync_dir(self.path.parent)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
