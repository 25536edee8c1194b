"""Fixtures: `asof serve` subprocesses (see pgserver.py)."""

from __future__ import annotations

import pytest
from pgserver import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("pgwire") / "data", "--max-connections", "80")
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    srv = ServerProcess(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """Unix-socket logins trusted: the raw-protocol tests skip the SCRAM exchange."""
    srv = ServerProcess(tmp_path_factory.mktemp("pgwire-local") / "data", "--trust-local")
    yield srv
    srv.stop()
