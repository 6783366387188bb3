"""The dataset's layout: which tables, how events are partitioned, and reading it back.

`_kforensics.json` at the dataset's root says what it holds; a reader checks it before it
trusts a column, as `case.connect` checks a case's schema version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from kforensics.case import SCHEMA_VERSION, own_tables
from kforensics.errors import DatasetError
from kforensics.untrusted import visible

LAYOUT_FILE = "_kforensics.json"
FORMAT = "kforensics-parquet"
PARTITIONED = "events"  # the one table partitioned (by cluster, when loads name one, and day)
# Said, not inferred: a reader would take a cluster named 2024 for a number.
PARTITION_TYPES = {"cluster": "VARCHAR", "day": "DATE"}
# Not exported: the version is in the layout, and what `detect --since-last` keeps to go on
# from (detection.ev_store) is derived from the events, by this DuckDB (detect's temporary
# tables are not the case's anyway).
_SKIPPED = ("schema_version", "detect_ev", "detect_ev_state")


@dataclass
class Layout:
    """What a dataset holds: the schema version of its tables, and each table's rows."""

    schema_version: int
    kforensics: str
    partitions: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT

    def to_dict(self) -> dict:
        """Return the layout as `_kforensics.json` holds it."""
        return asdict(self)


MAX_LAYOUT_BYTES = 1024 * 1024  # a layout names some tables: far less than this
_FIELDS = ("schema_version", "kforensics", "partitions", "tables", "format")


def case_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the case's own tables (the main schema's, in name order) that a dataset holds."""
    return [t for t in own_tables(con) if t not in _SKIPPED]


def read_layout(folder: str | Path) -> Layout:
    """Return the layout of the dataset in folder, or raise DatasetError saying what is wrong."""
    path = Path(folder) / LAYOUT_FILE
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_LAYOUT_BYTES + 1)
        if len(data) > MAX_LAYOUT_BYTES:
            raise DatasetError(f"{path}: over {MAX_LAYOUT_BYTES:,} bytes: not a layout")
        doc = json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{folder}: not a kforensics dataset (no {LAYOUT_FILE})") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DatasetError(f"{path}: not readable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or set(doc) != set(_FIELDS):
        raise DatasetError(f"{path}: not a {FORMAT} layout")
    layout = Layout(**doc)
    if (
        not isinstance(layout.schema_version, int)
        or not isinstance(layout.kforensics, str)
        or not isinstance(layout.partitions, list)
        or not isinstance(layout.tables, dict)
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in layout.tables.values())
    ):
        raise DatasetError(f"{path}: not a {FORMAT} layout")
    if layout.schema_version != SCHEMA_VERSION:
        raise DatasetError(
            f"{folder}: the dataset has schema version {layout.schema_version}; this "
            f"kforensics reads version {SCHEMA_VERSION}: export the case again"
        )
    for name in layout.tables:
        if not name.isidentifier() or not name.isascii():
            raise DatasetError(f"{path}: {visible(repr(name))} is not a table name")
    for p in layout.partitions:
        if not isinstance(p, str) or p not in PARTITION_TYPES:
            raise DatasetError(f"{path}: {visible(repr(p))} is an unknown partition")
    return layout


def table_glob(folder: str | Path, table: str) -> str:
    """Return the glob of a table's Parquet files in the dataset."""
    return str(Path(folder) / table / "**" / "*.parquet")


def attach(con: duckdb.DuckDBPyConnection, folder: str | Path) -> Layout:
    """Create a view for each table of the dataset in con (events with cluster and day)."""
    layout = read_layout(folder)
    for table in layout.tables:
        hive = table == PARTITIONED and bool(layout.partitions)
        options = ""
        if hive:
            types = ", ".join(f"'{p}': '{PARTITION_TYPES[p]}'" for p in layout.partitions)
            options = f", hive_partitioning = true, hive_types = {{{types}}}"
        # A view's SQL takes no parameters: the folder is a quoted literal, and the names
        # are the layout's checked identifiers.
        con.execute(
            f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM '  # noqa: S608
            f"read_parquet({_literal(table_glob(folder, table))}{options})"
        )
    return layout


def _literal(text: str) -> str:
    """Return text as a SQL string literal (DuckDB's: a quote doubled, nothing else special)."""
    return "'" + text.replace("'", "''") + "'"
