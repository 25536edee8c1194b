"""`CHECKPOINT` and `FORCE CHECKPOINT`: in DuckDB they fold its WAL into the database file;
in asof the log is the database, and the statement writes one of asof's own checkpoints of
it (what `Cluster.checkpoint` writes): a clone made after it starts from that file, and a
rebuild replays only what came after. One that has nothing new to hold writes nothing.
"""

from __future__ import annotations

from asof.projections.checkpoint import write_checkpoint
from asof.projections.live import DatabaseRuntime
from asof.queryapi.errors import OperationalError, ProgrammingError
from asof.queryapi.result import Result
from asof.queryapi.sql.statements import Statement, read_name, skip_words


def is_checkpoint(st: Statement) -> bool:
    return (
        st.type == "CALL"
        and skip_words(st.tokens, 0, "FORCE") < len(st.tokens)
        and (st.tokens[skip_words(st.tokens, 0, "FORCE")].upper == "CHECKPOINT")
    )


def checkpoint(rt: DatabaseRuntime, st: Statement, *, has_changes: bool) -> Result:
    """Run the statement for the database behind `rt`; `has_changes` says the caller's
    open transaction wrote (DuckDB refuses a checkpoint then, and so does asof)."""
    i = skip_words(st.tokens, 0, "FORCE") + 1
    if i < len(st.tokens):
        name, _ = read_name(st.tokens, i)
        if name.name.lower() != rt.name.lower() or len(name.parts) > 1:
            raise ProgrammingError(
                f"Catalog Error: Database with name {name.name} does not exist; CHECKPOINT "
                f"names only its own database ({rt.name!r})"
            )
    if has_changes:
        raise OperationalError(
            "TransactionContext Error: Cannot CHECKPOINT: the current transaction has "
            "transaction local changes"
        )
    rt.promote()  # a checkpoint is written from a projection file's own instance
    cur = rt.cursor()
    try:
        write_checkpoint(cur, rt.store, rt.recorder)
    finally:
        cur.close()
    return Result.empty()
