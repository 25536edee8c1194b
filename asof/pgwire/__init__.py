"""A PostgreSQL wire-protocol server in front of asof, so psql and PostgreSQL drivers
(psycopg, pg8000, JDBC, …) talk to asof databases as they would to PostgreSQL."""
