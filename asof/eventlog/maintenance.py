"""Store upkeep that no single log owns: garbage collection and verification.

Shared files outlive the logs that wrote them (forks refer to them), so they are deleted
only here, once no manifest names them. Verification reads every file a store relies on
and reports, never repairs: the operator decides what to do with a damaged log.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from asof.eventlog import manifest as mf
from asof.eventlog import walseg
from asof.eventlog.errors import CorruptionError, LogError
from asof.eventlog.fsutil import TMP_PREFIX, TRASH_PREFIX
from asof.eventlog.layout import SHARED_MARKER, WAL_FILE, Layout, file_of
from asof.eventlog.segment import SegmentRef, check_file
from asof.eventlog.wal import decode_payload, scan_file


def referenced(layout: Layout) -> set[str]:
    """Every shared file some manifest names; CorruptionError if a manifest is unreadable."""
    refs: set[str] = set()
    for log_id in layout.log_ids():
        m = mf.read(layout.manifest_path(log_id))
        refs.update(file_of(s.path) for s in m.segments)  # a rotated WAL: any part of it
        refs.update(c.path for c in m.checkpoints)
    return refs


def collect_garbage(layout: Layout, pending: Callable[[], Collection[str]]) -> list[str]:
    """Delete unreferenced shared files and leftover temporary or trash log directories.

    `pending` holds files being written whose manifest entry is not yet durable (and, by
    prefix, their sidecars such as a DuckDB file's .wal); it is asked after the candidates are
    listed and before manifests are read, so a listed file is either pending or in a manifest.
    Raises CorruptionError, deleting nothing, if any manifest cannot be read.
    """
    candidates = [f for d in layout.shared_dirs() for f in sorted(d.iterdir()) if f.is_file()]
    waiting = tuple(pending())
    keep = referenced(layout)
    removed: list[str] = []
    for path in candidates:
        rel = layout.relative(path)
        if path.name == SHARED_MARKER or rel in keep or rel.startswith(waiting):
            continue
        path.unlink(missing_ok=True)
        removed.append(rel)
    for leftover in sorted(layout.logs.iterdir()):
        if leftover.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
            remove_quietly(leftover)
            removed.append(layout.relative(leftover))
    return removed


def verify(layout: Layout, log_ids: Iterable[str]) -> list[str]:
    """Human-readable problems of the given logs; never raises for damaged files."""
    problems: list[str] = []
    checked: dict[str, str | None] = {}  # shared files are checked once

    for name in log_ids:
        directory = layout.log_dir(name)
        if not directory.is_dir():
            problems.append(f"log {name} does not exist")
            continue
        try:
            m = mf.read(layout.manifest_path(name))
        except LogError as exc:
            problems.append(f"log {name}: {exc}")
        else:
            files = [
                (s.path, s.size, s.crc32, "segment")
                for s in m.segments
                if not walseg.is_virtual(s.path)
            ]
            files += [(c.path, c.size, c.checksum, "checkpoint") for c in m.checkpoints]
            rotated: dict[str, list[SegmentRef]] = {}
            for s in m.segments:
                if walseg.is_virtual(s.path):
                    rotated.setdefault(file_of(s.path), []).append(s)
            for path, refs in rotated.items():
                key = f"{path}#{sorted(r.path for r in refs)}"  # each log's references
                if key not in checked:
                    checked[key] = walseg.check(layout.resolve(path), path, refs)
                if checked[key] is not None:
                    problems.append(f"log {name}: {checked[key]}")
            for path, size, crc, what in files:
                if path not in checked:
                    try:
                        checked[path] = check_file(layout.resolve(path), size, crc, what, path)
                    except ValueError as exc:
                        checked[path] = f"{what} {path}: {exc}"
                if checked[path] is not None:
                    problems.append(f"log {name}: {checked[path]}")
        problems += [f"log {name}: {p}" for p in verify_wal(directory / WAL_FILE)]
    return problems


def verify_wal(path: Path) -> list[str]:
    try:
        found = scan_file(path)
    except OSError as exc:
        return [f"WAL {path} cannot be read: {exc}"]
    problems = [p for p in [found.problem(path)] if p is not None]
    for frame in found.frames:
        try:
            decode_payload(frame.payload, path)
        except CorruptionError as exc:
            problems.append(f"{exc} (offset {frame.offset})")
    return problems


def remove_quietly(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
