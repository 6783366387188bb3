"""`kforensics detect` and `kforensics rules`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kforensics.case import CaseError
from kforensics.cli.options import (
    case_option,
    engine_options,
    format_option,
    output_format,
    output_option,
    rules_option,
    sensitive_declaration,
    sensitive_option,
    when,
)
from kforensics.detection.rule import DEFAULT_STATUSES, STATUSES, RuleError, load_rules
from kforensics.detection.run import ExceptionsError, RuleSQLError, detect, load_exceptions
from kforensics.detection.since_last import SinceLastError
from kforensics.errors import KforensicsError
from kforensics.investigate.export import export
from kforensics.levels import LEVELS, at_or_above
from kforensics.output import LEVEL_STYLE, findings_table, plain, print_findings, shown
from kforensics.untrusted import visible


@click.command("detect")
@case_option("DuckDB case file (findings are stored in it, table `findings`).", required=False)
@engine_options(
    "duckdb: over CASE. spark: over the Parquet dataset --parquet DIR (`kforensics export` or "
    "`load --engine spark`), writing DIR/spark-findings/findings.parquet and findings.jsonl.",
    "The dataset the Spark engine reads.",
    exists=True,
)
@rules_option("Folder of extra rules (YAML); a rule with a built-in id replaces it.")
@click.option(
    "--exceptions",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML file: rule id -> entries of field patterns that drop a hit.",
)
@click.option(
    "--status",
    "statuses",
    default=",".join(DEFAULT_STATUSES),
    show_default=True,
    help="Comma-separated rule statuses to run (stable,test,experimental,deprecated).",
)
@click.option("--since", help="Only events at or after this time (ISO 8601, UTC if no zone).")
@click.option("--until", help="Only events before this time.")
@sensitive_option()
@click.option(
    "--baseline",
    "baseline",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A case of normal activity: whoever reached into a sensitive workload there is its "
    "baseline.",
)
@click.option(
    "--baseline-until",
    help="Requests of CASE before this time are the sensitive workloads' baseline (default: "
    "--since).",
)
@click.option(
    "--since-last",
    is_flag=True,
    help="Go on from the last stored run: rules that judge one event alone see only the events "
    "loaded since (windowed ones the whole case), and their findings are merged into the stored "
    "ones, as a full run would find them. Needs the same rules and exceptions as that run.",
)
@format_option("findings")
@output_option()
@click.option(
    "--min-level",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    help="Print only findings at or above this level (all are stored).",
)
def detect_cmd(
    case: Path | None,
    engine: str,
    dataset: Path | None,
    master: str | None,
    rule_dirs: tuple[Path, ...],
    exceptions: Path | None,
    statuses: str,
    since: str | None,
    until: str | None,
    sensitive: Path | None,
    baseline: Path | None,
    baseline_until: str | None,
    since_last: bool,
    fmt: str | None,
    output: Path | None,
    min_level: str,
) -> None:
    """Run the detection rules over CASE; print (or export) and store the findings."""
    fmt = output_format(fmt, output)
    wanted = tuple(s.strip() for s in statuses.split(",") if s.strip())
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise click.BadParameter(f"unknown status {', '.join(bad)}", param_hint="--status")
    if engine == "spark":
        given = [n for n, v in (("--case", case), ("--sensitive", sensitive),
                 ("--baseline", baseline), ("--since-last", since_last)) if v]  # fmt: skip
        if dataset is None or given:
            raise click.UsageError(
                "--engine spark takes --parquet DIR (a dataset of `kforensics export`), "
                f"not {', '.join(given) or 'a case'}"
            )
        from kforensics.cli.spark import detect_on_spark

        detect_on_spark(
            dataset, master, list(rule_dirs), wanted, fmt, output, min_level,
            since=when(since), until=when(until), exceptions=exceptions,
        )  # fmt: skip
        return
    if case is None:
        raise click.UsageError("Missing option '--case'.")
    if dataset is not None or master is not None:
        raise click.UsageError("--parquet and --master are for --engine spark")
    declaration = sensitive_declaration(sensitive, case)
    # imported here: the inventory's validation pulls in jsonschema (1.3 s) for every command
    from kforensics.sensitive.store import targets as sensitive_targets

    try:
        targets = None if declaration is None else sensitive_targets(case, declaration, baseline)
        every = load_rules(list(rule_dirs), statuses=None)
        rules = [r for r in every if r.status in wanted]
        excs = load_exceptions(exceptions) if exceptions else []
        # an exception may name a rule of another status (not run now), not a rule that is not
        known = [r.id for r in every]
        findings = detect(
            case, rules, exceptions=excs, since=when(since), until=when(until), known_rules=known,
            sensitive=targets, baseline_case=baseline, baseline_until=when(baseline_until),
            since_last=since_last, report=lambda line: click.echo(line, err=True),
        )  # fmt: skip
    except (RuleError, ExceptionsError, RuleSQLError, CaseError, SinceLastError) as exc:
        raise click.ClickException(visible(str(exc))) from exc  # SQL errors quote the data
    show_findings(findings, len(rules), fmt, output, min_level)


def show_findings(
    findings: list, rules_run: int, fmt: str, output: Path | None, min_level: str
) -> None:
    """Print the findings at or above min_level as a table, or export them (both engines)."""
    stored = len(findings)
    findings = [f for f in findings if f.level in at_or_above(min_level)]
    if fmt == "table":
        print_findings(findings, rules_run, stored=stored, min_level=min_level)
        return
    try:
        export(findings_table(findings), sys.stdout if output is None else output, fmt)
    except KforensicsError as exc:
        raise click.ClickException(str(exc)) from exc
    # on stderr: standard output stays the findings alone
    if output is not None:
        to = f" to {visible(str(output))}"
        click.echo(shown(stored, len(findings), min_level, "wrote") + to, err=True)
    elif len(findings) != stored:
        click.echo(shown(stored, len(findings), min_level), err=True)


@click.command("rules")
@rules_option("Folder of extra rules (YAML), as for detect.")
@click.option(
    "--check",
    is_flag=True,
    help="Run each rule's own match / no-match events through the loader and engine.",
)
@click.option(
    "--builtin/--no-builtin",
    default=True,
    show_default=True,
    help="Include the rules that ship with kforensics.",
)
def rules_cmd(rule_dirs: tuple[Path, ...], check: bool, builtin: bool) -> None:
    """List the detection rules (all statuses); with --check, test them on their own events."""
    from kforensics.detection.selftest import check_rule

    try:
        rules = load_rules(list(rule_dirs), statuses=None, builtin=builtin)
    except RuleError as exc:
        raise click.ClickException(str(exc)) from exc
    table = Table(title=f"{len(rules)} rules", title_justify="left")
    for col in ("rule", "level", "status", "ATT&CK", "title"):
        table.add_column(col, overflow="fold")
    problems: list[str] = []
    for r in rules:
        table.add_row(
            plain(r.id), Text(r.level, style=LEVEL_STYLE[r.level]), r.status,
            ", ".join(r.techniques), plain(r.title),
        )  # fmt: skip
        if check:
            try:
                problems += check_rule(r)
            except (ValueError, RuleSQLError) as exc:
                problems.append(str(exc))
    Console(width=None if Console().is_terminal else 160).print(table)
    if check:
        for p in problems:
            click.echo(f"FAIL {p}", err=True)
        click.echo(
            f"{len(rules) - len({p.split(':')[0] for p in problems})} of {len(rules)} "
            "rules pass their own tests"
        )
        if problems:
            sys.exit(1)
