"""pandas DataFrames of case data that Jupyter shows with every log value as literal text.

pandas escapes `<`, `>` and `&` in its HTML, but a bidi override (U+202E) or a control character
in a user agent would still reorder or hide what an analyst reads, and `$...$` would be typeset
by MathJax. `Frame._repr_html_` shows each cell through `untrusted.visible` (lists and dicts as
their text) with MathJax off; the data itself stays exactly as logged.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from kforensics.investigate.export import ARROW_SCHEMA
from kforensics.untrusted import visible


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, list | tuple | dict):
        return visible(str(value))
    return value


class Frame(pd.DataFrame):
    """A DataFrame whose notebook HTML shows log text literally (see the module)."""

    @property
    def _constructor(self) -> type[Frame]:
        return Frame

    def export(self, path: str | Path, format: str | None = None) -> int:
        """Return how many rows were written to path as csv, jsonl or parquet (kf.export)."""
        from kforensics.investigate.export import export

        return export(self, path, format)

    def _repr_html_(self) -> str | None:
        shown = pd.DataFrame(self).map(_shown)
        shown.columns = [visible(str(c)) for c in self.columns]
        with pd.option_context("display.html.use_mathjax", False):
            return shown._repr_html_()


def frame(table: pa.Table) -> Frame:
    """Return the arrow table as a Frame: numbers and times typed (NULL as <NA>, NaT), every
    other column as Python objects (str, None, lists and dicts as they are)."""
    columns = {}
    for name in table.column_names:
        column, kind = table.column(name), table.schema.field(name).type
        if pa.types.is_integer(kind):
            columns[name] = column.to_pandas(types_mapper={kind: pd.Int64Dtype()}.get)
        elif pa.types.is_timestamp(kind) or pa.types.is_floating(kind):
            columns[name] = column.to_pandas()
        else:
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
    result = Frame(columns, columns=table.column_names)
    result.attrs[ARROW_SCHEMA] = table.schema  # Frame.export writes the query's own types
    return result
