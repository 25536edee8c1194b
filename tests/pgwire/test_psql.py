"""psql runs the seed's walkthrough verbatim against `asof serve`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pgserver import PASSWORD, USER

HERE = Path(__file__).parent
PSQL = shutil.which("psql") or "/usr/bin/psql"

pytestmark = pytest.mark.skipif(not os.path.exists(PSQL), reason="psql is not installed")


def normalize(text: str) -> str:
    """The walkthrough inserts md5(random()): mask those, nothing else."""
    return re.sub(r"\b[0-9a-f]{32}\b", "<md5>", text)


def psql(server, *args: str, cwd: Path, dbname: str = "postgres") -> subprocess.CompletedProcess:
    env = dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="10")
    env.pop("PGSERVICE", None)
    return subprocess.run(
        [PSQL, "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", USER, "-d", dbname, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # errors in place, as on a terminal
        text=True,
        timeout=120,
    )


def test_seed_walkthrough_matches_the_golden_output(fresh_server, tmp_path):
    out = psql(fresh_server, "-a", "-f", str(HERE / "seed_walkthrough.sql"), cwd=tmp_path)
    got = normalize(out.stdout.replace(str(HERE / "seed_walkthrough.sql"), "FILE"))
    golden = (HERE / "seed_walkthrough.out").read_text()
    assert got == golden, got
    # The rows came back into production through \copy, and stay there.
    again = psql(
        fresh_server,
        "-At",
        "-c",
        "SELECT k, v FROM t1 ORDER BY k",
        cwd=tmp_path,
        dbname="production_db",
    )
    assert again.stdout.split() == ["1|1", "2|0", "3|1", "4|0", "5|1"]


META_EXPECTED = """\
                                        List of databases
   Name   | Owner | Encoding | Collate | Ctype | ICU Locale | Locale Provider | Access privileges 
----------+-------+----------+---------+-------+------------+-----------------+-------------------
 meta_db  | alice | UTF8     | C       | C     |            | libc            | 
 postgres | alice | UTF8     | C       | C     |            | libc            | 
(2 rows)

       List of relations
 Schema | Name | Type  | Owner 
--------+------+-------+-------
 public | t2   | table | alice
(1 row)

        List of relations
 Schema | Name |   Type   | Owner 
--------+------+----------+-------
 public | s1   | sequence | alice
 public | t2   | table    | alice
 public | v1   | view     | alice
(3 rows)

      List of schemas
  Name  |       Owner       
--------+-------------------
 public | pg_database_owner
(1 row)

                  Table "public.t2"
 Column |  Type   | Collation | Nullable |  Default  
--------+---------+-----------+----------+-----------
 key    | integer |           | not null | 
 c1     | text    |           | not null | 'x'::text
Indexes:
    "t2_pkey" PRIMARY KEY, btree (key)
    "i1" btree (c1)

Did not find any relation named "nope".
"""


def test_meta_commands_print_what_postgres_prints(fresh_server, tmp_path):
    """The same objects in PostgreSQL 15 print the same (owners aside); asof's storage
    tables, the `_asof` schema and the hidden columns never show."""
    setup = psql(fresh_server, "-c", "CREATE DATABASE meta_db", cwd=tmp_path)
    assert setup.returncode == 0, setup.stdout
    ddl = psql(
        fresh_server,
        "-c",
        "CREATE TABLE t2 (key INT PRIMARY KEY, c1 TEXT NOT NULL DEFAULT 'x')",
        "-c",
        "CREATE VIEW v1 AS SELECT * FROM t2",
        "-c",
        "CREATE SEQUENCE s1",
        "-c",
        "CREATE INDEX i1 ON t2 (c1)",
        cwd=tmp_path,
        dbname="meta_db",
    )
    assert ddl.returncode == 0, ddl.stdout
    out = psql(
        fresh_server,
        *("-c", "\\l", "-c", "\\dt", "-c", "\\d", "-c", "\\dn", "-c", "\\d t2", "-c", "\\d nope"),
        cwd=tmp_path,
        dbname="meta_db",
    )
    assert out.stdout == META_EXPECTED


def test_meta_commands_show_the_users_schemas(fresh_server, tmp_path):
    assert psql(fresh_server, "-c", "CREATE DATABASE schema_db", cwd=tmp_path).returncode == 0
    ddl = psql(
        fresh_server,
        *("-c", "CREATE SCHEMA sales", "-c", "CREATE TABLE sales.orders (id INT PRIMARY KEY)"),
        *("-c", "CREATE VIEW sales.recent AS SELECT * FROM sales.orders"),
        *("-c", "CREATE TABLE t (i INT)"),
        cwd=tmp_path,
        dbname="schema_db",
    )
    assert ddl.returncode == 0, ddl.stdout
    out = psql(
        fresh_server,
        *("-c", "\\dn", "-c", "\\dt", "-c", "\\dt sales.*", "-c", "\\d sales.orders"),
        cwd=tmp_path,
        dbname="schema_db",
    )
    assert out.stdout == SCHEMAS_EXPECTED, out.stdout


SCHEMAS_EXPECTED = """\
      List of schemas
  Name  |       Owner       
--------+-------------------
 public | pg_database_owner
 sales  | alice
(2 rows)

       List of relations
 Schema | Name | Type  | Owner 
--------+------+-------+-------
 public | t    | table | alice
(1 row)

        List of relations
 Schema |  Name  | Type  | Owner 
--------+--------+-------+-------
 sales  | orders | table | alice
(1 row)

               Table "sales.orders"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 id     | integer |           | not null | 
Indexes:
    "orders_pkey" PRIMARY KEY, btree (id)

"""
