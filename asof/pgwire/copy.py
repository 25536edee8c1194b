"""COPY FROM STDIN / TO STDOUT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asof.pgwire.errors import FEATURE_NOT_SUPPORTED, PgError

if TYPE_CHECKING:
    from asof.pgwire.execute import Piece
    from asof.pgwire.session import Connection


def run_copy(conn: Connection, piece: Piece) -> str:
    raise PgError(FEATURE_NOT_SUPPORTED, "COPY is not supported yet")
