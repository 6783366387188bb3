"""Shared fixtures: a case path, a reader for it, the samples loaded once, the shared corpora."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import orjson
import pytest

from kforensics import LoadResult, connect, load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "corpus"
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture
def case_path(tmp_path: Path) -> Path:
    return tmp_path / "case.duckdb"


@pytest.fixture
def con(case_path: Path):
    """Open the case read-only once a test has loaded it: `con()` returns the connection."""
    opened = []

    def open_case():
        c = connect(case_path)
        opened.append(c)
        return c

    yield open_case
    for c in opened:
        c.close()


class SampleCases:
    """Cases of data/samples, one per shape, each loaded once a session on first use.

    `loaded(shape)` is for reading (a load result and a case no test may write to); a test that
    writes (detect storing findings, another load) takes `copy(shape, folder)` instead.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: dict[str, tuple[Path, LoadResult]] = {}

    def loaded(self, shape: str) -> tuple[Path, LoadResult]:
        """Return the shared case of data/samples/<shape> and its load result."""
        if shape not in self.cases:
            case = self.root / shape / "case.duckdb"
            case.parent.mkdir()
            self.cases[shape] = (case, load(case, [SAMPLES / shape], progress=False))
        return self.cases[shape]

    def copy(self, shape: str, folder: Path) -> Path:
        """Return a private copy, in folder, of the shared case of data/samples/<shape>."""
        case = self.loaded(shape)[0]
        return Path(shutil.copy(case, folder / case.name))


@pytest.fixture(scope="session")
def sample_cases(tmp_path_factory: pytest.TempPathFactory) -> SampleCases:
    return SampleCases(tmp_path_factory.mktemp("samples"))


def corpus(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the shared corpora sit beside the repository in CI)")
    return path


def event(audit_id: str = "a1", **over) -> dict:
    """A native audit.k8s.io/v1 event as the kube-apiserver logs it, with fields overridden."""
    ev = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/pods/web-1",
        "verb": "get",
        "user": {"username": "alice", "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["203.0.113.10"],
        "userAgent": "kubectl/v1.29.2",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-1", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-03-14T10:00:00.000001Z",
        "stageTimestamp": "2026-03-14T10:00:00.002001Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "dev/shop"',
        },
    }
    ev.update(over)
    return ev


def privileged_pod(audit_id: str = "p1") -> dict:
    """The creation of a privileged pod shop/p (k8s-privileged-pod matches it)."""
    return event(
        audit_id, verb="create", requestURI="/api/v1/namespaces/shop/pods",
        objectRef={"resource": "pods", "namespace": "shop", "name": "p", "apiVersion": "v1"},
        responseStatus={"code": 201},
        requestObject={"kind": "Pod", "spec": {"containers": [
            {"name": "c", "image": "nginx", "securityContext": {"privileged": True}}]}},
    )  # fmt: skip


def jsonl(*events: dict) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "no pyspark (pip install 'kforensics[spark]')"
    from kforensics.spark.session import java_missing

    return java_missing()


# The Spark engine's tests need pyspark and Java; elsewhere they skip, saying which is missing.
needs_spark = pytest.mark.skipif(
    _spark_missing() is not None, reason=f"the Spark engine cannot run here: {_spark_missing()}"
)


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for every Spark test (a JVM takes seconds to start)."""
    from kforensics.spark.session import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()
