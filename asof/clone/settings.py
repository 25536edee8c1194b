"""Cluster flags and snapshot schedules, folded from catalog events."""

from __future__ import annotations

from typing import Any

import attrs

SET_FLAG = "set_flag"
CREATE_SCHEDULE = "create_snapshot_schedule"
DELETE_SCHEDULE = "delete_snapshot_schedule"

#: Flags and their defaults. enable_db_clone turns cloning on and off at run time.
FLAG_DEFAULTS: dict[str, Any] = {"enable_db_clone": True}

#: History kept for AS OF and clones when a database has no snapshot schedule (7 days).
DEFAULT_RETENTION_MINUTES = 7 * 24 * 60


def parse_flag(name: str, value: Any) -> Any:
    """A flag value from its text (CLI) or Python form; ValueError when it does not fit."""
    if name not in FLAG_DEFAULTS:
        raise KeyError(name)
    default = FLAG_DEFAULTS[name]
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "on", "yes"):
            return True
        if text in ("false", "0", "off", "no"):
            return False
        raise ValueError(f"{name} takes true or false, not {value!r}")
    return type(default)(value)


@attrs.frozen
class SnapshotSchedule:
    """Write a checkpoint every `interval_minutes`; keep `retention_minutes` of history."""

    schedule_id: str
    db_id: str
    interval_minutes: int
    retention_minutes: int
    created: int  # µs

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.schedule_id,
            "database_id": self.db_id,
            "interval_minutes": self.interval_minutes,
            "retention_minutes": self.retention_minutes,
        }


class Settings:
    def __init__(self) -> None:
        self.flags: dict[str, Any] = dict(FLAG_DEFAULTS)
        self.schedules: dict[str, SnapshotSchedule] = {}

    def handlers(self) -> dict[str, Any]:
        return {
            SET_FLAG: self._on_flag,
            CREATE_SCHEDULE: self._on_schedule,
            DELETE_SCHEDULE: self._on_delete_schedule,
        }

    def _on_flag(self, data, txn) -> None:
        self.flags[data["name"]] = data["value"]

    def _on_schedule(self, data, txn) -> None:
        self.schedules[data["schedule_id"]] = SnapshotSchedule(
            data["schedule_id"],
            data["db_id"],
            data["interval_minutes"],
            data["retention_minutes"],
            txn.ts.physical,
        )

    def _on_delete_schedule(self, data, txn) -> None:
        self.schedules.pop(data["schedule_id"], None)

    def schedules_for(self, db_id: str) -> list[SnapshotSchedule]:
        return [s for s in self.schedules.values() if s.db_id == db_id]

    def retention_minutes(self, db_id: str) -> int:
        own = self.schedules_for(db_id)
        return max((s.retention_minutes for s in own), default=DEFAULT_RETENTION_MINUTES)
