"""A rule's own match / no-match events, run on Spark: the translation proven rule by rule."""

from __future__ import annotations

from typing import Any

import duckdb

from kforensics.detection.rule import Rule
from kforensics.detection.selftest import check_rule
from kforensics.spark.translate import to_spark


def check_rule_on_spark(spark: Any, rule: Rule) -> list[str]:
    """Return the problems of the rule's translated SQL on its test events (empty: all good).

    Each item goes through the real loader and DuckDB's `ev`, as `detection.selftest` does;
    then that `ev` is handed to Spark and the translated rule runs there.
    """
    sql = to_spark(rule.sql)

    def judge(con: duckdb.DuckDBPyConnection, _: Rule) -> tuple[set[str], bool]:
        table = con.sql("SELECT * FROM ev").to_arrow_table()
        spark.createDataFrame(table).createOrReplaceTempView("ev")
        hits = {r[0] for r in spark.sql(f"SELECT event_id FROM ({sql}) r").collect()}  # noqa: S608
        cited = {
            a for e, a in con.execute("SELECT event_id, audit_id FROM ev").fetchall() if e in hits
        }
        return cited, bool(hits)

    return check_rule(rule, judge)
