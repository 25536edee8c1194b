"""Errors stay in the hierarchy: hostile or odd arguments to every public entry raise an
AsofError subclass (or work), and states that used to leak Python or DuckDB exceptions
(unrepresentable values, dropped databases, unwritable directories) say what to do."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asof import (
    AsofError,
    Cluster,
    DataError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)
from support import head_ts, tick


@pytest.fixture
def db(cluster):
    cluster.sql("CREATE DATABASE d")
    d = cluster.database("d")
    d.sql("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    d.sql("INSERT INTO t VALUES (1, 10)")
    tick()
    return d


# ------------------------------------------------------------------ AS OF values
@pytest.mark.parametrize(
    "value",
    [
        "²",  # a digit to str.isdigit, not to int()
        "١٢٣",  # Arabic-Indic digits
        dt.datetime.max.replace(tzinfo=dt.UTC),  # in the future
        dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))),  # before 1970
        dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))),  # past year 9999
        float("nan"),
        float("inf"),
        1.5,
        10**30,
        -(10**30),
        -1,
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("1.5"),
        Decimal("1e400"),
        "",
        None,
        True,
        b"123",
        dt.date(2024, 1, 1),
        object(),
    ],
)
def test_as_of_junk_is_a_programming_error(db, value):
    with pytest.raises(ProgrammingError):
        db.as_of(value)


def test_naive_datetimes_are_refused_and_aware_ones_work(db):
    ts = head_ts(db)
    aware = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts)
    with pytest.raises(ProgrammingError, match="no time zone"):
        db.as_of(aware.replace(tzinfo=None))
    with pytest.raises(ProgrammingError, match="no time zone"):
        db.as_of(dt.datetime.max)
    with pytest.raises(ProgrammingError, match="no time zone"):
        db.history("t", since=dt.datetime(2024, 1, 1))
    other_zone = aware.astimezone(dt.timezone(dt.timedelta(hours=-7, minutes=-30)))
    with db.as_of(aware) as a, db.as_of(other_zone) as b, db.as_of(ts) as c:
        assert a.ts == b.ts == c.ts == ts
        assert a.sql("SELECT * FROM t").fetchall() == [(1, 10)]


def test_sql_time_travel_reads_a_zone_less_timestamp_as_utc(db):
    ts = head_ts(db)
    text = (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts)).isoformat(sep=" ")
    got = db.sql(f"SELECT * FROM t AT (TIMESTAMP => TIMESTAMP '{text}')").fetchall()
    assert got == [(1, 10)]


# ------------------------------------------------------------------ values
@pytest.mark.parametrize(
    "expr",
    [
        "'infinity'::DATE",
        "'-infinity'::DATE",
        "'infinity'::TIMESTAMP",
        "'infinity'::TIMESTAMPTZ",
        "'5877642-06-25'::DATE",
        "INTERVAL '2147483647 months'",
    ],
)
def test_values_python_cannot_hold_are_a_data_error_that_says_how_to_fetch_them(db, expr):
    result = db.sql(f"SELECT 1 AS a, {expr} AS x")
    with pytest.raises(DataError, match="VARCHAR") as info:
        result.fetchall()
    assert "'x'" in str(info.value)  # names the column
    assert result.arrow().num_rows == 1  # Arrow holds it
    text = db.sql(f"SELECT CAST({expr} AS VARCHAR)").fetchall()[0][0]
    assert isinstance(text, str) and text


def test_a_date_pandas_cannot_hold_is_a_data_error(db):
    pytest.importorskip("pandas")
    with pytest.raises(DataError, match="pandas"):
        db.sql("SELECT 'infinity'::DATE AS x").df()


def test_fetchmany_refuses_a_size_that_is_not_a_count(db):
    result = db.sql("SELECT * FROM t")
    for size in (-1, 1.5, "2", None):
        with pytest.raises(ProgrammingError):
            result.fetchmany(size)
    assert result.fetchmany(5) == [(1, 10)]


def test_statements_duckdb_cannot_name_are_not_supported(db):
    with pytest.raises(NotSupportedError, match="UPDATE EXTENSIONS"):
        db.sql("UPDATE EXTENSIONS")
    with pytest.raises(NotSupportedError):
        db.sql("SELECT 1; UPDATE EXTENSIONS")


# ------------------------------------------------------------- dropped databases
def test_a_dropped_databases_handles_say_so(cluster, db):
    past = db.as_of(head_ts(db))
    cluster.sql("DROP DATABASE d")
    for call in [
        lambda: db.sql("SELECT * FROM t"),
        lambda: db.sql("INSERT INTO t VALUES (2, 20)"),
        lambda: db.as_of(1),
        lambda: db.history("t"),
        lambda: list(db.transactions()),
        lambda: db.tables(),
    ]:
        with pytest.raises(ProgrammingError, match="database 'd' was dropped"):
            call()
    past.close()
    cluster.sql("CREATE DATABASE d")  # a new database of the same name: old handle still dead
    with pytest.raises(ProgrammingError, match="was dropped"):
        db.sql("SELECT 1")
    assert cluster.database("d").sql("SELECT 1").fetchall() == [(1,)]


def test_a_handle_in_a_transaction_when_its_database_is_dropped(cluster, db):
    db.sql("BEGIN")
    db.sql("SELECT * FROM t")  # reading: holds no lock, so the drop goes ahead
    cluster.drop_database("d")
    with pytest.raises(ProgrammingError, match="was dropped"):
        db.sql("SELECT * FROM t")


# ------------------------------------------------------------- unwritable directory
def _open_in_child(path: Path, *, as_nobody: bool) -> str:
    """What Cluster.open(path) raises in a forked child (as nobody when `as_nobody`: root
    ignores directory permissions). The child has every module loaded already."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if as_nobody:
                os.setgid(65534)
                os.setuid(65534)
            try:
                Cluster.open(path).close()
                text = "OPENED"
            except OperationalError as exc:
                text = f"OperationalError: {exc}"
            except BaseException as exc:
                text = f"RAW {type(exc).__name__}: {exc}"
            os.write(write, text.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    return text


@pytest.mark.parametrize("exists", [True, False])
def test_an_unwritable_data_directory_is_an_operational_error_naming_it(exists):
    parent = Path(tempfile.mkdtemp())
    try:
        parent.chmod(0o755)
        data = parent / "data"
        if exists:
            data.mkdir()
            data.chmod(0o555)  # an existing directory this process cannot write
        else:
            parent.chmod(0o555)  # one it cannot create
        out = _open_in_child(data, as_nobody=os.geteuid() == 0)
    finally:
        parent.chmod(0o755)
        shutil.rmtree(parent, ignore_errors=True)
    assert out.startswith("OperationalError:"), out
    assert str(data) in out and "read_only=True" in out


def test_a_data_directory_under_a_file_is_an_operational_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OperationalError, match="data directory"):
        Cluster.open(tmp_path / "file" / "data")
    with pytest.raises(ProgrammingError):
        Cluster.open(123)  # type: ignore[arg-type]


