"""The investigation notebooks: committed without outputs, parameterised, run by papermill."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from kforensics import load
from kforensics.detect.rule import load_rules
from kforensics.detect.run import detect, load_exceptions
from tests.conftest import ROOT, SAMPLES

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = ["01_triage", "02_identity", "03_workload"]
SHAPES = ["native", "eks", "gke", "aks"]
FORBIDDEN = re.compile(r"\bSELECT\b|execute\(|\.sql\(|\bFROM\s+(events|requests|findings)\b", re.I)


def read(path: Path):
    return nbformat.read(path, as_version=4)


def test_the_three_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == NAMES


def test_build_script_reproduces_the_committed_notebooks(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "notebooks" / "build.py"), str(tmp_path)], check=True
    )
    built = {p.name: p.read_bytes() for p in sorted(tmp_path.glob("*.ipynb"))}
    assert built == {p.name: p.read_bytes() for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = read(path)
    nbformat.validate(nb)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    params = cells[1]
    assert params.cell_type == "code" and params.metadata.get("tags") == ["parameters"]
    names = dict(line.split(" = ", 1) for line in params.source.splitlines() if " = " in line)
    assert names["case"] == '"../out/demo.duckdb"'  # the demo case, seen from notebooks/
    assert names["since"] == names["until"] == '""'
    assert names["interactive"] == "False" and names["remediation_out"] == '""'
    # plain literals only
    for value in names.values():
        assert re.fullmatch(r'"[^"]*"|False|True', value), value
    code = [c for c in cells if c.cell_type == "code"]
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, "outputs committed"
        assert not FORBIDDEN.search(cell.source), cell.source
    assert sum("if interactive:" in c.source for c in code) == 1
    assert "ipywidgets" not in "".join(c.source for c in code if "if interactive:" not in c.source)
    assert cells[-1].cell_type == "code" and "remediate_case(" in cells[-1].source
    assert cells[-2].cell_type == "markdown" and "Remediation" in cells[-2].source


@pytest.fixture(scope="module", params=SHAPES)
def executed(request, tmp_path_factory):
    """Load one sample shape, detect, and run every notebook on it (static mode)."""
    shape = request.param
    work = tmp_path_factory.mktemp(f"nb-{shape}")
    case = work / "case.duckdb"
    load(case, [SAMPLES / shape])
    detect(case, load_rules(), exceptions=load_exceptions(SAMPLES / "known_false_positives.yaml"))
    out = {}
    for path in NOTEBOOKS:
        target = work / path.name
        papermill.execute_notebook(
            str(path),
            str(target),
            parameters={"case": str(case), "remediation_out": str(work / f"rem-{path.stem}")},
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=120,
            cwd=str(work),
        )
        out[path.stem] = (read(target), work / f"rem-{path.stem}")
    return out


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def html_of(output) -> str:
    text = output.get("data", {}).get("text/html", "")
    return text if isinstance(text, str) else "".join(text)


def widget_views(nb) -> list[dict]:
    return [
        o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_every_shape(executed, name):
    nb, remediation = executed[name]
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    html = "".join(html_of(o) for o in outputs(nb))
    assert '<table class="kforensics">' in html
    assert "storefront" in html  # the sample incident's actor shows up in every notebook
    assert "vegaEmbed" in html  # charts were displayed
    assert (remediation / "REPORT.md").is_file()
    assert "Remedies (" in html
    widgets = widget_views(nb)
    assert not widgets  # static mode: nothing widget-related ran


@pytest.fixture(scope="module")
def native_case(tmp_path_factory) -> Path:
    case = tmp_path_factory.mktemp("nb-interactive") / "case.duckdb"
    load(case, [SAMPLES / "native"])
    detect(case, load_rules())
    return case


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_interactive_mode_runs_without_a_front_end(native_case, path, tmp_path):
    target = tmp_path / path.name
    papermill.execute_notebook(
        str(path),
        str(target),
        parameters={"case": str(native_case), "interactive": True},
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=120,
        cwd=str(tmp_path),
    )
    nb = read(target)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert widget_views(nb)
