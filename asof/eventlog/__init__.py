"""The append-only event log: clock, events, WAL, Arrow IPC segments, manifests.

This package knows nothing of SQL or DuckDB: event kinds and payloads are opaque here.
"""
