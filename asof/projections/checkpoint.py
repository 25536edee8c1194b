"""Checkpoints: immutable DuckDB files holding a database's whole projected state at one
transaction. State at T = nearest checkpoint C <= T plus the events in (C, T]."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from asof.eventlog.fsutil import file_crc32, fsync_dir
from asof.eventlog.recorder import CheckpointRef, Recorder, Store
from asof.projections.apply import applied
from asof.projections.naming import STORAGE_SCHEMA, quote_ident, quote_literal, storage_table
from asof.projections.versions import history_tables

_ALIAS = "_asof_checkpoint"


def write_checkpoint(
    con: duckdb.DuckDBPyConnection, store: Store, recorder: Recorder
) -> CheckpointRef | None:
    """Copy the projection behind `con` into a new checkpoint file and register it.

    `con` must be a cursor with no open transaction; the copy reads one consistent snapshot.
    Returns None when the projection is empty or already checkpointed at its last txn.
    """
    con.execute("BEGIN TRANSACTION")
    path: Path | None = None
    attached = registering = False
    try:
        info = applied(con)
        existing = recorder.checkpoints()
        if info is None or (existing and existing[-1].txn_id >= info.txn_id):
            con.execute("ROLLBACK")
            return None
        path = store.new_file_path("checkpoints", ".duckdb")
        # DuckDB keys attached files by path, process-wide, and a read-write attach may
        # outlive its DETACH while anything still pins it; a later read-only ATTACH of the
        # same path then waits on it (forever, in 2.0). So the file is written under a
        # name nothing will ever attach again and gets its real name once it is whole.
        writing = path.with_name(path.name + ".writing")
        source = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH {quote_literal(str(writing))} AS {_ALIAS}")
        attached = True
        con.execute(f"COPY FROM DATABASE {quote_ident(source)} TO {_ALIAS}")
        _materialize_lazy_tables(con, _ALIAS)
        # The projection's "build finished" mark belongs to that file, not to its copies;
        # so do its row versions (a state built from a checkpoint starts without any).
        con.execute(f"DROP TABLE IF EXISTS {_ALIAS}.{STORAGE_SCHEMA}.complete")
        drop_versions(con, _ALIAS)
        con.execute("COMMIT")
        # Fold DuckDB's WAL into the file now: a deferred close must have nothing to write.
        con.execute(f"CHECKPOINT {_ALIAS}")
        con.execute(f"DETACH {_ALIAS}")
        attached = False
        if os.path.exists(str(writing) + ".wal"):
            raise OSError(f"checkpoint {writing} kept a DuckDB WAL after CHECKPOINT")
        os.replace(writing, path)
        size, checksum = _fsync_and_checksum(path)
        ref = CheckpointRef(store.relative(path), info.txn_id, info.ts, size, checksum)
        registering = True  # the manifest on disk may name the file from here on
        recorder.add_checkpoint(ref)
    except BaseException:
        # Unless a manifest may name it, remove the file (gc would too), so a full disk
        # gets its space back and the next attempt starts clean.
        for statement in ("ROLLBACK", f"DETACH {_ALIAS}" if attached else None):
            if statement is None:
                continue
            try:
                con.execute(statement)
            except duckdb.Error:
                pass
        if path is not None and not registering:
            writing = path.with_name(path.name + ".writing")
            for p in (path, writing, writing.with_name(writing.name + ".wal")):
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass
        raise
    return ref


def _materialize_lazy_tables(con: duckdb.DuckDBPyConnection, target: str) -> None:
    """A checkpoint must stand alone: copy tables a clone still reads from its base."""
    from asof.projections.lazy import BASES_TABLE, LAZY_TABLE, base_ddl, delta_table

    qualifier = f"{target}.{STORAGE_SCHEMA}"
    for table_id, alias in con.execute(f"SELECT table_id, alias FROM {LAZY_TABLE}").fetchall():
        con.execute(f"DROP VIEW {target}.{storage_table(table_id)}")
        con.execute(f"DROP TABLE IF EXISTS {target}.{delta_table(table_id)}")
        create, *indexes = base_ddl(con, alias, table_id, f"t{table_id}", qualifier)
        con.execute(create)
        con.execute(
            f"INSERT INTO {target}.{storage_table(table_id)} SELECT * FROM {storage_table(table_id)}"
        )
        for sql in indexes:
            con.execute(sql)
    con.execute(f"DELETE FROM {target}.{LAZY_TABLE}")
    con.execute(f"DELETE FROM {target}.{BASES_TABLE}")


def _fsync_and_checksum(path: Path) -> tuple[int, int]:
    """Make the new checkpoint durable (file and directory entry), then checksum it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return file_crc32(path)


def verify_checkpoint(store: Store, ref: CheckpointRef) -> str | None:
    """A description of what is wrong with a checkpoint file, or None when it is intact."""
    path = store.resolve(ref.path)
    if not path.exists():
        return f"checkpoint {ref.path} is missing"
    if file_crc32(path)[1] != ref.checksum:
        return f"checkpoint {ref.path} fails its checksum"
    return None


def nearest_checkpoint(recorder: Recorder, until: int | None) -> CheckpointRef | None:
    refs = recorder.checkpoints(until=until)
    return refs[-1] if refs else None


def drop_versions(con: duckdb.DuckDBPyConnection, target: str) -> None:
    """Drop the history tables of the database `target`."""
    for table in history_tables(con, target):
        con.execute(f"DROP TABLE {target}.{table}")
