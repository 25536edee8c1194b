"""Transaction control as the user writes it: which statement, which state, which message.

The session (session.py) keeps one of three states, the ones a PostgreSQL client library
reports and a psql-like prompt shows:

* idle: no transaction open; every statement commits on its own;
* in transaction: after BEGIN. Reads see the snapshot taken at the first read; the write
  lock is taken only at the first write, which fails with SerializationError if the
  transaction read and anything was committed since its snapshot (the write could
  otherwise lose that update);
* failed: a statement inside the transaction failed. Its work is already rolled back and
  every statement but ROLLBACK is refused (COMMIT rolls back and says so), as in DuckDB
  and PostgreSQL.
"""

from __future__ import annotations

import attrs

from asof.queryapi.errors import (
    AsofError,
    InFailedTransactionError,
    NoActiveTransactionError,
    NotSupportedError,
    ReadOnlyError,
    SerializationError,
)
from asof.queryapi.sql.statements import Statement

IDLE = "idle"
IN_TRANSACTION = "in transaction"
FAILED = "failed"


@attrs.frozen
class Control:
    """BEGIN [TRANSACTION] [READ ONLY | READ WRITE], COMMIT/END, ROLLBACK/ABORT [WORK]."""

    verb: str  # "begin", "commit" or "rollback"
    read_only: bool = False


_VERBS = {
    "BEGIN": "begin",
    "START": "begin",
    "COMMIT": "commit",
    "END": "commit",
    "ROLLBACK": "rollback",
    "ABORT": "rollback",
}


def parse_control(st: Statement) -> Control:
    """The transaction statement `st` (DuckDB's parser already accepted its syntax)."""
    verb = _VERBS.get(st.kw(0))
    if verb is None:
        raise NotSupportedError(f"transaction statement {st.kw(0)} is not supported")
    words = [t.upper for t in st.tokens[1:]]
    if verb != "begin":
        return Control(verb)
    return Control(verb, read_only=words[-2:] == ["READ", "ONLY"])


def no_transaction(verb: str) -> NoActiveTransactionError:
    word = verb.upper()
    return NoActiveTransactionError(
        f"cannot {verb} - no transaction is active; {word} ends a transaction that BEGIN "
        "started (statements outside one commit on their own)"
    )


def refused_in_failed(cause: str) -> InFailedTransactionError:
    return InFailedTransactionError(
        "current transaction is aborted, statements are refused until ROLLBACK (it failed "
        f"on: {cause}); nothing of it will be committed"
    )


def commit_of_failed(cause: str) -> InFailedTransactionError:
    return InFailedTransactionError(
        f"COMMIT rolled the transaction back instead: it had failed (on: {cause}); nothing "
        "of it was committed and no transaction is open now",
        rolled_back=True,
    )


def already_open() -> AsofError:
    return InFailedTransactionError(
        "a transaction is already open; COMMIT or ROLLBACK it first (this transaction has "
        "now failed, as in DuckDB: ROLLBACK it)"
    )


def read_only_write(kind: str) -> ReadOnlyError:
    return ReadOnlyError(
        f"cannot execute {kind} in a read-only transaction (BEGIN ... READ ONLY); COMMIT or "
        "ROLLBACK it and begin one without READ ONLY to write"
    )


def stale_snapshot(snapshot_txn: int, head_txn: int) -> SerializationError:
    return SerializationError(
        "could not serialize access: this transaction reads the snapshot taken at its first "
        "read "
        f"(transaction {snapshot_txn}), and {head_txn - snapshot_txn} transaction(s) "
        "committed since, so its first write could overwrite what it did not see; ROLLBACK "
        "and retry the transaction (write first, or retry on SerializationError)"
    )


def failed_tail() -> str:
    return "; the transaction has failed and nothing of it will be committed: ROLLBACK it"


def with_message(err: AsofError, message: str) -> AsofError:
    """`err` with its message replaced, keeping its class and attributes."""
    err.args = (message,)
    return err


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "statements 1-3, 5"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
    return f"statement {text}" if len(numbers) == 1 else f"statements {text}"


def describe_batch(
    err: AsofError,
    failed: int,
    total: int,
    committed: list[int],
    pending: list[int],
    *,
    still_open: bool,
) -> AsofError:
    """Say where a multi-statement string stopped: statement `failed` (1-based) of
    `total`, which statements took effect (`committed`), and which belong to the open
    transaction that has now failed (`pending`)."""
    parts = [f"statement {failed} of {total} failed: {err}"]
    if committed:
        parts.append(f"{_ranges(committed)} took effect (committed)")
    else:
        parts.append("no statement of the string took effect")
    if pending:
        where = "are in the failed transaction" if still_open else "were rolled back"
        parts.append(f"{_ranges(pending)} {where}")
    if failed < total:
        parts.append(f"{_ranges(list(range(failed + 1, total + 1)))} did not run")
    return with_message(err, "; ".join(parts))
