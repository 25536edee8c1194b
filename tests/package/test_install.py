"""What `pip install` puts on a machine: one top-level package, typed, with a version."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import asof
from asof.queryapi.cli import main


def test_only_asof_is_installed_at_the_top_level() -> None:
    dist = importlib.metadata.distribution("asof")
    assert (dist.read_text("top_level.txt") or "").split() == ["asof"]
    for name in ("queryapi", "eventlog", "projections", "clone"):
        spec = importlib.util.find_spec(name)
        assert spec is None or "asof" not in str(spec.origin), name


def test_the_old_import_roots_are_gone(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", "from queryapi import Cluster"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "ModuleNotFoundError" in run.stderr


def test_the_package_is_typed_and_versioned() -> None:
    assert (Path(asof.__file__).parent / "py.typed").exists()
    assert asof.__version__ == importlib.metadata.version("asof")
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"asof, version {asof.__version__}"


def test_python_dash_m_asof_is_the_cli(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "asof", "--version"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip().endswith(asof.__version__)
