"""db.replay: forward walks per transaction and per time step, with optional progress bars."""

from __future__ import annotations

import datetime as dt

import pytest

from asof import ProgrammingError
from support import head_ts, seed


def test_replay_per_transaction(cluster):
    db, ts = seed(cluster)
    txns = list(db.transactions())
    start, end = txns[3].ts.physical, head_ts(db)
    seen = []
    for when, past in db.replay(start, end):
        with past:
            seen.append((when, past.sql("SELECT count(*) FROM t2").fetchone()[0], past.tables()))
    assert [s[0] for s in seen] == [t.ts.physical for t in txns[3:]]
    assert [s[1] for s in seen] == [5, 5, 7]
    assert "t1" in seen[0][2] and "t1" not in seen[1][2]


def test_replay_in_steps_with_progress(cluster, capsys):
    db, _ = seed(cluster)
    start, end = list(db.transactions())[0].ts.physical, head_ts(db)
    step = max((end - start) // 4, 1)
    times = [t for t, h in db.replay(start, end, step=step, progress=True)]
    assert times[0] == start and times[-1] == end
    assert all(b - a <= step for a, b in zip(times, times[1:], strict=False))
    assert "replay production_db" in capsys.readouterr().err
    by_delta = [t for t, _ in db.replay(start, end, step=dt.timedelta(seconds=3600))]
    assert by_delta == [start, end]


def test_replay_errors(cluster):
    db, _ = seed(cluster)
    end = head_ts(db)
    with pytest.raises(ProgrammingError):
        list(db.replay(end, end - 10))
    with pytest.raises(ProgrammingError):
        list(db.replay(end - 10, end, step=0))
    with pytest.raises(ProgrammingError, match="window"):
        list(db.replay(5, end))
