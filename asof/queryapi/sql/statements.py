"""Reading user SQL: splitting, classifying, and finding the names a statement targets.

DuckDB parses; we use its statement splitter and tokenizer, and only look at the few tokens
that name a statement's target, so everything else DuckDB accepts passes through untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs
import duckdb

from asof.queryapi.errors import NotSupportedError, ProgrammingError


@attrs.frozen
class Token:
    start: int
    end: int
    kind: str  # keyword, identifier, operator, string_const, numeric_const, comment
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()

    def is_kw(self, *words: str) -> bool:
        return self.kind in ("keyword", "identifier") and self.upper in words


@attrs.frozen
class Name:
    """A possibly qualified object name as written, with where it sits in the text."""

    parts: tuple[str, ...]
    start: int
    end: int

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def schema(self) -> str | None:
        return self.parts[-2] if len(self.parts) > 1 else None


@attrs.frozen
class Statement:
    sql: str
    type: str  # DuckDB's StatementType name: SELECT, INSERT, CREATE, ...
    tokens: tuple[Token, ...]
    named_parameters: frozenset[str] = frozenset()

    def kw(self, i: int) -> str:
        return self.tokens[i].upper if i < len(self.tokens) else ""

    @property
    def verb(self) -> str:
        """The statement's first word as the user wrote it (DuckDB calls USE a SET)."""
        return self.kw(0) or self.type


def split(sql: str) -> list[Statement]:
    """Split a string of SQL into statements, raising ProgrammingError for bad syntax."""
    return list(_split(sql))


@functools.lru_cache(maxsize=256)
def _split(sql: str) -> tuple[Statement, ...]:
    """Statements are immutable and applications repeat their SQL: parse each text once."""
    if "\x00" in sql:
        raise ProgrammingError("SQL text contains a NUL character; remove it")
    mat = _materialized_view(sql)
    if mat is not None:
        return [mat]
    try:
        raw = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ProgrammingError(f"{_first_line(exc)}; check the SQL syntax") from None
    out: list[Statement] = []
    for st in raw:
        text = st.query.strip().rstrip(";").strip()
        if not text:
            continue
        named = frozenset(getattr(st, "named_parameters", ()) or ())
        toks = tokenize(text)
        if toks and toks[-1].end < len(text):
            # A trailing comment would swallow what a rewrite appends (RETURNING ...).
            text = text[: toks[-1].end].rstrip().rstrip(";").rstrip()
            toks = tokenize(text)
        try:
            kind = st.type.name
        except ValueError:  # a statement type this DuckDB client has no name for
            words = " ".join(t.upper for t in toks[:2])
            raise NotSupportedError(f"{words} statements are not supported by asof") from None
        if kind == "EXPLAIN" and _explains_a_write(text, toks):
            # EXPLAIN ANALYZE runs its statement: a write would bypass the log.
            kind = "EXPLAIN_ANALYZE_WRITE"
        out.append(Statement(text, kind, toks, named))
    return tuple(out)


def _explains_a_write(text: str, toks: Sequence[Token]) -> bool:
    """Whether `EXPLAIN ANALYZE <statement>` would run something other than a query."""
    inner, analyze = explain_target(text, toks)
    if not analyze or not inner:
        return False
    try:
        stmts = duckdb.extract_statements(inner)
    except duckdb.Error:
        return True
    return any(st.type.name != "SELECT" for st in stmts)


def explain_target(text: str, toks: Sequence[Token]) -> tuple[str, bool]:
    """The statement an `EXPLAIN [ANALYZE] [(options)] <statement>` explains, and whether
    it runs it (ANALYZE)."""
    i, analyze = 1, False
    if i < len(toks) and toks[i].upper == "ANALYZE":
        analyze, i = True, i + 1
    if i < len(toks) and toks[i].text == "(":  # EXPLAIN (ANALYZE, FORMAT ...) <statement>
        j = matching_paren(toks, i)
        analyze = analyze or any(t.upper == "ANALYZE" for t in toks[i:j])
        i = j + 1
    if i >= len(toks):
        return "", analyze
    return text[toks[i].start :], analyze


