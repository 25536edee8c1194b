"""The cluster-level log folded into the catalog of databases.

CREATE/DROP DATABASE (and clone operations, schedules and flags) are events in their own
log, so the catalog, like everything else, is a projection that can be rebuilt.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from asof.clone.operations import CloneLedger
from asof.clone.settings import Settings
from asof.clone.users import Users
from asof.eventlog.errors import LogError
from asof.eventlog.events import Event, Transaction
from asof.eventlog.hlc import HybridClock, Timestamp
from asof.eventlog.recorder import Recorder, Store

CATALOG_LOG_ID = "catalog"

CREATE_DATABASE = "create_database"
DROP_DATABASE = "drop_database"


@attrs.frozen
class DatabaseRecord:
    """One database: a stable id (used for files) and the name users call it by."""

    db_id: str
    name: str
    created: Timestamp
    source_id: str | None = None  # set for clones
    as_of: int | None = None  # the clone's restore time, µs


class Catalog:
    """Databases by name; every change is appended to the catalog log first."""

    def __init__(self, recorder: Recorder, clock: HybridClock) -> None:
        self.recorder = recorder
        self.clock = clock
        #: (source id, seq_no) -> (CloneRecord, message): aborts to finish (cloner.py)
        self.unfinished_aborts: dict[tuple[str, int], tuple[Any, str]] = {}
        #: Held while a change is decided and appended, so that checks (a name is free, no
        #: clone of the source is running) and the change they allow are one step.
        self.lock = threading.RLock()
        self._by_id: dict[str, DatabaseRecord] = {}
        self._dropped: dict[str, DatabaseRecord] = {}
        self.clones = CloneLedger()
        self.settings = Settings()
        self.users = Users()
        self.handlers: dict[str, Any] = {
            CREATE_DATABASE: self._on_create,
            DROP_DATABASE: self._on_drop,
            **self.clones.handlers(),
            **self.settings.handlers(),
            **self.users.handlers(),
        }
        self.listeners: list[Any] = []

    def load(self) -> None:
        """Fold the whole catalog log (it is small: one event per catalog change)."""
        for txn in self.recorder.transactions():
            self._fold(txn)

    def require_known_logs(self, store: Store) -> None:
        """Raise CorruptionError naming the catalog's WAL when a log the catalog has never
        heard of proves that the catalog lost committed transactions.

        A log is created before the catalog records its database, so a crash can leave an
        empty one behind; but a log holding transactions, or forked from another (a fork
        follows a recorded `clone_started`), was known to the catalog once.
        """
        log_ids = getattr(store, "log_ids", None)
        if log_ids is None:
            return
        with self.lock:
            known = {CATALOG_LOG_ID, *self._by_id, *self._dropped, *self.clones.target_ids()}
        for log_id in log_ids():
            if log_id in known:
                continue
            try:
                rec = store.open(log_id)
                evidence = "was forked from another log" if rec.lineage else None
                if evidence is None and rec.head() is not None:
                    evidence = "holds committed transactions"
                rec.close()
            except LogError:
                continue  # a damaged stray log proves nothing; `check` reports it
            if evidence is not None:
                raise self.recorder.refuse(
                    f"log {log_id}, which no database in the catalog owns, {evidence}: the "
                    "catalog recorded its database once"
                )

    def _fold(self, txn: Transaction) -> None:
        for event in txn.events:
            handler = self.handlers.get(event.kind)
            if handler is not None:
                handler(event.data, txn)
            for listener in self.listeners:
                listener(event, txn)

    def append(self, events: Sequence[Event], sql: str | None = None) -> Transaction:
        """Durably record catalog events, then fold them in."""
        with self.lock:
            txn = self.recorder.append(list(events), ts=self.clock.now(), sql=sql)
            self._fold(txn)
            return txn

    # -------------------------------------------------------------- folding
    def _on_create(self, data: Mapping[str, Any], txn: Transaction) -> None:
        self._by_id[data["db_id"]] = DatabaseRecord(
            data["db_id"], data["name"], txn.ts, data.get("source_id"), data.get("as_of")
        )

    def _on_drop(self, data: Mapping[str, Any], txn: Transaction) -> None:
        rec = self._by_id.pop(data["db_id"], None)
        if rec is not None:
            self._dropped[rec.db_id] = rec

    # -------------------------------------------------------------- queries
    def get(self, name: str) -> DatabaseRecord | None:
        with self.lock:
            for rec in self._by_id.values():
                if rec.name.lower() == name.lower():
                    return rec
        return None

    def by_id(self, db_id: str) -> DatabaseRecord | None:
        with self.lock:
            return self._by_id.get(db_id) or self._dropped.get(db_id)

    def live(self) -> list[DatabaseRecord]:
        with self.lock:
            return sorted(self._by_id.values(), key=lambda r: r.created)

    def dropped(self) -> list[DatabaseRecord]:
        with self.lock:
            return list(self._dropped.values())

    # ------------------------------------------------------------- changes
    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def create_event(
        self, name: str, db_id: str, source_id: str | None = None, as_of: int | None = None
    ) -> Event:
        data: dict[str, Any] = {"db_id": db_id, "name": name}
        if source_id is not None:
            data["source_id"] = source_id
            data["as_of"] = as_of
        return Event(CREATE_DATABASE, None, 0, data)

    @staticmethod
    def drop_event(rec: DatabaseRecord) -> Event:
        return Event(DROP_DATABASE, None, 0, {"db_id": rec.db_id, "name": rec.name})
