"""Clone operations: each has a per-source seq_no, a state and a restore time.

States follow the seed: CREATING while it runs, COMPLETE, or ABORTED with a message. The
records are catalog events, so `list_clones` survives restarts and shows failures too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

CLONE_STARTED = "clone_started"
CLONE_COMPLETED = "clone_completed"
CLONE_ABORTED = "clone_aborted"

CREATING = "CREATING"
COMPLETE = "COMPLETE"
ABORTED = "ABORTED"


def format_restore_time(micros: int) -> str:
    """The seed's restore_time format: 2024-08-09 21:42:16.451974 (UTC)."""
    t = dt.datetime.fromtimestamp(micros // 1_000_000, tz=dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S") + f".{micros % 1_000_000:06d}"


@attrs.frozen
class CloneRecord:
    """One clone operation from one source database."""

    source_id: str
    seq_no: int
    target_name: str
    target_id: str
    restore_time: int  # µs
    state: str = CREATING
    abort_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The shape `yb-admin list_clones` prints."""
        out: dict[str, Any] = {
            "aggregate_state": self.state,
            "source_namespace_id": self.source_id,
            "seq_no": str(self.seq_no),
            "target_namespace_name": self.target_name,
            "restore_time": format_restore_time(self.restore_time),
        }
        if self.abort_message is not None:
            out["abort_message"] = self.abort_message
        return out


class CloneLedger:
    """Clone records by source, folded from catalog events."""

    def __init__(self) -> None:
        self.records: dict[str, list[CloneRecord]] = {}

    def handlers(self) -> dict[str, Any]:
        return {
            CLONE_STARTED: self._on_started,
            CLONE_COMPLETED: self._on_completed,
            CLONE_ABORTED: self._on_aborted,
        }

    def _on_started(self, data, txn) -> None:
        rec = CloneRecord(
            data["source_id"],
            data["seq_no"],
            data["target_name"],
            data["target_id"],
            data["restore_time"],
        )
        self.records.setdefault(rec.source_id, []).append(rec)

    def _set(self, data, **changes) -> None:
        recs = self.records.get(data["source_id"], [])
        for i, rec in enumerate(recs):
            if rec.seq_no == data["seq_no"]:
                recs[i] = attrs.evolve(rec, **changes)

    def _on_completed(self, data, txn) -> None:
        self._set(data, state=COMPLETE)

    def _on_aborted(self, data, txn) -> None:
        self._set(data, state=ABORTED, abort_message=data.get("message"))

    def target_ids(self) -> set[str]:
        """The log id of every clone ever started (finished, aborted or running)."""
        return {r.target_id for records in self.records.values() for r in records}

    def next_seq_no(self, source_id: str) -> int:
        return len(self.records.get(source_id, [])) + 1

    def running(self, source_id: str) -> CloneRecord | None:
        for rec in self.records.get(source_id, []):
            if rec.state == CREATING:
                return rec
        return None

    def interrupted(self) -> list[CloneRecord]:
        return [r for recs in self.records.values() for r in recs if r.state == CREATING]

    def list(self, source_id: str, seq_no: int | None = None) -> list[CloneRecord]:
        recs = list(self.records.get(source_id, []))
        if seq_no is not None:
            recs = [r for r in recs if r.seq_no == seq_no]
        return recs


def started(rec: CloneRecord) -> dict[str, Any]:
    return {
        "source_id": rec.source_id,
        "seq_no": rec.seq_no,
        "target_name": rec.target_name,
        "target_id": rec.target_id,
        "restore_time": rec.restore_time,
    }
