from __future__ import annotations

import pytest

from asof import Cluster


@pytest.fixture
def cluster():
    c = Cluster.open(None)
    yield c
    c.close()


@pytest.fixture
def disk_cluster(tmp_path):
    c = Cluster.open(tmp_path / "data")
    yield c
    c.close()
