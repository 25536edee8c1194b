"""Running one client statement on a database handle, the way PostgreSQL answers it.

The handle (`asof.Database`) runs the SQL; this module adds what a PostgreSQL client
expects around it: command tags, the transaction status byte with its aborted state,
session settings (SET/SHOW), the warnings PostgreSQL gives for a BEGIN inside a
transaction, and routing CREATE/DROP DATABASE to the cluster.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pyarrow as pa

from asof.pgwire import colnames
from asof.pgwire.errors import (
    IN_FAILED_TRANSACTION,
    SERIALIZATION_FAILURE,
    PgError,
    cancelled,
    from_asof,
)
from asof.queryapi import Cluster, Database, Result
from asof.queryapi.errors import AsofError
from asof.queryapi.sql.cluster_sql import is_cluster_statement
from asof.queryapi.sql.statements import Statement, split, tokenize
from asof.queryapi.translate import translate

SERVER_VERSION = "15.0 (asof)"

#: Settings reported to the client at startup and whenever they change (GUC_REPORT).
REPORTED = (
    "application_name",
    "client_encoding",
    "DateStyle",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
)

DEFAULTS = {
    "server_version": SERVER_VERSION,
    "server_version_num": "150000",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "is_superuser": "on",
    "application_name": "",
    "statement_timeout": "0",
    "search_path": '"$user", public',
    "extra_float_digits": "1",
    "transaction_isolation": "serializable",
    "default_transaction_isolation": "serializable",
    "lock_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "max_identifier_length": "63",
    "datestyle": "ISO, MDY",
}

#: Settings whose value the server cannot honour other than as it is.
FIXED = {
    "server_version": None,
    "server_encoding": None,
    "integer_datetimes": None,
    "client_encoding": ("utf8", "utf-8", "unicode"),
    "timezone": ("utc", "etc/utc", "gmt", "z", "zulu", "+00", "0", "00:00", "+00:00"),
    "datestyle": None,
    "standard_conforming_strings": ("on", "true", "1"),
}

_TXN_WORDS = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"}


@attrs.define
class Piece:
    """One statement of a query string, as the client wrote it."""

    sql: str
    words: tuple[str, ...]  # its first keywords, upper-cased

    @property
    def first(self) -> str:
        return self.words[0] if self.words else ""


@attrs.define
class Outcome:
    """What a statement answered: a command tag, rows (with PostgreSQL's column names),
    warnings, or nothing at all for an empty query."""

    tag: str = ""
    result: Result | None = None
    names: tuple[str, ...] | None = None
    empty: bool = False
    notices: list[PgError] = attrs.Factory(list)

    @property
    def has_rows(self) -> bool:
        return self.result is not None


def pieces(sql: str) -> list[Piece]:
    """The statements of a query string, split at top-level semicolons (DuckDB's
    tokenizer knows strings, quoted names and comments)."""
    try:
        tokens = tokenize(sql)
    except AsofError as exc:
        raise from_asof(exc, sql) from None
    out: list[Piece] = []
    start = 0
    words: list[str] = []
    for tok in tokens:
        if tok.kind == "operator" and tok.text == ";":
            text = sql[start : tok.start].strip()
            if text:
                out.append(Piece(text, tuple(words)))
            start = tok.end
            words = []
        elif len(words) < 4 and tok.kind in ("keyword", "identifier"):
            words.append(tok.upper)
        elif len(words) < 4:
            words.append(tok.text.upper())
    text = sql[start:].strip()
    if text and words:
        out.append(Piece(text, tuple(words)))
    return out


class Executor:
    """One connection's statements against one database handle."""

    def __init__(
        self,
        cluster: Cluster,
        db: Database,
        user: str,
        report: Callable[[str, str], None],
    ) -> None:
        self.cluster = cluster
        self.db = db
        self.user = user
        self.settings: dict[str, str] = dict(DEFAULTS)
        self.report = report
        self.failed = False  # in a transaction that failed: everything but ROLLBACK is refused
        #: The client opened a transaction block. The handle's own transaction (which holds
        #: the database's write lock) starts only at the block's first write, so a block
        #: that only reads never makes writers wait.
        self.block = False
        self._block_head: int | None = None  # the newest commit the block's reads saw
        self._state = threading.Lock()
        self._busy = False
        self._cancel_reason: str | None = None
        self.catalog_answer: Callable[[Executor, str], Outcome | None] | None = None

    # ------------------------------------------------------------ state
    @property
    def in_transaction(self) -> bool:
        return self.block or self._handle_in_transaction

    @property
    def _handle_in_transaction(self) -> bool:
        return self.db.transaction_status != "idle"

    def _applied(self) -> int:
        """The newest transaction the database's state holds. Read before a block's first
        read, it is a lower bound of what that read sees (states only move forward)."""
        row = self.db.sql("SELECT applied_txn FROM _asof.state").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @property
    def status(self) -> str:
        if self.failed:
            return "E"
        return "T" if self.in_transaction else "I"

    @property
    def statement_timeout_ms(self) -> int:
        return parse_duration_ms(self.settings.get("statement_timeout", "0"))

    # ----------------------------------------------------------- cancel
    def interrupt(self, reason: str) -> None:
        """Stop the running statement (from another thread): CancelRequest, a timeout.
        A request that comes when nothing runs does nothing, as in PostgreSQL."""
        with self._state:
            if not self._busy:
                return
            self._cancel_reason = reason
            try:
                self.db.session.cur.interrupt()
            except Exception:
                pass

    # -------------------------------------------------------------- run
    def run(self, piece: Piece, params: list[Any] | None = None) -> Outcome:
        """Run one statement; raise PgError when it fails (the transaction is then failed)."""
        first = piece.first
        if self.failed:
            if first in ("ROLLBACK", "ABORT", "COMMIT", "END"):
                self.failed = False
                self.block = False
                self._rollback_quietly()
                return Outcome("ROLLBACK")
            raise PgError(
                IN_FAILED_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            )
        was_open = self.in_transaction
        try:
            return self._run(piece, params)
        except PgError:
            self._fail(was_open and first not in ("COMMIT", "END"))
            raise
        except Exception as exc:
            err = self._error(exc, piece.sql)
            self._fail(was_open and first not in ("COMMIT", "END"))
            raise err from None

    def _error(self, exc: BaseException, sql: str) -> PgError:
        reason, self._cancel_reason = self._cancel_reason, None
        err = from_asof(exc if isinstance(exc, AsofError) else translate(exc), sql)
        if reason is not None and "interrupt" in str(exc).lower():
            return cancelled(reason)
        return err

    def _fail(self, in_block: bool) -> None:
        """A statement failed: inside a transaction block the whole transaction is undone
        and the block stays failed until ROLLBACK, as in PostgreSQL."""
        self.failed = in_block
        if not in_block:
            self.block = False
        self._rollback_quietly()

    def _rollback_quietly(self) -> None:
        try:
            if self.db.session.in_transaction:
                self.db.sql("ROLLBACK")
        except AsofError:
            pass

    def _run(self, piece: Piece, params: list[Any] | None) -> Outcome:
        first = piece.first
        if first in _TXN_WORDS:
            return self._transaction(piece)
        if first in ("SET", "RESET"):
            return self._set(piece)
        if first == "SHOW":
            return self._show(piece)
        if first == "DISCARD" or first == "DEALLOCATE":
            return Outcome(" ".join(piece.words[:2]) if first == "DISCARD" else "DEALLOCATE")
        if self.catalog_answer is not None:
            answered = self.catalog_answer(self, piece.sql)
            if answered is not None:
                return answered
        if is_cluster_statement(piece.sql):
            if self.in_transaction:
                raise PgError("25001", f"{first} DATABASE cannot run inside a transaction block")
            self._guarded(lambda: self.db.sql(piece.sql))
            return Outcome(f"{first} DATABASE")
        stmt = self._statement(piece)
        if self.block and not self._handle_in_transaction:
            self._enter_block(stmt)
        sql = question_marks(stmt.sql) if params else stmt.sql
        result = self._guarded(lambda: self.db.sql(sql, params or None))
        return self._outcome(stmt, piece, result)

    def _guarded(self, fn: Callable[[], Result]) -> Result:
        timeout = self.statement_timeout_ms
        timer = None
        if timeout > 0:
            timer = threading.Timer(timeout / 1000, self.interrupt, ("statement timeout",))
            timer.daemon = True
            timer.start()
        with self._state:
            self._busy = True
        try:
            result = fn()
        finally:
            with self._state:
                self._busy = False
            if timer is not None:
                timer.cancel()
        self._cancel_reason = None
        return result

    def _statement(self, piece: Piece) -> Statement:
        try:
            stmts = split(piece.sql)
        except AsofError as exc:
            raise from_asof(exc, piece.sql) from None
        if len(stmts) != 1:
            raise PgError("42601", "cannot run several statements as one")
        return stmts[0]

    def _outcome(self, stmt: Statement, piece: Piece, result: Result) -> Outcome:
        kind = stmt.type
        if kind in ("INSERT", "UPDATE", "DELETE"):
            if result.rowcount >= 0:
                n = result.rowcount
                rows = None
            else:
                n = len(result)
                rows = result
            if piece.first == "TRUNCATE":
                return Outcome("TRUNCATE TABLE")
            tag = f"INSERT 0 {n}" if kind == "INSERT" else f"{kind} {n}"
            return Outcome(tag, rows)
        if kind in ("SELECT", "EXPLAIN", "PRAGMA", "CALL") or (
            result.columns and result.rowcount < 0 and kind not in ("CREATE", "DROP", "ALTER")
        ):
            names = None
            if kind == "SELECT":
                names = colnames.postgres_names(piece.sql)
                if names is not None and len(names) != len(result.columns):
                    names = None
            return Outcome(f"SELECT {len(result)}", result, names)
        return Outcome(ddl_tag(piece, result))

    # ------------------------------------------------------ transactions
    def _enter_block(self, stmt: Statement) -> None:
        """A statement in a block whose handle transaction has not started: a read runs
        on the newest state; the first write opens the handle's transaction, and fails
        with 40001 when a commit came in after the block's first read (what it read may
        be stale, as PostgreSQL's serializable isolation would report)."""
        reads = stmt.type in ("SELECT", "EXPLAIN") and not any(
            t.upper == "NEXTVAL" for t in stmt.tokens
        )
        if reads:
            if self._block_head is None:
                self._block_head = self._applied()
            return
        self._guarded(lambda: self.db.sql("BEGIN"))  # waits for the write lock
        if self._block_head is not None and self._applied() != self._block_head:
            raise PgError(
                SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
                detail="another transaction committed after this one's first read",
                hint="The transaction might succeed if retried.",
            )

    def _transaction(self, piece: Piece) -> Outcome:
        first = piece.first
        if first in ("BEGIN", "START"):
            if self.in_transaction:
                return Outcome(
                    "BEGIN",
                    notices=[
                        PgError(
                            "25001",
                            "there is already a transaction in progress",
                            severity="WARNING",
                        )
                    ],
                )
            self.block = True
            self._block_head = None
            return Outcome("BEGIN")
        tag = "COMMIT" if first in ("COMMIT", "END") else "ROLLBACK"
        if "PREPARED" in piece.words or "TO" in piece.words:
            raise PgError("0A000", f"{' '.join(piece.words[:3])} is not supported")
        if not self.in_transaction:
            return Outcome(
                tag,
                notices=[
                    PgError("25P01", "there is no transaction in progress", severity="WARNING")
                ],
            )
        self.block = False
        if self._handle_in_transaction:
            self._guarded(lambda: self.db.sql(tag))
        return Outcome(tag)

    # ---------------------------------------------------------- settings
    def _set(self, piece: Piece) -> Outcome:
        if piece.first == "RESET":
            m = re.match(r"(?is)^\s*RESET\s+(\S+?)\s*$", piece.sql)
            if m is None:
                raise PgError("42601", "syntax error in RESET")
            name = m.group(1)
            if name.upper() == "ALL":
                self.settings = dict(DEFAULTS)
            else:
                self._assign(name, DEFAULTS.get(self._canonical(name), ""))
            return Outcome("RESET")
        m = re.match(
            r"(?is)^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(?:(TIME\s+ZONE)\s+|(\S+?)\s*(?:=|\s+TO\s+|\s+))(.+?)\s*$",
            piece.sql,
        )
        if m is None:
            raise PgError("42601", "syntax error in SET")
        name = "TimeZone" if m.group(1) else m.group(2)
        value = m.group(3).strip()
        if name.upper() in ("TRANSACTION", "SESSION CHARACTERISTICS"):
            return Outcome("SET")
        self._assign(name, _unquote_value(value))
        return Outcome("SET")

    def _canonical(self, name: str) -> str:
        for key in self.settings:
            if key.lower() == name.lower():
                return key
        return name.lower()

    def _assign(self, name: str, value: str) -> None:
        key = self._canonical(name)
        low = key.lower()
        if low in FIXED:
            allowed = FIXED[low]
            if allowed is None:
                if low == "datestyle" and value.replace(" ", "").upper() in ("ISO,MDY", "ISO"):
                    return
                if value == self.settings.get(key):
                    return
                raise PgError("0A000", f'parameter "{name}" cannot be changed on asof')
            if value.lower() not in allowed and value.lower() != "default":
                raise PgError("0A000", f"asof supports only {key} = {self.settings.get(key)}")
            return
        if low == "statement_timeout":
            parse_duration_ms(value)
        self.settings[key] = value
        if key in REPORTED:
            self.report(key, value)

    def _show(self, piece: Piece) -> Outcome:
        m = re.match(r"(?is)^\s*SHOW\s+(.+?)\s*$", piece.sql)
        if m is None:
            raise PgError("42601", "syntax error in SHOW")
        name = m.group(1).strip().strip('"')
        if name.upper() == "TIME ZONE":
            name = "TimeZone"
        key = self._canonical(name)
        if key not in self.settings:
            raise PgError("42704", f'unrecognized configuration parameter "{name}"')
        table = pa.table({key.lower(): pa.array([self.settings[key]], pa.string())})
        return Outcome("SHOW", Result(table, types=["VARCHAR"]))


@functools.lru_cache(maxsize=256)
def question_marks(sql: str) -> str:
    """`$1, $2, …` written once each and in order become `?`s: the same binding for
    DuckDB, and the form asof's single-row insert path (no DuckDB round trip) recognises."""
    try:
        tokens = tokenize(sql)
    except AsofError:
        return sql
    marks = [
        (a, b)
        for a, b in zip(tokens, tokens[1:], strict=False)
        if a.text == "$" and b.kind == "numeric_const" and b.start == a.end
    ]
    if not marks or [b.text for _, b in marks] != [str(i + 1) for i in range(len(marks))]:
        return sql
    out = []
    pos = 0
    for a, b in marks:
        out.append(sql[pos : a.start])
        out.append("?")
        pos = b.end
    out.append(sql[pos:])
    return "".join(out)


def ddl_tag(piece: Piece, result: Result) -> str:
    """The command tag of a DDL statement: CREATE TABLE, DROP VIEW, ALTER TABLE, …"""
    words = [w for w in piece.words if w not in ("OR", "REPLACE", "TEMP", "TEMPORARY", "UNIQUE")]
    first = piece.first
    if first in ("CREATE", "DROP", "ALTER"):
        if len(words) >= 3 and words[1] == "MATERIALIZED":
            return f"{first} MATERIALIZED VIEW"
        obj = words[1] if len(words) > 1 else ""
        if obj == "MACRO":
            obj = "FUNCTION"
        if first == "CREATE" and obj == "TABLE" and " AS " in f" {piece.sql.upper()} ":
            return f"SELECT {max(result.rowcount, 0)}"
        return f"{first} {obj}".strip()
    if first == "REFRESH":
        return "REFRESH MATERIALIZED VIEW"
    if first == "COMMENT":
        return "COMMENT"
    return first


def _unquote_value(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value.strip('"')


_UNITS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "us": 0.001}


def parse_duration_ms(value: str) -> int:
    """A duration setting (`5000`, `'5s'`, `1min`) in milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(value).lower())
    if m is None or (m.group(2) and m.group(2) not in _UNITS):
        raise PgError("22023", f'invalid value for a duration: "{value}"')
    return int(float(m.group(1)) * _UNITS.get(m.group(2) or "ms", 1))
