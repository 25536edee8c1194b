"""pg_catalog for psql's meta-commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asof.pgwire.execute import Executor, Outcome


def answer(ex: Executor, sql: str) -> Outcome | None:
    return None
