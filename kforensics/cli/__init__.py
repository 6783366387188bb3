"""The `kforensics` command: a thin shell over the library, one module per command group."""

from __future__ import annotations

import click

from kforensics.cli.detect import detect_cmd, rules_cmd
from kforensics.cli.export import export_cmd
from kforensics.cli.load import load_cmd, sample_cmd
from kforensics.cli.note import note_cmd, notes_cmd
from kforensics.cli.query import queries_cmd, sql_cmd
from kforensics.cli.remediate import netpol_cmd, remediate_cmd
from kforensics.cli.report import report_cmd
from kforensics.cli.sensitive import sensitive_cmd
from kforensics.cli.verify import original_cmd, verify_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kforensics")
def main() -> None:
    """Investigate Kubernetes security incidents from API-server audit logs."""


for command in (load_cmd, sql_cmd, queries_cmd, sample_cmd, detect_cmd, rules_cmd,
                remediate_cmd, netpol_cmd, report_cmd, note_cmd, notes_cmd,
                sensitive_cmd, verify_cmd, original_cmd, export_cmd):  # fmt: skip
    main.add_command(command)
