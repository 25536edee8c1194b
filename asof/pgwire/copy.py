"""COPY … FROM STDIN and COPY … TO STDOUT (text and CSV), what psql's `\\copy` and
psycopg's `cursor.copy()` send.

COPY FROM never writes a table behind the log's back: the rows the client streams are
gathered, then inserted by one `INSERT … SELECT unnest(…)` through the handle, which logs
them like any bulk insert (and casts each text field to its column's type, so a bad field
fails the whole COPY and changes nothing).
"""

from __future__ import annotations

import re

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from asof.pgwire import messages as m
from asof.pgwire import types as pgt
from asof.pgwire.errors import (
    FEATURE_NOT_SUPPORTED,
    IN_FAILED_TRANSACTION,
    QUERY_CANCELED,
    SYNTAX_ERROR,
    PgError,
)
from asof.pgwire.execute import Piece
from asof.pgwire.wire import Wire
from asof.queryapi.sql.statements import Token, matching_paren, tokenize, unquote


@attrs.frozen
class CopySpec:
    table: str | None  # quoted as written, or None for COPY (query) TO
    columns: tuple[str, ...]
    query: str | None
    direction: str  # "from" | "to"
    format: str = "text"  # text | csv
    delimiter: str = "\t"
    null: str = "\\N"
    header: bool = False
    quote: str = '"'


def parse_copy(sql: str) -> CopySpec:
    toks = tokenize(sql)
    if len(toks) < 4 or toks[0].upper != "COPY":
        raise PgError(SYNTAX_ERROR, "syntax error in COPY")
    i = 1
    table = None
    query = None
    columns: tuple[str, ...] = ()
    if toks[i].text == "(":
        end = matching_paren(toks, i)
        query = sql[toks[i].end : toks[end].start]
        i = end + 1
    else:
        start = i
        while i + 1 < len(toks) and toks[i + 1].text == ".":
            i += 2
        table = sql[toks[start].start : toks[i].end]
        i += 1
        if i < len(toks) and toks[i].text == "(":
            end = matching_paren(toks, i)
            columns = tuple(
                t.text for t in toks[i + 1 : end] if t.text != "," and t.kind != "operator"
            )
            i = end + 1
    if i + 1 >= len(toks) or toks[i].upper not in ("FROM", "TO"):
        raise PgError(SYNTAX_ERROR, "COPY needs FROM STDIN or TO STDOUT")
    direction = toks[i].upper.lower()
    target = toks[i + 1].upper
    if target not in ("STDIN", "STDOUT"):
        raise PgError(
            FEATURE_NOT_SUPPORTED,
            "COPY to or from a file or program is not supported by the asof server; use psql's "
            "\\copy, which sends the data over the connection",
        )
    if (direction == "from") != (target == "STDIN") or (query is not None and direction == "from"):
        raise PgError(SYNTAX_ERROR, "COPY FROM goes with STDIN, COPY TO with STDOUT")
    options = _options(toks[i + 2 :])
    fmt = options.get("format", "text").lower()
    if fmt not in ("text", "csv"):
        raise PgError(FEATURE_NOT_SUPPORTED, f"COPY format {fmt} is not supported; use text or csv")
    csv_mode = fmt == "csv"
    delimiter = options.get("delimiter", "," if csv_mode else "\t")
    if len(delimiter) != 1:
        raise PgError("22023", "COPY delimiter must be a single one-byte character")
    return CopySpec(
        table,
        columns,
        query,
        direction,
        fmt,
        delimiter,
        options.get("null", "" if csv_mode else "\\N"),
        options.get("header", "false").lower() in ("true", "on", "1", ""),
        options.get("quote", '"'),
    )


def _options(toks: tuple[Token, ...] | list[Token]) -> dict[str, str]:
    out: dict[str, str] = {}
    words = [t for t in toks if t.text not in (",", "(", ")") and t.upper not in ("WITH", "AS")]
    j = 0
    while j < len(words):
        word = words[j].upper
        nxt = words[j + 1] if j + 1 < len(words) else None
        if word in ("CSV", "BINARY", "TEXT"):
            out["format"] = word.lower()
            j += 1
        elif word == "HEADER":
            if nxt is not None and nxt.upper in ("TRUE", "FALSE", "ON", "OFF", "MATCH"):
                out["header"] = nxt.upper.lower()
                j += 2
            else:
                out["header"] = "true"
                j += 1
        elif nxt is not None:
            out[word.lower()] = _literal(nxt)
            j += 2
        else:
            raise PgError(SYNTAX_ERROR, f'syntax error at or near "{words[j].text}"')
    return out


