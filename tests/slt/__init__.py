"""sqllogictest runner, asof's own .test files and the DuckDB-corpus measurement."""
