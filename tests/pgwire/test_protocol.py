"""The wire protocol itself, message by message, through the Unix socket."""

from __future__ import annotations

import struct

import pytest
from rawclient import Raw, error_fields, kinds, names, rows, tags


@pytest.fixture
def raw(local_server):
    client = Raw(local_server.socket_path)
    first = client.startup("alice", "postgres")
    assert kinds(first)[-1:] == b"Z", first
    yield client
    client.close()


def test_startup_reports_parameters_and_a_cancel_key(local_server):
    client = Raw(local_server.socket_path)
    try:
        got = client.startup("alice", "postgres")
    finally:
        client.close()
    params = dict(
        tuple(part.decode() for part in body.split(b"\x00")[:2]) for k, body in got if k == b"S"
    )
    assert params["server_version"] == "15.0 (asof)"
    assert params["server_encoding"] == "UTF8" and params["client_encoding"] == "UTF8"
    assert params["DateStyle"] == "ISO, MDY" and params["TimeZone"] == "UTC"
    assert params["integer_datetimes"] == "on"
    assert params["standard_conforming_strings"] == "on"
    assert kinds(got).startswith(b"R") and b"K" in kinds(got) and got[-1] == (b"Z", b"I")


def test_ssl_and_gssenc_requests_are_declined(local_server):
    client = Raw(local_server.socket_path)
    try:
        for code in (80877103, 80877104):
            client.send(struct.pack("!ii", 8, code))
            assert client._read(1) == b"N"
        assert kinds(client.startup("alice", "postgres"))[-1:] == b"Z"
    finally:
        client.close()


def test_simple_query_answers_every_statement(raw):
    got = raw.query(
        "CREATE TABLE st (k INT); INSERT INTO st SELECT * FROM range(5); "
        "SELECT count(*), 1 + 1 FROM st; DROP TABLE st"
    )
    assert tags(got) == ["CREATE TABLE", "INSERT 0 5", "SELECT 1", "DROP TABLE"]
    assert names(got) == ["count", "?column?"]
    assert rows(got) == [["5", "2"]]
    assert got[-1] == (b"Z", b"I")


def test_empty_query(raw):
    assert kinds(raw.query("")) == b"IZ"
    assert kinds(raw.query(" ;  ; -- nothing")) == b"IZ"


def test_an_error_stops_the_rest_of_the_string(raw):
    got = raw.query("SELECT 1; SELECT * FROM missing; SELECT 2")
    assert rows(got) == [["1"]]
    assert error_fields(got)["C"] == "42P01"
    assert got[-1] == (b"Z", b"I")


def test_transaction_status_bytes(raw):
    assert raw.query("BEGIN")[-1] == (b"Z", b"T")
    got = raw.query("SELECT 1/0::INT + x FROM nowhere")
    assert got[-1] == (b"Z", b"E")
    got = raw.query("SELECT 1")
    assert error_fields(got)["C"] == "25P02" and got[-1] == (b"Z", b"E")
    got = raw.query("ROLLBACK")
    assert tags(got) == ["ROLLBACK"] and got[-1] == (b"Z", b"I")
    warned = raw.query("COMMIT")
    assert b"N" in kinds(warned) and tags(warned) == ["COMMIT"]


def test_text_output_of_common_types(raw):
    got = raw.query(
        "SELECT true, false, 1::SMALLINT, 2::BIGINT, 1.50::DECIMAL(5,2), 0.1::DOUBLE, "
        "'inf'::DOUBLE, 1.5::REAL, 'x'::TEXT, '\\x01\\xFF'::BLOB, DATE '2024-02-29', "
        "TIME '04:05:06.5', TIMESTAMP '2024-01-02 03:04:05', "
        "TIMESTAMPTZ '2024-01-02 03:04:05.25+00', INTERVAL '1 year 2 months 3 days 04:05:06', "
        "'12345678-1234-5678-1234-567812345678'::UUID, '{\"a\": 1}'::JSON, [1, 2, NULL], "
        "['a b', 'c'], NULL::INT"
    )
    assert rows(got) == [
        [
            "t",
            "f",
            "1",
            "2",
            "1.50",
            "0.1",
            "Infinity",
            "1.5",
            "x",
            "\\x01ff",
            "2024-02-29",
            "04:05:06.5",
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:05.25+00",
            "1 year 2 mons 3 days 04:05:06",
            "12345678-1234-5678-1234-567812345678",
            '{"a": 1}',
            "{1,2,NULL}",
            '{"a b",c}',
            None,
        ]
    ]


