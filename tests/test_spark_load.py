"""`kforensics load --engine spark`: per-file Spark tasks give the dataset a DuckDB load gives."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kforensics import load
from kforensics.cli import main
from kforensics.dataset.export import export_case
from kforensics.dataset.layout import attach, read_layout
from kforensics.sample.generate import write_native_lines
from tests.conftest import SAMPLES, needs_spark

# The native sample's files, in the order a load reads them.
SOURCES = ["audit-2026-03-14T09-30-00.000.log.gz", "audit.log", "webhook-eventlist.json"]
# What a load writes that differs between any two runs.
_VOLATILE = {"loads": ["started_at", "finished_at", "arguments"]}


def tables(dataset: Path) -> dict[str, list[str]]:
    """Return every table of the dataset as sorted rows (repr), through DuckDB."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    attach(con, dataset)
    out = {}
    for table in read_layout(dataset).tables:
        skip = _VOLATILE.get(table)
        columns = f"* EXCLUDE ({', '.join(skip)})" if skip else "*"
        cursor = con.execute(f"SELECT {columns} FROM {table}")  # noqa: S608
        names = [d[0] for d in cursor.description]
        out[table] = [repr(names)] + sorted(repr(r) for r in cursor.fetchall())
    con.close()
    return out


def duckdb_dataset(inputs: list[Path], folder: Path, **options) -> tuple[dict, Path]:
    """Return the summary of a DuckDB load of inputs and its exported dataset."""
    case = folder / "case.duckdb"
    result = load(case, inputs, **options)
    export_case(case, folder / "duckdb-ds")
    return result.to_dict(), folder / "duckdb-ds"


def summary(result: dict) -> dict:
    """Return a load summary without the case it names."""
    return {k: v for k, v in result.items() if k not in ("case",)}


def reencoded(line: bytes) -> bytes:
    """Return the same JSON event with other whitespace and escapes: the same event."""
    return json.dumps(json.loads(line), indent=None, separators=(" , ", " : ")).encode()


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """A folder of logs that repeat one another across files in every way a load must see."""
    root = tmp_path_factory.mktemp("spark-load-logs")
    a = root / "a.log"
    write_native_lines(a, 300, seed=11)
    lines = a.read_bytes().splitlines()
    other = root / "more"
    other.mkdir()
    write_native_lines(other / "new.log", 20, seed=12)
    b = [reencoded(x) for x in lines[:50]]  # the same 50 events, other bytes
    b += other.joinpath("new.log").read_bytes().splitlines()
    b += [b"not json", b"{", b'{"kind": "Event"}', b"[1, 2]", b"\xff\xfe"]
    forged = json.loads(lines[60])  # a.log's audit ID, stage and time, other content
    forged["verb"] = "delete"
    b.append(json.dumps(forged).encode())
    (root / "b.log").write_bytes(b"\n".join(b) + b"\n")
    shutil.rmtree(other)
    (root / "c.log.gz").write_bytes(gzip.compress(a.read_bytes()))  # a.log again, compressed
    (root / "copy").mkdir()
    shutil.copy(a, root / "copy" / "a.log")  # the very bytes of a.log: skipped
    return root


@needs_spark
def test_a_spark_load_gives_the_dataset_of_a_duckdb_load_and_export(spark, logs, tmp_path):
    from kforensics.spark.load import load_spark

    inputs = [logs, SAMPLES.resolve()]
    dump = tmp_path / "dump.json"
    pod = {"kind": "Pod", "metadata": {"name": "web-0", "namespace": "shop",
                                       "labels": {"app": "web"}}}  # fmt: skip
    namespace = {"kind": "Namespace", "metadata": {"name": "shop"}}
    dump.write_bytes(orjson.dumps({"kind": "List", "apiVersion": "v1", "items": [pod, namespace]}))
    expected, duck = duckdb_dataset(inputs, tmp_path, inventory=[dump])
    result = load_spark(spark, tmp_path / "spark-ds", inputs, inventory=[dump])
    got = result.to_dict()
    assert got["inventory_objects"] == 2
    assert summary(got) == summary(expected)
    # exact figures: a.log 300 + b.log's 20 new and 1 forged + the samples' 5,636; b.log's
    # junk is 6 rejects ([1, 2] is a list of two records) and the samples' 148
    assert (got["events_loaded"], got["duplicates"], got["rejected"]) == (5_957, 6_476, 154)
    assert got["skipped_as_loaded"] == 1
    by_file = {Path(s["path"]).name: s for s in got["sources"]}
    assert (by_file["b.log"]["events_loaded"], by_file["b.log"]["duplicates"]) == (21, 50)
    assert (by_file["c.log.gz"]["events_loaded"], by_file["c.log.gz"]["duplicates"]) == (0, 300)
    assert [s["format"] for s in got["sources"] if s["already_loaded"] == 1] == ["skipped"]
    assert tables(tmp_path / "spark-ds") == tables(duck)
    assert read_layout(tmp_path / "spark-ds") == read_layout(duck)


