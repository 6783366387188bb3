"""Write the report notebooks from their sources: `python notebooks/build.py [OUT_DIR]`.

The sources are the jupytext percent files beside this script (`01_triage.py`, ...); the
notebooks (.ipynb, without outputs) go to kforensics/reporting/notebooks/, the package data that
`kforensics report` runs and the wheel ships. tests/test_notebooks.py fails when the committed
notebooks differ from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
PACKAGED = HERE.parent / "kforensics" / "reporting" / "notebooks"
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def sources(folder: Path = HERE) -> list[Path]:
    """Return the notebook sources of the folder (NN_name.py), by name."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))


def build(source: Path) -> str:
    """Return the .ipynb text of a percent source: no outputs, fixed cell ids and metadata."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = nbformat.from_dict(METADATA)
    prefix = source.stem.split("_")[0]
    for n, cell in enumerate(nb.cells):
        cell.id = f"{prefix}-{n:02d}"  # stable ids: a rebuild changes nothing it need not
        cell.metadata.pop("lines_to_next_cell", None)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(out: Path = PACKAGED) -> None:
    """Write every source's notebook into `out` (default: the package's notebooks/)."""
    out.mkdir(parents=True, exist_ok=True)
    for source in sources():
        (out / f"{source.stem}.ipynb").write_text(build(source), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGED)
