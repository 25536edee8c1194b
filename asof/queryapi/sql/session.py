"""A session runs a user's statements against one database and turns writes into events.

Writes are serialised per database: a write transaction holds the database's write lock from
its first write until COMMIT or ROLLBACK, so transactions are serializable and a commit never
conflicts. BEGIN takes no lock; the first read takes a DuckDB snapshot, and the first write
fails with SerializationError if anything committed since (transaction.py). Readers never take the
lock; DuckDB gives them a snapshot. Nothing becomes visible in the projection before its
transaction is durable in the log.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from asof.eventlog.errors import LogError
from asof.eventlog.events import Event, RowOp, RowValues, Transaction, TransactionInfo
from asof.eventlog.hlc import Timestamp
from asof.projections import kinds, versions
from asof.projections.apply import (
    applied,
    apply_event,
    sequence_values,
    set_applied,
    set_applied_sql,
)
from asof.projections.build import damaged_bases
from asof.projections.errors import ProjectionError
from asof.projections.lazy import lazy_ids, materialize
from asof.projections.naming import (
    HIDDEN_COLUMNS,
    MAIN_SCHEMA,
    ROW_ID,
    ROW_ID_SEQUENCE,
    STORAGE_SCHEMA,
    STORED_COLUMNS,
    TABLES_TABLE,
    VERSION_FROM,
    display_name,
    first_row,
    storage_table,
)
from asof.projections.projection import CONFIRMED_SQL, mark_unconfirmed_sql
from asof.projections.views import CHECKED, TEXT_LOGGED, capture_list
from asof.queryapi.errors import (
    AsofError,
    CorruptionError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
    syntactic,
)
from asof.queryapi.result import Result
from asof.queryapi.sql import (
    bulkinsert,
    ddl,
    expand,
    fastinsert,
    logtypes,
    prepared,
    settings,
    temporary,
)
from asof.queryapi.sql import transaction as txn_control
from asof.queryapi.sql.checkpointing import checkpoint, is_checkpoint
from asof.queryapi.sql.coalesce import coalesce
from asof.queryapi.sql.determinism import reads_variables, unrepeatable_calls
from asof.queryapi.sql.dml import DmlPlan, TableInfo, plan_dml
from asof.queryapi.sql.guard import Guard, Reach, bound_plan
from asof.queryapi.sql.schemas import check_path_schema, schema_exists, user_schema
from asof.queryapi.sql.statements import (
    Name,
    Statement,
    explain_target,
    find_kw,
    read_name,
    split,
)
from asof.queryapi.translate import translate

if TYPE_CHECKING:
    from asof.projections.live import DatabaseRuntime

log = logging.getLogger(__name__)

READ_TYPES = {"SELECT", "EXPLAIN"}
WRITE_TYPES = {"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER"}
MATVIEW_TYPES = {"CREATE_MATVIEW", "REFRESH_MATVIEW", "DROP_MATVIEW"}
EXTERNAL_TYPES = {"ATTACH", "DETACH", "COPY", "EXPORT", "LOAD", "SET", "PRAGMA", "CALL"}
HARMLESS_TYPES = {"VACUUM", "ANALYZE"}
#: Events whose transaction DuckDB may still refuse at COMMIT (a key or index created over
#: rows of the same transaction is checked only then): such a transaction commits in DuckDB
#: before the log takes it (Session._commit).
DUCKDB_DECIDES = frozenset(
    {kinds.CREATE_TABLE, kinds.ALTER_TABLE, kinds.DDL, kinds.MATVIEW_REFRESH}
)


class Session:
    """One connection's worth of state: its cursor and its open transaction, if any."""

    def __init__(self, runtime: DatabaseRuntime) -> None:
        self.rt = runtime
        self.store = runtime.store
        self.recorder = runtime.recorder
        self.cur = runtime.projection.cursor()
        self._generation = runtime.generation
        self._lock = threading.RLock()
        self._open_result: weakref.ref[Result] | None = None  # may stream from self.cur
        self._explicit = False  # BEGIN ran and no COMMIT or ROLLBACK yet (failed or not)
        self._holding = False
        self._failed: str | None = None  # why the open transaction failed
        self._lenient = False  # SYNTACTIC_ERRORS_DO_NOT_INVALIDATE (settings.py)
        self._path: tuple[str, ...] = ()  # the search path, when not just main
        self._read_only_txn = False  # BEGIN ... READ ONLY
        self._snapshot_txn = 0  # the last transaction the explicit transaction's snapshot holds
        self._has_read = False  # the explicit transaction read its snapshot before writing
        self._events: list[Event] = []
        self._sql: list[str] = []
        self._seq_before: dict[str, int | None] = {}
        self._txn_id = 0  # the id the open write transaction will commit under
        self._superseded = versions.Superseded()
        self._barrier = False  # the transaction restarts row version coverage
        self._settings: dict[tuple[bool, str], str] = {}  # SETs to repeat on a new cursor
        self._prepared: dict[str, Statement] = {}  # PREPAREd bodies by name
        self._temps = False  # the session made a temporary object (its cursor holds it)
        self.guard = Guard(
            external=runtime.allow_external_access,
            epoch=runtime.catalog_epoch,
            cache=runtime.verdicts,
            scope="live",
        )

    # ----------------------------------------------------------------- public
    def execute(self, sql: str, params: Any = None) -> Result:
        if not isinstance(sql, str):
            raise ProgrammingError("SQL must be a string")
        try:
            return self._execute(sql, params)
        except AsofError:
            raise
        except Exception as exc:  # no DuckDB or log error reaches the user as such
            self._note_fatal(exc)
            raise translate(exc) from None

    def _execute(self, sql: str, params: Any) -> Result:
        with self._lock:
            self.settle_result()
            if self.rt is not None and self.rt.gone is not None:
                raise ProgrammingError(self.rt.gone)
            stmts = split(sql)
            self._follow_projection()
            if (
                params is not None
                and len(stmts) == 1
                and stmts[0].type == "INSERT"
                and not self._explicit
                and self.rt is not None
                and not self._temps  # a temporary table may shadow the name
            ):
                fast = self._fast_insert(stmts[0], params)
                if fast is not None:
                    return fast
            if not stmts:
                raise ProgrammingError("no SQL statement given; pass at least one statement")
            if params is not None and len(stmts) > 1:
                raise ProgrammingError(
                    "parameters can be passed with a single statement only; split the string"
                )
            if len(stmts) == 1:
                return self._run(stmts[0], params)
            return self._run_batch(stmts)

    def _run_batch(self, stmts: list[Statement]) -> Result:
        """Run a multi-statement string one statement at a time, as DuckDB does: each
        outside BEGIN ... COMMIT commits on its own. A failure names the statement, what
        took effect before it and what did not run."""
        result = Result.empty()
        committed: list[int] = []
        pending: list[int] = []  # in the open transaction
        for i, st in enumerate(stmts, start=1):
            try:
                self.settle_result()  # an earlier statement's rows, read before this one
                result = self._run(st, None)
            except AsofError as exc:
                raise txn_control.describe_batch(
                    exc, i, len(stmts), committed, pending, still_open=self._explicit
                ) from None
            pending.append(i)
            if not self._explicit:
                rolled_back = st.type == "TRANSACTION" and st.kw(0) in ("ROLLBACK", "ABORT")
                if not rolled_back:
                    committed.extend(pending)
                pending = []
        return result

    def _stream(self, rel: duckdb.DuckDBPyRelation) -> Result:
        """A read's result, streaming from this session's cursor until the next statement."""
        result = Result.of(rel, lock=self._lock)
        self._open_result = weakref.ref(result)  # one nobody holds closes with its reader
        return result

    def settle_result(self) -> None:
        """Read the rest of the last result still streaming from the cursor: DuckDB runs one
        result per connection at a time. Its rows stay fetchable."""
        ref, self._open_result = self._open_result, None
        result = ref() if ref is not None else None
        if result is not None:
            result.drain()

    def _follow_projection(self) -> None:
        """Move to the runtime's current projection if it was replaced (a hosted clone state
        promoted to its file); never inside a transaction, which reads its snapshot there."""
        if self.rt is not None and not self._explicit and not self._holding:
            self._use_current_projection()

    def _use_current_projection(self) -> None:
        rt = self.rt
        if self._generation == rt.generation:
            return
        old = self.cur
        self.cur = rt.projection.cursor()
        self._generation = rt.generation
        for sql in self._settings.values():  # the session's settings go with it
            self.cur.execute(sql)
        try:
            old.close()
        except duckdb.Error:
            pass
        if self._temps:  # DuckDB keeps temporary objects per connection: they stay behind
            self._temps = False
            raise OperationalError(
                "this session's temporary objects are gone: the database's projection was "
                "opened anew (after an error it could not go on from); create them again"
            )

    @property
    def in_transaction(self) -> bool:
        """A transaction is open (failed or not): only COMMIT or ROLLBACK end it."""
        return self._explicit

    @property
    def transaction_status(self) -> str:
        """ "idle", "in transaction" or "failed" (transaction.py)."""
        if not self._explicit:
            return txn_control.IDLE
        return txn_control.FAILED if self._failed is not None else txn_control.IN_TRANSACTION

    def close(self) -> None:
        with self._lock:
            try:
                self.settle_result()
            except AsofError:
                pass  # the rows it could not read are lost with the handle
            if self._holding or self._has_read:
                self._abort()
            self._end_explicit()
            try:
                self.cur.close()
            except duckdb.Error:
                pass

    # ------------------------------------------------------------- dispatch
    #: Set by Database: a context manager that rewrites time-travel SQL (queryapi.sqlrewrite).
    rewriter: Callable[[Session, Statement], AbstractContextManager[Statement]] | None = None

    def _run(self, st: Statement, params: Any) -> Result:
        if st.type == "TRANSACTION":
            return self._transaction_control(st)
        if self._failed is not None:
            raise txn_control.refused_in_failed(self._failed)
        try:
            if self.rewriter is not None:
                with self.rewriter(self, st) as rewritten:
                    return self._run_statement(rewritten, params)
            return self._run_statement(st, params)
        except AsofError as exc:
            if self._explicit and self._failed is None and self._fails_transaction(st, exc):
                raise self._fail(exc) from None
            raise

    def _fails_transaction(self, st: Statement, exc: AsofError) -> bool:
        """Any error fails an open transaction (DuckDB's default), unless the session set
        SYNTACTIC_ERRORS_DO_NOT_INVALIDATE and the error is one of a statement that did
        nothing yet: a read that did not parse or bind, or a name the SQL front found
        missing before the statement ran."""
        return not (
            self._lenient
            and getattr(exc, "syntactic", False)
            and (st.type in READ_TYPES or getattr(exc, "before_effects", False))
        )

    def _run_statement(self, st: Statement, params: Any) -> Result:
        if st.type == "MULTI":
            return self._expanded(st)
        if st.type in ("PREPARE", "EXECUTE") or st.verb == "DEALLOCATE":
            return self._prepared_statement(st)
        if is_checkpoint(st):
            return checkpoint(self.rt, st, has_changes=self._holding)
        if st.type == "SET" and st.verb == "USE" and not self.rt.allow_external_access:
            return self._use(st)
        if st.type == "SET" and st.verb in ("SET", "RESET", "PRAGMA"):
            if not (self.rt is not None and self.rt.allow_external_access):
                return self._setting(st)  # an open cluster trusts its users' SETs
        if st.type in READ_TYPES:
            try:
                reach = self.reach(st, params)
            except AsofError:
                raise
            except BaseException as exc:
                raise self._error(exc) from None
            if not reach.moves and reach.checked:
                return self._read(st, params)
            # A query that moves a sequence is a write: the log records where it stands.
        autocommit = not self._explicit
        if autocommit:
            self._check_allowed(st)
            self._begin()
        else:
            try:
                self._check_allowed(st)
                if self._read_only_txn:
                    raise txn_control.read_only_write(st.type)
                if not self._holding:
                    self._first_write()
            except BaseException as exc:
                raise self._fail(exc) from None
        try:
            result = self._write(st, params)
            self._sql.append(st.sql)
        except BaseException as exc:
            if not autocommit:
                err = self._error(exc)
                if self._fails_transaction(st, err):
                    raise self._fail(exc) from None
                raise err from None
            self._abort()
            raise self._error(exc) from None
        if autocommit:
            self._commit_settled()
        return result

    def _setting(self, st: Statement) -> Result:
        """A SET, RESET or PRAGMA of this session's own settings (queryapi/sql/settings.py)."""
        setting = settings.parse(st)
        if setting.kept is not None:  # the invalidation policy, kept by the session
            self._lenient = setting.kept != settings.INVALIDATION_POLICIES[0]
            return Result.empty()
        if setting.path:
            for schema in setting.path:
                check_path_schema(self.cur, schema)
        if setting.value_sql is not None:  # a variable's value is a query's result
            self._check_quiet(
                f"SELECT {setting.value_sql}", "SET VARIABLE takes a value that changes nothing"
            )
        try:
            self.cur.execute(setting.sql)
        except AsofError:
            raise
        except BaseException as exc:
            raise self._error(exc) from None
        if setting.shared:  # the instance keeps it, whichever cursor the session moves to
            return Result.empty()
        key = (setting.variable, setting.name)
        if setting.reset:
            self._settings.pop(key, None)
        else:
            self._settings[key] = setting.sql
        if setting.path is not None:  # a path of `main` alone is the default
            only_main = all(p.lower() == MAIN_SCHEMA for p in setting.path)
            self._path = () if only_main else setting.path
        return Result.empty()

    def _use(self, st: Statement) -> Result:
        """`USE schema` (or `USE db.schema`, `USE db` for this database): where names
        without a schema go, as `SET schema` does; other databases are refused."""
        name, _ = read_name(st.tokens, 1)
        parts = list(name.parts)
        if parts[0].lower() == self.rt.name.lower() and len(parts) <= 2:
            parts = parts[1:] or [MAIN_SCHEMA]
        if len(parts) != 1:
            raise NotSupportedError(
                f"USE {name.parts[0]} is refused: a session uses only its own database "
                f"({self.rt.name!r}) and its schemas, unless the cluster is opened with "
                "allow_external_access=True"
            )
        schema = parts[0]
        if schema.lower() != MAIN_SCHEMA and not schema_exists(self.cur, schema):
            raise NotSupportedError(
                f"USE {schema} is refused: it is neither a schema of this database nor the "
                "database itself; other databases are reachable only when the cluster is "
                "opened with allow_external_access=True"
            )
        return self._setting(split(f"SET schema = '{schema.replace(chr(39), chr(39) * 2)}'")[0])

    @property
    def search_path(self) -> tuple[str, ...]:
        """The schemas names without one are looked up in (empty: just `main`)."""
        return self._path

    def schema_for(self, name: Name, *, creating: bool = False) -> str:
        """The schema a name written in a statement means. Without one: where the session's
        search path (`SET schema`, `USE`) sends it, `main` by default. A new object goes to
        the path's first schema; an existing table is found in the path's schemas, then in
        `main`, as DuckDB looks it up."""
        if name.schema is not None or not self._path:
            return user_schema(name)
        if creating:
            return self._path[0]
        for schema in (*self._path, MAIN_SCHEMA):
            if self.find_table(name.name, schema) is not None:
                return schema
        return self._path[0]

    def _check_quiet(self, query: str, what: str) -> None:
        """`query` computes a value a statement takes (a variable's, EXECUTE's arguments),
        outside the write path: it passes the guard and moves no sequence."""
        try:
            reach = self.guard.check(self.cur, query)
        except AsofError:
            raise
        except BaseException as exc:
            raise self._error(exc) from None
        if reach.moves or not reach.checked:
            raise NotSupportedError(f"{what}; move the sequence in a query of its own")

    def _expanded(self, st: Statement) -> Result:
        """A statement DuckDB runs as several (queryapi/sql/expand.py), run as they are in
        one transaction: the caller's, or one of its own."""
        parts, table, column, if_not_exists = expand.volatile_add_column(st)
        if if_not_exists:
            info = self.find_table(table)
            if info is not None and self._has_column(info.table_id, column):
                return Result.empty()
        if self._explicit:
            for i, part in enumerate(parts):
                try:
                    self._run_statement(part, None)
                except AsofError as exc:
                    if i:  # the parts before it changed the table
                        exc.before_effects = False  # type: ignore[attr-defined]
                    raise
            return Result.empty()
        self._transaction_control(split("BEGIN")[0])
        try:
            for part in parts:
                self._run_statement(part, None)
        except BaseException as exc:
            self._transaction_control(split("ROLLBACK")[0])
            if isinstance(exc, AsofError):  # it says the transaction failed: it was ours
                message = str(exc).removesuffix(txn_control.failed_tail())
                raise txn_control.with_message(exc, message) from None
            raise
        return self._transaction_control(split("COMMIT")[0])

    def _has_column(self, table_id: int, column: str) -> bool:
        return bool(
            first_row(
                self.cur,
                "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? AND lower(column_name) = lower(?)",
                [STORAGE_SCHEMA, f"t{int(table_id)}", column],
            )[0]
        )

    def _prepared_statement(self, st: Statement) -> Result:
        """PREPARE, EXECUTE, DEALLOCATE (queryapi/sql/prepared.py): an EXECUTE runs the
        body as if sent with its arguments as parameters."""
        if st.type == "PREPARE":
            p = prepared.parse_prepare(st)
            if p.body.type in READ_TYPES:  # refused now if it can only be refused later
                try:
                    self.reach(p.body, None)
                except AsofError:
                    raise
                except Exception:  # noqa: BLE001 - binds only with its arguments: checked then
                    pass
            self._prepared[p.name] = p.body
            return Result.empty()
        if st.type != "EXECUTE":
            name = prepared.parse_deallocate(st)
            if name is None:
                self._prepared.clear()
            elif self._prepared.pop(name, None) is None:
                raise ProgrammingError(f"no prepared statement named {name!r}")
            return Result.empty()
        e = prepared.parse_execute(st)
        body = self._prepared.get(e.name)
        if body is None:
            raise ProgrammingError(
                f"no prepared statement named {e.name!r}; PREPARE {e.name} AS ... first"
            )
        values: list[Any] | None = None
        if e.args_sql:
            query = f"SELECT {e.args_sql}"
            self._check_quiet(query, "EXECUTE takes arguments that change nothing")
            try:
                values = list(self.cur.execute(query).fetchall()[0])
            except BaseException as exc:
                raise self._error(exc) from None
        if self.rewriter is not None:
            with self.rewriter(self, body) as rewritten:
                return self._run_statement(rewritten, values)
        return self._run_statement(body, values)

    def _fail(self, exc: BaseException) -> AsofError:
        """Roll back what the explicit transaction did and leave it failed: every later
        statement but ROLLBACK (or COMMIT, which rolls back) is refused."""
        self._abort()
        err = self._error(exc)
        self._failed = str(err)
        return txn_control.with_message(err, f"{err}{txn_control.failed_tail()}")

    def _check_allowed(self, st: Statement) -> None:
        if st.type == "SET" and any(t.text.lower() == versions.TXN_VARIABLE for t in st.tokens):
            raise NotSupportedError(
                f"the variable {versions.TXN_VARIABLE} is reserved by asof; use another name"
            )
        if st.type in WRITE_TYPES or st.type in MATVIEW_TYPES or st.type in READ_TYPES:
            return
        if st.type in HARMLESS_TYPES:
            return
        if st.type in EXTERNAL_TYPES and self.rt.allow_external_access:
            if st.type == "COPY" and _copies_into_table(st):
                raise NotSupportedError(
                    "COPY ... FROM would change a table without going through the log; use "
                    "INSERT INTO t SELECT * FROM read_csv('file')"
                )
            return
        if st.type in EXTERNAL_TYPES:
            raise NotSupportedError(
                f"{st.verb} statements reach outside the database and are refused; open the "
                "cluster with allow_external_access=True to allow them"
            )
        if st.type == "MULTI":  # ADD COLUMN with a volatile default: an ALTER and an UPDATE
            raise NotSupportedError(
                f"this {st.verb} runs as several statements in DuckDB and is not supported; "
                "add the column, then set its values with UPDATE"
            )
        raise NotSupportedError(f"{st.verb} statements are not supported by asof")

    def reach(self, st: Statement, params: Any = None) -> Reach:
        """What a query reaches as DuckDB binds it (queryapi/sql/guard.py); refused when it
        goes beyond the user's objects. EXPLAIN without ANALYZE runs nothing."""
        if st.type != "EXPLAIN":
            return self.guard.check(self.cur, st.sql, params)
        inner, analyze = explain_target(st.sql, st.tokens)
        reach = self.guard.check(self.cur, inner, params)
        return reach if analyze else Reach()

    def _read(self, st: Statement, params: Any) -> Result:
        try:
            if not self._explicit:
                self.rt.sync()
                self._use_current_projection()  # catching up may have reopened it
            elif not self._holding and not self._has_read:
                self._open_snapshot()
            return self._stream(self.cur.sql(st.sql, params=params))
        except BaseException as exc:
            err = self._error(exc)
            if self._explicit and self._fails_transaction(st, err):
                raise self._fail(exc) from None
            raise err from None

    def _error(self, exc: BaseException, *, rolled_back: bool = False) -> AsofError:
        """The asof error for `exc`; for damaged shared files, name the file."""
        self._note_fatal(exc)
        err = translate(exc, rolled_back=rolled_back)
        if isinstance(err, CorruptionError) and self.store is not None:
            damaged = damaged_bases(self.cur, self.store, self.recorder)
            if damaged:
                err = CorruptionError(f"{err} ({'; '.join(damaged)})")
        return err

    def _note_fatal(self, exc: BaseException) -> None:
        """DuckDB refuses every statement on an instance after a failed write of its own
        (a checkpoint of its file, say): have the runtime reopen it before the next one."""
        if isinstance(exc, duckdb.FatalException) and self.rt is not None:
            self.rt.stale = exc

    def _write(self, st: Statement, params: Any) -> Result:
        t = st.type
        if temporary.creates_temporary(st) or (
            self._temps and t in WRITE_TYPES and temporary.targets_temporary(self.cur, st)
        ):
            return self._temporary(st, params)
        if t in ("INSERT", "UPDATE", "DELETE"):
            return self._dml(plan_dml(st, self.lookup, autocommit=not self._explicit), params)
        if t in ("CREATE", "DROP", "ALTER") or t in MATVIEW_TYPES:
            mark = self.row_id_mark()
            if t == "CREATE":
                result = ddl.create(self, st, params)
            elif t == "DROP":
                result = ddl.drop(self, st)
            elif t == "ALTER":
                result = ddl.alter(self, st)
            else:
                result = ddl.matview(self, st)
            self._keep_row_ids(mark)
            return result
        if t in READ_TYPES:  # a query that moves a sequence, or one the guard could not bind
            mark = self.row_id_mark()
            result = _whole(self.cur.sql(st.sql, params=params))  # it runs before the commit
            self._keep_row_ids(mark)
            return result
        self.cur.execute(st.sql, params)
        return Result.empty()

    def _temporary(self, st: Statement, params: Any) -> Result:
        """A statement on the session's temporary objects (queryapi/sql/temporary.py): run
        as written once checked; it logs nothing but the sequences it moves."""
        creates = temporary.creates_temporary(st)
        if creates:
            # Before it exists: asof's own SQL on this cursor must never call a user macro.
            temporary.refuse_shadowing(self.cur, st)
        self.guard.check(self.cur, st.sql, params)
        mark = self.row_id_mark()
        result = _whole(self.cur.sql(st.sql, params=params))
        self._keep_row_ids(mark)
        self._temps = self._temps or creates
        return result

    def _keep_row_ids(self, mark: int) -> None:
        """DDL runs expressions DuckDB binds itself (a default filled into existing rows, a
        CHECK): should one have set asof's row id sequence back, put it where it was (a
        sequence ignores rollback) and refuse the statement, so no row id is handed out
        twice."""
        if self.row_id_mark() < mark:
            self.cur.execute(
                f"SELECT system.main.setval('{ROW_ID_SEQUENCE}', {int(mark)})"
            ).fetchall()
            raise NotSupportedError(
                f"the statement moved asof's internal sequence {ROW_ID_SEQUENCE}; it was refused"
            )

    def check_expressions(self, table_ids: Sequence[int] | None = None) -> None:
        """Bind the defaults, generated columns and CHECK constraints of storage tables (all
        of them when `table_ids` is None) and refuse any that reaches beyond the user's
        objects: DuckDB evaluates CHECKs outside any plan the guard sees. A CHECK must
        also give the same answer every time: it runs again on each replay of the rows it
        guards (a rebuild, a clone), where a sequence it moved would move twice and a
        random or the moment would judge another row."""
        exprs = self.cur.execute(
            "SELECT table_name, column_default, false FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? "
            "AND column_default IS NOT NULL AND table_name SIMILAR TO 't[0-9]+' "
            f"AND column_name NOT IN ('{ROW_ID}', '{VERSION_FROM}') "
            "UNION ALL SELECT table_name, expression, true FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND schema_name = ? "
            "AND constraint_type = 'CHECK' AND table_name SIMILAR TO 't[0-9]+'",
            [STORAGE_SCHEMA, STORAGE_SCHEMA],
        ).fetchall()
        wanted = None if table_ids is None else {f"t{int(i)}" for i in table_ids}
        by_table: dict[str, list[str]] = {}
        checks: dict[str, list[str]] = {}
        for table, expr, is_check in exprs:
            if wanted is None or table in wanted:
                by_table.setdefault(table, []).append(f"({expr})")
                if is_check:
                    checks.setdefault(table, []).append(f"({expr})")
        for table, items in sorted(by_table.items()):
            sql = f"SELECT {', '.join(items)} FROM {STORAGE_SCHEMA}.{table}"
            self.guard.check(self.cur, sql)  # the user's expressions: no row id default
            self._refuse_variables(sql)
        for table, items in sorted(checks.items()):
            sql = f"SELECT {', '.join(items)} FROM {STORAGE_SCHEMA}.{table}"
            calls = unrepeatable_calls(self.cur, sql)
            if reads_variables(self.cur, sql):
                calls.append("getvariable")
            if calls:
                raise NotSupportedError(
                    f"a CHECK constraint calls {', '.join(f'{c}()' for c in calls)}, whose "
                    "result changes from one run to the next; a CHECK runs again whenever "
                    "the log is replayed (clones, rebuilds), so it must give the same answer"
                )

    def _refuse_variables(self, sql: str) -> None:
        """DuckDB binds getvariable() to its value, so no plan names it: bind `sql` again
        with asof's transaction variable changed. A CHECK that read it would pass here and
        fail when the table is rebuilt from the log, where the variable is not set."""
        first = bound_plan(self.cur, sql)
        self.cur.execute(versions.writing_sql(-1))
        try:
            second = bound_plan(self.cur, sql)
        finally:
            self.cur.execute(versions.writing_sql(self._txn_id))
        if first != second:
            raise NotSupportedError(
                f"a default or CHECK reads {versions.TXN_VARIABLE}, asof's own variable; remove it"
            )

    # ------------------------------------------------------------ catalog
    def lookup(
        self, name: Name, *, kinds_allowed: Sequence[str] = ("table", "matview")
    ) -> TableInfo:
        schema = self.schema_for(name)
        info = self.find_table(name.name, schema)
        if info is None or info.kind not in kinds_allowed:
            raise syntactic(
                ProgrammingError(
                    f"Catalog Error: table {display_name(name.name, schema)!r} does not exist "
                    f"in database {self.rt.name!r}; list tables with SHOW TABLES"
                ),
                before_effects=True,
            )
        return info

    def find_table(self, name: str, schema: str = MAIN_SCHEMA) -> TableInfo | None:
        cache = self.rt.catalog_cache.tables
        key = f"{schema.lower()}\x00{name.lower()}"
        if key not in cache:
            cache[key] = self._find_table(name, schema)
        return cache[key]

    def _find_table(self, name: str, schema: str) -> TableInfo | None:
        row = first_row(
            self.cur,
            f"SELECT table_id, name, version, kind, coalesce(schema_name, 'main') "
            f"FROM {TABLES_TABLE} WHERE lower(name) = lower(?) "
            "AND lower(coalesce(schema_name, 'main')) = lower(?)",
            [name, schema],
        )
        if row is None:
            return None
        cols = self.cur.execute(
            "SELECT column_name, is_generated, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [STORAGE_SCHEMA, f"t{row[0]}"],
        ).fetchall()
        columns = tuple(c[0] for c in cols if c[0] not in HIDDEN_COLUMNS)
        generated = frozenset(c[0] for c in cols if c[1])
        text = frozenset(c[0] for c in cols if c[2] in TEXT_LOGGED)
        checked = frozenset(c[0] for c in cols if c[2] == CHECKED)
        return TableInfo(row[0], row[1], row[2], row[3], columns, generated, row[4], text, checked)

    def emit(self, event: Event) -> None:
        if event.kind != kinds.ROWS:
            self.rt.catalog_cache.clear()
            if self._path and event.kind != kinds.SEQUENCE_VALUE:  # replay resolves as here
                path = settings.path_text(self._path)
                event = Event(
                    event.kind,
                    event.table_id,
                    event.version,
                    {**event.data, "search_path": path},
                    event.rows,
                )
        self._events.append(event)

    def materialize(self, table_id: int) -> None:
        """Copy a table a clone still shares into the clone before writing to it."""
        lazy = self._lazy_tables()
        if table_id in lazy:
            materialize(self.cur, table_id)
            lazy.discard(table_id)
            self._barrier = True  # its rows' versions were never kept

    def _lazy_tables(self) -> set[int]:
        """Tables a clone still shares with its source (cached until the next DDL)."""
        cache = self.rt.catalog_cache
        if cache.lazy is None:
            cache.lazy = lazy_ids(self.cur)
        return cache.lazy

    def _sequence_values(self) -> dict[str, int | None]:
        cache = self.rt.catalog_cache
        if cache.has_sequences is None:
            cache.has_sequences = bool(
                first_row(
                    self.cur,
                    "SELECT count(*) FROM duckdb_sequences() WHERE schema_name <> ? "
                    "AND database_name = current_database()",
                    [STORAGE_SCHEMA],
                )[0]
            )
        return sequence_values(self.cur) if cache.has_sequences else {}

    # ---------------------------------------------------------------- DML
    def _dml(self, plan: DmlPlan, params: Any) -> Result:
        table = plan.table
        if plan.capture == "truncate":
            n = self.cur.execute(
                f"SELECT count(*) FROM {storage_table(table.table_id)}"
            ).fetchall()[0][0]
            event = kinds.truncate(table.table_id, table.version)
            apply_event(self.cur, event)
            self.emit(event)
            return Result.count(n)
        self.materialize(table.table_id)  # a clone's shared table becomes its own first
        self.guard.check(self.cur, plan.sql, params, writing=True)
        before = self.row_id_mark() if plan.capture == "readback" or plan.conflict else 0
        if plan.capture == "readback" and plan.source is not None:
            rows = bulkinsert.select_rows(self.cur, plan, params, before)
            if rows is not None:
                return self._insert_captured(plan, rows)
        if plan.capture == "readback":
            counted = first_row(self.cur, plan.sql, params)
            n = int(counted[0]) if counted else 0
            if n == 0:
                return Result.count(0)
            logtypes.check_intervals(
                self.cur,
                table.table_id,
                table.intervals,
                f"SELECT {ROW_ID} FROM {storage_table(table.table_id)} WHERE {ROW_ID} > {before}",
            )
            select = (
                capture_list(table.columns, table.text_logged)
                if table.text_logged
                else STORED_COLUMNS
            )
            rows = self.cur.sql(
                f"SELECT {select} FROM {storage_table(table.table_id)} WHERE {ROW_ID} > {before}"
            ).to_arrow_table()
            event = kinds.rows_event(table.table_id, table.version, kinds.event_rows(rows, None))
            self.emit(self.recorder.prepare(event))
            return Result.count(n)
        if not self._copy_history_first(plan, params) and (
            plan.verb in ("UPDATE", "DELETE") or plan.conflict
        ):
            self._superseded.before_change(self.cur)
        rel = self.cur.sql(plan.sql, params=params)
        types = [str(t) for t in rel.types] if plan.user_returning else []
        out = _arrow(rel)
        width = len(table.columns) + 1
        captured = out.select(list(range(width)))
        if plan.user_returning:
            captured = captured.rename_columns([*table.columns, ROW_ID])
        changed = captured.num_rows  # DuckDB counts every match of an UPDATE ... FROM
        if plan.verb == "UPDATE" and changed > 1:
            captured = self._applied_images(table, captured)
        if table.intervals and changed and plan.verb != "DELETE":
            self._check_intervals(table, captured.column(ROW_ID))
        if captured.num_rows:
            row_ids = captured.column(ROW_ID)
            if plan.verb == "INSERT" and plan.conflict:
                ops = _insert_or_update(row_ids, before)
                self._superseded.record(
                    table.table_id, row_ids, pc.equal(ops, RowOp.UPDATE), table.generated, False
                )
            elif plan.verb == "INSERT":
                ops = RowOp.INSERT
            else:
                ops = RowOp.UPDATE if plan.verb == "UPDATE" else RowOp.DELETE
                self._superseded.record(
                    table.table_id, row_ids, plan.verb == "UPDATE", table.generated, plan.stamped
                )
            self.emit(
                kinds.rows_event(table.table_id, table.version, kinds.event_rows(captured, ops))
            )
        if plan.user_returning:
            user = out.select(list(range(width, out.num_columns)))
            keep = [i for i, n in enumerate(user.column_names) if n != ROW_ID]
            return Result(user.select(keep), types=[types[width + i] for i in keep])
        return Result.count(changed)

    def _applied_images(self, table: TableInfo, captured: pa.Table) -> pa.Table:
        """An UPDATE ... FROM whose row matches several source rows returns one image per
        match, and DuckDB applies only one of them: log the image the table now holds."""
        ids = captured.column(ROW_ID)
        if pc.count_distinct(ids).as_py() == len(ids):
            return captured
        name = f"_asof_ids_{id(captured)}"
        self.cur.register(name, pa.table({ROW_ID: pc.unique(ids)}))
        try:
            cols = capture_list(table.columns, table.text_logged)
            rows = self.cur.sql(
                f"SELECT {cols} FROM {storage_table(table.table_id)} "
                f"WHERE {ROW_ID} IN (SELECT {ROW_ID} FROM {name}) ORDER BY {ROW_ID}"
            ).to_arrow_table()
        finally:
            self.cur.unregister(name)
        return rows.cast(captured.schema)

    def _check_intervals(self, table: TableInfo, row_ids: pa.ChunkedArray) -> None:
        name = f"_asof_ids_{id(row_ids)}"
        self.cur.register(name, pa.table({ROW_ID: row_ids}))
        try:
            logtypes.check_intervals(
                self.cur, table.table_id, table.intervals, f"SELECT {ROW_ID} FROM {name}"
            )
        finally:
            self.cur.unregister(name)

    def _copy_history_first(self, plan: DmlPlan, params: Any) -> bool:
        """Run `plan.history` (the old versions to history, before the statement); False
        when there is none, or the parameters are not the positional list its `?`s take."""
        if plan.history is None:
            return False
        start, count = plan.history_params
        if params and not isinstance(params, (list, tuple)):
            return False
        if len(params or ()) < start + count:
            return False  # too few parameters: let the statement itself say so
        self.cur.execute(plan.history, list(params[start : start + count]) if count else None)
        return True

    def _insert_captured(self, plan: DmlPlan, rows: pa.Table) -> Result:
        """Insert rows captured as Arrow (bulkinsert.py), logging the same table; its log
        encoding runs in a worker thread while DuckDB inserts it."""
        table = plan.table
        if rows.num_rows:
            event = kinds.rows_event(table.table_id, table.version, kinds.event_rows(rows))
            event = self.recorder.prepare(event)
            bulkinsert.insert_rows(self.cur, table.table_id, rows)
            self.emit(event)
        return Result.count(rows.num_rows)

    def row_id_mark(self) -> int:
        value = first_row(
            self.cur,
            "SELECT last_value FROM duckdb_sequences() WHERE database_name = current_database() "
            f"AND schema_name = '{STORAGE_SCHEMA}' AND sequence_name = 'rid'",
        )
        return int(value[0]) if value and value[0] is not None else 0

    # ------------------------------------------------------ fast inserts
    def _fast_insert(self, st: Statement, params: Any) -> Result | None:
        """Commit a single-row insert without DuckDB (see queryapi/fastinsert.py), or return
        None for the general path."""
        insert = fastinsert.parse_simple_insert(st)
        if insert is None:
            return None
        rt = self.rt
        if not rt.write_lock.acquire(timeout=rt.lock_timeout):
            return None  # the general path waits and reports the lock the usual way
        try:
            if rt.read_only or rt.hosted:  # a fresh clone's first write gets it a file first
                return None
            if rt.stale is not None:
                return None  # the general path catches up first, or says why it cannot
            found = self._fast_rows(insert, params)
            if found is None:
                return None
            info, row, keys = found
            with rt.commit_lock:
                try:
                    txn = self.recorder.append(
                        [Event(kinds.ROWS, info.table_id, info.version, None, row)],
                        ts=rt.clock.now(),
                        sql=st.sql,
                    )
                except BaseException as exc:
                    raise translate(exc, rolled_back=True) from None
                rt.next_row_id += 1
                rt.pending.append((info.table_id, row, txn.txn_id))
                rt.keys.add(info.table_id, keys)
                rt.pending_last = txn.info
            if len(rt.pending) >= rt.pending_limit:
                try:
                    rt.flush()
                except ProjectionError as exc:  # committed; the next read catches up
                    log.warning("%s", exc)
        finally:
            rt.write_lock.release()
        rt.after_commit(txn)
        return Result.count(1)

    def _fast_rows(
        self, insert: fastinsert.SimpleInsert, params: Any
    ) -> tuple[TableInfo, RowValues, list[fastinsert.Key | None]] | None:
        try:
            info = self.lookup(insert.name, kinds_allowed=("table",))
        except ProgrammingError:
            return None  # the general path raises it
        cache = self.rt.catalog_cache
        if info.table_id not in cache.fast:
            cache.fast[info.table_id] = (
                None
                if info.table_id in self._lazy_tables()
                else fastinsert.fast_table(self.cur, info)
            )
        table = cache.fast[info.table_id]
        if table is None:
            return None
        if self.rt.next_row_id is None:
            self.rt.next_row_id = self.row_id_mark() + 1
        row = fastinsert.row_values(table, insert, params, self.rt.next_row_id)
        if row is None:
            return None
        keys = fastinsert.row_keys(table, row)
        if keys is None or not self.rt.keys.free(
            self.rt.writer_cursor(), table.info.table_id, table.keys, keys
        ):
            return None  # the general path raises the constraint error, or inserts
        return info, row, keys

    # -------------------------------------------------------- transactions
    def _transaction_control(self, st: Statement) -> Result:
        control = txn_control.parse_control(st)
        if control.verb == "begin":
            if self._failed is not None:
                raise txn_control.refused_in_failed(self._failed)
            if self._explicit:
                self._fail(txn_control.already_open())
                raise txn_control.already_open()
            self._begin_explicit(read_only=control.read_only)
        elif not self._explicit:
            raise txn_control.no_transaction(control.verb)
        elif self._failed is not None:
            cause = self._failed
            self._end_explicit()
            if control.verb == "commit":
                raise txn_control.commit_of_failed(cause)
        elif control.verb == "commit":
            reading = self._has_read
            self._end_explicit()
            if self._holding:
                self._commit_settled()
            elif reading:
                self._end_read()
        else:
            opened = self._holding or self._has_read
            self._end_explicit()
            if opened:
                self._abort()
        return Result.empty()

    def _begin_explicit(self, *, read_only: bool) -> None:
        """Open a transaction that holds no lock until it writes. Its snapshot is taken at
        its first read, as PostgreSQL takes it at the first statement: a transaction that
        starts by writing costs what an autocommit write does."""
        self._explicit = True
        self._read_only_txn = read_only
        self._has_read = False

    def _open_snapshot(self) -> None:
        """Start the DuckDB read transaction the explicit transaction's reads share."""
        self._use_current_projection()  # no DuckDB transaction is open on the cursor yet
        self.rt.sync()  # commits that returned before this read are in the snapshot
        self.cur.execute("BEGIN TRANSACTION")
        self._has_read = True
        info = applied(self.cur)  # reading the state pins DuckDB's snapshot here
        self._snapshot_txn = info.txn_id if info is not None else 0

    def _first_write(self) -> None:
        """Take the write lock at the explicit transaction's first write.

        The transaction's reads saw its snapshot. If nothing was committed since (the log's
        head is still the snapshot's last transaction), the state under the lock is the one
        it read, and the write goes on in a new DuckDB transaction over the same state. If
        something was committed, the write could be based on rows that changed: refuse it
        (SerializationError) rather than lose an update. A transaction that has not read
        yet has nothing stale: it just moves to the latest state.
        """
        self.rt.acquire_write_lock()
        try:
            head = self.rt.recorder.head()
            head_txn = head.txn_id if head is not None else 0
            if self._has_read:
                if head_txn != self._snapshot_txn:
                    raise txn_control.stale_snapshot(self._snapshot_txn, head_txn)
                self._end_read()
        except BaseException:
            self.rt.write_lock.release()
            raise
        self._holding = True
        self._start_write()

    def write_now(self) -> None:
        """Take the write lock for the open transaction before its first write (restores
        register Arrow tables on the cursor, which the first write may replace)."""
        with self._lock:
            if not self._explicit or self._failed is not None or self._holding:
                return
            try:
                self._first_write()
            except BaseException as exc:
                raise self._fail(exc) from None

    def _end_read(self) -> None:
        """End the DuckDB transaction of an explicit transaction that has not written."""
        try:
            self.cur.execute("ROLLBACK")
        except duckdb.Error:
            pass

    def _end_explicit(self) -> None:
        self._explicit = False
        self._failed = None
        self._read_only_txn = False
        self._has_read = False

    def _begin(self) -> None:
        try:
            self.rt.acquire_write_lock()
        except BaseException as exc:
            raise translate(exc) from None
        self._holding = True
        self._start_write()

    def _start_write(self) -> None:
        """Start the DuckDB write transaction; the caller holds the write lock."""
        try:
            self.rt.check_writable()
            self.rt.bring_up_to_date()
            self.rt.next_row_id = None  # DuckDB hands out row ids until the next fast insert
            self.rt.keys.forget_bounds()
            if self.rt.hosted:  # the first write gives a fresh clone its projection file
                self.rt.promote()
            self._use_current_projection()
            head = self.rt.recorder.head()
            self._txn_id = (head.txn_id if head is not None else 0) + 1
            self.cur.execute(f"BEGIN TRANSACTION; {versions.writing_sql(self._txn_id)}")
            self._seq_before = self._sequence_values()
        except BaseException as exc:
            self._release()
            self._note_fatal(exc)
            raise translate(exc) from None
        self._events = []
        self._sql = []

    def _abort(self) -> None:
        try:
            self.cur.execute("ROLLBACK")
        except duckdb.Error:
            pass
        self._end_versions()
        if self._holding:  # only writers use the cache
            self.rt.catalog_cache.clear()
        self._events = []
        self._sql = []
        try:
            if self._holding:
                with self.rt.commit_lock:
                    self._log_sequence_advance()
        finally:
            self._release()

    def _log_sequence_advance(self) -> None:
        """Sequences do not roll back (in DuckDB as in PostgreSQL): a rolled-back nextval
        still consumed its value, so record where the sequences now stand."""
        try:
            events = self._sequence_events()
        except duckdb.Error:
            return
        if not events:
            return
        try:
            txn = self.rt.recorder.append(events, ts=self.rt.clock.now(), sql=None)
        except LogError as exc:  # the error being reported matters more
            log.warning("could not log sequence positions: %s", exc)
            self.rt.sequences_unlogged = True  # the next commit logs them
            return
        try:
            self.cur.execute("BEGIN TRANSACTION")
            set_applied(self.cur, txn.info)
            self.cur.execute(f"{versions.restart_sql(txn.txn_id)}; COMMIT")
        except duckdb.Error as exc:
            _rollback(self.cur)
            self.rt.mark_stale(exc)

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self.rt.write_lock.release()

    def _commit_settled(self) -> None:
        """Commit under the commit lock: an AS OF at a time this commit could still take
        waits for it, and only for it (DatabaseRuntime.settle)."""
        with self.rt.committing():
            self._commit()

    def _commit(self) -> None:
        """Commit so that an error means the transaction is nowhere (not in the log, not in
        the projection, not in a clone) and success means it is everywhere.

        The log decides: once the append returned, the transaction is committed. So what can
        make DuckDB refuse the commit must be settled before the append. Row changes are
        checked by DuckDB as each statement runs (a write lock leaves no concurrent commit
        to conflict with), so their DuckDB COMMIT can fail only on I/O: they are logged
        first, and should DuckDB's COMMIT then fail the projection catches up from the log.
        DDL can leave checks to DuckDB's COMMIT (a key added to a table holding rows of
        this transaction is checked only then), so a transaction with DDL commits in DuckDB
        first, unseen by readers until the log has it; if the append fails, the projection
        is rebuilt from the log.
        """
        try:
            self._add_sequence_events()
            if not self._events:
                self.cur.execute("COMMIT")
                self._end_versions()
                self._release()
                return
            events = coalesce(self._events) if len(self._events) > 1 else self._events
            barrier = self._barrier or any(e.kind != kinds.ROWS for e in events)
            if not barrier and self._superseded.pending:
                self._superseded.keep(self.cur, self._txn_id)
            ts = self.rt.clock.now()
            sql = ";\n".join(self._sql) or None
            first = self._barrier or any(e.kind in DUCKDB_DECIDES for e in events)
            if first and self._next_txn_id() != self._txn_id:
                first = False  # cannot happen under the write lock; the log decides then
        except BaseException as exc:
            self._abort()
            raise translate(exc, rolled_back=True) from None
        if first:
            txn = self._commit_projection_first(events, ts, sql)
        else:
            txn = self._commit_log_first(events, ts, sql, barrier)
        self.rt.after_commit(txn)

    def _next_txn_id(self) -> int:
        head = self.rt.recorder.head()
        return (head.txn_id if head is not None else 0) + 1

    def _commit_log_first(
        self, events: list[Event], ts: Timestamp, sql: str | None, barrier: bool
    ) -> Transaction:
        try:
            txn = self.rt.recorder.append(events, ts=ts, sql=sql)
        except BaseException as exc:
            self._abort()
            raise translate(exc, rolled_back=True) from None
        self.rt.sequences_unlogged = False
        self._end_versions()
        restart = barrier or txn.txn_id != self._txn_id
        try:
            self.cur.execute(
                f"{set_applied_sql(txn.info)}; "
                f"{versions.restart_sql(txn.txn_id) + '; ' if restart else ''}COMMIT"
            )
        except duckdb.Error as exc:
            # Committed: the log has it. The projection catches up from the log, now or
            # before anything next reads it.
            _rollback(self.cur)
            self.rt.mark_stale(exc)
        finally:
            self._events = []
            self._sql = []
            if barrier:  # verdicts cached by readers were made against the old catalog
                self.rt.catalog_cache.clear()
            self._release()
        return txn

    def _commit_projection_first(
        self, events: list[Event], ts: Timestamp, sql: str | None
    ) -> Transaction:
        info = TransactionInfo(self._txn_id, ts)
        self.rt.unlogged = True  # readers wait on the write lock until the log has it
        try:
            self.cur.execute(
                f"{set_applied_sql(info)}; {mark_unconfirmed_sql(info.txn_id)};\n"
                f"{versions.restart_sql(info.txn_id)}; COMMIT"
            )
        except BaseException as exc:
            self.rt.unlogged = False
            self._note_fatal(exc)
            self._abort()  # DuckDB ended the transaction itself; nothing was logged
            raise translate(exc, rolled_back=True) from None
        self._end_versions()
        try:
            txn = self.rt.recorder.append(events, ts=ts, sql=sql)
        except BaseException as exc:
            # DuckDB holds a transaction the log refused: rebuild the projection from the
            # log (should that fail, the next access tries again: it never opens as is).
            try:
                self.rt.reopen(rebuild=True)
            except Exception as again:
                log.warning("rebuilding the projection of %s failed: %s", self.rt.name, again)
            raise translate(exc, rolled_back=True) from None
        else:
            self.rt.sequences_unlogged = False
            self._confirm(txn)
        finally:
            self.rt.unlogged = False
            self._events = []
            self._sql = []
            self._release()
        return txn

    def _confirm(self, txn: Transaction) -> None:
        """The log has the commit DuckDB took first: clear its unconfirmed mark, so that a
        log later found shorter than this projection is reported as damage, not taken for
        a commit interrupted between its two steps."""
        try:
            self.cur.execute(CONFIRMED_SQL)
        except duckdb.Error as exc:
            log.warning("clearing the unconfirmed mark of txn %s failed: %s", txn.txn_id, exc)

    def _end_versions(self) -> None:
        self._superseded.close()
        self._barrier = False

    def _add_sequence_events(self) -> None:
        # A sequence dropped and re-created in this transaction may end at its old value.
        recreated = any(
            e.kind == kinds.DDL and e.data.get("object") == "sequence" for e in self._events
        )
        force = recreated or self.rt.sequences_unlogged
        self._events.extend(self._sequence_events(force=force))

    def _sequence_events(self, *, force: bool = False) -> list[Event]:
        after = self._sequence_values()
        return [
            kinds.sequence_value(name, value)
            for name, value in after.items()
            if value is not None and (force or value != self._seq_before.get(name))
        ]


