"""`asof demo`: the seed walkthrough, an accidental DROP TABLE recovered with a clone."""

from __future__ import annotations

import json
from collections.abc import Callable

from asof.queryapi.cli.textformat import format_result
from asof.queryapi.cluster import Cluster
from asof.queryapi.errors import AsofError
from asof.queryapi.result import Result


def run_demo(cluster: Cluster, echo: Callable[[str], None] = print) -> None:
    def step(title: str) -> None:
        echo("")
        echo(f"== {title}")

    def sql(db, query: str, prompt: str) -> None:
        echo(f"{prompt}=# {query}")
        try:
            text = format_result(db.sql(query))
        except AsofError as exc:
            text = f"ERROR:  {exc}"
        if text:
            echo(text)

    for name in ("clone_db", "production_db"):
        if name in cluster.databases():
            echo(f"(dropping {name} left over from an earlier demo run)")
            cluster.drop_database(name)

    step("1. Create the database")
    echo("asof=# CREATE DATABASE production_db;")
    cluster.sql("CREATE DATABASE production_db")

    step("2. A snapshot schedule: a checkpoint a day, three days of history")
    schedule = cluster.create_snapshot_schedule("production_db", 1440, 4320)
    echo("$ asof create_snapshot_schedule 1440 4320 production_db")
    echo(json.dumps(schedule.to_dict(), indent=2))

    step("3. Two tables with some data")
    prod = cluster.database("production_db")
    p = "production_db"
    sql(prod, "CREATE TABLE t1 (k INT, v INT)", p)
    sql(prod, "INSERT INTO t1 (k,v) SELECT i,i%2 FROM generate_series(1,5) AS i", p)
    sql(prod, "SELECT * FROM t1 ORDER BY k", p)
    sql(prod, "CREATE TABLE t2 (key INT, c1 TEXT)", p)
    sql(
        prod,
        "INSERT INTO t2 (key,c1) SELECT i,md5(random()::text) FROM generate_series(1,5) AS i",
        p,
    )
    sql(prod, "SELECT * FROM t2 ORDER BY key", p)

    step("4. Note the time while the data is good")
    query = "SELECT (EXTRACT (EPOCH FROM CURRENT_TIMESTAMP)*1000000)::decimal(38,0)"
    echo(f"{p}=# {query};")
    table = prod.sql(query).arrow()
    good_time = int(table.column(0)[0].as_py())
    echo(format_result(Result(table)))

    step("5. Oops: drop t1 by mistake")
    sql(prod, "DROP TABLE t1", p)

    step("6. Meanwhile t2 keeps taking writes")
    sql(
        prod,
        "INSERT INTO t2 (key,c1) SELECT i,md5(random()::text) FROM generate_series(6,7) AS i",
        p,
    )

    step("7. t1 is gone")
    sql(prod, "SELECT * FROM t1 ORDER BY k", p)

    step("8. Clone the database as it was before the drop")
    statement = f"CREATE DATABASE clone_db TEMPLATE production_DB AS OF {good_time}"
    echo(f"{p}=# {statement};")
    cluster.sql(statement)
    echo("\\c clone_db")
    echo('You are now connected to database "clone_db".')
    clone = cluster.database("clone_db")
    sql(clone, "SELECT * FROM t1 ORDER BY k", "clone_db")
    sql(clone, "SELECT count(*) FROM t2", "clone_db")

    step("9. The clone operation's record")
    echo("$ asof list_clones production_db")
    echo(json.dumps([r.to_dict() for r in cluster.list_clones("production_db")], indent=4))

    step("10. Put the lost rows back into production, which kept its new t2 rows")
    sql(prod, "CREATE TABLE t1 (k INT, v INT)", p)
    rows = clone.sql("SELECT k, v FROM t1 ORDER BY k").fetchall()
    prod.sql(
        "INSERT INTO t1 SELECT * FROM (VALUES " + ", ".join("(?, ?)" for _ in rows) + ")",
        [x for row in rows for x in row],
    )
    echo(f"(copied {len(rows)} rows from clone_db.t1 into production_db.t1)")
    sql(prod, "SELECT * FROM t1 ORDER BY k", p)
    sql(prod, "SELECT count(*) FROM t2", p)
    echo("")
    echo("Two isolated databases now serve reads and writes independently.")
