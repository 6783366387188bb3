"""`kforensics export --parquet`: the case as a Parquet dataset, read back row for row."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.case import SCHEMA_VERSION
from kforensics.cli import main
from kforensics.dataset.export import export_case
from kforensics.dataset.layout import LAYOUT_FILE, attach, read_layout
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect
from kforensics.errors import DatasetError
from tests.conftest import event, jsonl


def round_trip_differences(case: Path, folder: Path) -> dict[str, tuple[int, int]]:
    """Return, per table, the rows only in the case and only in the dataset (both 0: equal)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{case}' AS k (READ_ONLY)")
    layout = attach(con, folder)
    out = {}
    for table in layout.tables:
        extra = [p for p in layout.partitions if table == "events"]
        mine = f"SELECT * EXCLUDE ({', '.join(extra)}) FROM {table}" if extra else table
        mine = mine if extra else f"SELECT * FROM {table}"  # the partitions are no columns there
        only_case = f"SELECT count(*) FROM (SELECT * FROM k.{table} EXCEPT ALL {mine})"
        only_set = f"SELECT count(*) FROM ({mine} EXCEPT ALL SELECT * FROM k.{table})"
        out[table] = (
            con.execute(only_case).fetchall()[0][0],
            con.execute(only_set).fetchall()[0][0],
        )
    con.close()
    return out


def partitions(folder: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(folder)) for p in (folder / "events").rglob("*.parquet"))


@pytest.fixture
def detected_sample(sample_cases, tmp_path) -> Path:
    """A copy of the native sample case with its findings stored."""
    case = sample_cases.copy("native", tmp_path)
    detect(case, load_rules())
    return case


def test_a_case_exported_and_read_back_gives_every_table_s_rows(detected_sample, tmp_path):
    out = tmp_path / "dataset"
    layout = export_case(detected_sample, out)
    assert layout.schema_version == SCHEMA_VERSION
    assert layout.partitions == ["day"]  # no load named a cluster
    assert layout.tables["events"] == 3850
    assert layout.tables["findings"] == 77
    assert partitions(out) == ["events/day=2026-03-14"]
    differences = round_trip_differences(detected_sample, out)
    assert set(differences) == set(layout.tables)
    assert {t: d for t, d in differences.items() if d != (0, 0)} == {}
    assert json.loads((out / LAYOUT_FILE).read_text())["tables"]["sources"] == 3


def test_events_are_partitioned_by_cluster_and_day_and_undated_ones_are_null(tmp_path):
    eu, us = tmp_path / "eu.log", tmp_path / "us.log"
    eu.write_bytes(jsonl(event("a"), event("b", requestReceivedTimestamp="2026-03-15T23:59:59Z")))
    undated = event("c")
    del undated["requestReceivedTimestamp"], undated["stageTimestamp"]
    us.write_bytes(jsonl(event("d"), undated))
    case = tmp_path / "c.duckdb"
    load(case, [eu], cluster="prod-eu-1")
    load(case, [us])  # a load that names no cluster
    out = tmp_path / "ds"
    assert export_case(case, out).partitions == ["cluster", "day"]
    assert partitions(out) == [
        "events/cluster=__HIVE_DEFAULT_PARTITION__/day=2026-03-14",
        "events/cluster=__HIVE_DEFAULT_PARTITION__/day=__HIVE_DEFAULT_PARTITION__",
        "events/cluster=prod-eu-1/day=2026-03-14",
        "events/cluster=prod-eu-1/day=2026-03-15",
    ]
    con = duckdb.connect()
    attach(con, out)
    assert con.execute(
        "SELECT audit_id, cluster, day::VARCHAR FROM events ORDER BY audit_id"
    ).fetchall() == [
        ("a", "prod-eu-1", "2026-03-14"),
        ("b", "prod-eu-1", "2026-03-15"),
        ("c", None, None),
        ("d", None, "2026-03-14"),
    ]
    assert {t: d for t, d in round_trip_differences(case, out).items() if d != (0, 0)} == {}


def test_an_empty_case_exports_its_tables_with_their_columns(tmp_path):
    log = tmp_path / "junk.log"
    log.write_bytes(b"not json\n")
    case = tmp_path / "c.duckdb"
    load(case, [log])
    layout = export_case(case, tmp_path / "ds")
    assert (layout.partitions, layout.tables["events"], layout.tables["rejects"]) == ([], 0, 1)
    con = duckdb.connect()
    attach(con, tmp_path / "ds")
    assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
    assert "digest" in [r[0] for r in con.execute("DESCRIBE events").fetchall()]


@pytest.fixture
def small_case(tmp_path) -> Path:
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("a")))
    case = tmp_path / "c.duckdb"
    load(case, [log])
    return case


