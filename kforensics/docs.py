"""Regenerate the generated sections of README.md (`python -m kforensics.docs`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_SECTION = re.compile(
    r"(<!-- BEGIN generated: (?P<name>[^(]+?) \(python -m kforensics.docs\) -->\n)"
    r"(.*?)(<!-- END generated -->)",
    re.S,
)


def cli_help() -> str:
    """Return the help of every kforensics command, as Markdown."""
    from click.testing import CliRunner

    from kforensics.cli import main

    runner = CliRunner()
    out = []
    for args in [[], *([name] for name in sorted(main.commands))]:
        result = runner.invoke(main, [*args, "--help"], prog_name="kforensics", terminal_width=100)
        cmd = " ".join(["kforensics", *args, "--help"])
        out.append(f"```\n$ {cmd}\n{result.output.rstrip()}\n```")
    return "\n\n".join(out) + "\n"


def rules_table() -> str:
    """Return the table of built-in rules, as Markdown."""
    from kforensics.detect.rule import load_rules

    rows = [
        "| rule | level | status | ATT&CK | tactics | what it finds | equivalent of |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in load_rules(statuses=None):
        equivalents = [f"Falco: {n}" for n in r.falco] + [f"Sigma: {n}" for n in r.sigma]
        rows.append(
            f"| `{r.id}` | {r.level} | {r.status} | {', '.join(r.techniques)} | "
            f"{', '.join(r.tactics)} | {r.title} | {'; '.join(equivalents)} |"
        )
    return "\n".join(rows) + "\n"


GENERATORS = {"kforensics --help": cli_help, "rules": rules_table}


def render(text: str) -> str:
    """Return README text with every generated section brought up to date."""

    def fill(m: re.Match) -> str:
        return m.group(1) + GENERATORS[m.group("name")]() + m.group(4)

    return _SECTION.sub(fill, text)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if new != text:
        README.write_text(new)
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
