"""Small filesystem helpers whose only job is to make a change survive a crash.

A rename is atomic, but neither the new file's bytes nor the rename itself are durable until
the file and then its directory are fsync'd; every helper here does both, in that order.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
import zlib
from pathlib import Path

#: Prefix of temporary files and directories; never a valid log id or segment name.
TMP_PREFIX = ".tmp-"
#: Prefix of directories being deleted.
TRASH_PREFIX = ".trash-"


def fsync_dir(path: Path) -> None:
    """Make the creation, rename or removal of entries in `path` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (not its directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    """A unique sibling of `path` for writing before an atomic rename."""
    return path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, whole.

    Write a temporary sibling, fsync it, rename it over `path`, fsync the directory.
    """
    tmp = tmp_name(path)
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_tree(path: Path) -> None:
    """Delete a directory so no crash leaves it half-deleted under its own name.

    Rename it to a trash name first (atomic, durable), then delete the trash at leisure; a
    leftover trash directory is removed by the store's garbage collection.
    """
    trash = path.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex}")
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def file_crc32(path: Path, chunk: int = 1 << 22) -> tuple[int, int]:
    """(size, zlib.crc32) of a whole file, read in chunks."""
    crc = 0
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return size, crc


def try_lock(path: Path, *, shared: bool = False, wait: float = 0.0) -> int | None:
    """An fd holding an advisory flock on `path`, or None if it stays taken for `wait` s.

    flock locks belong to the open file description: a second open in the same process
    conflicts too, and the lock goes away with the fd, even if the process dies.
    """
    fd = os.open(path, os.O_RDONLY)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)
    except BaseException:
        os.close(fd)
        raise


def unlock(fd: int) -> None:
    os.close(fd)  # closing the only fd of the description releases the flock
