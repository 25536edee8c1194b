"""A picture of a database's past: row events per table over time, DDL, drops and clones.

Meant for the moment after an incident: the point where a table was dropped or a flood of
updates landed stands out, and so do the clones that could restore it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from typing import Any

from asof.clone.operations import COMPLETE, CloneRecord
from asof.eventlog.events import RowOp
from asof.projections import kinds
from asof.projections.live import DatabaseRuntime
from asof.queryapi.errors import NotSupportedError
from asof.queryapi.forensics.history import _Catalog, table_ids

_OP_COLORS = {"insert": "#2a9d8f", "update": "#e9c46a", "delete": "#e76f51"}
_DDL_MARKERS = {
    kinds.CREATE_TABLE: ("^", "#264653", "create"),
    kinds.ALTER_TABLE: ("s", "#6d597a", "alter"),
    kinds.RENAME_TABLE: ("D", "#6d597a", "rename"),
    kinds.TRUNCATE: ("v", "#d62828", "truncate"),
    kinds.DROP_TABLE: ("X", "#d62828", "drop"),
}
_OPS = {int(RowOp.INSERT): "insert", int(RowOp.UPDATE): "update", int(RowOp.DELETE): "delete"}


def _when(micros: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.UTC)


def collect(
    rt: DatabaseRuntime, clones: list[CloneRecord], table: str | None = None
) -> dict[str, Any]:
    """Points to draw: row events, table DDL, and the times clones were taken."""
    wanted = None if table is None else table_ids(rt, table)
    cat = _Catalog()
    rows: list[tuple[int, str, str, int]] = []  # ts, table, op, count
    ddl: list[tuple[int, str, str]] = []
    for txn in rt.recorder.transactions():
        cat.observe(txn)
        ts = txn.ts.physical
        for event in txn.events:
            tid = event.table_id
            if tid is None or tid not in cat.current or (wanted and tid not in wanted):
                continue
            label = f"{cat.current[tid]} (#{tid})"
            if event.kind == kinds.ROWS and event.rows is not None:
                ops = event.rows.column("_op").to_pylist()
                for op in set(ops):
                    rows.append((ts, label, _OPS[op], ops.count(op)))
            elif event.kind in _DDL_MARKERS:
                ddl.append((ts, label, event.kind))
    clones = [(rec.restore_time, rec.target_name) for rec in clones if rec.state == COMPLETE]
    return {"rows": rows, "ddl": ddl, "clones": clones}


def timeline(
    rt: DatabaseRuntime,
    clones: list[CloneRecord],
    *,
    table: str | None = None,
    out: Any = None,
) -> Any:
    """A matplotlib Figure of the database's history; also saved as PNG when `out` is set."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise NotSupportedError(
            "timeline needs matplotlib; install it with pip install 'asof[plot]'"
        ) from None
    data = collect(rt, clones, table)
    lanes = sorted({r[1] for r in data["rows"]} | {d[1] for d in data["ddl"]})
    lane = {name: i for i, name in enumerate(lanes)}
    fig = Figure(figsize=(11, 1.6 + 0.55 * max(len(lanes), 1)), layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg, whatever backend pyplot uses
    ax = fig.add_subplot()
    for op, color in _OP_COLORS.items():
        pts = [r for r in data["rows"] if r[2] == op]
        if pts:
            ax.scatter(
                [_when(p[0]) for p in pts],
                [lane[p[1]] for p in pts],
                s=[30 + 40 * math.log10(p[3] + 1) ** 2 for p in pts],
                color=color,
                alpha=0.75,
                edgecolors="black",
                linewidths=0.4,
                zorder=3,
            )
    for kind, (marker, color, _) in _DDL_MARKERS.items():
        pts = [d for d in data["ddl"] if d[2] == kind]
        if pts:
            size = 170 if kind in (kinds.DROP_TABLE, kinds.TRUNCATE) else 90
            ax.scatter(
                [_when(p[0]) for p in pts],
                [lane[p[1]] for p in pts],
                marker=marker,
                s=size,
                color=color,
                zorder=4,
            )
    for when, name in data["clones"]:
        ax.axvline(_when(when), color="#457b9d", linestyle="--", linewidth=1, zorder=2)
        ax.annotate(
            f"clone {name}",
            (_when(when), 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -4),
            textcoords="offset points",
            rotation=90,
            va="top",
            ha="left",
            fontsize=8,
            color="#457b9d",
        )
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.7, max(len(lanes), 1) - 0.3)
    ax.set_xlabel("commit time (UTC)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{rt.name}: row events per transaction (size ~ rows), DDL, clones")
    legend = [
        Line2D([], [], marker="o", ls="", color=c, label=f"{op} rows")
        for op, c in _OP_COLORS.items()
    ]
    legend += [
        Line2D([], [], marker=m, ls="", color=c, label=label)
        for m, c, label in _DDL_MARKERS.values()
    ]
    legend.append(Line2D([], [], ls="--", color="#457b9d", label="clone point"))
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    if out is not None:
        fig.savefig(os.fspath(out), format="png", dpi=110)
    return fig
