"""Projections: fold the event log into queryable DuckDB state.

Every projection can be deleted and rebuilt from the log; the rebuild is identical.
"""
