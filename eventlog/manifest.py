"""The manifest of one log: which shared files make up its sealed history.

It is a small JSON file replaced atomically on every seal, checkpoint and fork. It carries
a crc32 of its own content, and is written in one canonical form so that any changed byte,
even one JSON would parse the same, is detected on read.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from eventlog.errors import CorruptionError, LogIOError
from eventlog.fsutil import atomic_write
from eventlog.hlc import Timestamp
from eventlog.recorder import CheckpointRef, Lineage
from eventlog.segment import SegmentRef

FORMAT = 1


@attrs.frozen
class Manifest:
    """The sealed state of one log.

    segments: in txn order; inherited ones (from the fork source) first.
    checkpoints: inherited ones first, then this log's own, oldest first.
    last_sealed_txn: the newest txn the segments hold (as capped); WAL frames at or below
    it were sealed before a crash cut the WAL truncation short and are skipped.
    """

    log_id: str
    lineage: tuple[Lineage, ...] = ()
    segments: tuple[SegmentRef, ...] = ()
    checkpoints: tuple[CheckpointRef, ...] = ()
    last_sealed_txn: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "log_id": self.log_id,
            "lineage": [{"source_id": x.source_id, "until": x.until} for x in self.lineage],
            "segments": [s.to_json() for s in self.segments],
            "checkpoints": [_checkpoint_json(c) for c in self.checkpoints],
            "last_sealed_txn": self.last_sealed_txn,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        if data["format"] != FORMAT:
            raise ValueError(f"unsupported manifest format {data['format']!r}")
        return cls(
            log_id=data["log_id"],
            lineage=tuple(Lineage(x["source_id"], x["until"]) for x in data["lineage"]),
            segments=tuple(SegmentRef.from_json(s) for s in data["segments"]),
            checkpoints=tuple(_checkpoint_from_json(c) for c in data["checkpoints"]),
            last_sealed_txn=data["last_sealed_txn"],
        )


def _checkpoint_json(ref: CheckpointRef) -> dict[str, Any]:
    return {
        "path": ref.path,
        "txn_id": ref.txn_id,
        "ts": [ref.ts.physical, ref.ts.logical],
        "size": ref.size,
        "checksum": ref.checksum,
    }


def _checkpoint_from_json(data: Mapping[str, Any]) -> CheckpointRef:
    physical, logical = data["ts"]
    return CheckpointRef(
        data["path"], data["txn_id"], Timestamp(physical, logical), data["size"], data["checksum"]
    )


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, indent=1).encode() + b"\n"


def encode(manifest: Manifest) -> bytes:
    body = manifest.to_json()
    return _canonical({**body, "checksum": zlib.crc32(_canonical(body))})


def decode(raw: bytes, path: Path) -> Manifest:
    """Parse and check a manifest; CorruptionError naming `path` when anything is off."""
    try:
        data = json.loads(raw)
        checksum = data.pop("checksum")
        ok = zlib.crc32(_canonical(data)) == checksum
        ok = ok and _canonical({**data, "checksum": checksum}) == raw
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise CorruptionError(f"manifest {path} fails its checksum", str(path))
    try:
        return Manifest.from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptionError(f"manifest {path} does not decode: {exc}", str(path)) from exc


def read(path: Path) -> Manifest:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptionError(f"manifest {path} is missing", str(path)) from None
    except OSError as exc:
        raise LogIOError(f"manifest {path} cannot be read: {exc}") from exc
    return decode(raw, path)


def write(path: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically and durably."""
    atomic_write(path, encode(manifest))
