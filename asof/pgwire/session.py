"""One client connection: startup, authentication, then the simple and extended query
protocols, until the client says Terminate or the server shuts down."""

from __future__ import annotations

import secrets
import socket
import sys
import threading
import traceback
from typing import Any

import attrs
import pyarrow as pa

from asof.pgwire import messages as m
from asof.pgwire import types as pgt
from asof.pgwire.auth import authenticate
from asof.pgwire.errors import (
    ADMIN_SHUTDOWN,
    DUPLICATE_PREPARED,
    FEATURE_NOT_SUPPORTED,
    PROTOCOL_VIOLATION,
    SYNTAX_ERROR,
    TOO_MANY_CONNECTIONS,
    UNDEFINED_CURSOR,
    UNDEFINED_DATABASE,
    UNDEFINED_PREPARED,
    PgError,
    from_asof,
)
from asof.pgwire.execute import REPORTED, Executor, Outcome, Piece, pieces
from asof.pgwire.wire import Host
from asof.queryapi import Result
from asof.queryapi.errors import AsofError

BATCH_ROWS = 65_536
FLUSH_BYTES = 1 << 18


@attrs.define
class Prepared:
    sql: str
    piece: Piece | None
    oids: list[int]


@attrs.define
class Portal:
    prepared: Prepared
    params: list[Any]
    formats: list[int]
    outcome: Outcome | None = None
    sent: int = 0


