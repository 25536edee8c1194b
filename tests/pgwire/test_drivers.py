"""psycopg 3 and pg8000 against `asof serve`: transactions, parameters, binary results,
COPY, errors with their SQLSTATEs, cancel and statement_timeout."""

from __future__ import annotations

import datetime
import decimal
import threading
import time
import uuid

import pg8000.native
import psycopg
import pytest
from pgserver import PASSWORD, USER


@pytest.fixture
def conn(server):
    with psycopg.connect(server.dsn()) as c:
        yield c


def _table(conn, name: str, ddl: str) -> None:
    conn.autocommit = True
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} {ddl}")
    conn.autocommit = False


def test_parameters_and_types_round_trip(conn):
    _table(
        conn,
        "typed",
        "(k INT PRIMARY KEY, s TEXT, f DOUBLE, n DECIMAL(10,2), ts TIMESTAMP, "
        "tz TIMESTAMPTZ, d DATE, b BOOLEAN, u UUID, bl BLOB)",
    )
    row = (
        1,
        "a'b",
        1.5,
        decimal.Decimal("2.50"),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 600000),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.date(2024, 2, 29),
        True,
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        b"\x00\xff",
    )
    conn.execute("INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
    conn.commit()
    got = conn.execute("SELECT * FROM typed WHERE k = %s", (1,)).fetchone()
    assert got == row
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT k, s, f, n, ts, tz, d, b, u FROM typed")
        assert cur.fetchone() == row[:9]
    types = [c.type_code for c in conn.execute("SELECT * FROM typed").description]
    assert types == [23, 25, 701, 1700, 1114, 1184, 1082, 16, 2950, 17]


def test_transactions_commit_and_roll_back(server, conn):
    _table(conn, "tx", "(k INT)")
    conn.execute("INSERT INTO tx VALUES (1)")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.rollback()
    conn.execute("INSERT INTO tx VALUES (2)")
    with psycopg.connect(server.dsn()) as other:  # uncommitted: not visible elsewhere
        assert other.execute("SELECT count(*) FROM tx").fetchone() == (0,)
    conn.commit()
    assert conn.execute("SELECT k FROM tx").fetchall() == [(2,)]
    conn.rollback()
    conn.autocommit = True
    conn.execute("INSERT INTO tx VALUES (3)")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with psycopg.connect(server.dsn()) as other:
        assert other.execute("SELECT k FROM tx ORDER BY k").fetchall() == [(2,), (3,)]


def test_executemany_and_command_tags(conn):
    _table(conn, "many", "(k INT, v TEXT)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO many VALUES (%s, %s)", [(i, f"v{i}") for i in range(20)])
        cur.execute("UPDATE many SET v = 'x' WHERE k < 3")
        assert cur.statusmessage == "UPDATE 3" and cur.rowcount == 3
        cur.execute("DELETE FROM many WHERE k >= 18")
        assert cur.statusmessage == "DELETE 2"
        cur.execute("SELECT * FROM many")
        assert cur.statusmessage == "SELECT 18"
    conn.commit()


def test_the_aborted_transaction_state(conn):
    _table(conn, "ab", "(k INT PRIMARY KEY)")
    conn.execute("INSERT INTO ab VALUES (1)")
    conn.commit()
    conn.execute("INSERT INTO ab VALUES (2)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO ab VALUES (1)")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        conn.execute("SELECT 1")
    cur = conn.execute("COMMIT")  # COMMIT of a failed transaction rolls it back
    assert cur.statusmessage == "ROLLBACK"
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT k FROM ab").fetchall() == [(1,)]  # the 2 was undone
    conn.rollback()


def test_errors_carry_sqlstates(conn):
    conn.autocommit = True
    with pytest.raises(psycopg.errors.UndefinedTable) as exc:
        conn.execute("SELECT * FROM no_such_table")
    assert exc.value.diag.message_primary == 'relation "no_such_table" does not exist'
    with pytest.raises(psycopg.errors.SyntaxError):
        conn.execute("SELEC 1")
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 // 0 + (1 / 0)::INT")


def test_copy_in_and_out(conn):
    _table(conn, "cp", "(k INT, s TEXT)")
    rows = [(i, None if i % 3 == 0 else f"line\t{i}\\\n") for i in range(1000)]
    with conn.cursor() as cur:
        with cur.copy("COPY cp (k, s) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        assert cur.rowcount == 1000
        conn.commit()
        with cur.copy("COPY (SELECT k, s FROM cp ORDER BY k) TO STDOUT") as copy:
            back = [(int(k), s) for k, s in copy.rows()]
    assert back == rows
    with conn.cursor() as cur:
        with cur.copy("COPY cp TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            text = b"".join(bytes(b) for b in copy).decode()
    assert text.splitlines()[0] == "k,s"
    assert '1,"line\t1\\\n"' in text


def test_a_bad_copy_changes_nothing(conn):
    _table(conn, "cpbad", "(k INT)")
    conn.autocommit = True
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        with conn.cursor().copy("COPY cpbad FROM STDIN") as copy:
            copy.write(b"1\n2\nnot a number\n")
    assert conn.execute("SELECT count(*) FROM cpbad").fetchone() == (0,)


def test_cancel_interrupts_a_running_query(conn):
    conn.autocommit = True
    timer = threading.Timer(0.5, conn.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled) as exc:
        conn.execute("SELECT count(*) FROM range(1000000000000) a")
    assert time.monotonic() - started < 20
    assert "user request" in str(exc.value)
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable


def test_statement_timeout(conn):
    conn.autocommit = True
    conn.execute("SET statement_timeout = 300")
    with pytest.raises(psycopg.errors.QueryCanceled) as exc:
        conn.execute("SELECT count(*) FROM range(1000000000000) a")
    assert "statement timeout" in str(exc.value)
    conn.execute("SET statement_timeout = 0")
    assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_wrong_password_and_unknown_user_fail_alike(server):
    for user, password in ((USER, "wrong"), ("mallory", PASSWORD)):
        with pytest.raises(psycopg.OperationalError) as exc:
            psycopg.connect(server.dsn(user=user, password=password))
        assert "28P01" in str(exc.value) or "password authentication failed" in str(exc.value)


def test_unknown_database(server):
    with pytest.raises(psycopg.OperationalError) as exc:
        psycopg.connect(server.dsn(dbname="nope"))
    assert 'database "nope" does not exist' in str(exc.value)


def test_pg8000_smoke(server):
    con = pg8000.native.Connection(
        USER, host="127.0.0.1", port=server.port, database="postgres", password=PASSWORD
    )
    try:
        con.run("DROP TABLE IF EXISTS p8")
        con.run("CREATE TABLE p8 (k INT, v TEXT)")
        con.run("INSERT INTO p8 VALUES (:k, :v)", k=1, v="one")
        con.run("INSERT INTO p8 VALUES (:k, :v)", k=2, v="two")
        assert con.run("SELECT k, v FROM p8 ORDER BY k") == [[1, "one"], [2, "two"]]
        assert con.run("SELECT count(*) FROM p8 WHERE k > :k", k=1) == [[1]]
        assert [c["name"] for c in con.columns] == ["count"]
    finally:
        con.close()
