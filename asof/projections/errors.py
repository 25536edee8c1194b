"""Errors raised by the projection layer; the public API maps them onto its hierarchy."""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of every error the projection layer raises itself (DuckDB's pass through)."""


class WriteLockTimeout(ProjectionError):
    """Another write transaction held the database's write lock for too long."""


class ReadOnlyProjection(ProjectionError):
    """A write was attempted on a projection opened for reading only."""
