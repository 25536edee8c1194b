"""A fault-injecting file layer for tests: make the Nth write, fsync, truncate, allocation or
rename under a directory fail with EIO or ENOSPC, and a small tmpfs for DuckDB's own I/O.

Python-level calls are wrapped where asof's eventlog makes them (the `os` functions it calls
at run time, and the sink segment files are written through), and only calls on files
under `root` count or fail, so DuckDB, pytest and everything else are untouched. DuckDB
writes through its own C++ I/O; `SmallDisk` mounts a tmpfs and fills it instead.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asof.eventlog import segment

#: Every call site of the commit path, seals, checkpoints and compaction that writes or
#: syncs: WAL frames (pwrite, fdatasync, ftruncate, posix_fallocate), manifests and other
#: atomically replaced files (write, fsync, replace), segment files (their sink's writes),
#: checkpoint and directory fsyncs (fsync).
SITES = (
    "pwrite",
    "fdatasync",
    "ftruncate",
    "posix_fallocate",
    "write",
    "fsync",
    "replace",
    "segment_write",
)


class FaultFS:
    """Counts calls per site on files under `root`; `arm` makes one fail (or all from then
    on: `sticky`, as a full disk stays full) until `clear`."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root.resolve())
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._armed: tuple[str, int, int, bool] | None = None  # site, at call, errno, sticky
        for name in SITES[:-1]:
            original = getattr(os, name)
            monkeypatch.setattr(os, name, self._wrap(name, original, _fd_path))
        sink_write = segment._CrcSink.write
        monkeypatch.setattr(
            segment._CrcSink,
            "write",
            self._wrap("segment_write", sink_write, lambda sink, *a: _fd_path(sink._fh.fileno())),
        )

    def arm(self, site: str, nth: int, code: int, *, sticky: bool = False) -> None:
        """Fail the `nth` call (1 = the next) of `site` from now on with `code`."""
        assert site in SITES, site
        self._armed = (site, self.calls[site] + nth, code, sticky)

    def clear(self) -> None:
        self._armed = None

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def _wrap(self, site: str, original: Callable, path_of: Callable[..., str | None]):
        def call(*args: Any, **kwargs: Any) -> Any:
            path = path_of(*args)
            if path is not None and path.startswith(self.root):
                self.calls[site] += 1
                armed = self._armed
                if armed is not None and armed[0] == site:
                    _, at, code, sticky = armed
                    n = self.calls[site]
                    if n == at or (sticky and n > at):
                        self.injected[site] += 1
                        raise OSError(code, f"{os.strerror(code)} (injected)")
            return original(*args, **kwargs)

        return call


def _fd_path(first: Any, *rest: Any) -> str | None:
    """The path a call is about: its fd's file, or its (first) path argument."""
    if isinstance(first, int):
        try:
            return os.readlink(f"/proc/self/fd/{first}")
        except OSError:
            return None
    if isinstance(first, (str, os.PathLike)):
        return str(Path(first).resolve())
    return None


class SmallDisk:
    """A tmpfs of `size` mounted at `path`, which `fill` makes full (ENOSPC for every
    writer, DuckDB's C++ I/O included) and `free` empties again. Skips the test when
    mounting is not possible (not root, no tmpfs)."""

    def __init__(self, path: Path, size: str = "64m") -> None:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
        self.path = path
        self._filler = path / ".filler"
        self.fills = 0

    def fill(self, leave: int = 0) -> None:
        """Take all free space but `leave` bytes."""
        with open(self._filler, "ab") as fh:
            block = b"\0" * (1 << 16)
            try:
                while True:
                    room = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
                    if room <= leave:
                        break
                    fh.write(block[: max(4096, min(len(block), room - leave))])
                    fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        self.fills += 1

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