def _literal(tok: Token) -> str:
    text = tok.text
    if tok.kind == "string_const" and len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if text.upper().startswith("E'") and text.endswith("'"):
        return text[2:-1].encode().decode("unicode_escape")
    return unquote(text)


def run_copy(conn: Wire, piece: Piece) -> str:
    ex = conn.executor
    assert ex is not None
    if ex.failed:
        raise PgError(
            IN_FAILED_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        )
    spec = parse_copy(piece.sql)
    if spec.direction == "to":
        return _copy_out(conn, spec)
    return _copy_in(conn, spec)


# ------------------------------------------------------------------ COPY TO
def _copy_out(conn: Wire, spec: CopySpec) -> str:
    ex = conn.executor
    assert ex is not None
    if spec.query is not None:
        sql = spec.query
    else:
        cols = ", ".join(spec.columns) if spec.columns else "*"
        sql = f"SELECT {cols} FROM {spec.table}"
    outcome = ex.run(Piece(sql, ("SELECT",)))
    result = outcome.result
    assert result is not None
    table = result.arrow()
    types = result.types or [None] * table.num_columns
    conn.send(m.copy_response(b"H", True, table.num_columns))
    if spec.header:
        names = outcome.names or tuple(table.column_names)
        conn.send(m.copy_data(_line([_csv_field(n, spec) for n in names], spec)))
    for start in range(0, table.num_rows, 65_536):
        batch = table.slice(start, 65_536)
        fields = []
        for i, col in enumerate(batch.columns):
            arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
            text = pgt.text_column(arr, pgt.column_type(arr.type, types[i]))
            fields.append(_escape(text, spec))
        if fields:
            lines = pc.binary_join_element_wise(*fields, spec.delimiter)
        else:
            lines = pa.array([""] * batch.num_rows, pa.string())
        conn.send(frames(b"d", pc.binary_join_element_wise(lines, "\n", "")))
    conn.send(m.COPY_DONE)
    return f"COPY {table.num_rows}"


def _escape(text: pa.Array, spec: CopySpec) -> pa.Array:
    if spec.format == "csv":
        q = spec.quote
        special = f"[{_re_class(spec.delimiter)}{_re_class(q)}\\r\\n]"
        needs = pc.or_(pc.match_substring_regex(text, special), pc.equal(text, spec.null))
        quoted = pc.binary_join_element_wise(q, pc.replace_substring(text, q, q + q), q, "")
        out = pc.if_else(needs, quoted, text)
        return pc.fill_null(out, spec.null)
    out = pc.replace_substring(text, "\\", "\\\\")
    for raw, esc in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        out = pc.replace_substring(out, raw, esc)
    if spec.delimiter not in "\n\r\t\\":
        out = pc.replace_substring(out, spec.delimiter, "\\" + spec.delimiter)
    return pc.fill_null(out, spec.null)


def _re_class(ch: str) -> str:
    return "\\" + ch if ch in "]\\^-[" else ch


def _csv_field(value: str, spec: CopySpec) -> str:
    if spec.format != "csv":
        return value
    if any(c in value for c in (spec.delimiter, spec.quote, "\n", "\r")):
        return spec.quote + value.replace(spec.quote, spec.quote * 2) + spec.quote
    return value


def _line(fields: list[str], spec: CopySpec) -> bytes:
    return (spec.delimiter.join(fields) + "\n").encode()


def frames(kind: bytes, arr: pa.Array) -> bytes:
    """One message of type `kind` per value of a string array, built with numpy."""
    n = len(arr)
    if n == 0:
        return b""
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    total = lengths + 5
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(total[:-1], out=starts[1:])
    out = np.empty(int(starts[-1] + total[-1]), dtype=np.uint8)
    out[starts] = kind[0]
    pgt._put(out, starts + 1, (lengths + 4).astype(">i4"))
    first, last = int(offsets[0]), int(offsets[-1])
    if last > first:
        dest = np.arange(first, last, dtype=np.int64) + np.repeat(
            starts + 5 - offsets[:-1], lengths
        )
        out[dest] = data[first:last]
    return out.tobytes()


