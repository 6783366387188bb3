"""The investigation notebooks: built from percent sources, in the wheel, run by papermill."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import altair as alt
import nbformat
import papermill
import pytest

from kforensics import load
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from kforensics.reporting.display import VEGA_LITE_MIME, bundle, chart_library_html
from kforensics.reporting.run import notebooks_dir
from tests.conftest import ROOT, SAMPLES

SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((ROOT / "kforensics" / "reporting" / "notebooks").glob("*.ipynb"))
NAMES = ["01_triage", "02_identity", "03_workload"]
# Every notebook runs on the native shape; a shape changes only how events are read, which the
# triage notebook (the whole case) shows.
RUNS = [("native", name) for name in NAMES] + [(s, "01_triage") for s in ("eks", "gke", "aks")]
SQL = re.compile(r"\bSELECT\b|execute\(|\.sql\(|\bFROM\s+(events|requests|findings)\b", re.I)


def read(path: Path):
    return nbformat.read(path, as_version=4)


def test_the_three_notebooks_exist_as_sources_and_package_data():
    assert [p.stem for p in SOURCES] == NAMES
    assert [p.stem for p in NOTEBOOKS] == NAMES
    assert sorted(p.stem for p in notebooks_dir().glob("*.ipynb")) == NAMES


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
    # The public API only: `import kforensics as kf`, no subpackage, no DuckDB connection.
    source = "\n".join(c.source for c in code)
    imported = sorted(set(re.findall(r"^\s*(?:import|from) ([\w.]+)", source, flags=re.M)))
    assert imported == (["altair"] if path.stem == "01_triage" else []) + ["kforensics", "tempfile"]
    assert "import kforensics as kf\n" in source and not re.search(r"\bcon\b", source)
    # SQL only in the section that shows an analyst's own query, with its value bound.
    queries = [c.source for c in code if SQL.search(c.source)]
    if path.stem == "01_triage":
        assert len(queries) == 1 and "$code" in queries[0] and "code=400" in queries[0]
    else:
        assert queries == []
    # The interactive cells: the filters (Explore), then (triage, identity) the note widget
    interactive = [c.source for c in code if "if interactive:" in c.source]
    noted = path.stem in ("01_triage", "02_identity")
    assert len(interactive) == 1 + noted and "kf.explore(c" in interactive[0], interactive
    assert noted == ("kf.note_widget(c" in interactive[-1])
    static = "".join(c.source for c in code if "if interactive:" not in c.source)
    assert "ipywidgets" not in static and "explore" not in static
    assert cells[-1].cell_type == "code" and "remediate" in cells[-1].source
    assert cells[-2].cell_type == "markdown" and "Containment" in cells[-2].source


def test_the_wheel_ships_the_notebooks(tmp_path):
    # Built from a copy: setuptools writes build/ into the source tree.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.duckdb*")
    shutil.copytree(ROOT / "kforensics", source / "kforensics", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = tmp_path.glob("kforensics-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("kforensics/reporting/notebooks/"))
    assert shipped == [f"kforensics/reporting/notebooks/{n}.ipynb" for n in NAMES]
    # and every other data file of the package: rules, macros, investigations, the schema
    data = {
        str(p.relative_to(ROOT)) for p in (ROOT / "kforensics").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    }  # fmt: skip
    assert len(data) > 80 and data <= set(names)
    # Installed (a pure wheel unpacked is what pip installs), `report` finds them there.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = subprocess.run(
        [sys.executable, "-c", "import kforensics.reporting.run as r; d = r.notebooks_dir();"
         "print(r.__file__); print(sorted(p.name for p in d.glob('*.ipynb')))"],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    module, listed = found.stdout.splitlines()
    assert Path(module).is_relative_to(site)
    assert listed == str([f"{n}.ipynb" for n in NAMES])


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    """One case per sample shape, loaded and detected."""
    out = {}
    for shape in sorted({shape for shape, _ in RUNS}):
        case = tmp_path_factory.mktemp(f"case-{shape}") / "case.duckdb"
        load(case, [SAMPLES / shape])
        exceptions = load_exceptions(SAMPLES / "known_false_positives.yaml")
        detect(case, load_rules(), exceptions=exceptions)
        out[shape] = case
    return out


def execute(path: Path, work: Path, **parameters):
    """Run the notebook in work with papermill; return the executed notebook."""
    target = work / path.name
    papermill.execute_notebook(
        str(path),
        str(target),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=120,
        cwd=str(work),
    )
    return read(target)


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def html_of(output) -> str:
    text = output.get("data", {}).get("text/html", "")
    return text if isinstance(text, str) else "".join(text)


def widget_views(nb) -> list[dict]:
    return [
        o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]


@pytest.mark.parametrize(("shape", "name"), RUNS, ids=[f"{s}-{n}" for s, n in RUNS])
def test_notebook_runs(cases, shape, name, tmp_path):
    remediation = tmp_path / "remediation"
    nb = execute(
        ROOT / "kforensics" / "reporting" / "notebooks" / f"{name}.ipynb",
        tmp_path,
        case=str(cases[shape]),
        remediation_out=str(remediation),
    )
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    html = "".join(html_of(o) for o in outputs(nb))
    assert '<table class="kforensics">' in html
    assert "storefront" in html  # the sample incident's actor shows up in every notebook
    specs = [o["data"][VEGA_LITE_MIME] for o in outputs(nb) if VEGA_LITE_MIME in o.get("data", {})]
    assert specs and all(
        s["$schema"].startswith("https://vega.github.io/schema/vega-lite/") for s in specs
    )
    assert (remediation / "REPORT.md").is_file()
    assert "Containment plan (" in html
    assert not widget_views(nb)  # static mode: nothing widget-related ran


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_interactive_mode_runs_without_a_front_end(cases, path, tmp_path):
    nb = execute(path, tmp_path, case=str(cases["native"]), interactive=True)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert widget_views(nb)
    # What the filters first select (nbclient keeps the widgets' state): the timeline, the
    # findings, who did what, and the notebook's own table for its identity or namespace.
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    [shown] = [w["state"]["outputs"] for w in state.values() if w["model_name"] == "OutputModel"]
    tables = 2 if path.stem == "01_triage" else 3
    assert [sorted(o["data"]) for o in shown] == [
        [VEGA_LITE_MIME, "text/html", "text/plain"],
        *[["text/html", "text/plain"]] * tables,
    ]
    assert all(html_of(o).startswith('<table class="kforensics">') for o in shown[1:])
    assert "<th>error</th>" not in "".join(html_of(o) for o in shown)


def test_a_chart_of_raw_log_text_cannot_end_the_script_of_its_live_html():
    # An analyst's own chart (the SQL section) holds log values as they are.
    hostile = "</script><img src=x onerror=alert(1)>&\u2028"
    chart = alt.Chart(alt.Data(values=[{"verb": hostile}])).mark_bar().encode(x="verb:N")
    shown = bundle(chart)
    assert shown[VEGA_LITE_MIME]["data"] == {"values": [{"verb": hostile}]}  # the exact spec
    # The chart library (vl-convert's bundle, in a kernel's first chart) is JavaScript of its own
    live = shown["text/html"].replace(chart_library_html(), "")
    assert "</script><img" not in live and "<img" not in live
    assert (
        '"verb":"\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e\\u0026\\u2028"'
        in live
    )


def test_saving_a_source_from_jupyterlab_writes_it_back_unchanged(tmp_path):
    # `make lab` serves notebooks/ through jupytext's contents manager and notebooks/jupytext.toml.
    from jupytext import TextFileContentsManager

    for path in [*SOURCES, ROOT / "notebooks" / "jupytext.toml"]:
        shutil.copy(path, tmp_path / path.name)
    manager = TextFileContentsManager(root_dir=str(tmp_path))
    for source in SOURCES:
        nb = manager.get(source.name, content=True, type="notebook")["content"]
        assert nb.cells[1].metadata["tags"] == ["parameters"]
        # what a session in JupyterLab adds before the save
        nb.metadata["language_info"] = {"name": "python", "version": "3.11.2"}
        cell = nb.cells[2]
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
        cell.execution_count = 1
        cell.metadata["scrolled"] = True
        manager.save({"type": "notebook", "format": "json", "content": nb}, source.name)
        assert (tmp_path / source.name).read_text() == source.read_text()
