"""A Spark session for kforensics: local, a cluster's master, or Spark Connect.

pyspark is an optional extra (`pip install kforensics[spark]`) and Spark needs Java: without
either, SparkError says which, and how to get it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from kforensics.errors import SparkError

# What every kforensics session sets: times in UTC, as `case.connect` does; partition values
# typed by the dataset's layout, not guessed; no web UI (a port per test run).
CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # what DuckDB writes and reads as TIMESTAMPTZ (Spark's default, INT96, is deprecated)
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


LOCAL_MEMORY = "4g"  # the JVM's heap in local mode


def java_missing() -> str | None:
    """Return why Spark cannot start a JVM here, or None when Java is found."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return None
    if shutil.which("java"):
        return None
    return "no Java found (install a JRE: apt-get install default-jre-headless, or set JAVA_HOME)"


def spark_session(master: str | None = None, app: str = "kforensics") -> Any:
    """Return a SparkSession: Spark Connect when SPARK_REMOTE is set, the master of
    spark-submit under it, else master (default local[2])."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkError(
            "the Spark engine needs pyspark: pip install 'kforensics[spark]'"
        ) from None
    remote = os.environ.get("SPARK_REMOTE")
    builder = SparkSession.builder.appName(app)
    # under spark-submit the JVM is up and its --master is in the session's conf already
    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ
    if remote:
        builder = builder.remote(remote)
    elif not submitted:
        why = java_missing()
        if why:
            raise SparkError(f"the Spark engine cannot start: {why}")
        builder = builder.master(master or "local[2]")
        # The driver's JVM logs errors only: Spark's default prints a banner and warnings to
        # every run. A URI: Spark splits the options at spaces, a URI has none.
        log = Path(__file__).with_name("log4j2.properties").as_uri()
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log}"
        )
        if (master or "local").startswith("local"):
            # local workers run this Python, which has kforensics; a cluster's have their own
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            # local mode runs every task in the driver's JVM: Spark's 1 GB default died
            # grouping 5M events' hits (KFORENSICS_SPARK_MEMORY to change it)
            memory = os.environ.get("KFORENSICS_SPARK_MEMORY", LOCAL_MEMORY)
            builder = builder.config("spark.driver.memory", memory)
    for key, value in CONF.items():
        # a Spark Connect server has its own UI and workers: only SQL settings are the session's
        if remote and not key.startswith("spark.sql."):
            continue
        builder = builder.config(key, value)
    # mapInArrow passes Arrow, never pandas: pyspark's pandas-version warning is not ours
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j and Spark raise many kinds: all mean no session
        raise SparkError(
            f"Spark did not start ({master or remote or 'local[2]'}): {spark_reason(exc)}"
        ) from exc
    if not remote:
        # FATAL: a rule that Spark cannot analyse is expected (it stays DuckDB-only), and
        # its error arrives as an exception anyway
        spark.sparkContext.setLogLevel("FATAL")
    # pyspark 4 also logs each analysis error, as JSON on stderr, before raising it
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    return spark


def spark_reason(exc: BaseException) -> str:
    """Return what went wrong in one line: a Python worker's exception, else the first line."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = text.splitlines()
    raised = [x for x in lines if _RAISED.match(x)]
    return raised[-1] if "Traceback (most recent call last)" in text and raised else lines[0]


# the last line of a Python traceback: `SomeError: why`
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
