"""db.timeline: a matplotlib figure of row events, DDL, drops and clone points."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from asof.queryapi.forensics.timeline import collect  # noqa: E402
from support import (
    seed,  # noqa: E402
    tick,  # noqa: E402
)


def test_timeline_marks_drop_and_clone(cluster, tmp_path):
    db, ts = seed(cluster)
    cluster.clone("production_db", "rescue", as_of=ts)
    tick()
    db.sql("UPDATE t2 SET c1 = NULL")
    data = collect(db._rt, cluster.list_clones("production_db"))
    assert ("drop_table" in {d[2] for d in data["ddl"]}) and data["clones"][0][1] == "rescue"
    assert {r[2] for r in data["rows"]} == {"insert", "update"}
    out = tmp_path / "t.png"
    fig = db.timeline(out=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t1 (#1)", "t2 (#2)"]
    only = db.timeline(table="t2")
    assert [t.get_text() for t in only.axes[0].get_yticklabels()] == ["t2 (#2)"]