@needs_spark
def test_a_spark_loaded_dataset_gives_the_duckdb_findings(spark, tmp_path):
    from kforensics.detection.rule import load_rules
    from kforensics.detection.run import detect
    from kforensics.spark.detect import detect_spark
    from kforensics.spark.load import load_spark

    native = SAMPLES.resolve() / "native"
    load(tmp_path / "case.duckdb", [native], cluster="prod-eu")
    load_spark(spark, tmp_path / "ds", [native], cluster="prod-eu")
    assert read_layout(tmp_path / "ds").partitions == ["cluster", "day"]
    assert [p.name for p in (tmp_path / "ds" / "events").iterdir() if p.is_dir()] == [
        "cluster=prod-eu"
    ]
    rules = load_rules()
    on_spark = detect_spark(spark, tmp_path / "ds", rules)
    duck = detect(tmp_path / "case.duckdb", rules, store=False)
    mine = {f.finding_id: f.to_json() for f in duck if f.rule_id in on_spark.rules_run}
    theirs = {f.finding_id: f.to_json() for f in on_spark.findings}
    assert len(theirs) == 75
    assert theirs == mine  # same ids, evidence (file and line), levels


@needs_spark
def test_a_file_name_that_is_not_utf8_is_opened_and_cited_as_duckdb_cites_it(spark, logs, tmp_path):
    from kforensics.spark.load import load_spark

    odd = tmp_path / "in"
    odd.mkdir()
    name = os.fsdecode(b'it\'s "odd" \xff.log')
    shutil.copy(logs / "a.log", odd / name)
    expected, duck = duckdb_dataset([odd], tmp_path)
    result = load_spark(spark, tmp_path / "spark-ds", [odd])
    assert result.events_loaded == 300
    assert result.sources[0].path.endswith('/it\'s "odd" \\xff.log')
    assert summary(result.to_dict()) == summary(expected)
    assert tables(tmp_path / "spark-ds") == tables(duck)


@needs_spark
def test_a_spark_load_refuses_a_folder_that_holds_something_else(spark, logs, tmp_path):
    from kforensics.errors import DatasetError
    from kforensics.spark.load import load_spark

    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="the folder is not empty and holds no dataset"):
        load_spark(spark, tmp_path / "ds", [logs / "a.log"])
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["notes.txt"]
    load_spark(spark, tmp_path / "ds2", [logs / "a.log"])
    with pytest.raises(DatasetError, match="holds a dataset already: pass --replace"):
        load_spark(spark, tmp_path / "ds2", [logs / "b.log"])
    again = load_spark(spark, tmp_path / "ds2", [logs / "b.log"], replace=True)
    rows = read_layout(tmp_path / "ds2").tables["events"]
    assert (again.replaced, again.events_loaded, rows) == (True, 71, 71)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_line_whose_source_is_gone_has_no_canonical_text(tmp_path):
    import pyarrow as pa

    from kforensics.spark.load import canonical_batches

    line = b'{"kind":"Event","auditID":"x"}'
    here = tmp_path / "here.log"
    here.write_bytes(b"junk\n" + line + b"\n")
    digest = hashlib.sha256(line).digest()
    batch = pa.RecordBatch.from_pylist(
        [
            {"kf_seq": 0, "kf_row": 0, "source_file": str(here), "raw_offset": 5,
             "digest": digest, "raw": None},
            {"kf_seq": 0, "kf_row": 1, "source_file": str(tmp_path / "gone.log"),
             "raw_offset": 0, "digest": digest, "raw": None},
            {"kf_seq": 1, "kf_row": 0, "source_file": str(here), "raw_offset": 0,
             "digest": digest, "raw": None},  # the bytes there are not the event's
            {"kf_seq": 2, "kf_row": 7, "source_file": "x.json", "raw_offset": None,
             "digest": digest, "raw": '{ "kind" : "Event", "auditID" : "x" }'},
        ]
    )  # fmt: skip
    (out,) = list(canonical_batches(iter([batch])))
    assert out.to_pylist() == [
        {"kf_seq": 0, "kf_row": 0, "canonical": 'c{"kind":"Event","auditID":"x"}'},
        {"kf_seq": 0, "kf_row": 1, "canonical": None},
        {"kf_seq": 1, "kf_row": 0, "canonical": None},
        {"kf_seq": 2, "kf_row": 7, "canonical": 'c{"kind":"Event","auditID":"x"}'},
    ]


