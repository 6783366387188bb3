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
from kforensics.ingest.load import CLUSTER_NAME
from kforensics.untrusted import visible
from kforensics.version import __version__


def export_case(case: str | Path, out: str | Path, *, replace: bool = False) -> Layout:
    """Write the case's tables as a Parquet dataset in folder out; return its layout.

    out must be new or empty, or (with replace) a dataset written before: it is written in a
    folder beside it and renamed into place, so a failed export leaves nothing half written.
    """
    out = Path(out)
    check_target(out, replace)
    con = connect(case)
    work = out.with_name(f".{out.name}.writing")
    try:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        # Row order means nothing in a dataset: not keeping it lets DuckDB stream each
        # partition out instead of buffering the table (5M events overran 1 GB in order).
        con.execute("SET preserve_insertion_order = false")
        layout = _write(con, work)
    except duckdb.Error as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise DatasetError(f"{out}: the export failed: {str(exc).splitlines()[0]}") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        con.close()
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    return layout


def check_target(out: Path, replace: bool) -> None:
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
    for table in case_tables(con):
        folder = work / table
        folder.mkdir()
        # (table names are the case schema's own, from duckdb_tables)
        rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608
        if table == PARTITIONED and rows[table]:
            _write_events(con, folder, clustered)
        else:
            copy_table(con, f"SELECT * FROM {table}", folder / f"{table}.parquet")  # noqa: S608
    partitions = (["cluster", "day"] if clustered else ["day"]) if rows.get(PARTITIONED) else []
    layout = Layout(SCHEMA_VERSION, __version__, partitions, rows)
    (work / LAYOUT_FILE).write_text(json.dumps(layout.to_dict(), indent=2) + "\n")
    return layout


# Hive's name of a NULL partition value, which DuckDB and Spark both read back as NULL.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _write_events(con: duckdb.DuckDBPyConnection, folder: Path, clustered: bool) -> None:
    """Write the events one partition (cluster, UTC day) at a time.

    One COPY per partition, not DuckDB's PARTITION_BY: that buffers every open partition and
    ran out of its memory limit at 5M events; a plain COPY streams.
    """
    cluster = "l.cluster" if clustered else "NULL::VARCHAR"
    join = " LEFT JOIN loads l USING (load_id)" if clustered else ""
    events = f"SELECT e.*, {cluster} AS cluster FROM events e{join}"  # noqa: S608
    parts = con.execute(
        f"SELECT DISTINCT cluster, ts::DATE FROM ({events}) ORDER BY ALL"  # noqa: S608
    ).fetchall()
    for name, day in parts:
        if name is not None and not CLUSTER_NAME.fullmatch(name):  # a case changed by hand
            raise DatasetError(f"loads.cluster {visible(repr(name))} cannot name a folder")
        where = "cluster IS NOT DISTINCT FROM $cluster AND "
        # a range on ts, not ts::DATE: DuckDB skips the row groups outside it
        where += "ts IS NULL" if day is None else "ts >= $day AND ts < $day + INTERVAL 1 DAY"
        path = folder
        if clustered:
            path = path / f"cluster={HIVE_NULL if name is None else name}"
        path = path / f"day={HIVE_NULL if day is None else day.isoformat()}"
        path.mkdir(parents=True)
        params = {"cluster": name} | ({} if day is None else {"day": day})
        copy_table(con, f"SELECT * EXCLUDE (cluster) FROM ({events}) WHERE {where}",  # noqa: S608
              path / "data_0.parquet", params)  # fmt: skip


def copy_table(con: duckdb.DuckDBPyConnection, query: str, path: Path, params: dict = {}) -> None:  # noqa: B006
    """Write the query's rows to one Parquet file, the schema version in its metadata."""
    kv = f"KV_METADATA {{kforensics_schema_version: '{SCHEMA_VERSION}'}}"
    con.execute(
        f"COPY ({query}) TO $path (FORMAT parquet, COMPRESSION zstd, {kv})",
        {**params, "path": str(path)},
    )


def _has_cluster(con: duckdb.DuckDBPyConnection) -> bool:
    """Return whether the case's loads record a cluster (cases loaded before version 7 do not)."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'loads' "
            "AND column_name = 'cluster' AND database_name = current_database()"
        ).fetchall()[0][0]
    )
