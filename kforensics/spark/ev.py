"""`ev` on Spark: built by the very SQL of the DuckDB engine, inside Spark tasks.

`ev` is not a rule: it is how the events are read (a request's final stage, the pod specs,
RBAC subjects, exec commands). So that both engines read them alike, every Spark task runs
`detection.ev.prepare` in an in-memory DuckDB over its share of the events, the stages of one
request always in one task (repartitioned by request_id); the rules then run in Spark SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from kforensics.case import create_schema
from kforensics.detection.ev import prepare

# Events per Spark partition of `ev`: what one task's DuckDB holds (about 1 KB a request).
EVENTS_PER_PARTITION = 400_000
# What DuckDB may hold in each task (several run at once on an executor).
TASK_MEMORY_LIMIT = "1GB"
ARROW_BATCH = 8192


def ev_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Yield the `ev` rows of the requests whose events are in batches (all their stages)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = $m", {"m": TASK_MEMORY_LIMIT})
        create_schema(con)
        for batch in batches:
            con.register("kf_batch", batch)
            con.execute("INSERT INTO events BY NAME SELECT * FROM kf_batch")
            con.unregister("kf_batch")
        prepare(con)
        yield from con.sql("SELECT * FROM ev").to_arrow_reader(ARROW_BATCH)
    finally:
        con.close()


def ev_schema() -> pa.Schema:
    """Return the Arrow schema of `ev` (that of an empty case)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        create_schema(con)
        prepare(con)
        return con.sql("SELECT * FROM ev LIMIT 0").to_arrow_table().schema
    finally:
        con.close()


def spark_ev(spark: Any, events: Any) -> Any:
    """Return the `ev` DataFrame of an events DataFrame (the dataset's columns)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    columns = [c for c in events.columns if c not in ("cluster", "day")]
    rows = events.count()
    parts = max(1, -(-rows // EVENTS_PER_PARTITION))
    schema = from_arrow_schema(ev_schema())
    return events.select(*columns).repartition(parts, "request_id").mapInArrow(ev_batches, schema)
