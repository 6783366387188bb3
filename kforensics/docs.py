"""Regenerate the generated sections of README.md (`python -m kforensics.docs`)."""

from __future__ import annotations

import ast
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
    from kforensics.detection.rule import load_rules

    rows = [
        "| rule | level | status | ATT&CK | tactics | what it finds | equivalent of |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in load_rules(statuses=None):
        equivalents = [f"Falco: {n}" for n in r.falco] + [f"Sigma: {n}" for n in r.sigma]
        level = r.level + (f" ({r.sensitive_level} on sensitive)" if r.sensitive_level else "")
        rows.append(
            f"| `{r.id}` | {level} | {r.status} | {', '.join(r.techniques)} | "
            f"{', '.join(r.tactics)} | {r.title} | {'; '.join(equivalents)} |"
        )
    return "\n".join(rows) + "\n"


def macros_list() -> str:
    """Return the built-in lists and macros (with their arguments), as Markdown."""
    from kforensics.detection.macros import builtin_shared

    shared = builtin_shared()
    lists = ", ".join(f"`{name}`" for name in shared.lists)
    macros = ", ".join(
        f"`{name}({', '.join(m.params + m.columns)})`" if m.params + m.columns else f"`{name}`"
        for name, m in shared.macros.items()
    )
    return f"* lists: {lists}\n* macros: {macros}\n"


def investigations_table() -> str:
    """Return the table of named investigations and their parameters, as Markdown."""
    from kforensics.investigate.canned import queries

    def param(p) -> str:
        if p.default not in (None, ""):
            return f"`{p.name}` {p.type} = {p.default}"
        return f"`{p.name}` {p.type}{'' if p.required else '?'}"

    rows = ["| investigation | what it returns | parameters |", "| --- | --- | --- |"]
    for q in queries():
        params = ", ".join(param(p) for p in q.params)
        description = q.description.replace("|", "\\|")  # a table cell
        rows.append(f"| `{q.name}` | {description} | {params} |")
    return "\n".join(rows) + "\n"


def layout() -> str:
    """Return the package tree with each module's one-line docstring, as a Markdown code block."""
    root = Path(__file__).resolve().parent
    rows: list[tuple[str, str]] = []

    def walk(folder: Path, depth: int) -> None:
        pad = "  " * depth
        order = lambda p: (p.is_dir(), p.name)  # noqa: E731
        for path in sorted(folder.iterdir(), key=order):
            if path.name.startswith((".", "__")):  # __init__.py: its text is the folder's
                continue
            if path.is_dir() and (path / "__init__.py").exists():
                rows.append((f"{pad}{path.name}/", _summary(path / "__init__.py")))
                walk(path, depth + 1)
            elif path.is_dir():
                files = [p for p in path.iterdir() if p.is_file()]
                if files:  # a folder left empty by a move is not part of the package
                    kinds = ", ".join(sorted({f"*{p.suffix}" for p in files}))
                    rows.append((f"{pad}{path.name}/", f"data: {len(files)} files ({kinds})"))
            elif path.suffix == ".py":
                rows.append((f"{pad}{path.name}", _summary(path)))
            elif path.suffix == ".sql":
                first = path.read_text(encoding="utf-8").split(".")[0]  # its first sentence
                rows.append((f"{pad}{path.name}", " ".join(first.replace("--", " ").split())))

    rows.append(("kforensics/", _summary(root / "__init__.py")))
    walk(root, 1)
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{name:<{width}}{text}".rstrip() for name, text in rows]
    return "```\n" + "\n".join(lines) + "\n```\n"


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())  # the first paragraph, on one line


GENERATORS = {
    "kforensics --help": cli_help,
    "rules": rules_table,
    "macros": macros_list,
    "investigations": investigations_table,
    "layout": layout,
}


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
