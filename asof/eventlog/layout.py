"""Where a store keeps what: every path under a store's root is computed here.

    logs/<log_id>/wal            committed transactions not yet sealed (see wal.py)
    logs/<log_id>/manifest.json  the segments and checkpoints making up the sealed history
    logs/<log_id>/committed      the last committed txn id, for logs that keep one (mark.py)
    segments/<uuid>.arrow        sealed transactions, shared by every log that refers to them
    segments/<uuid>.wal          a log's WAL as a fork rotated it out (see walseg.py), shared
    <kind>/<uuid><suffix>        other shared files (checkpoints), from `new_file_path`

Manifests name shared files by store-relative POSIX paths, so a store directory can move.
A path may end in a `#fragment` naming a part of the file (walseg.py); the fragment is not
part of the file's name.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from asof.eventlog.fsutil import TMP_PREFIX, fsync_dir, write_file

LOGS = "logs"
SEGMENTS = "segments"
WAL_FILE = "wal"
MANIFEST_FILE = "manifest.json"
#: A log's commit mark (mark.py), for logs that keep one.
MARK_FILE = "committed"
#: Present in every directory of shared files that `gc` may clean, besides segments/.
SHARED_MARKER = ".asof-shared"
_NAME = re.compile(r"[a-z0-9_-]{1,128}")
#: Separates a file's store-relative path from the part of it a reference means.
FRAGMENT = "#"


def file_of(relative: str) -> str:
    """The file a (maybe virtual, `file#part`) store-relative path lies in."""
    return relative.split(FRAGMENT, 1)[0]


def check_name(name: str, what: str = "log id") -> str:
    """Ids become directory names: allow only [a-z0-9_-], so no id can escape its folder."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"invalid {what} {name!r}: use 1-128 characters of [a-z0-9_-]")
    return name


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.logs = self.root / LOGS
        self.segments = self.root / SEGMENTS

    def ensure(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.segments.mkdir(exist_ok=True)

    def log_dir(self, log_id: str) -> Path:
        return self.logs / check_name(log_id)

    def manifest_path(self, log_id: str) -> Path:
        return self.log_dir(log_id) / MANIFEST_FILE

    def create_log(self, log_id: str, manifest: bytes) -> None:
        """Create a log directory whole or not at all: build it aside, then rename it in.

        Raises FileExistsError if the log exists.
        """
        final = self.log_dir(log_id)
        if final.exists():
            raise FileExistsError(final)
        tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            tmp.mkdir()
            write_file(tmp / MANIFEST_FILE, manifest)
            write_file(tmp / WAL_FILE, b"")
            fsync_dir(tmp)
            os.rename(tmp, final)  # fails if `final` appeared meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.logs)

    def log_ids(self) -> list[str]:
        """Every log directory, with or without its manifest (reading a log whose manifest
        is missing reports it)."""
        return sorted(d.name for d in self.logs.iterdir() if _NAME.fullmatch(d.name) and d.is_dir())

    def shared_dir(self, kind: str) -> Path:
        """The folder for shared files of one kind, marked so that `gc` cleans it."""
        if check_name(kind, "file kind") == LOGS:
            raise ValueError(f"invalid file kind {kind!r}")
        folder = self.root / kind
        marker = folder / SHARED_MARKER
        if not marker.exists():
            folder.mkdir(parents=True, exist_ok=True)
            write_file(marker, b"")
            fsync_dir(folder)
            fsync_dir(self.root)
        return folder

    def shared_dirs(self) -> list[Path]:
        return [
            d
            for d in sorted(self.root.iterdir())
            if d.is_dir() and (d == self.segments or (d / SHARED_MARKER).is_file())
        ]

    def resolve(self, relative: str) -> Path:
        path = Path(file_of(relative))
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"not a store-relative path: {relative!r}")
        return self.root / path

    def relative(self, path: Path) -> str:
        return Path(path).absolute().relative_to(self.root).as_posix()
