"""Cluster statements: CREATE DATABASE [TEMPLATE src [AS OF µs]] and DROP DATABASE."""

from __future__ import annotations

import attrs

from asof.queryapi.errors import ProgrammingError
from asof.queryapi.sql.statements import Token, tokenize, unquote

_USAGE = (
    "cluster statements are CREATE DATABASE name [TEMPLATE source [AS OF <unix µs>]] and "
    "DROP DATABASE [IF EXISTS] name"
)


@attrs.frozen
class ClusterStatement:
    verb: str  # create | drop
    name: str
    template: str | None = None
    as_of: int | None = None
    if_exists: bool = False


def is_cluster_statement(sql: object) -> bool:
    """Whether `sql` is CREATE DATABASE or DROP DATABASE (which the cluster runs)."""
    if not isinstance(sql, str):
        return False
    words = sql.split(None, 2)[:2]
    return (
        len(words) == 2
        and words[0].upper() in ("CREATE", "DROP")
        and words[1].upper() == "DATABASE"
    )


def parse_cluster_sql(sql: str) -> list[ClusterStatement]:
    if not isinstance(sql, str):
        raise ProgrammingError("SQL must be a string")
    if "\x00" in sql:
        raise ProgrammingError("SQL text contains a NUL character; remove it")
    out = []
    for part in _split(tokenize(sql)):
        if part:
            out.append(_parse(part))
    if not out:
        raise ProgrammingError(f"no statement given; {_USAGE}")
    return out


def _split(tokens: tuple[Token, ...]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for t in tokens:
        if t.text == ";":
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _name(tok: Token | None) -> str:
    if tok is None or tok.kind not in ("identifier", "keyword", "string_const"):
        raise ProgrammingError(f"expected a database name; {_USAGE}")
    text = tok.text
    if tok.kind == "string_const":
        return text[1:-1].replace("''", "'")
    return unquote(text)


def _parse(toks: list[Token]) -> ClusterStatement:
    words = [t.upper for t in toks]
    get = lambda i: toks[i] if i < len(toks) else None  # noqa: E731
    if words[:2] == ["CREATE", "DATABASE"]:
        name = _name(get(2))
        i = 3
        template = None
        as_of = None
        if i < len(toks) and words[i] == "WITH":
            i += 1
        if i < len(toks) and words[i] == "TEMPLATE":
            i += 1
            if i < len(toks) and toks[i].text == "=":
                i += 1
            template = _name(get(i))
            i += 1
        if i < len(toks) and words[i] == "AS":
            if i + 1 >= len(toks) or words[i + 1] != "OF" or template is None:
                raise ProgrammingError(f"AS OF needs TEMPLATE; {_USAGE}")
            value = toks[i + 2] if i + 2 < len(toks) else None
            if value is None or value.kind != "numeric_const" or not value.text.isdigit():
                shown = value.text if value is not None else "nothing"
                raise ProgrammingError(
                    f"AS OF {shown} is not a time; give Unix time in whole microseconds, "
                    "e.g. AS OF 1723243720285350"
                )
            as_of = int(value.text)
            i += 3
        if i != len(toks):
            raise ProgrammingError(f"unexpected {toks[i].text!r}; {_USAGE}")
        return ClusterStatement("create", name, template, as_of)
    if words[:2] == ["DROP", "DATABASE"]:
        i = 2
        if_exists = words[2:4] == ["IF", "EXISTS"]
        if if_exists:
            i = 4
        name = _name(get(i))
        if i + 1 != len(toks):
            raise ProgrammingError(f"unexpected {toks[i + 1].text!r}; {_USAGE}")
        return ClusterStatement("drop", name, if_exists=if_exists)
    raise ProgrammingError(
        f"{' '.join(words[:2]) or 'this'} is not a cluster statement; {_USAGE}. "
        "Run table statements with cluster.database(name).sql()"
    )
