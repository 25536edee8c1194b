"""The forensics commands: history, diff, restore_table, undrop_table, timeline."""

from __future__ import annotations

from click.testing import CliRunner

from asof import Cluster
from asof.queryapi.cli import main
from support import head_ts, seed, tick

FORENSICS = ("history", "diff", "restore_table", "undrop_table", "timeline")


def invoke(data, *args, ok=True):
    result = CliRunner().invoke(main, ["--data", str(data), *args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_commands_are_registered_with_examples():
    for name in FORENSICS:
        command = main.commands[name]
        assert any(line.strip().startswith("Example: asof ") for line in command.help.splitlines())


def test_forensics_through_the_cli(tmp_path):
    data = tmp_path / "data"
    with Cluster.open(data) as cluster:
        db, ts = seed(cluster)
        good = head_ts(db)
        tick()
        db.sql("UPDATE t2 SET c1 = 'oops'")
    out = invoke(data, "history", "production_db", "t1", "--where", "k = 2").output
    assert "insert" in out and "drop" in out and "(2 rows)" in out
    out = invoke(data, "diff", f"production_db@{good}", "production_db", "--rows").output
    assert "t2: 0 only in a, 0 only in b, 7 changed" in out and "oops" in out
    out = invoke(
        data, "restore_table", f"production_db@{good}", "t2", "production_db",
        "--mode", "upsert", "--key", "key",
    ).output  # fmt: skip
    assert "7 updated" in out
    assert "created, 5 inserted" in invoke(data, "undrop_table", "production_db", "t1").output
    png = tmp_path / "t.png"
    invoke(data, "timeline", "production_db", "--out", str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = invoke(data, "diff", "production_db@soon", "production_db", ok=False)
    assert bad.exit_code != 0 and "db@<unix" in bad.output
    with Cluster.open(data) as cluster:
        db = cluster.database("production_db")
        assert db.sql("SELECT count(*) FROM t2 WHERE c1 = 'oops'").fetchall() == [(0,)]
        assert db.sql("SELECT count(*) FROM t1").fetchall() == [(5,)]
