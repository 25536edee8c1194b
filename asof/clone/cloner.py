"""Creating a clone: metadata only, and all or nothing.

A clone is a new log forked from its source's log at the restore time (sharing the source's
immutable files) plus a catalog entry. Nothing is copied, so its cost does not grow with the
source's size. Any failure aborts the operation, removes what it made, and says why.
"""

from __future__ import annotations

from collections.abc import Callable

from asof.clone.catalog import Catalog, DatabaseRecord
from asof.clone.errors import CloneDisabled, CloneFailed, CloneInProgress, NameTaken
from asof.clone.operations import (
    CLONE_ABORTED,
    CLONE_COMPLETED,
    CLONE_STARTED,
    CloneRecord,
    started,
)
from asof.eventlog.events import Event
from asof.eventlog.recorder import Store


def clone_database(
    catalog: Catalog,
    store: Store,
    source: DatabaseRecord,
    target_name: str,
    restore_time: int,
    *,
    cleanup: Callable[[str], None] | None = None,
) -> CloneRecord:
    """Fork `source` as of `restore_time` (µs) into a new database called `target_name`."""
    if not catalog.settings.flags.get("enable_db_clone", True):
        raise CloneDisabled(
            "database cloning is turned off; turn it on with "
            "cluster.set_flag('enable_db_clone', True) or `asof set_flag enable_db_clone true`"
        )
    with catalog.lock:
        _finish_aborts(catalog, store, cleanup)
        running = catalog.clones.running(source.db_id)
        if running is not None:
            raise CloneInProgress(
                f"clone {running.seq_no} of {source.name!r} (into {running.target_name!r}) is "
                "still running; wait for it to finish, then retry"
            )
        if catalog.get(target_name) is not None:
            raise NameTaken(f"database {target_name!r} already exists; choose another name")
        rec = CloneRecord(
            source.db_id,
            catalog.clones.next_seq_no(source.db_id),
            target_name,
            catalog.new_id(),
            restore_time,
        )
        catalog.append(
            [Event(CLONE_STARTED, None, 0, started(rec))],
            sql=f"CREATE DATABASE {target_name} TEMPLATE {source.name} AS OF {restore_time}",
        )
    try:
        store.fork(source.db_id, rec.target_id, until=restore_time)
        catalog.append(
            [
                catalog.create_event(target_name, rec.target_id, source.db_id, restore_time),
                Event(CLONE_COMPLETED, None, 0, {"source_id": rec.source_id, "seq_no": rec.seq_no}),
            ]
        )
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        try:
            abort(catalog, store, rec, message, cleanup)
        except Exception:  # the disk that failed the clone failed its cleanup: retry later
            catalog.unfinished_aborts[(rec.source_id, rec.seq_no)] = (rec, message)
        raise CloneFailed(
            f"cloning {source.name!r} into {target_name!r} failed and was rolled back "
            f"({message}); nothing was created"
        ) from exc
    return catalog.clones.list(rec.source_id, rec.seq_no)[0]


def _finish_aborts(catalog: Catalog, store: Store, cleanup: Callable[[str], None] | None) -> None:
    """Retry the aborts whose cleanup failed before the next clone starts: a clone that
    failed on a bad disk must not stay CREATING, which would refuse every later clone of
    its source until a restart."""
    pending = catalog.unfinished_aborts
    for key, (rec, message) in list(pending.items()):
        abort(catalog, store, rec, message, cleanup)  # raises while the disk still fails
        del pending[key]


def abort(
    catalog: Catalog,
    store: Store,
    rec: CloneRecord,
    message: str,
    cleanup: Callable[[str], None] | None = None,
) -> None:
    """Remove whatever a failed clone made and record it as ABORTED."""
    try:
        if store.exists(rec.target_id):
            store.drop(rec.target_id)
    finally:
        if cleanup is not None:
            cleanup(rec.target_id)
        catalog.append(
            [
                Event(
                    CLONE_ABORTED,
                    None,
                    0,
                    {"source_id": rec.source_id, "seq_no": rec.seq_no, "message": message},
                )
            ]
        )


def recover_interrupted(
    catalog: Catalog, store: Store, cleanup: Callable[[str], None] | None = None
) -> None:
    """On open: clones that were CREATING when the process died are aborted and cleaned."""
    for rec in catalog.clones.interrupted():
        if catalog.by_id(rec.target_id) is not None:  # creation landed; completion did not
            catalog.append(
                [
                    Event(
                        CLONE_COMPLETED, None, 0, {"source_id": rec.source_id, "seq_no": rec.seq_no}
                    )
                ]
            )
            continue
        abort(catalog, store, rec, "interrupted: the process stopped while cloning", cleanup)
