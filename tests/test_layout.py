"""The package's shape: no module reaches into another's private names; modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kforensics"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _absolute(path: Path, root: Path, node: ast.ImportFrom) -> str:
    """Return the absolute module name an import-from names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    # the package a relative import counts from: the module's folder (an __init__ is its folder)
    package = list(path.parent.relative_to(root.parent).parts)
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_reaches(path: Path, root: Path = PACKAGE) -> list[str]:
    """Return `file:line name` for every private name this module takes from another module."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    aliases: dict[str, str] = {}  # local name -> kforensics module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(path, root, node)
            if not origin.startswith("kforensics"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} {origin}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kforensics"):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.name}:{node.lineno} {aliases[node.value.id]}.{node.attr}")
    return found


def test_the_check_sees_a_private_reach(tmp_path):
    fake = tmp_path / "kforensics" / "ingest" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "from kforensics.ingest.read import _secret\n"
        "from . import shapes as s\n"
        "from kforensics import untrusted\n"
        "x = s._hidden + untrusted._inner + untrusted.public\n"
    )
    assert private_reaches(fake, tmp_path / "kforensics") == [
        "probe.py:1 kforensics.ingest.read._secret",
        "probe.py:4 kforensics.ingest.shapes._hidden",
        "probe.py:4 kforensics.untrusted._inner",
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_reaches_into_another_modules_private_names(path):
    assert private_reaches(path) == []


def test_the_package_folders_are_the_pipeline():
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert folders == [
        "cli",
        "contain",
        "dataset",
        "detection",
        "ingest",
        "investigate",
        "netpol",
        "reporting",
        "sample",
        "sensitive",
        "spark",
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 500, f"{lines} lines: split the module by job"


# The pipeline from the bottom up: a part imports only parts on its own layer or below it.
LAYERS = [
    {"errors", "levels", "untrusted", "jsontext", "progress", "version", "sqlcheck"},
    {"case"},
    {"ingest", "sample"},
    {"dataset"},
    {"investigate"},
    {"detection"},
    {"netpol"},
    {"sensitive"},
    {"contain"},
    {"api"},
    {"reporting", "output"},
    {"spark"},
    {"cli"},
    {"docs", "__init__", "__main__"},
]
LAYER = {part: n for n, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """Return the top-level part of the package a dotted kforensics module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_parts(path: Path, root: Path = PACKAGE) -> set[str]:
    """Return the parts of the package this module imports (its own included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(path, root, node)
            if origin == "kforensics":  # `from kforensics import untrusted`: the names are parts
                found |= {a.name if a.name in LAYER else "__init__" for a in node.names}
            elif origin.startswith("kforensics."):
                found.add(part_of(origin))
        elif isinstance(node, ast.Import):
            found |= {part_of(a.name) for a in node.names if a.name.startswith("kforensics.")}
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert parts == set(LAYER)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_pipeline(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    me = (
        part_of(".".join(rel.parts)) if rel.name != "__init__" or len(rel.parts) > 2 else "__init__"
    )
    above = sorted(p for p in imported_parts(path) if LAYER[p] > LAYER[me])
    assert above == [], f"{me} imports {above}, which sit above it"


def test_the_layer_check_sees_an_upward_import(tmp_path):
    fake = tmp_path / "kforensics"
    (fake / "ingest").mkdir(parents=True)
    (fake / "ingest" / "load.py").write_text("from kforensics.netpol.plan import plan\n")
    assert imported_parts(fake / "ingest" / "load.py", fake) == {"netpol"}