class Connection:
    """The protocol state of one client; run() is the connection's thread."""

    def __init__(self, server: Host, sock: socket.socket, local: bool, peer: str) -> None:
        self.server = server
        self.peer = peer
        self.sock = sock
        self.local = local  # came in on the Unix socket
        self.reader = m.Reader(sock)
        self.out: list[bytes] = []
        self.out_size = 0
        self.pid = server.next_pid()
        self.secret = secrets.randbits(31)
        self.executor: Executor | None = None
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.skipping = False  # after an error in the extended protocol, until Sync
        self.user = ""
        self.database = ""
        self._state = threading.Lock()
        self._idle = False
        self._closing = False

    # ------------------------------------------------------------- output
    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)
        if self.out_size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.out:
            return
        data = b"".join(self.out)
        self.out = []
        self.out_size = 0
        try:
            self.sock.sendall(data)
        except OSError:
            raise m.ClientGone() from None

    def send_error(self, err: PgError) -> None:
        self.send(m.error_response(err.fields()))

    def fatal(self, err: PgError) -> None:
        err = attrs.evolve(err, severity="FATAL")
        try:
            self.send_error(err)
            self.flush()
        except m.ClientGone:
            pass

    def report(self, name: str, value: str) -> None:
        self.send(m.parameter_status(name, value))

    # -------------------------------------------------------------- run
    def run(self) -> None:
        try:
            if self._startup():
                self._loop()
        except m.ClientGone:
            pass
        except m.ProtocolViolation as exc:
            self.fatal(PgError(PROTOCOL_VIOLATION, str(exc)))
        except PgError as exc:
            self.fatal(exc)
        finally:
            self.close()

    def close(self) -> None:
        self.server.forget(self)
        if self.executor is not None:
            try:
                self.executor.db.close()
            except AsofError:
                pass
            self.executor = None
        try:
            self.sock.close()
        except OSError:
            pass

    def _startup(self) -> bool:
        while True:
            start = self.reader.startup()
            if start.code in (m.SSL_REQUEST, m.GSSENC_REQUEST):
                if start.code == m.SSL_REQUEST and self.server.tls is not None:
                    self.sock.sendall(b"S")
                    self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
                    self.reader = m.Reader(self.sock)
                else:
                    self.sock.sendall(b"N")
                continue
            if start.code == m.CANCEL_REQUEST:
                if len(start.body) >= 8:
                    pid = int.from_bytes(start.body[:4], "big")
                    secret = int.from_bytes(start.body[4:8], "big")
                    self.server.cancel(pid, secret)
                return False
            if start.code >> 16 != 3:
                raise PgError(
                    FEATURE_NOT_SUPPORTED,
                    f"unsupported frontend protocol {start.code >> 16}.{start.code & 0xFFFF}: "
                    "server supports 3.0",
                )
            break
        params = start.parameters()
        self.user = params.get("user", "")
        if not self.user:
            raise PgError("28000", "no PostgreSQL user name specified in startup packet")
        self.database = params.get("database") or self.user
        if not self.server.admit(self):
            raise PgError(TOO_MANY_CONNECTIONS, "sorry, too many clients already")
        authenticate(self, self.server.auth)
        cluster = self.server.cluster
        try:
            db = cluster.database(self.database)
        except AsofError:
            raise PgError(
                UNDEFINED_DATABASE, f'database "{self.database}" does not exist'
            ) from None
        self.executor = Executor(cluster, db, self.user, self.report)
        self.executor.catalog_answer = self.server.catalog_answer
        settings = self.executor.settings
        if "application_name" in params:
            settings["application_name"] = params["application_name"]
        for key, value in params.items():
            if key not in ("user", "database", "options", "replication", "application_name"):
                try:
                    self.executor._assign(key, value)
                except PgError:
                    pass
        settings["session_authorization"] = self.user
        if self.server.statement_timeout_ms and "statement_timeout" not in params:
            settings["statement_timeout"] = str(self.server.statement_timeout_ms)
        self.send(m.authentication(0))
        for name in REPORTED:
            self.send(m.parameter_status(name, settings.get(name, "")))
        self.send(m.backend_key_data(self.pid, self.secret))
        self.send(m.ready_for_query("I"))
        self.flush()
        return True

    # -------------------------------------------------------------- loop
    def _loop(self) -> None:
        while True:
            with self._state:
                if self._closing:
                    self._terminate()
                    return
                self._idle = True
            try:
                kind, body = self.reader.message()
            finally:
                with self._state:
                    self._idle = False
            if kind == b"X":
                return
            if self.skipping and kind != b"S":
                continue
            handler = self._handlers.get(kind)
            if handler is None:
                if kind in (b"d", b"c", b"f"):
                    continue  # copy messages outside a copy: ignored, as PostgreSQL does
                raise m.ProtocolViolation(f"invalid frontend message type {kind[0]}")
            try:
                handler(self, body)
            except (m.ClientGone, m.ProtocolViolation):
                raise
            except Exception as exc:  # a bug must cost the statement, not the connection
                err = exc if isinstance(exc, PgError) else _internal(exc)
                self.send_error(err)
                if kind == b"Q":
                    self._ready()
                else:
                    self.skipping = True
            if kind in (b"H",):
                self.flush()

    def shutdown(self) -> None:
        """Server shutdown: an idle connection ends now, a busy one after its statement."""
        with self._state:
            self._closing = True
            idle = self._idle
        if idle:
            try:
                self.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def cancel(self) -> None:
        if self.executor is not None:
            self.executor.interrupt("user request")

    def _terminate(self) -> None:
        self.fatal(PgError(ADMIN_SHUTDOWN, "terminating connection due to administrator command"))

    def _ready(self) -> None:
        assert self.executor is not None
        self.send(m.ready_for_query(self.executor.status))
        self.flush()

    # ------------------------------------------------------ simple query
    def _query(self, body: bytes) -> None:
        sql = m.Body(body).cstr()
        ex = self.executor
        assert ex is not None
        parts = pieces(sql)
        if not parts:
            self.send(m.EMPTY_QUERY)
        for piece in parts:
            if piece.first == "COPY":
                from asof.pgwire.copy import run_copy

                tag = run_copy(self, piece)
                self.send(m.command_complete(tag))
                continue
            try:
                outcome = ex.run(piece)
            except PgError as err:
                self.send_error(err)
                break
            self._send_outcome(outcome, [], 0)
        self._ready()

    def _send_outcome(self, outcome: Outcome, formats: list[int], limit: int) -> bool:
        """Send what a statement answered (RowDescription first in the simple protocol)."""
        for notice in outcome.notices:
            self.send(m.notice_response(notice.fields()))
        if outcome.empty:
            self.send(m.EMPTY_QUERY)
            return True
        if outcome.result is not None and limit == 0 and not formats:
            self.send(self.row_description(outcome, formats))
        done = True
        if outcome.result is not None:
            done = self.send_rows(outcome, formats, 0, limit)[1]
        if done:
            self.send(m.command_complete(outcome.tag))
        return done

    def row_description(self, outcome: Outcome, formats: list[int]) -> bytes:
        assert outcome.result is not None
        table = outcome.result.arrow()
        types = outcome.result.types or [None] * table.num_columns
        names = outcome.names or tuple(table.column_names)
        fields = []
        for i, f in enumerate(table.schema):
            ct = pgt.column_type(f.type, types[i])
            fmt = _format(formats, i)
            fields.append(m.Field(names[i], ct.oid, ct.size, ct.typmod, fmt))
        return m.row_description(fields)

    def send_rows(
        self, outcome: Outcome, formats: list[int], start: int, limit: int
    ) -> tuple[int, bool]:
        """DataRows from row `start`, at most `limit` (0: all); (sent, finished)."""
        result = outcome.result
        assert result is not None
        table = result.arrow()
        types = result.types or [None] * table.num_columns
        ctypes = [pgt.column_type(f.type, types[i]) for i, f in enumerate(table.schema)]
        end = table.num_rows if limit == 0 else min(table.num_rows, start + limit)
        if end - start <= 16 and all(_format(formats, i) == 0 for i in range(len(ctypes))):
            # A few rows: plain Python is cheaper than setting up the numpy assembly.
            part = table.slice(start, end - start)
            texts = [
                pgt.text_column(c.combine_chunks(), ctypes[i]).to_pylist()
                for i, c in enumerate(part.columns)
            ]
            for values in zip(*texts, strict=True) if texts else [()] * part.num_rows:
                self.send(m.data_row([None if v is None else v.encode() for v in values]))
            return end - start, end >= table.num_rows
        pos = start
        while pos < end:
            n = min(BATCH_ROWS, end - pos)
            batch = table.slice(pos, n)
            arrays = []
            for i, col in enumerate(batch.columns):
                arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
                arrays.append(_encode(arr, ctypes[i], _format(formats, i)))
            if arrays:
                self.send(pgt.data_rows(arrays))
            else:
                for _ in range(n):
                    self.send(m.data_row([]))
            pos += n
        return end - start, end >= table.num_rows

    # ---------------------------------------------------- extended query
    def _parse(self, body: bytes) -> None:
        b = m.Body(body)
        name = b.cstr()
        sql = b.cstr()
        oids = [b.int32() for _ in range(b.int16())]
        if name and name in self.prepared:
            raise PgError(DUPLICATE_PREPARED, f'prepared statement "{name}" already exists')
        parts = pieces(sql)
        if len(parts) > 1:
            raise PgError(SYNTAX_ERROR, "cannot insert multiple commands into a prepared statement")
        count = _parameter_count(sql)
        oids += [0] * max(0, count - len(oids))
        self.prepared[name] = Prepared(sql, parts[0] if parts else None, oids)
        self.send(m.PARSE_COMPLETE)

    def _bind(self, body: bytes) -> None:
        b = m.Body(body)
        portal = b.cstr()
        name = b.cstr()
        fmts = [b.int16() for _ in range(b.int16())]
        raw: list[bytes | None] = []
        for _ in range(b.int16()):
            n = b.int32()
            raw.append(None if n < 0 else b.bytes(n))
        result_formats = [b.int16() for _ in range(b.int16())]
        stmt = self.prepared.get(name)
        if stmt is None:
            raise PgError(UNDEFINED_PREPARED, f'prepared statement "{name}" does not exist')
        if len(raw) != len(stmt.oids):
            raise PgError(
                PROTOCOL_VIOLATION,
                f"bind message supplies {len(raw)} parameters, but prepared statement "
                f'"{name}" requires {len(stmt.oids)}',
            )
        try:
            params = [
                pgt.decode_param(stmt.oids[i], _format(fmts, i), v) for i, v in enumerate(raw)
            ]
        except (ValueError, NotImplementedError, UnicodeDecodeError) as exc:
            raise PgError("22P02", f"invalid parameter value: {exc}") from None
        self.portals[portal] = Portal(stmt, params, result_formats)
        self.send(m.BIND_COMPLETE)

    def _portal(self, name: str) -> Portal:
        portal = self.portals.get(name)
        if portal is None:
            raise PgError(UNDEFINED_CURSOR, f'portal "{name}" does not exist')
        return portal

    def _run_portal(self, portal: Portal) -> Outcome:
        if portal.outcome is None:
            piece = portal.prepared.piece
            if piece is None:
                portal.outcome = Outcome(empty=True)
            elif piece.first == "COPY":
                from asof.pgwire.copy import run_copy

                portal.outcome = Outcome(run_copy(self, piece))
            else:
                assert self.executor is not None
                portal.outcome = self.executor.run(piece, portal.params)
        return portal.outcome

    def _describe(self, body: bytes) -> None:
        b = m.Body(body)
        what = b.bytes(1)
        name = b.cstr()
        if what == b"S":
            stmt = self.prepared.get(name)
            if stmt is None:
                raise PgError(UNDEFINED_PREPARED, f'prepared statement "{name}" does not exist')
            self.send(m.parameter_description([o or pgt.TEXT for o in stmt.oids]))
            outcome = self._describe_statement(stmt)
            if outcome is None:
                self.send(m.NO_DATA)
            else:
                self.send(self.row_description(outcome, []))
            return
        if what != b"P":
            raise m.ProtocolViolation("invalid DESCRIBE message subtype")
        portal = self._portal(name)
        piece = portal.prepared.piece
        if piece is not None and piece.first == "COPY":
            self.send(m.NO_DATA)
            return
        outcome = self._run_portal(portal)
        if outcome.result is None:
            self.send(m.NO_DATA)
        else:
            self.send(self.row_description(outcome, portal.formats))

    def _describe_statement(self, stmt: Prepared) -> Outcome | None:
        """The columns a prepared query will return, found by running it on no rows."""
        piece = stmt.piece
        ex = self.executor
        if piece is None or ex is None or ex.failed:
            return None
        if piece.first not in ("SELECT", "WITH", "VALUES", "TABLE", "SHOW", "FROM"):
            return None
        if piece.first == "SHOW":
            return ex.run(piece)
        probe = Piece(f"SELECT * FROM ({piece.sql}) AS _describe LIMIT 0", ("SELECT",))
        try:
            outcome = ex.run(probe, [None] * len(stmt.oids))
        except PgError:
            ex.failed = False
            return None
        from asof.pgwire import colnames

        names = colnames.postgres_names(piece.sql)
        if outcome.result is not None and names and len(names) == len(outcome.result.columns):
            outcome.names = names
        return outcome

    def _execute(self, body: bytes) -> None:
        b = m.Body(body)
        name = b.cstr()
        limit = b.int32()
        portal = self._portal(name)
        fresh = portal.outcome is None
        outcome = self._run_portal(portal)
        if fresh:
            for notice in outcome.notices:
                self.send(m.notice_response(notice.fields()))
        if outcome.empty:
            self.send(m.EMPTY_QUERY)
            return
        if outcome.result is None:
            self.send(m.command_complete(outcome.tag))
            return
        sent, done = self.send_rows(outcome, portal.formats, portal.sent, max(limit, 0))
        portal.sent += sent
        if done:
            self.send(m.command_complete(outcome.tag))
        else:
            self.send(m.PORTAL_SUSPENDED)

    def _close(self, body: bytes) -> None:
        b = m.Body(body)
        what = b.bytes(1)
        name = b.cstr()
        if what == b"S":
            self.prepared.pop(name, None)
        else:
            self.portals.pop(name, None)
        self.send(m.CLOSE_COMPLETE)

    def _sync(self, body: bytes) -> None:
        self.skipping = False
        self.portals.pop("", None)
        self._ready()

    def _flush(self, body: bytes) -> None:
        self.flush()

    _handlers = {
        b"Q": _query,
        b"P": _parse,
        b"B": _bind,
        b"D": _describe,
        b"E": _execute,
        b"C": _close,
        b"S": _sync,
        b"H": _flush,
    }


def _internal(exc: BaseException) -> PgError:
    traceback.print_exception(exc, file=sys.stderr)
    return PgError("XX000", f"internal error: {type(exc).__name__}: {exc}")


def _format(formats: list[int], i: int) -> int:
    if not formats:
        return 0
    return formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0)


def _encode(arr: pa.Array, ctype: pgt.ColumnType, fmt: int) -> pa.Array:
    if fmt == 1:
        try:
            return pgt.binary_column(arr, ctype)
        except NotImplementedError as exc:
            raise PgError(FEATURE_NOT_SUPPORTED, str(exc)) from None
    return pgt.text_column(arr, ctype)


def _parameter_count(sql: str) -> int:
    from asof.queryapi.sql.statements import tokenize

    try:
        tokens = tokenize(sql)
    except AsofError:
        return 0
    highest = 0
    for a, b in zip(tokens, tokens[1:], strict=False):
        if a.text == "$" and b.kind == "numeric_const" and b.start == a.end and b.text.isdigit():
            highest = max(highest, int(b.text))
    return highest


def result_of(table: pa.Table, types: list[str] | None = None) -> Result:
    return Result(table, types=types)


__all__ = ["Connection", "from_asof"]