def _materialized_view(sql: str) -> Statement | None:
    """DuckDB has no materialized views; asof parses their three statements itself."""
    toks = tokenize(sql.strip().rstrip(";"))
    words = [t.upper for t in toks[:5]]
    if words[:3] == ["CREATE", "MATERIALIZED", "VIEW"] or words[:5] == [
        "CREATE",
        "OR",
        "REPLACE",
        "MATERIALIZED",
        "VIEW",
    ]:
        kind = "CREATE_MATVIEW"
    elif words[:2] == ["REFRESH", "MATERIALIZED"]:
        kind = "REFRESH_MATVIEW"
    elif words[:3] == ["DROP", "MATERIALIZED", "VIEW"]:
        kind = "DROP_MATVIEW"
    else:
        return None
    text = sql.strip().rstrip(";").strip()
    if ";" in "".join(t.text for t in toks if t.kind not in ("string_const", "comment")):
        raise ProgrammingError("send materialized view statements one at a time")
    return Statement(text, kind, tokenize(text))


def tokenize(sql: str) -> tuple[Token, ...]:
    try:
        raw = duckdb.tokenize(sql)
    except duckdb.Error as exc:  # pragma: no cover - the tokenizer is lenient
        raise ProgrammingError(f"{_first_line(exc)}; check the SQL syntax") from None
    if not sql.isascii():  # the tokenizer reports UTF-8 byte offsets; we index characters
        encoded = sql.encode("utf-8")
        raw = [(len(encoded[:start].decode("utf-8")), kind) for start, kind in raw]
    out = []
    for i, (start, kind) in enumerate(raw):
        end = raw[i + 1][0] if i + 1 < len(raw) else len(sql)
        text = sql[start:end].rstrip()
        kname = getattr(kind, "name", str(kind)).split(".")[-1]
        if kname == "comment":
            continue
        out.append(Token(start, start + len(text), kname, text))
    return tuple(out)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text


def read_name(tokens: Sequence[Token], i: int) -> tuple[Name, int]:
    """Read `a.b.c` starting at token i; return the name and the index after it."""
    if i >= len(tokens) or tokens[i].kind not in ("identifier", "keyword"):
        raise ProgrammingError("expected a name in the statement; check the SQL syntax")
    parts = [unquote(tokens[i].text)]
    start = tokens[i].start
    end = tokens[i].end
    j = i + 1
    while (
        j + 1 < len(tokens)
        and tokens[j].text == "."
        and tokens[j + 1].kind
        in (
            "identifier",
            "keyword",
        )
    ):
        parts.append(unquote(tokens[j + 1].text))
        end = tokens[j + 1].end
        j += 2
    return Name(tuple(parts), start, end), j


def depth_zero(tokens: Sequence[Token], start: int = 0):
    """Yield (index, token) for tokens outside any parentheses, from `start` on."""
    depth = 0
    for i in range(start, len(tokens)):
        t = tokens[i]
        if t.text == "(":
            if depth == 0:
                yield i, t
            depth += 1
        elif t.text == ")":
            depth -= 1
            if depth == 0:
                yield i, t
        elif depth == 0:
            yield i, t


def find_kw(tokens: Sequence[Token], words: set[str], start: int = 0) -> int | None:
    """Index of the first top-level keyword among `words`, from `start` on."""
    for i, t in depth_zero(tokens, start):
        if t.kind == "keyword" and t.upper in words:
            return i
    return None


def skip_words(tokens: Sequence[Token], i: int, *words: str) -> int:
    """Skip the optional keyword sequence `words` at i (all or nothing)."""
    j = i
    for w in words:
        if j < len(tokens) and tokens[j].upper == w:
            j += 1
        else:
            return i
    return j


def matching_paren(tokens: Sequence[Token], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "(":
            depth += 1
        elif tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ProgrammingError("unbalanced parentheses; check the SQL syntax")
