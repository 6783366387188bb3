"""A case as a Parquet dataset: the canonical tables, events hive-partitioned by cluster and day.

The dataset is what the Spark engine reads and writes, and what any Parquet reader can query:

    DIR/_kforensics.json                  the layout: schema version, tables, rows, partitions
    DIR/events/[cluster=NAME/]day=YYYY-MM-DD/*.parquet    (events without a time: Hive's
                                          default partition, day=__HIVE_DEFAULT_PARTITION__)
    DIR/<table>/<table>.parquet           every other table of the case, one file each

Read back with the partition types of `layout.PARTITION_TYPES`, the dataset gives the case's
rows exactly (`layout.attach`; tests/test_dataset.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from kforensics.case import SCHEMA_VERSION, connect
from kforensics.dataset.layout import LAYOUT_FILE, PARTITIONED, DatasetError, Layout, case_tables
from kforensics.version import __version__


def export_case(case: str | Path, out: str | Path, *, replace: bool = False) -> Layout:
    """Write the case's tables as a Parquet dataset in folder out; return its layout.

    out must be new or empty, or (with replace) a dataset written before: it is written in a
    folder beside it and renamed into place, so a failed export leaves nothing half written.
    """
    out = Path(out)
    _check_target(out, replace)
    con = connect(case)
    work = out.with_name(f".{out.name}.writing")
    try:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        layout = _write(con, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        con.close()
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    return layout


def _check_target(out: Path, replace: bool) -> None:
    """Refuse to write over a folder that holds anything but an earlier dataset (with replace)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder")
    entries = list(out.iterdir())
    if not entries:
        return
    if not (out / LAYOUT_FILE).is_file():
        raise DatasetError(f"{out}: the folder is not empty and holds no dataset: choose another")
    if not replace:
        raise DatasetError(f"{out}: holds a dataset already: pass --replace to write over it")


def _write(con: duckdb.DuckDBPyConnection, work: Path) -> Layout:
    """Write every table of the case under work; return the layout written beside them."""
    has_cluster = _has_cluster(con)
    clustered = has_cluster and bool(
        con.execute("SELECT count(*) FROM loads WHERE cluster IS NOT NULL").fetchall()[0][0]
    )
    rows = {}
    kv = f"KV_METADATA {{kforensics_schema_version: '{SCHEMA_VERSION}'}}"
    for table in case_tables(con):
        folder = work / table
        folder.mkdir()
        rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608
        # (table names are the case schema's own, from duckdb_tables)
        query, target, options = f"SELECT * FROM {table}", folder / f"{table}.parquet", ""  # noqa: S608
        if table == PARTITIONED and rows[table]:
            cluster = ", l.cluster" if clustered else ""
            join = " LEFT JOIN loads l USING (load_id)" if clustered else ""
            # the day in UTC (case.connect's time zone); NULL, undated, is Hive's default
            # partition, which DuckDB and Spark both read back as NULL
            query = f"SELECT e.*{cluster}, e.ts::DATE AS day FROM events e{join}"  # noqa: S608
            by = "cluster, day" if clustered else "day"
            target, options = folder, f", PARTITION_BY ({by}), WRITE_PARTITION_COLUMNS false"
        con.execute(
            f"COPY ({query}) TO $path (FORMAT parquet, COMPRESSION zstd, {kv}{options})",
            {"path": str(target)},
        )
    partitions = (["cluster", "day"] if clustered else ["day"]) if rows.get(PARTITIONED) else []
    layout = Layout(SCHEMA_VERSION, __version__, partitions, rows)
    (work / LAYOUT_FILE).write_text(json.dumps(layout.to_dict(), indent=2) + "\n")
    return layout


def _has_cluster(con: duckdb.DuckDBPyConnection) -> bool:
    """Return whether the case's loads record a cluster (cases loaded before version 7 do not)."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'loads' "
            "AND column_name = 'cluster' AND database_name = current_database()"
        ).fetchall()[0][0]
    )
