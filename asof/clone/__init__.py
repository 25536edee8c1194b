"""The cluster catalog: databases, their lineage, clone operations, retention and schedules."""
