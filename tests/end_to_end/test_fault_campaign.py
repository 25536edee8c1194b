"""The fault campaign: EIO and ENOSPC at every write, fsync, truncate, allocation and rename
of the log (WAL, segments, manifests, seals, checkpoints, compaction) and, through a full
tmpfs, at DuckDB's own writes to the projection; then the fault clears and work goes on.

Every commit that returned is in the live database, a rebuild from the log, a fresh clone,
the clones made since and the database after reopening; every commit that raised is in
none of them; the error was OperationalError (IntegrityError where the reference refuses
the statement too). Quick here; `pytest -m slow` runs the full campaign.
"""

from __future__ import annotations

import errno

import pytest
from faultfs import SITES, FaultFS, SmallDisk
from faultload import Workload

from asof import Cluster

CODES = (errno.EIO, errno.ENOSPC)


def _campaign(tmp_path, monkeypatch, site, code, rounds, seed):
    data = tmp_path / "data"
    faults = FaultFS(data, monkeypatch)
    cluster = Cluster.open(data)
    try:
        work = Workload(cluster, seed=seed)
        for r in range(rounds):
            for _ in range(3):
                work.op(must=True)
            faults.arm(site, 1 + r % 4, code, sticky=r % 2 == 1)
            for _ in range(6):
                work.op()
            faults.clear()
            for _ in range(4):
                work.op(must=True)  # the fault cleared: everything works, no restart
            work.check(work.db, f"live after round {r}")
        work.deep_check()
    finally:
        faults.clear()
        cluster.close()
    with Cluster.open(data) as cluster:
        work.cluster = cluster
        work.check(work.db, "after reopen")
        for name, state in work.clones.items():
            work.check(cluster.database(name), f"clone {name} after reopen", state)
        work.op(must=True)
    print(
        f"\n{site} {code}: {faults.total} faults, {work.failed} calls failed, "
        f"{work.refused} refused, {work.acked} acked"
    )
    return faults


@pytest.mark.parametrize("code", CODES, ids=["EIO", "ENOSPC"])
@pytest.mark.parametrize("site", SITES)
def test_log_fault_at_every_site(tmp_path, monkeypatch, site, code):
    faults = _campaign(tmp_path, monkeypatch, site, code, rounds=2, seed=hash(site) % 97 + code)
    assert faults.calls[site] > 0, f"the workload never reached {site}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("code", CODES, ids=["EIO", "ENOSPC"])
@pytest.mark.parametrize("site", SITES)
def test_log_fault_campaign_full(tmp_path, monkeypatch, site, code, seed):
    faults = _campaign(tmp_path, monkeypatch, site, code, rounds=12, seed=seed * 31 + code)
    assert faults.total > 0


def _disk_full(tmp_path, mount_at: str, rounds: int, seed: int) -> Workload:
    """Rounds of: work, the disk fills up, work (which may fail), the disk is freed, work
    (which must succeed); the tmpfs holds `mount_at` under the data directory."""
    data = tmp_path / "data"
    disk = SmallDisk(data / mount_at if mount_at else data)
    try:
        cluster = Cluster.open(data)
        try:
            work = Workload(cluster, seed=seed)
            for r in range(rounds):
                for _ in range(3):
                    work.op(must=True)
                disk.fill(leave=(r % 3) * 64 * 1024)  # full, or nearly
                try:
                    for _ in range(8):
                        work.op()
                finally:
                    disk.free()
                for _ in range(4):
                    work.op(must=True)
                work.check(work.db, f"live after round {r}")
            work.deep_check()
        finally:
            cluster.close()
        with Cluster.open(data) as cluster:
            work.cluster = cluster
            work.check(work.db, "after reopen")
            for name, state in work.clones.items():
                work.check(cluster.database(name), f"clone {name} after reopen", state)
    finally:
        disk.unmount()
    print(f"\ndisk full {mount_at or 'all'}: {work.failed} calls failed, {work.acked} acked")
    return work


@pytest.mark.parametrize("mount_at", ["projections", ""], ids=["projections", "everything"])
def test_disk_full(tmp_path, mount_at):
    """DuckDB's own writes (its WAL, its checkpoints, checkpoint files) hit ENOSPC, with
    the log on another disk (`projections`) or on the same full one."""
    work = _disk_full(tmp_path, mount_at, rounds=2, seed=7)
    assert work.acked > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mount_at", ["projections", "", "checkpoints"])
def test_disk_full_campaign(tmp_path, mount_at, seed):
    _disk_full(tmp_path, mount_at, rounds=8, seed=seed)