def test_export_refuses_a_folder_that_holds_something_else(small_case, tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    for replace in (False, True):
        with pytest.raises(
            DatasetError, match="home: the folder is not empty and holds no dataset"
        ):
            export_case(small_case, folder, replace=replace)
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


def test_export_writes_over_a_dataset_only_when_told(small_case, tmp_path):
    out = tmp_path / "ds"
    export_case(small_case, out)
    with pytest.raises(DatasetError, match="ds: holds a dataset already: pass --replace"):
        export_case(small_case, out)
    (out / "events" / "stale.parquet").write_bytes(b"old")
    export_case(small_case, out, replace=True)
    assert not (out / "events" / "stale.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.log", "c.duckdb", "ds"]


def test_a_failed_export_leaves_nothing(tmp_path):
    with pytest.raises(Exception, match="no such case file"):
        export_case(tmp_path / "missing.duckdb", tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_a_quote_in_its_name_reads_back(small_case, tmp_path):
    out = tmp_path / "it's a 'dataset'"
    export_case(small_case, out)
    assert {t: d for t, d in round_trip_differences(small_case, out).items() if d != (0, 0)} == {}


def test_the_cli_says_what_it_wrote(small_case, tmp_path):
    result = CliRunner().invoke(
        main, ["export", "--case", str(small_case), "--parquet", str(tmp_path / "ds")]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{tmp_path / 'ds'}: 1 events partitioned by day, 15 tables, schema version 7\n"
    )
    again = CliRunner().invoke(
        main, ["export", "--case", str(small_case), "--parquet", str(tmp_path / "ds")]
    )
    assert (again.exit_code, again.output) == (
        1,
        f"Error: {tmp_path / 'ds'}: holds a dataset already: pass --replace to write over it\n",
    )


def write_layout(folder: Path, doc: object) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / LAYOUT_FILE).write_text(json.dumps(doc))
    return folder


GOOD = {"schema_version": SCHEMA_VERSION, "kforensics": "0.1.0", "partitions": ["day"],
        "tables": {"events": 1}, "format": "kforensics-parquet"}  # fmt: skip


@pytest.mark.parametrize(
    "doc, message",
    [
        ([], "not a kforensics-parquet layout"),
        ({**GOOD, "format": "delta"}, "not a kforensics-parquet layout"),
        ({**GOOD, "extra": 1}, "not a kforensics-parquet layout"),
        ({**GOOD, "schema_version": 6}, "the dataset has schema version 6; this kforensics reads"),
        ({**GOOD, "tables": {'events" AS SELECT 1; --': 1}}, "is not a table name"),
        ({**GOOD, "tables": ["events"]}, "not a kforensics-parquet layout"),
        ({**GOOD, "partitions": ["day", "x'"]}, "unknown partition"),
    ],
)
def test_a_layout_that_is_not_ours_is_refused_by_name(tmp_path, doc, message):
    folder = write_layout(tmp_path / "ds", doc)
    with pytest.raises(DatasetError, match=message):
        read_layout(folder)


def test_a_folder_without_a_layout_or_with_broken_json_says_so(tmp_path):
    with pytest.raises(DatasetError, match=r"ds: not a kforensics dataset \(no _kforensics.json\)"):
        read_layout(tmp_path / "ds")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / LAYOUT_FILE).write_bytes(b"{\xff")
    with pytest.raises(DatasetError, match="_kforensics.json: not readable"):
        read_layout(tmp_path / "ds")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=st.fixed_dictionaries({}, optional={k: json_values for k in [*GOOD, "x"]}) | json_values)
def test_any_layout_is_read_or_refused_with_a_dataset_error(tmp_path, doc):
    folder = write_layout(tmp_path / "fuzz", doc)
    try:
        layout = read_layout(folder)
    except DatasetError:
        return
    assert layout.schema_version == SCHEMA_VERSION
    assert all(isinstance(t, str) and t.isidentifier() for t in layout.tables)


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(user=names, namespace=names, name=names, day=st.integers(1, 28))
def test_events_with_any_text_read_back_exactly(tmp_path_factory, user, namespace, name, day):
    folder = tmp_path_factory.mktemp("fuzz")
    log = folder / "audit.log"
    ts = f"2026-02-{day:02d}T10:00:00Z"
    log.write_bytes(
        jsonl(event("a", user={"username": user}, requestReceivedTimestamp=ts,
                    objectRef={"resource": "pods", "namespace": namespace, "name": name}))
    )  # fmt: skip
    case = folder / "c.duckdb"
    load(case, [log], cluster="c-1")
    export_case(case, folder / "ds")
    assert partitions(folder / "ds") == [f"events/cluster=c-1/day=2026-02-{day:02d}"]
    assert {
        t: d for t, d in round_trip_differences(case, folder / "ds").items() if d != (0, 0)
    } == {}


def test_a_huge_or_deeply_nested_layout_is_refused_without_reading_it_all(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / LAYOUT_FILE).write_bytes(b"[" * 600_000 + b"]" * 600_000)
    with pytest.raises(DatasetError, match=r"over 1,048,576 bytes: not a layout"):
        read_layout(folder)
    (folder / LAYOUT_FILE).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DatasetError, match="not readable"):
        read_layout(folder)


def test_a_cluster_name_changed_by_hand_into_a_path_is_refused(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(event("a")))
    case = tmp_path / "c.duckdb"
    load(case, [log], cluster="prod")
    with duckdb.connect(str(case)) as con:
        con.execute("UPDATE loads SET cluster = '../../etc'")
    with pytest.raises(DatasetError, match=r"loads.cluster '../../etc' cannot name a folder"):
        export_case(case, tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.log", "c.duckdb"]
