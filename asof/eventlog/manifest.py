"""The manifest of one log: which shared files make up its sealed history.

It is a small JSON file replaced atomically on every seal, checkpoint and fork. It carries
a crc32 of its own content, and is written in one canonical form so that any changed byte,
even one JSON would parse the same, is detected on read.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from asof.eventlog.errors import CorruptionError, LogError, LogIOError
from asof.eventlog.events import TransactionInfo
from asof.eventlog.fsutil import atomic_write
from asof.eventlog.hlc import Timestamp
from asof.eventlog.layout import FRAGMENT
from asof.eventlog.recorder import CheckpointRef, Lineage
from asof.eventlog.segment import SegmentRef

#: Format 1 has no fold; format 2 is written only for folded logs, so that code predating
#: compaction refuses them instead of reading folded-away rows of inherited segments.
FORMAT = 1
FOLDED_FORMAT = 2
#: Format 3 is written only for manifests naming parts of rotated WAL files (walseg.py), so
#: that code predating them refuses the log instead of reading (or collecting) them wrongly.
ROTATED_FORMAT = 3


@attrs.frozen
class Manifest:
    """The sealed state of one log.

    segments: in txn order; inherited ones (from the fork source) first.
    checkpoints: inherited ones first, then this log's own, oldest first.
    last_sealed_txn: the newest txn the segments hold (as capped); WAL frames at or below
    it were sealed before a crash cut the WAL truncation short and are skipped. Compaction
    keeps it too, so numbering continues when every transaction was folded.
    inherited_txn: the newest txn a fork inherited (0 for a root log). Segments starting at
    or before it are the source's files, which compaction never rewrites.
    folded_txn, folded_ts, folded_sql: the fold point (0, None, None when nothing was folded):
    transactions up to it were left out by compaction, a checkpoint at it holds their state.
    """

    log_id: str
    lineage: tuple[Lineage, ...] = ()
    segments: tuple[SegmentRef, ...] = ()
    checkpoints: tuple[CheckpointRef, ...] = ()
    last_sealed_txn: int = 0
    inherited_txn: int = 0
    folded_txn: int = 0
    folded_ts: Timestamp | None = None
    folded_sql: str | None = None

    @property
    def folded(self) -> TransactionInfo | None:
        """The fold transaction's header, or None when nothing was folded."""
        if self.folded_ts is None:
            return None
        return TransactionInfo(self.folded_txn, self.folded_ts, self.folded_sql)

    def forked(self, target_id: str, until: int) -> Manifest:
        """A fork's manifest at `until` (µs), before its last_sealed_txn / inherited_txn are
        known (they need a segment read). It inherits the fold point too.

        Raises LogError if compaction folded away the history up to `until`.
        """
        if self.folded_ts is not None and self.folded_ts.physical > until:
            raise LogError(
                f"log {self.log_id} has no history before {self.folded_ts.physical} µs: "
                "compaction folded it"
            )
        return attrs.evolve(
            self,
            log_id=target_id,
            lineage=(Lineage(self.log_id, until), *self.lineage),
            segments=tuple(s.capped(until) for s in self.segments if s.visible_at(until)),
            checkpoints=tuple(c for c in self.checkpoints if c.ts.physical <= until),
            last_sealed_txn=0,
            inherited_txn=0,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "log_id": self.log_id,
            "lineage": [{"source_id": x.source_id, "until": x.until} for x in self.lineage],
            "segments": [s.to_json() for s in self.segments],
            "checkpoints": [_checkpoint_json(c) for c in self.checkpoints],
            "last_sealed_txn": self.last_sealed_txn,
            "inherited_txn": self.inherited_txn,  # older readers ignore it harmlessly
        }
        if any(FRAGMENT in s.path for s in self.segments):
            data["format"] = ROTATED_FORMAT
        if self.folded_ts is not None:
            data["format"] = max(data["format"], FOLDED_FORMAT)
            data["folded_txn"] = self.folded_txn
            data["folded_ts"] = [self.folded_ts.physical, self.folded_ts.logical]
            data["folded_sql"] = self.folded_sql
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        if data["format"] not in (FORMAT, FOLDED_FORMAT, ROTATED_FORMAT):
            raise ValueError(f"unsupported manifest format {data['format']!r}")
        lineage = tuple(Lineage(x["source_id"], x["until"]) for x in data["lineage"])
        last_sealed = data["last_sealed_txn"]
        # Manifests predating inherited_txn: a fork's segments then count as inherited, so
        # compaction conservatively leaves them all as they are.
        inherited = data.get("inherited_txn", last_sealed if lineage else 0)
        folded_ts = data.get("folded_ts")
        return cls(
            log_id=data["log_id"],
            lineage=lineage,
            segments=tuple(SegmentRef.from_json(s) for s in data["segments"]),
            checkpoints=tuple(_checkpoint_from_json(c) for c in data["checkpoints"]),
            last_sealed_txn=last_sealed,
            inherited_txn=inherited,
            folded_txn=data.get("folded_txn", 0),
            folded_ts=None if folded_ts is None else Timestamp(*folded_ts),
            folded_sql=data.get("folded_sql"),
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


#: The checksum's own line in a canonical manifest: a top-level key (indented by one space;
#: newlines inside values are escaped, so this text appears nowhere else).
_CHECKSUM_LINE = re.compile(rb'\n "checksum": (\d+),')


def _checks_out(raw: bytes) -> bool:
    """Whether `raw` is the canonical encoding its checksum was computed on.

    Without its checksum line the file is exactly the canonical encoding the checksum
    covers, so the bytes themselves can be checked; re-encoding (the JSON encoder in pure
    Python, since it indents) cost ~17 ms for a manifest of 400 segments.
    """
    found = _CHECKSUM_LINE.search(raw)
    if found is not None and _CHECKSUM_LINE.search(raw, found.end()) is None:
        body = raw[: found.start()] + raw[found.end() :]
        return zlib.crc32(body) == int(found.group(1))
    data = json.loads(raw)
    checksum = data.pop("checksum")
    return zlib.crc32(_canonical(data)) == checksum and (
        _canonical({**data, "checksum": checksum}) == raw
    )


def decode(raw: bytes, path: Path) -> Manifest:
    """Parse and check a manifest; CorruptionError naming `path` when anything is off."""
    try:
        ok = _checks_out(raw)
        data = json.loads(raw) if ok else {}
        ok = ok and isinstance(data.pop("checksum", None), int)
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
