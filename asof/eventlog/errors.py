"""Errors raised by the event log; the public API maps them onto its own hierarchy."""

from __future__ import annotations


class LogError(Exception):
    """Root of every error the event log raises."""


class LogIOError(LogError):
    """A read, write or fsync failed; the transaction being written was not recorded."""


class CorruptionError(LogError):
    """A file failed its checksum or could not be decoded; the message names the file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class UnknownLogError(LogError):
    """No log exists under that id."""
