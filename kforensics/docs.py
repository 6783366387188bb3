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


GENERATORS = {"kforensics --help": cli_help}


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
