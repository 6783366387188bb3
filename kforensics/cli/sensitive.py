"""`kforensics sensitive`: what is declared sensitive, the candidates, who reached into them."""

from __future__ import annotations

from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.table import Table

from kforensics.case import connect
from kforensics.cli.options import case_option, sensitive_declaration, sensitive_option, when
from kforensics.errors import KforensicsError
from kforensics.output import plain
from kforensics.untrusted import visible


@click.command("sensitive")
@case_option("DuckDB case file (read-only).")
@sensitive_option()
@click.option("--since", help="Window start for who reached into them (ISO 8601).")
@click.option("--until", help="Window end.")
@click.option(
    "--propose",
    is_flag=True,
    help="Print only the candidates as sensitive.yaml entries to confirm (YAML on stdout).",
)
def sensitive_cmd(
    case: Path, sensitive: Path | None, since: str | None, until: str | None, propose: bool
) -> None:
    """List CASE's sensitive workloads (and why), who reached into them (first-time pairs
    marked), and the workloads the case suggests declaring."""
    from kforensics.sensitive.view import sensitive_view

    declaration = sensitive_declaration(sensitive, case) if sensitive else None
    try:
        con = connect(case)
        try:
            view = sensitive_view(
                con, case, declaration, since=when(since), until=when(until), with_fences=False
            )
        finally:
            con.close()
    except KforensicsError as exc:
        raise click.ClickException(visible(str(exc))) from exc
    if propose:
        click.echo(yaml.safe_dump({"workloads": [c.workload for c in view.candidates]}), nl=False)
        return
    console = Console(width=None if Console().is_terminal else 160)
    if view.declaration is None:
        click.echo(
            "no sensitive workloads declared (write sensitive.yaml beside the case or pass "
            "--sensitive FILE)"
        )
    else:
        click.echo(f"declared in {visible(view.source)}; baseline: {visible(view.baseline)}")
        table = Table(title=f"{len(view.workloads)} sensitive", title_justify="left")
        for col in ("workload", "why", "pods", "holds secrets"):
            table.add_column(col, overflow="fold")
        for w in view.workloads:
            table.add_row(plain(w.key), plain("; ".join(w.why)), str(len(w.pods)),
                          plain(", ".join(w.secrets)))  # fmt: skip
        console.print(table)
        table = Table(title="who reached into them", title_justify="left")
        for col in ("workload", "identity", "access", "requests", "first seen", "new"):
            table.add_column(col, overflow="fold")
        for r in view.touched:
            seen = r["first_seen"].strftime("%Y-%m-%d %H:%M:%S") if r["first_seen"] else "undated"
            table.add_row(plain(r["workload"]), plain(r["identity"] or ""), r["access"],
                          str(r["requests"]), seen,
                          "FIRST TIME" if r["first_time"] else "")  # fmt: skip
        console.print(table)
    table = Table(
        title="candidates to confirm (kforensics sensitive --propose)", title_justify="left"
    )
    for col in ("workload", "why"):
        table.add_column(col, overflow="fold")
    for c in view.candidates:
        table.add_row(plain(c.workload), plain("; ".join(c.reasons)))
    console.print(table)