class ReadOnlySession(Session):
    """A session over state that must not change (AS OF handles, read-only clusters)."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        why: str,
        store=None,
        recorder=None,
        *,
        guard: Guard,
    ) -> None:
        self.cur = cursor
        self.rt = None  # type: ignore[assignment]
        self.store = store
        self.recorder = recorder
        self.guard = guard
        self._why = why
        self._lock = threading.RLock()
        self._open_result: weakref.ref[Result] | None = None  # may stream from self.cur
        self._explicit = False
        self._holding = False
        self._failed = None
        self._read_only_txn = False
        self._has_read = False

    def _run(self, st: Statement, params: Any) -> Result:
        if st.type == "TRANSACTION":
            return self._transaction_control(st)
        if self._failed is not None:
            raise txn_control.refused_in_failed(self._failed)
        try:
            if st.type in READ_TYPES:
                try:
                    reach = self.reach(st, params)
                except AsofError:
                    raise
                except BaseException as exc:
                    raise self._error(exc) from None
                if reach.moves:
                    moved = ", ".join(sorted(reach.moves))
                    raise ReadOnlyError(f"the query moves the sequence {moved}: {self._why}")
                if not reach.checked:
                    raise NotSupportedError(
                        "DuckDB cannot describe what this query reads (a file reader), so a "
                        f"read-only handle does not run it: {self._why}"
                    )
                try:
                    return self._stream(self.cur.sql(st.sql, params=params))
                except BaseException as exc:
                    raise self._error(exc) from None
            raise ReadOnlyError(f"{st.verb} is not allowed: {self._why}")
        except AsofError as err:
            if self._explicit:  # the same states as a live session, over a state that stays
                self._failed = str(err)
                raise txn_control.with_message(err, f"{err}{txn_control.failed_tail()}") from None
            raise

    def write_now(self) -> None:
        raise ReadOnlyError(f"writing is not allowed: {self._why}")

    def _transaction_control(self, st: Statement) -> Result:
        """BEGIN/COMMIT/ROLLBACK over a state that never changes: only the states move."""
        control = txn_control.parse_control(st)
        if control.verb == "begin":
            if self._failed is not None:
                raise txn_control.refused_in_failed(self._failed)
            if self._explicit:
                self._failed = "BEGIN inside a transaction"
                raise txn_control.already_open()
            self._explicit = True
        elif not self._explicit:
            raise txn_control.no_transaction(control.verb)
        else:
            cause = self._failed
            self._end_explicit()
            if cause is not None and control.verb == "commit":
                raise txn_control.commit_of_failed(cause)
        return Result.empty()

    def close(self) -> None:
        with self._lock:
            try:
                self.settle_result()
            except AsofError:
                pass  # the rows it could not read are lost with the handle
            self._end_explicit()
            try:
                self.cur.close()
            except duckdb.Error:
                pass


def _whole(rel: duckdb.DuckDBPyRelation | None) -> Result:
    """A result read to its end now: the write path goes on using the cursor."""
    result = Result.of(rel)
    result.drain()
    return result


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass  # a failed COMMIT ends the transaction itself


def _arrow(rel: duckdb.DuckDBPyRelation | None) -> pa.Table:
    return pa.table({}) if rel is None else rel.to_arrow_table()


def _insert_or_update(row_ids: pa.ChunkedArray, before: int) -> pa.Array:
    fresh = pc.greater(row_ids, before)
    return pc.if_else(
        fresh, pa.scalar(int(RowOp.INSERT), pa.int8()), pa.scalar(int(RowOp.UPDATE), pa.int8())
    ).combine_chunks()


def _copies_into_table(st: Statement) -> bool:
    return find_kw(st.tokens, {"FROM"}) is not None
