"""Errors of the catalog and clone layer; the public API maps them onto its hierarchy."""

from __future__ import annotations


class CatalogError(Exception):
    """Root of every error the clone layer raises."""


class NameTaken(CatalogError):
    """A database with that name already exists."""


class CloneInProgress(CatalogError):
    """The source already has a clone operation running."""


class CloneDisabled(CatalogError):
    """The enable_db_clone flag is off."""


class CloneFailed(CatalogError):
    """A clone operation failed and was rolled back; its record says ABORTED and why."""