def test_the_cli_takes_a_dataset_for_the_spark_engine_and_a_case_for_duckdb(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("{}\n")
    cases = [
        (["--engine", "spark", "--case", str(tmp_path / "c.duckdb"), str(log)],
         "--engine spark takes --parquet DIR, not --case"),
        (["--engine", "spark", str(log)], "--engine spark takes --parquet DIR, not --case"),
        (["--parquet", str(tmp_path / "ds"), "--case", str(tmp_path / "c.duckdb"), str(log)],
         "--parquet and --master are for --engine spark"),
        ([str(log)], "Missing option '--case'."),
        (["--engine", "spark", "--parquet", str(tmp_path / "ds"), "--cluster", "a/b", str(log)],
         "--cluster 'a/b': a cluster name is 1 to 100 letters"),
    ]  # fmt: skip
    for args, message in cases:
        result = CliRunner().invoke(main, ["load", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
    assert not (tmp_path / "ds").exists()


@needs_spark
def test_the_cli_loads_on_spark_and_prints_the_summary(logs, tmp_path, spark):
    ds = tmp_path / "ds"
    result = CliRunner().invoke(
        main, ["load", "--engine", "spark", "--parquet", str(ds), "--json", str(logs / "b.log")]
    )
    assert result.exit_code == 0, result.output
    got = orjson.loads(result.stdout)
    assert (got["case"], got["events_loaded"], got["rejected"]) == (str(ds), 71, 6)
    assert [r["count"] for r in got["reject_reasons"]] == [2, 1, 1, 1, 1]
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"nothing\nhere\n")
    result = CliRunner().invoke(
        main, ["load", "--engine", "spark", "--parquet", str(ds), "--replace", str(junk)]
    )
    assert result.exit_code == 1
    assert "the earlier dataset" in result.stderr and "is kept as it was" in result.stderr
    assert read_layout(ds).tables["events"] == 71


# Lines for the property test: a few events, each logged as itself or re-encoded, and junk.
_EVENTS = [
    json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": f"id-{i % 3}", "stage": "ResponseComplete", "verb": verb,
                "requestURI": "/api/v1/pods", "user": {"username": "u"},
                "requestReceivedTimestamp": "2026-01-01T00:00:00.000000Z",
                "stageTimestamp": "2026-01-01T00:00:01.000000Z"}).encode()
    for i, verb in enumerate(["get", "list", "watch", "create", "delete", "get"])
]  # fmt: skip
_LINE = st.one_of(
    st.sampled_from(_EVENTS),
    st.sampled_from(_EVENTS).map(reencoded),
    st.binary(max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b),
)


