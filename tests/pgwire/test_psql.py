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
