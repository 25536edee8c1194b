"""The forensic replay notebook runs end to end, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "forensic_replay.ipynb"


def test_forensic_replay_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ASOF_NOTEBOOK_DATA", str(tmp_path / "data"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "DROP TABLE customers" in text and "UPDATE orders SET status = 'cancelled'" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
