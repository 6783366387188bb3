"""`detect --engine spark`: the rules over a Parquet dataset, findings in the same contract.

The dataset's events become `ev` in Spark tasks by DuckDB's own SQL (`spark.ev`); each rule
that translates (`spark.translate`) runs in Spark SQL and adds its hits; the hits are grouped
into findings by the same keys as the DuckDB engine, so that a finding has the same
`finding_id`, evidence list and level on both (tests/test_spark.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kforensics.detection.exceptions import Exception_, exception_sql
from kforensics.detection.rule import SUBJECT_FIELDS, Rule
from kforensics.detection.run import Finding, finding_of, group_key, sort_findings
from kforensics.errors import RuleSQLError, SparkError
from kforensics.spark.dataset import read_dataset
from kforensics.spark.ev import ARROW_BATCH, spark_ev
from kforensics.spark.session import spark_reason
from kforensics.spark.translate import Untranslatable, to_spark


@dataclass
class SparkDetection:
    """What a Spark run found, and the rules it left to DuckDB (rule id -> why)."""

    findings: list[Finding]
    rules_run: list[str]
    duckdb_only: dict[str, str] = field(default_factory=dict)


def split_rules(rules: list[Rule]) -> tuple[dict[str, str], dict[str, str]]:
    """Return ({rule id: Spark SQL}, {rule id: why it stays DuckDB-only}) for rules."""
    spark_sql, duckdb_only = {}, {}
    for rule in rules:
        try:
            spark_sql[rule.id] = to_spark(rule.sql)
        except Untranslatable as exc:
            duckdb_only[rule.id] = str(exc)
    return spark_sql, duckdb_only


def hits_frame(
    spark: Any, rules: list[Rule], spark_sql: dict[str, str], duckdb_only: dict[str, str]
) -> Any:
    """Return the DataFrame of every rule's hits (rule_id, event_id, the subject it names).

    A translated rule that Spark cannot analyse (a function of another type, say) moves from
    spark_sql to duckdb_only with Spark's reason.
    """
    frames = []
    for rule in rules:
        if rule.id not in spark_sql:
            continue
        sql = spark_sql[rule.id]
        try:
            columns = spark.sql(f"SELECT * FROM ({sql}) LIMIT 0").columns  # noqa: S608
        except Exception as exc:  # Spark's AnalysisException and its kin
            duckdb_only[rule.id] = "Spark: " + str(exc).strip().splitlines()[0][:300]
            del spark_sql[rule.id]
            continue
        if "event_id" not in columns:
            raise RuleSQLError(f"{rule.path}: the SQL must return event_id")
        own = ", ".join(
            f"CAST(r.{f} AS STRING) AS {f}" if f in columns else f"CAST(NULL AS STRING) AS {f}"
            for f in SUBJECT_FIELDS
        )
        # rule ids are validated identifiers ([a-z0-9-]): safe as literals
        query = f"SELECT DISTINCT '{rule.id}' AS rule_id, r.event_id, {own} FROM ({sql}) r"  # noqa: S608
        frames.append(spark.sql(query))
    if not frames:
        return None
    hits = frames[0]
    for f in frames[1:]:
        hits = hits.unionByName(f)
    return hits


# The columns of ev that exceptions read (detection.exceptions.EXCEPTION_FIELDS and lists).
_EXCEPTION_EV = ("impersonated_user", "verb", "subresource", "user_agent", "user_groups",
                 "image_repos")  # fmt: skip


def without_exceptions(hits: Any, ev: Any, exceptions: list[Exception_]) -> Any:
    """Return hits less those an exception drops, judged by the DuckDB engine's own SQL.

    An exception is a predicate over one hit and its event, so each Spark task runs
    `exceptions.exception_sql` in an in-memory DuckDB over its share of the hits: the same
    GLOB patterns, NULL rules and list semantics as `detect` on a case.
    """
    if not exceptions:
        return hits
    from pyspark.sql import functions as F

    own = [F.col(f"h.{f}").alias(f"hit_{f}") for f in SUBJECT_FIELDS]
    context = [F.col(f"e.{c}") for c in (*SUBJECT_FIELDS, *_EXCEPTION_EV)]
    joined = hits.alias("h").join(ev.alias("e"), F.col("h.event_id") == F.col("e.event_id"))
    joined = joined.select("h.rule_id", "h.event_id", *own, *context)
    task = partial(_keep_hits, exceptions=list(exceptions))
    return joined.mapInArrow(task, hits.schema)


def _keep_hits(batches: Iterator[pa.RecordBatch], exceptions: list) -> Iterator[pa.RecordBatch]:
    """Yield the hits of batches that no exception drops (rule_id, event_id, subject)."""
    params: dict = {}
    by_rule = []
    for i, rule_id in enumerate(sorted({e.rule_id for e in exceptions})):
        params[f"r{i}"] = rule_id
        mine = " OR ".join(exception_sql(e, params) for e in exceptions if e.rule_id == rule_id)
        by_rule.append(f"(ev.rule_id = $r{i} AND ({mine}))")
    subject = ", ".join(f"coalesce(ev.hit_{f}, ev.{f}) AS {f}" for f in SUBJECT_FIELDS)
    hit = ", ".join(f"ev.hit_{f} AS {f}" for f in SUBJECT_FIELDS)
    # (exception_sql formats only field names and $parameters; the patterns are in params)
    sql = (
        f"SELECT ev.rule_id, ev.event_id, {hit} FROM kf_hits ev, LATERAL (SELECT {subject}) h "  # noqa: S608
        f"WHERE NOT ({' OR '.join(by_rule)})"
    )
    con = duckdb.connect()
    try:
        for batch in batches:
            con.register("kf_hits", batch)
            yield from con.execute(sql, params).to_arrow_reader(ARROW_BATCH)
            con.unregister("kf_hits")
    finally:
        con.close()


def group_sql(rules: list[Rule]) -> str:
    """Return the Spark SQL grouping `hits` into findings: the DuckDB engine's keys and ids."""
    subject = ", ".join(f"coalesce(h.{f}, ev.{f}) AS {f}" for f in SUBJECT_FIELDS)
    one = "CASE WHEN count(DISTINCT {0}) = 1 THEN first({0}, true) END AS {0}"
    return f"""
    WITH s AS (
        SELECT h.rule_id, h.event_id, {subject}, ev.impersonated_user, ev.ts, ev.audit_id,
               ev.source_file, ev.source_line, ev.source_index, ev.quality
        FROM hits h JOIN ev ON h.event_id = ev.event_id
    ),
    k AS (SELECT *, {group_key(rules)} AS gkey FROM s)
    SELECT
        substr(md5(concat(rule_id, '|', gkey)), 1, 16) AS finding_id,
        rule_id,
        -- microseconds: a collected timestamp would be in the driver's local time zone
        unix_micros(min(ts)) AS first_seen,
        unix_micros(max(ts)) AS last_seen,
        {one.format("actor")},
        CASE WHEN count(DISTINCT impersonated_user) = 1 AND count(impersonated_user) = count(*)
            THEN first(impersonated_user, true) END AS impersonated,
        array_sort(array_distinct(collect_list(source_ip))) AS source_ips,
        {one.format("namespace")},
        {one.format("resource")},
        {one.format("name")},
        count(*) AS count,
        -- ordered as DuckDB orders them: ts (undated last), file, line, index (NULL last), id
        transform(
            array_sort(collect_list(struct(ts IS NULL AS a, ts AS b, source_file AS c,
                source_line AS d, source_index IS NULL AS e, source_index AS f, event_id AS g,
                audit_id AS h))),
            x -> named_struct('event_id', x.g, 'audit_id', x.h, 'source_file', x.c,
                              'source_line', x.d)) AS evidence,
        array_sort(array_distinct(flatten(collect_list(quality)))) AS quality
    FROM k
    GROUP BY rule_id, gkey
    """  # noqa: S608 (only validated rule ids and fixed field names are formatted in)


