-- The walkthrough of YugabyteDB's database clone documentation, as ysqlsh users type it.
CREATE DATABASE production_db;
\c production_db;
CREATE TABLE t1 (k INT, v INT);
INSERT INTO t1 (k,v) SELECT i,i%2 FROM generate_series(1,5) AS i;
SELECT * FROM t1 ORDER BY k;
CREATE TABLE t2 (key INT, c1 TEXT);
INSERT INTO t2 (key,c1) SELECT i,md5(random()::text) FROM generate_series(1,5) AS i;
SELECT * FROM t2 ORDER BY key;
SELECT (EXTRACT (EPOCH FROM CURRENT_TIMESTAMP)*1000000)::decimal(38,0) \gset
DROP TABLE t1;
INSERT INTO t2 (key,c1) SELECT i,md5(random()::text) FROM generate_series(6,7) AS i;
SELECT * FROM t1 ORDER BY k;
CREATE DATABASE clone_db TEMPLATE production_DB AS OF :numeric;
\c clone_db
SELECT * FROM t1 ORDER BY k;
-- Copy the lost rows back into production.
\copy t1 TO 't1.copy'
\c production_db
CREATE TABLE t1 (k INT, v INT);
\copy t1 FROM 't1.copy'
SELECT * FROM t1 ORDER BY k;
SELECT count(*) FROM t2;