# ----------------------------------------------------- junk into every entry
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.floats(),
    st.decimals(),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.datetimes(),
    st.datetimes(timezones=st.timezones()),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)

_CALLS = [
    ("db.sql", lambda c, d, a, b: d.sql(a)),
    ("db.sql params", lambda c, d, a, b: d.sql("SELECT ?", a)),
    ("db.sql insert params", lambda c, d, a, b: d.sql("INSERT INTO t VALUES (?, ?)", [a, b])),
    ("db.as_of", lambda c, d, a, b: d.as_of(a).close()),
    ("db.history", lambda c, d, a, b: d.history(a)),
    ("db.history where", lambda c, d, a, b: d.history("t", where=a)),
    ("db.history since", lambda c, d, a, b: d.history("t", since=a, until=b)),
    ("db.transactions", lambda c, d, a, b: list(d.transactions(since=a, until=b))),
    ("db.transactions table", lambda c, d, a, b: list(d.transactions(table=a))),
    ("db.transaction_log", lambda c, d, a, b: d.transaction_log(since=a)),
    ("asof.sql", lambda c, d, a, b: d.as_of(head_ts(d)).sql(a)),
    ("cluster.sql", lambda c, d, a, b: c.sql(a)),
    ("cluster.database", lambda c, d, a, b: c.database(a)),
    ("cluster.clone", lambda c, d, a, b: c.clone("d", "x_clone", as_of=a)),
    ("cluster.clone names", lambda c, d, a, b: c.clone(a, b)),
    ("cluster.window", lambda c, d, a, b: c.window(a)),
    ("cluster.list_clones", lambda c, d, a, b: c.list_clones(a, seq_no=b)),
    ("cluster.set_flag", lambda c, d, a, b: c.set_flag(a, b)),
    ("cluster.schedule", lambda c, d, a, b: c.create_snapshot_schedule("d", a, b)),
    ("cluster.delete_schedule", lambda c, d, a, b: c.delete_snapshot_schedule(a)),
    ("cluster.drop_database", lambda c, d, a, b: c.drop_database(a, if_exists=True)),
    ("result.fetchmany", lambda c, d, a, b: d.sql("SELECT 1").fetchmany(a)),
    ("cluster.checkpoint", lambda c, d, a, b: c.checkpoint(a)),
]


@pytest.fixture(scope="module")
def junk_target():
    c = Cluster.open(None)
    c.sql("CREATE DATABASE d")
    d = c.database("d")
    d.sql("CREATE TABLE t (k INT, v VARCHAR)")
    d.sql("INSERT INTO t VALUES (1, 'a')")
    yield c, d
    c.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=st.sampled_from(_CALLS), a=_JUNK, b=_JUNK)
def test_every_public_entry_raises_only_asof_errors(junk_target, call, a, b):
    cluster, db = junk_target
    _, fn = call
    try:
        fn(cluster, db, a, b)
    except AsofError:
        pass
    finally:
        if db.in_transaction:
            db.sql("ROLLBACK")
        if "x_clone" in cluster.databases():
            cluster.drop_database("x_clone")
    assert cluster.check("d") == []
