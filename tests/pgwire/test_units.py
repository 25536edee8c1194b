"""The pure pieces of the server: names, text forms, numeric binary, SCRAM, COPY parsing."""

from __future__ import annotations

import base64
import decimal
import hashlib
import hmac

import pyarrow as pa
import pytest

from asof.pgwire import types as pgt
from asof.pgwire.auth import Verifier, make_verifier
from asof.pgwire.colnames import postgres_names
from asof.pgwire.copy import CopySpec, _csv_rows, _text_rows, parse_copy
from asof.pgwire.errors import PgError
from asof.pgwire.execute import pieces, question_marks


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT (EXTRACT (EPOCH FROM CURRENT_TIMESTAMP)*1000000)::decimal(38,0)", ("numeric",)),
        ("SELECT count(*), 1 + 1, now(), k, t.v FROM t", ("count", "?column?", "now", "k", "v")),
        (
            "SELECT 1 AS a, coalesce(x, 1), CASE WHEN true THEN 1 END, current_date",
            ("a", "coalesce", "case", "current_date"),
        ),
        ("SELECT $1::int", ("int4",)),
        ("SELECT (SELECT max(k) FROM t), EXISTS (SELECT 1)", ("max", "exists")),
        ("SELECT 1 UNION SELECT 2 AS b", ("?column?",)),
        ("SELECT * FROM t", None),  # a star: DuckDB's names stand
        ("SELECT * FROM read_parquet('x') QUALIFY 1", None),  # not PostgreSQL: DuckDB's names
    ],
)
def test_postgres_column_names(sql, names):
    assert postgres_names(sql) == names


def test_intervals_in_postgres_style():
    assert pgt.interval_text(14, 3, 4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000) == (
        "1 year 2 mons 3 days 04:05:06.5"
    )
    assert pgt.interval_text(0, 0, 0) == "00:00:00"
    assert pgt.interval_text(-1, -1, -1_000_000) == "-1 mons -1 days -00:00:01"


@pytest.mark.parametrize("text", ["0", "3.10", "-12345.6789", "100000000", "0.0001", "1E-10"])
def test_numeric_binary_round_trip(text):
    value = decimal.Decimal(text)
    assert pgt._numeric_from_binary(pgt.numeric_binary(value)) == value


def test_floats_print_as_postgres_does():
    arr = pa.array([1.5, float("inf"), float("nan"), None, 1e20])
    assert pgt.text_column(arr, pgt.ColumnType(pgt.FLOAT8)).to_pylist() == [
        "1.5",
        "Infinity",
        "NaN",
        None,
        "1e+20",
    ]


def test_placeholders_in_order_become_question_marks():
    assert question_marks("INSERT INTO t VALUES ($1, $2)") == "INSERT INTO t VALUES (?, ?)"
    assert question_marks("SELECT $2, $1") == "SELECT $2, $1"  # out of order: kept
    assert question_marks("SELECT $1, $1") == "SELECT $1, $1"  # used twice: kept
    assert question_marks("SELECT '$1', $1") == "SELECT '$1', ?"  # strings untouched


def test_statements_split_at_top_level_semicolons():
    got = pieces("SELECT ';' ; -- x\nCREATE DATABASE a TEMPLATE b AS OF 5;;")
    assert [p.sql for p in got] == ["SELECT ';'", "-- x\nCREATE DATABASE a TEMPLATE b AS OF 5"]
    assert got[1].words[:2] == ("CREATE", "DATABASE")
    assert pieces(" ; -- only a comment") == []


def test_verifier_is_rfc_5802_and_hides_the_password():
    text = make_verifier("pencil", salt=b"0123456789abcdef", iterations=4096)
    v = Verifier.parse(text)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", b"0123456789abcdef", 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert v.stored_key == hashlib.sha256(client_key).digest()
    assert v.server_key == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert "pencil" not in text and base64.b64encode(b"pencil").decode() not in text
    assert make_verifier("pencil") != make_verifier("pencil")  # a fresh salt each time


def test_copy_statements_parse():
    spec = parse_copy("COPY t1 (k, v) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';')")
    assert (spec.table, spec.columns, spec.format, spec.header, spec.delimiter) == (
        "t1",
        ("k", "v"),
        "csv",
        True,
        ";",
    )
    assert parse_copy("COPY (SELECT 1) TO STDOUT").query == "SELECT 1"
    with pytest.raises(PgError) as exc:
        parse_copy("COPY t1 FROM '/etc/passwd'")
    assert exc.value.code == "0A000"
    with pytest.raises(PgError):
        parse_copy("COPY t1 FROM STDIN (FORMAT binary)")


def test_copy_rows_parse_nulls_quotes_and_escapes():
    csv_spec = CopySpec("t", (), None, "from", "csv", ",", "", False)
    assert _csv_rows('1,"a,b",\n2,"",x\n"q""x",,\n', csv_spec) == [
        ["1", "a,b", None],
        ["2", "", "x"],
        ['q"x', None, None],
    ]
    text_spec = CopySpec("t", (), None, "from")
    assert _text_rows("1\ta\\tb\t\\N\n\\.\n9\tx\ty\n", text_spec) == [["1", "a\tb", None]]