def test_extended_protocol_with_row_limits(raw):
    raw.parse("s1", "SELECT i FROM range($1::INT) t(i) ORDER BY i", (23,))
    raw.bind("p1", "s1", (b"5",))
    raw.describe(b"P", "p1")
    raw.execute("p1", 2)
    raw.execute("p1", 2)
    raw.execute("p1", 2)
    got = raw.sync()
    assert kinds(got) == b"12TDDsDDsDCZ"
    assert rows(got) == [["0"], ["1"], ["2"], ["3"], ["4"]]
    # The named statement survives Sync; a new portal runs it again.
    raw.bind("", "s1", (b"2",))
    raw.execute("")
    assert rows(raw.sync()) == [["0"], ["1"]]


def test_describe_statement(raw):
    raw.parse("s2", "SELECT $1::INT + 1 AS n, 'x' AS s")
    raw.describe(b"S", "s2")
    got = raw.sync()
    assert kinds(got) == b"1tTZ"
    assert names(got) == ["n", "s"]


def test_binary_results(raw):
    raw.parse("", "SELECT 7::INT, 2::BIGINT, 'ab'::TEXT, NULL::INT")
    raw.bind("", "", (), (1,))
    raw.execute("")
    got = raw.sync()
    data = [body for k, body in got if k == b"D"][0]
    assert data == (
        struct.pack("!h", 4)
        + struct.pack("!ii", 4, 7)
        + struct.pack("!iq", 8, 2)
        + struct.pack("!i", 2)
        + b"ab"
        + struct.pack("!i", -1)
    )


def test_after_an_error_messages_are_skipped_until_sync(raw):
    raw.parse("", "SELECT $1::INT")
    raw.bind("", "", (b"1", b"2"))  # one parameter too many: Bind fails
    raw.execute("")  # skipped
    raw.describe(b"S", "")  # skipped
    got = raw.sync()
    assert kinds(got) == b"1EZ" and error_fields(got)["C"] == "08P01"
    raw.parse("", "SELECT 3")
    raw.bind("", "")
    raw.execute("")
    assert rows(raw.sync()) == [["3"]]


def test_close_and_unknown_names(raw):
    raw.parse("gone", "SELECT 1")
    raw.msg(b"C", b"Sgone\x00")
    raw.bind("", "gone")
    got = raw.sync()
    assert kinds(got) == b"13EZ" and error_fields(got)["C"] == "26000"


def test_duplicate_and_multi_statement_prepares_are_refused(raw):
    raw.parse("d", "SELECT 1")
    raw.parse("d", "SELECT 2")
    got = raw.sync()
    assert error_fields(got)["C"] == "42P05"
    raw.parse("", "SELECT 1; SELECT 2")
    assert error_fields(raw.sync())["C"] == "42601"


def test_hostile_messages_end_only_that_connection(local_server):
    for payload in (
        struct.pack("!i", 3),  # a length shorter than itself
        struct.pack("!ii", 2_000_000_000, 196608),  # an absurd startup length
        struct.pack("!ii", 8, 1234),  # an unknown protocol
    ):
        client = Raw(local_server.socket_path)
        client.send(payload)
        try:
            kind, body = client.read()
            assert kind == b"E"
        except (EOFError, ConnectionError):
            pass
        client.close()
    client = Raw(local_server.socket_path)
    client.startup("alice", "postgres")
    client.send(b"Q" + struct.pack("!i", 1 << 30))  # a message longer than allowed
    with pytest.raises((EOFError, ConnectionError)):
        while True:
            kind, _ = client.read()
            assert kind == b"E"
    client.close()
    ok = Raw(local_server.socket_path)
    ok.startup("alice", "postgres")
    assert rows(ok.query("SELECT 42")) == [["42"]]
    ok.close()


def test_unknown_database_over_the_socket(local_server):
    client = Raw(local_server.socket_path)
    got = client.startup("alice", "nope")
    client.close()
    fields = error_fields(got)
    assert fields["C"] == "3D000" and fields["S"] == "FATAL"