@needs_spark
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=st.lists(st.lists(_LINE, max_size=8), min_size=2, max_size=3))
def test_any_split_of_lines_into_files_loads_alike_on_both_engines(spark, tmp_path, files):
    from kforensics.spark.load import load_spark

    run = tmp_path / hashlib.sha256(repr(files).encode()).hexdigest()[:12]
    shutil.rmtree(run, ignore_errors=True)
    (run / "in").mkdir(parents=True)
    for i, lines in enumerate(files):
        (run / "in" / f"{i}.log").write_bytes(b"\n".join(lines))
    expected, duck = duckdb_dataset([run / "in"], run)
    result = load_spark(spark, run / "spark-ds", [run / "in"])
    assert summary(result.to_dict()) == summary(expected)
    assert tables(run / "spark-ds") == tables(duck)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A Spark standalone cluster of one master and one worker (its own JVM and folder)."""
    import subprocess
    import time

    import pyspark

    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_NO_DAEMONIZE": "1"}
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = [str(home / "bin" / "spark-class")]
    started = []
    try:
        with open(logs / "master.log", "wb") as out:
            started.append(subprocess.Popen(
                [*spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(port), "--webui-port", str(_free_port())],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        with open(logs / "worker.log", "wb") as out:
            started.append(subprocess.Popen(
                [*spark_class, "org.apache.spark.deploy.worker.Worker", url, "--cores", "2",
                 "--memory", "3g", "--webui-port", str(_free_port()),
                 "--work-dir", str(logs / "work")],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        deadline = time.monotonic() + 120
        while b"Registering worker" not in (logs / "master.log").read_bytes():
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                pytest.fail("the standalone cluster did not start: see " + str(logs))
            time.sleep(0.5)
        yield url
    finally:
        for p in started:
            p.terminate()
        for p in started:
            p.wait(30)


@needs_spark
@pytest.mark.slow
def test_a_standalone_cluster_loads_and_detects_from_relative_paths(standalone, tmp_path):
    # The executor is another JVM with Python workers in the worker's own folder: every path
    # a task is given must be absolute, as on a real cluster.
    import subprocess

    shutil.copytree(SAMPLES / "native", tmp_path / "logs")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    cli = [sys.executable, "-m", "kforensics"]
    spark = ["--engine", "spark", "--master", standalone, "--parquet", "ds"]
    for args in (["load", *spark, "--json", "logs"],
                 ["detect", *spark, "--format", "jsonl", "--output", "found.jsonl"]):  # fmt: skip
        run = subprocess.run([*cli, *args], cwd=tmp_path, env=env, capture_output=True)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        if args[0] == "load":
            loaded = orjson.loads(run.stdout)
        else:
            left = _duckdb_only(run.stderr)
    assert (loaded["events_loaded"], loaded["duplicates"], loaded["rejected"]) == (3850, 70, 0)
    assert [s["path"] for s in loaded["sources"]][0] == str(tmp_path / "logs" / SOURCES[0])
    found = {
        orjson.loads(x)["finding_id"] for x in (tmp_path / "found.jsonl").read_bytes().splitlines()
    }
    assert len(found) == 75
    assert found == _duckdb_findings(tmp_path / "logs", tmp_path / "case.duckdb", left)


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server (local[2]), as a platform's would be; yields its sc:// URL."""
    import subprocess
    import time

    import pyspark

    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("connect")
    port = _free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    with open(logs / "server.log", "wb") as out:
        server = subprocess.Popen(
            [str(home / "bin" / "spark-submit"), "--class",
             "org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[2]",
             "--conf", f"spark.connect.grpc.binding.port={port}",
             "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.memory=2g",
             "spark-internal"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while b"Spark Connect server started" not in (logs / "server.log").read_bytes():
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("the Spark Connect server did not start: see " + str(logs))
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)


@needs_spark
@pytest.mark.slow
def test_spark_connect_loads_and_detects(connect_server, tmp_path):
    import subprocess

    shutil.copytree(SAMPLES / "native", tmp_path / "logs")
    env = {**os.environ, "SPARK_REMOTE": connect_server}
    cli = [sys.executable, "-m", "kforensics"]
    spark = ["--engine", "spark", "--parquet", "ds"]
    for args in (["load", *spark, "--json", "logs"],
                 ["detect", *spark, "--format", "jsonl", "--output", "found.jsonl"]):  # fmt: skip
        run = subprocess.run([*cli, *args], cwd=tmp_path, env=env, capture_output=True)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        assert b"Failed to set" not in run.stderr  # no setting that the server refuses
        if args[0] == "load":
            loaded = orjson.loads(run.stdout)
        else:
            left = _duckdb_only(run.stderr)
    assert (loaded["events_loaded"], loaded["duplicates"], loaded["rejected"]) == (3850, 70, 0)
    found = {
        orjson.loads(x)["finding_id"] for x in (tmp_path / "found.jsonl").read_bytes().splitlines()
    }
    assert len(found) == 75
    assert found == _duckdb_findings(tmp_path / "logs", tmp_path / "case.duckdb", left)


def _duckdb_only(stderr: bytes) -> set[str]:
    """Return the rules a Spark detect left to DuckDB, as its stderr names them."""
    lines = stderr.decode().splitlines()
    return {x.split(":")[1].strip() for x in lines if x.startswith("DuckDB-only: ")}


def _duckdb_findings(logs: Path, case: Path, left: set[str]) -> set[str]:
    """Return the ids of the DuckDB engine's findings over logs, less those of rules left."""
    from kforensics.detection.rule import load_rules
    from kforensics.detection.run import detect

    load(case, [logs])
    assert len(left) == 15  # each rule left to DuckDB is named on stderr
    return {f.finding_id for f in detect(case, load_rules(), store=False) if f.rule_id not in left}


def test_the_progress_bar_advances_by_each_file_as_its_task_finishes(tmp_path):
    import time

    from kforensics.spark.load import TaskProgress

    class Bar:
        enabled = True

        def __init__(self):
            self.advanced: list[int] = []

        def advance(self, n: int) -> None:
            self.advanced.append(n)

    bar = Bar()
    for seq in range(3):
        (tmp_path / str(seq)).mkdir()
    with TaskProgress(tmp_path, [100, 20, 3], bar):
        (tmp_path / "2" / "result.json").write_text("{}")
        deadline = time.monotonic() + 10
        while bar.advanced != [3] and time.monotonic() < deadline:
            time.sleep(0.1)
        (tmp_path / "0" / "result.json").write_text("{}")
        while bar.advanced != [3, 100] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert bar.advanced == [3, 100]  # file 1 never finished: never counted