def detect_spark(
    spark: Any,
    dataset: str | Path,
    rules: list[Rule],
    *,
    exceptions: list[Exception_] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> SparkDetection:
    """Return the findings of rules over the dataset (requests between since and until, less
    the hits exceptions drop), run on Spark."""
    events = read_dataset(spark, dataset)["events"]
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    ev = spark_ev(spark, events)
    if since is not None or until is not None:
        # the window of detection.ev: an undated request could be from any time, kept
        window = F.col("ts").isNull()
        inside = F.lit(True)
        if since is not None:
            inside &= F.col("ts") >= F.lit(since)
        if until is not None:
            inside &= F.col("ts") < F.lit(until)
        ev = ev.where(window | inside)
    # kept: every rule reads ev, which would otherwise be built again per rule
    ev = ev.persist(StorageLevel.MEMORY_AND_DISK)
    ev.createOrReplaceTempView("ev")
    spark_sql, duckdb_only = split_rules(rules)
    hits = hits_frame(spark, rules, spark_sql, duckdb_only)
    findings: list[Finding] = []
    if hits is not None:
        hits = without_exceptions(hits, ev, [e for e in exceptions if e.rule_id in spark_sql])
        hits.createOrReplaceTempView("hits")
        by_id = {r.id: r for r in rules}
        grouped = spark.sql(group_sql([r for r in rules if r.id in spark_sql]))
        try:
            rows = grouped.collect()
        except Exception as exc:  # py4j and Spark raise many kinds
            raise SparkError(f"the rules failed on Spark: {spark_reason(exc)}") from exc
        for row in rows:
            values = list(row)
            values[2], values[3] = _instant(values[2]), _instant(values[3])
            values[11] = [e.asDict() for e in values[11]]
            findings.append(finding_of(tuple(values), by_id[row["rule_id"]]))
    ev.unpersist()
    sort_findings(findings)
    return SparkDetection(findings, sorted(spark_sql), duckdb_only)


def _instant(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def write_findings(detection: SparkDetection, out: str | Path) -> tuple[Path, Path]:
    """Write the findings as out/findings.parquet and out/findings.jsonl; return both paths."""
    from kforensics.investigate.export import export
    from kforensics.output import findings_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = findings_table(detection.findings)
    paths = (out / "findings.parquet", out / "findings.jsonl")
    export(table, paths[0], "parquet")
    export(table, paths[1], "jsonl")
    return paths
