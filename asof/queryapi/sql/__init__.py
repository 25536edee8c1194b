"""The SQL front: splitting statements, capturing DML and DDL as events, the write paths
and the per-handle session."""
