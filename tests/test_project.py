"""The project's promises about itself: docs in step with the code, one source of dependencies."""

from __future__ import annotations

import re
import tomllib

import yaml

from kforensics import connect, load
from kforensics.docs import README, render
from tests.conftest import ROOT, event, jsonl


def test_generated_readme_sections_are_current():
    text = README.read_text()
    assert render(text) == text, "README is stale: run `python -m kforensics.docs`"


def readme_columns(table: str) -> list[str]:
    text = README.read_text()
    section = text.split(f"### `{table}`", 1)[1].split("\n###", 1)[0]
    return re.findall(r"^\| `([a-z_0-9]+)` \|", section, flags=re.M)


def test_readme_documents_every_column_in_order(tmp_path, case_path):
    (tmp_path / "a.log").write_bytes(jsonl(event("a")))
    load(case_path, [tmp_path / "a.log"])
    with connect(case_path) as con:
        for table in (
            "events",
            "sources",
            "rejects",
            "loads",
            "findings",
            "inventory",
            "detect_runs",
            "detect_exceptions",
        ):
            actual = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert readme_columns(table) == actual, table


def test_environment_yml_installs_the_package_and_pins_nothing_of_its_own():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip = [d for d in deps if isinstance(d, dict)][0]["pip"]
    assert pip == ["-e .[dev,spark]"]
    conda = sorted(d.split(">")[0].split("=")[0] for d in deps if isinstance(d, str))
    assert conda == ["pip", "python"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.removeprefix("python") == project["requires-python"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in README.read_text()
