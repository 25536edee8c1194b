"""The command line: every command documented with an example; the seed through the CLI."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from asof import Cluster
from asof.queryapi.cli import main


class Cli:
    def __init__(self, data: str) -> None:
        self.data = data
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, stdin: str | None = None):
        result = self.runner.invoke(main, ["--data", self.data, *args], input=stdin)
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    def cluster(self) -> Cluster:
        return Cluster.open(self.data)


@pytest.fixture
def run(tmp_path):
    return Cli(str(tmp_path / "data"))


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example: asof" in result.output, f"{name} --help has no example"
        assert command.help and command.help.strip(), name
    top = runner.invoke(main, ["--help"])
    for name in main.commands:
        assert name in top.output


def test_seed_through_the_cli(run):
    failed = run("sql", "postgres", "-c", "SELECT 1", ok=False)
    assert failed.exit_code != 0 and "does not exist" in failed.output
    with run.cluster() as cluster:
        cluster.sql("CREATE DATABASE yugabyte")
    run("sql", "yugabyte", "-c", "CREATE DATABASE production_db")
    assert run("create_snapshot_schedule", "1440", "4320", "production_db").output
    run("sql", "production_db", "-c", "CREATE TABLE t1 (k INT, v INT)")
    out = run(
        "sql",
        "production_db",
        "-c",
        "INSERT INTO t1 (k,v) SELECT i,i%2 FROM generate_series(1,5) AS i",
    ).output
    assert out.strip() == "INSERT 0 5"  # psql's command tag
    time.sleep(0.002)
    out = run(
        "sql",
        "production_db",
        "-c",
        "SELECT (EXTRACT (EPOCH FROM CURRENT_TIMESTAMP)*1000000)::decimal(38,0)",
    ).output
    ts = out.splitlines()[2].strip()
    time.sleep(0.002)
    run("sql", "production_db", "-c", "DROP TABLE t1")
    failed = run("sql", "production_db", "-c", "SELECT * FROM t1 ORDER BY k", ok=False)
    assert failed.exit_code != 0 and "t1" in failed.output
    run("sql", "production_db", "-c", f"CREATE DATABASE clone_db TEMPLATE production_DB AS OF {ts}")
    out = run("sql", "clone_db", "-c", "SELECT * FROM t1 ORDER BY k").output
    assert out.splitlines()[:3] == [" k | v", "---+---", " 1 | 1"]
    assert "(5 rows)" in out
    clones = json.loads(run("list_clones", "production_db").output)
    assert clones[0]["aggregate_state"] == "COMPLETE"
    assert clones[0]["target_namespace_name"] == "clone_db"
    assert json.loads(run("list_clones", "production_db", "1").output) == clones
    schedules = json.loads(run("list_snapshot_schedules").output)
    assert schedules[0]["interval_minutes"] == 1440
    run("delete_snapshot_schedule", schedules[0]["id"])
    assert json.loads(run("list_snapshot_schedules").output) == []
    run("set_flag", "enable_db_clone", "false")
    failed = run("clone_namespace", "production_db", "other", ok=False)
    assert "enable_db_clone" in failed.output
    run("set_flag", "enable_db_clone", "true")
    assert "COMPLETE" in run("clone_namespace", "production_db", "other", ts).output
    assert "(5 rows)" in run("sql", "other", "-c", "SELECT * FROM t1").output


def test_interactive_shell(run):
    with run.cluster() as cluster:
        cluster.sql("CREATE DATABASE a; CREATE DATABASE b")
        cluster.database("b").sql("CREATE TABLE tb (x INT)")
    script = "\\l\nCREATE TABLE ta (x INT);\nINSERT INTO ta\nVALUES (1);\n\\d\n\\c b\n\\d\nSELECT 41 + 1 AS answer;\n\\q\n"
    out = run("sql", "a", stdin=script).output
    assert " a    |" in out and " b    |" in out  # \l lists both databases
    assert "ta" in out and "tb" in out
    assert 'You are now connected to database "b".' in out
    assert "42" in out


def test_demo_runs_twice(tmp_path):
    runner = CliRunner()
    data = str(tmp_path / "demo")
    for _ in range(2):
        result = runner.invoke(main, ["--data", data, "demo"])
        assert result.exit_code == 0, result.output
    assert "(5 rows)" in result.output
    assert '"aggregate_state": "COMPLETE"' in result.output