# ---------------------------------------------------------------- COPY FROM
def _copy_in(conn: Wire, spec: CopySpec) -> str:
    ex = conn.executor
    assert ex is not None
    columns = list(spec.columns)
    if not columns:
        probe = ex.run(Piece(f"SELECT * FROM {spec.table} LIMIT 0", ("SELECT",)))
        assert probe.result is not None
        columns = [_ident(c) for c in probe.result.columns]
    conn.send(m.copy_response(b"G", True, len(columns)))
    conn.flush()
    data = _receive(conn)
    rows = _parse_rows(data, spec, len(columns))
    if not rows:
        return "COPY 0"
    values = [[row[i] for row in rows] for i in range(len(columns))]
    selects = ", ".join(f"unnest(${i + 1}::VARCHAR[])" for i in range(len(columns)))
    sql = f"INSERT INTO {spec.table} ({', '.join(columns)}) SELECT {selects}"
    outcome = ex.run(Piece(sql, ("INSERT",)), values)
    return f"COPY {outcome.tag.rsplit(' ', 1)[-1]}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _receive(conn: Wire) -> bytes:
    chunks: list[bytes] = []
    failure: str | None = None
    while True:
        kind, body = conn.reader.message()
        if kind == b"d":
            chunks.append(body)
        elif kind == b"c":
            break
        elif kind == b"f":
            failure = m.Body(body).cstr()
            break
        elif kind in (b"H", b"S"):
            continue
        else:
            raise PgError("08P01", f"unexpected message type {kind!r} during COPY from stdin")
    if failure is not None:
        raise PgError(QUERY_CANCELED, f"COPY from stdin failed: {failure}")
    return b"".join(chunks)


def _parse_rows(data: bytes, spec: CopySpec, width: int) -> list[list[str | None]]:
    text = data.decode("utf-8")
    if spec.format == "csv":
        rows = _csv_rows(text, spec)
        if spec.header and rows:
            rows = rows[1:]
    else:
        rows = _text_rows(text, spec)
    for n, row in enumerate(rows):
        if len(row) != width:
            raise PgError(
                "22P04",
                f"{'extra' if len(row) > width else 'missing'} data for column "
                f"(line {n + 1 + spec.header}: expected {width} fields, got {len(row)})",
            )
    return rows


def _text_rows(text: str, spec: CopySpec) -> list[list[str | None]]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows: list[list[str | None]] = []
    for n, line in enumerate(lines):
        if line.endswith("\r"):
            line = line[:-1]
        if n == 0 and spec.header:
            continue
        if line == "\\.":
            break
        rows.append([None if f == spec.null else _unescape(f) for f in line.split(spec.delimiter)])
    return rows


def _csv_rows(text: str, spec: CopySpec) -> list[list[str | None]]:
    """CSV as PostgreSQL reads it: an unquoted field equal to the NULL string is NULL, a
    quoted one never is (Python's csv module cannot tell the two apart)."""
    d = re.escape(spec.delimiter)
    q = re.escape(spec.quote)
    field = re.compile(rf"(?:{q}((?:[^{q}]|{q}{q})*){q}|([^{d}{q}\r\n]*))({d}|\r?\n|$)")
    rows: list[list[str | None]] = []
    row: list[str | None] = []
    pos = 0
    size = len(text)
    while pos < size:
        match = field.match(text, pos)
        if match is None:
            raise PgError("22P04", f"unterminated or misplaced CSV quote near offset {pos}")
        quoted, plain, sep = match.groups()
        if quoted is not None:
            row.append(quoted.replace(spec.quote * 2, spec.quote))
        else:
            row.append(None if plain == spec.null else plain)
        pos = match.end()
        if sep != spec.delimiter:
            if row == ["\\."]:
                break
            rows.append(row)
            row = []
            if not sep:
                break
    return rows


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            nxt = field[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
