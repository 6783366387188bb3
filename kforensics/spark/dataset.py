"""Reading a kforensics Parquet dataset (`kforensics export`) into Spark DataFrames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kforensics.dataset.layout import PARTITION_TYPES, PARTITIONED, read_layout

_SPARK_TYPES = {"VARCHAR": "string", "DATE": "date"}


def read_dataset(spark: Any, folder: str | Path) -> dict[str, Any]:
    """Return each table of the dataset as a DataFrame (events with its partition columns)."""
    from pyspark.sql import functions as F

    layout = read_layout(folder)
    frames = {}
    for table in layout.tables:
        path = str(Path(folder).resolve() / table)
        frame = spark.read.option("basePath", path).parquet(path)
        if table == PARTITIONED:
            # read as text (inference is off: session.CONF), then typed as the layout says
            for p in layout.partitions:
                frame = frame.withColumn(p, F.col(p).cast(_SPARK_TYPES[PARTITION_TYPES[p]]))
        frames[table] = frame
    return frames
