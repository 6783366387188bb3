"""`kforensics detect --engine spark`: the rules over a Parquet dataset, on Spark."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from kforensics.detection.exceptions import check_exceptions, load_exceptions
from kforensics.detection.rule import RuleError, load_rules
from kforensics.errors import DatasetError, ExceptionsError, RuleSQLError, SparkError
from kforensics.untrusted import visible


def detect_on_spark(
    dataset: Path,
    master: str | None,
    rule_dirs: list[Path],
    statuses: tuple[str, ...],
    fmt: str,
    output: Path | None,
    min_level: str,
    since: datetime | None = None,
    until: datetime | None = None,
    exceptions: Path | None = None,
) -> None:
    """Run the rules on Spark; write DIR/spark-findings/, then print or export as detect does."""
    from kforensics.cli.detect import show_findings
    from kforensics.spark.detect import detect_spark, write_findings
    from kforensics.spark.session import spark_session

    try:
        every = load_rules(rule_dirs, statuses=None)
        rules = [r for r in every if r.status in statuses]
        excs = load_exceptions(exceptions) if exceptions else []
        check_exceptions(excs, {r.id for r in every})
        # not stopped here: getOrCreate may have handed over a session the caller still uses;
        # pyspark stops its own at exit
        detection = detect_spark(
            spark_session(master), dataset, rules, exceptions=excs, since=since, until=until
        )
        written = write_findings(detection, dataset / "spark-findings")
    except (RuleError, ExceptionsError, RuleSQLError, DatasetError, SparkError) as exc:
        raise click.ClickException(visible(str(exc))) from exc
    for rule_id, why in sorted(detection.duckdb_only.items()):
        click.echo(f"DuckDB-only: {rule_id}: {visible(why)}", err=True)
    click.echo(
        f"ran {len(detection.rules_run)} rules on Spark ({len(detection.duckdb_only)} are "
        f"DuckDB-only); wrote {written[0]} and {written[1]}",
        err=True,
    )
    show_findings(detection.findings, len(detection.rules_run), fmt, output, min_level)
