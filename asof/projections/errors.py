"""Errors raised by the projection layer; the public API maps them onto its hierarchy."""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of every error the projection layer raises itself (DuckDB's pass through)."""


class WriteLockTimeout(ProjectionError):
    """Another write transaction held the database's write lock for too long."""


class ReadOnlyProjection(ProjectionError):
    """A write was attempted on a projection opened for reading only."""


class ProjectionBehind(ProjectionError):
    """The projection could not apply transactions the log has committed (a write of its
    own failed); it is brought up to date before anything reads it, and until then reads
    and writes fail with this error instead of showing a state without them."""
