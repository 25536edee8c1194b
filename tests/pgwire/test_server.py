"""The server as a process: logins, limits, many clients, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pgserver import ServerProcess

from asof import Cluster


def _asof(data, *args: str, env: dict | None = None, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "asof", "--data", str(data), *args],
        env=dict(os.environ, **(env or {})),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_commands_keep_a_verifier_never_the_password(tmp_path):
    data = tmp_path / "data"
    assert (
        _asof(data, "user", "add", "bob", "--password-stdin", stdin="hunter2-xyz\n").returncode == 0
    )
    assert _asof(data, "user", "add", "carol", env={"ASOF_PASSWORD": "pw-carol-1"}).returncode == 0
    again = _asof(data, "user", "add", "bob", env={"ASOF_PASSWORD": "other"})
    assert again.returncode != 0 and "already exists" in again.stderr
    assert _asof(data, "user", "list").stdout.split() == ["bob", "carol"]
    assert _asof(data, "user", "drop", "carol").returncode == 0
    assert _asof(data, "user", "list").stdout.split() == ["bob"]
    missing = _asof(data, "user", "drop", "carol")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    for path in data.rglob("*"):
        if path.is_file():
            assert b"hunter2-xyz" not in path.read_bytes(), path
    with Cluster.open(data, read_only=True) as cluster:
        assert cluster.catalog.users.get("bob").verifier.startswith("SCRAM-SHA-256$4096:")


def test_a_cluster_without_users_refuses_tcp_logins(tmp_path):
    srv = ServerProcess(tmp_path / "data", users=False)
    try:
        with pytest.raises(psycopg.OperationalError) as exc:
            psycopg.connect(srv.dsn())
        assert "user add" in str(exc.value)
    finally:
        srv.stop()


def test_trust_is_only_for_the_socket(tmp_path):
    srv = ServerProcess(tmp_path / "data", "--trust-local")
    try:
        with psycopg.connect(
            host=str(srv.socket_dir), port=srv.port, user="anyone", dbname="postgres"
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(srv.dsn(user="anyone", password=""))
    finally:
        srv.stop()


def test_failed_logins_are_rate_limited(fresh_server):
    for _ in range(5):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(fresh_server.dsn(password="wrong"))
    with pytest.raises(psycopg.OperationalError) as exc:  # even the right one, for a while
        psycopg.connect(fresh_server.dsn())
    assert "too many failed attempts" in str(exc.value)


def test_connections_past_the_limit_get_a_clear_error(tmp_path):
    srv = ServerProcess(tmp_path / "data", "--max-connections", "2")
    try:
        a = psycopg.connect(srv.dsn())
        b = psycopg.connect(srv.dsn())
        with pytest.raises(psycopg.OperationalError) as exc:
            psycopg.connect(srv.dsn())
        assert "too many clients" in str(exc.value)
        a.close()
        time.sleep(0.2)
        with psycopg.connect(srv.dsn()) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        b.close()
    finally:
        srv.stop()


def test_fifty_concurrent_writers_lose_no_update(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS counter")
        conn.execute("CREATE TABLE counter (id INT PRIMARY KEY, n INT)")
        conn.execute("INSERT INTO counter VALUES (1, 0)")
        conn.execute("DROP TABLE IF EXISTS ledger")
        conn.execute("CREATE TABLE ledger (client INT, i INT)")
    clients, rounds = 50, 2
    deadline = time.monotonic() + 120

    def work(client: int) -> int:
        done = 0
        with psycopg.connect(server.dsn()) as conn:  # transactions, not autocommit
            for i in range(rounds):
                while time.monotonic() < deadline:
                    try:
                        n = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]
                        conn.execute("UPDATE counter SET n = %s WHERE id = 1", (n + 1,))
                        conn.execute("INSERT INTO ledger VALUES (%s, %s)", (client, i))
                        conn.commit()
                        done += 1
                        break
                    except psycopg.errors.SerializationFailure:
                        conn.rollback()  # read a stale n: retry, as PostgreSQL clients do
        return done

    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(work, range(clients)))
    assert done == clients * rounds
    with psycopg.connect(server.dsn()) as conn:
        assert conn.execute("SELECT n FROM counter").fetchone() == (clients * rounds,)
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (clients * rounds,)


def test_sigterm_during_a_bulk_insert_leaves_nothing_half_applied(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data)
    n = 3_000_000
    with psycopg.connect(srv.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE big (k BIGINT, s TEXT)")
    outcome: dict[str, object] = {}

    def load() -> None:
        try:
            with psycopg.connect(srv.dsn(), autocommit=True) as conn:
                cur = conn.execute(f"INSERT INTO big SELECT i, 'row ' || i FROM range({n}) t(i)")
                outcome["tag"] = cur.statusmessage
        except psycopg.Error as exc:
            outcome["error"] = exc

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.5)
    code = srv.stop(signal.SIGTERM)
    t.join(60)
    assert code == 0
    with Cluster.open(data, read_only=True) as cluster:
        count = cluster.database("postgres").sql("SELECT count(*) FROM big").fetchone()[0]
    assert count in (0, n)
    if "tag" in outcome:  # the client was told it committed: then every row is there
        assert outcome["tag"] == f"INSERT 0 {n}" and count == n
