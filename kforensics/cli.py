"""The `kforensics` command: a thin shell over the library."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import duckdb
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kforensics.case import CaseError, connect
from kforensics.detection.rule import DEFAULT_STATUSES, STATUSES, RuleError, load_rules
from kforensics.detection.run import ExceptionsError, RuleSQLError, detect, load_exceptions
from kforensics.errors import InputError, QueryError
from kforensics.ingest.load import load
from kforensics.levels import LEVELS, at_or_above
from kforensics.output import (
    LEVEL_STYLE,
    json_line,
    plain,
    print_findings,
    print_rows,
    print_summary,
)
from kforensics.untrusted import visible


def case_option(help: str, required: bool = True):
    """Return the --case option every command takes."""
    return click.option(
        "--case",
        "case",
        required=required,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


def format_option():
    """Return the --format option of the commands that print rows."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "jsonl", "csv"]),
        default="table",
        show_default=True,
        help="Output format.",
    )


def parameter_option(help: str):
    """Return the repeatable -p NAME VALUE option."""
    return click.option(
        "-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE", help=help
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kforensics")
def main() -> None:
    """Investigate Kubernetes security incidents from API-server audit logs."""


@main.command("load")
@click.argument("paths", nargs=-1)
@case_option("DuckDB case file to create or add to.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: on a terminal, for big inputs).",
)
@click.option(
    "--inventory",
    "inventory",
    multiple=True,
    metavar="FILE",
    help="kubectl get -o json|yaml dump of cluster objects to keep beside the log.",
)
def load_cmd(
    paths: tuple[str, ...],
    case: Path,
    as_json: bool,
    progress: bool | None,
    inventory: tuple[str, ...],
) -> None:
    """Load audit logs (files, folders, globs; gzip and every known shape) into CASE.

    Exits 0 when events were read, even with rejects; 1 when nothing could be read.
    """
    if not paths and not inventory:
        raise click.UsageError("give audit log PATHS, or --inventory dumps, or both")
    try:
        result = load(
            case, list(paths), progress=progress, arguments=sys.argv[1:], inventory=list(inventory)
        )
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_summary(result)
    if not result.anything_read:
        click.echo("error: no audit event could be read from the input", err=True)
        sys.exit(1)


@main.command("sql")
@click.argument("query")
@case_option("DuckDB case file (opened read-only).")
@format_option()
@click.option("--max-rows", default=50, show_default=True, help="Rows to show as a table.")
def sql_cmd(query: str, case: Path, fmt: str, max_rows: int) -> None:
    """Run a read-only SQL QUERY against CASE (tables events, sources, rejects, loads;
    views requests, audit_id_collisions)."""
    try:
        con = connect(case)
    except CaseError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        rel = con.sql(query)
        if rel is not None:
            print_rows(rel, fmt, max_rows)
    except duckdb.Error as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
    finally:
        con.close()


@main.command("queries")
@click.argument("name", required=False)
@case_option("DuckDB case file to run NAME on (opened read-only).", required=False)
@parameter_option("Set a parameter of the investigation (values are bound, never spliced).")
@format_option()
@click.option("--max-rows", default=50, show_default=True, help="Rows to show as a table.")
def queries_cmd(
    name: str | None, case: Path | None, parameters: tuple, fmt: str, max_rows: int
) -> None:
    """List the named investigations (with NAME: its parameters), or run NAME on CASE.

    Example: kforensics queries identity_timeline --case c.duckdb -p identity alice
    """
    from kforensics.investigate import canned

    try:
        if case is None:
            for query in [canned.get(name)] if name else canned.queries():
                click.echo(f"{query.name}: {query.description}")
                for p in query.params:
                    default = "required" if p.required else f"default {p.default}"
                    default = "optional" if p.default is None and not p.required else default
                    click.echo(f"    {p.name} ({p.type}, {default}): {p.description}")
            return
        con = connect(case)
        try:
            table = canned.run_query(con, name or "", dict(parameters))
            print_rows(duckdb.from_arrow(table), fmt, max_rows)
        finally:
            con.close()
    except (CaseError, QueryError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("sample")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same bytes).")
@click.option(
    "--background",
    type=int,
    default=None,
    metavar="N",
    help="Instead of the story, write N benign background events to OUT/audit.log.",
)
def sample_cmd(out: Path, seed: int, background: int | None) -> None:
    """Write the synthetic sample story (native, EKS, GKE and AKS shapes) to OUT."""
    from kforensics.sample import generate as samplegen

    if background is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "audit.log"
        size = samplegen.write_native_lines(path, background, seed=seed)
        click.echo(f"{path}: {background:,} events, {size:,} bytes")
        return
    for path in samplegen.write_samples(out, seed=seed):
        click.echo(path)


def _when(value: str | None) -> datetime | None:
    """Return an ISO 8601 time as an aware datetime (naive means UTC)."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def rules_option(help: str):
    """Return the --rules option (folders of extra rules) of detect and rules."""
    return click.option(
        "--rules",
        "rule_dirs",
        multiple=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help=help,
    )


@main.command("detect")
@case_option("DuckDB case file (findings are stored in it, table `findings`).")
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="Output: a table, or one JSON finding per line.",
)
@click.option(
    "--min-level",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    help="Print only findings at or above this level (all are stored).",
)
def detect_cmd(
    case: Path,
    rule_dirs: tuple[Path, ...],
    exceptions: Path | None,
    statuses: str,
    since: str | None,
    until: str | None,
    fmt: str,
    min_level: str,
) -> None:
    """Run the detection rules over CASE; print and store the findings."""
    wanted = tuple(s.strip() for s in statuses.split(",") if s.strip())
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise click.BadParameter(f"unknown status {', '.join(bad)}", param_hint="--status")
    try:
        rules = load_rules(list(rule_dirs), statuses=wanted)
        excs = load_exceptions(exceptions) if exceptions else []
        findings = detect(case, rules, exceptions=excs, since=_when(since), until=_when(until))
    except (RuleError, ExceptionsError, RuleSQLError, CaseError) as exc:
        raise click.ClickException(visible(str(exc))) from exc  # SQL errors quote the data
    findings = [f for f in findings if f.level in at_or_above(min_level)]
    if fmt == "jsonl":
        for f in findings:
            click.echo(json_line(f.to_json()))
        return
    print_findings(findings, len(rules))


@main.command("rules")
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


def _remediation_options(f):
    """Add the options `remediate` and `netpol` share."""
    f = click.option(
        "--no-record",
        is_flag=True,
        help="Do not record the plan in the case (the watch rules then do not know it).",
    )(f)
    f = click.option("--forensics-namespace", help="Namespace allowed into quarantined pods.")(f)
    f = click.option(
        "--at", help="Rebuild the cluster as of this time (ISO 8601; default: the end)."
    )(f)
    f = click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder for the YAML, apply.sh and REPORT.md.",
    )(f)
    return case_option("DuckDB case file whose findings to contain.", required=False)(f)


def _remediate(
    case: Path | None,
    out: Path | None,
    at: str | None,
    forensics_namespace: str | None,
    no_record: bool,
    command: str,
) -> None:
    """Write and record the containment plan; exit 1 when an object is invalid."""
    if case is None or out is None:
        raise click.UsageError(f"kforensics {command} needs --case and --out")
    from kforensics.contain.remediate import remediate_case

    try:
        result = remediate_case(
            case, out, at=_when(at), forensics_namespace=forensics_namespace, record=not no_record
        )
    except (CaseError, RuleError, RuleSQLError, ValueError) as exc:
        raise click.ClickException(visible(str(exc))) from exc
    # Names and messages quote the log: escaped, they cannot drive the terminal.
    for step, actions in result.plan.by_step():
        click.echo(f"{step}:")
        for a in actions:
            n = f" ({len(a.objects)} object(s))" if a.objects else ""
            click.echo(f"  {a.kind:24} {visible(a.name)}{n}")
    for p in result.plan.simulation.problems:
        click.echo(f"warning: {visible(p)}", err=True)
    for e in result.errors:
        click.echo(f"invalid (kept in {out / 'invalid'}, not applied): {visible(e)}", err=True)
    if result.record_error:
        click.echo(
            f"not recorded, so not watched: {visible(result.record_error)}; run "
            "`kforensics remediate` again when nothing else has the case open",
            err=True,
        )
    elif result.remediation_id:
        click.echo(f"recorded as remediation {result.remediation_id} (watched by detect)")
    for p in result.paths:
        click.echo(p)
    # a plan the watch does not know is a silent gap: the exit code says so
    if result.errors or result.record_error:
        sys.exit(1)


@main.command("remediate")
@_remediation_options
def remediate_cmd(
    case: Path | None,
    out: Path | None,
    at: str | None,
    forensics_namespace: str | None,
    no_record: bool,
) -> None:
    """Write the containment of CASE's findings (network, access, eviction, rotation) as
    validated YAML, apply.sh and REPORT.md, and record it in the case for the watch rules."""
    _remediate(case, out, at, forensics_namespace, no_record, "remediate")


@main.group("netpol", invoke_without_command=True)
@_remediation_options
@click.pass_context
def netpol_cmd(
    ctx: click.Context,
    case: Path | None,
    out: Path | None,
    at: str | None,
    forensics_namespace: str | None,
    no_record: bool,
) -> None:
    """The containment plan, as `kforensics remediate` (its old name); or a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    _remediate(case, out, at, forensics_namespace, no_record, "netpol")


@netpol_cmd.command("connlist")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def connlist_cmd(paths: tuple[Path, ...]) -> None:
    """Print the allowed connections of Kubernetes objects (files or folders), in np-guard
    netpol-analyzer's connlist format."""
    from kforensics.errors import ManifestError
    from kforensics.netpol.evaluate import connlist
    from kforensics.netpol.model import read_objects

    try:
        click.echo(connlist(read_objects(list(paths))), nl=False)
    except (ManifestError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("report")
@click.argument("notebook", required=False)
@case_option("DuckDB case file the notebook investigates (opened read-only).", required=False)
@parameter_option(
    "Set a notebook parameter (typed by its default; the notebook runs in --out, so "
    "relative paths are relative to it)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the executed notebook and the HTML report.",
)
@click.option(
    "--fail-on",
    type=click.Choice(LEVELS),
    help="Exit 1 when findings at or above this level exist (alerting from cron).",
)
@click.option("--list", "list_", is_flag=True, help="List the notebooks and their parameters.")
def report_cmd(
    notebook: str | None,
    case: Path | None,
    parameters: tuple[tuple[str, str], ...],
    out: Path | None,
    fail_on: str | None,
    list_: bool,
) -> None:
    """Run an investigation NOTEBOOK with papermill; write it executed and as offline HTML."""
    from kforensics.reporting.run import ReportError, list_notebooks, run_report

    if list_:
        for info in list_notebooks():
            click.echo(info.name)
            for p in info.parameters:
                click.echo(f"    {p.name}: {p.type} = {p.default}")
        return
    if not notebook or case is None or out is None:
        raise click.UsageError("kforensics report needs NOTEBOOK, --case and --out (or --list)")
    try:
        result = run_report(notebook, case, dict(parameters), out, fail_on=fail_on)
    except ReportError as exc:
        raise click.ClickException(visible(str(exc))) from exc  # a cell's error may quote the log
    click.echo(result.ipynb)
    click.echo(result.html)
    if result.failed:
        click.echo(f"{result.findings_at_or_above} finding(s) at or above {fail_on}", err=True)
        sys.exit(1)
