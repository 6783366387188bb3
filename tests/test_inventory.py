"""The cluster as of a time, rebuilt from the audit log (and kubectl dumps where it is silent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from kforensics import load
from kforensics.case import connect
from kforensics.cli import main
from kforensics.detection.selftest import expand
from kforensics.netpol import inventory
from kforensics.netpol.inventory import reconstruct
from tests.conftest import jsonl

NS = {"kind": "Namespace", "apiVersion": "v1",
      "metadata": {"name": "shop", "labels": {"team": "a"}}}  # fmt: skip
NP = {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
      "metadata": {"name": "deny", "namespace": "shop", "uid": "u-1", "resourceVersion": "7"},
      "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}  # fmt: skip
STORY = [
    {"verb": "create", "objectRef": {"resource": "namespaces", "name": "shop", "apiVersion": "v1"},
     "responseStatus": {"code": 201}, "requestObject": NS, "responseObject": NS,
     "x-offset-seconds": 0},
    {"verb": "create", "objectRef": {"resource": "networkpolicies", "namespace": "shop",
     "apiGroup": "networking.k8s.io", "apiVersion": "v1"}, "responseStatus": {"code": 201},
     "requestObject": NP, "responseObject": NP, "x-offset-seconds": 10},
    # Logged at Request level: only the merge patch, no response object.
    {"verb": "patch", "objectRef": {"resource": "namespaces", "name": "shop", "apiVersion": "v1"},
     "requestObject": {"metadata": {"labels": {"trust": "high", "team": None}}},
     "x-offset-seconds": 20},
    {"verb": "delete", "objectRef": {"resource": "networkpolicies", "namespace": "shop",
     "name": "deny", "apiGroup": "networking.k8s.io", "apiVersion": "v1"},
     "x-offset-seconds": 30},
    {"verb": "get", "objectRef": {"resource": "pods", "namespace": "dark", "name": "x",
     "apiVersion": "v1"}, "x-offset-seconds": 40},
]  # fmt: skip


def t(seconds: int) -> datetime:
    return datetime(2026, 3, 14, 10, 0, seconds, tzinfo=UTC)


def test_state_as_of_a_time(tmp_path, case_path, con):
    events = [e for n, item in enumerate(STORY) for e in expand(item, f"s{n}")]
    (tmp_path / "audit.log").write_bytes(jsonl(*events))
    load(case_path, [tmp_path / "audit.log"])
    c = con()
    early = reconstruct(c, t(15))
    assert early.namespace_labels("shop") == {"team": "a", "kubernetes.io/metadata.name": "shop"}
    assert [p["metadata"]["name"] for p in early.of_kind("NetworkPolicy")] == ["deny"]
    late = reconstruct(c)
    assert late.namespace_labels("shop") == {
        "trust": "high", "kubernetes.io/metadata.name": "shop"
    }  # fmt: skip
    assert late.of_kind("NetworkPolicy") == []
    assert late.evidence[("NetworkPolicy", "shop", "deny")].startswith("deleted: ")
    assert "namespace dark: never recorded whole; its labels are unknown" in late.unknown


def test_kubectl_dumps_fill_what_the_log_never_recorded(tmp_path, case_path, con):
    dump = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "dark", "labels": {"env": "prod"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "dark"},
         "spec": {"containers": [{"name": "c", "image": "nginx"}]},
         "status": {"podIP": "10.244.9.9"}},
    ]}  # fmt: skip
    (tmp_path / "dump.json").write_text(json.dumps(dump))
    events = expand(STORY[-1], "g")
    (tmp_path / "audit.log").write_bytes(jsonl(*events))
    out = CliRunner().invoke(
        main,
        ["load", str(tmp_path / "audit.log"), "--inventory", str(tmp_path / "dump.json"),
         "--case", str(case_path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "inventory: 2 objects kept" in out.output
    inv = reconstruct(con())
    assert inv.namespace_labels("dark") == {"env": "prod", "kubernetes.io/metadata.name": "dark"}
    assert inv.get("Pod", "dark", "x")["status"]["podIP"] == "10.244.9.9"
    assert not any("dark" in u for u in inv.unknown)


def test_a_dump_that_is_not_a_manifest_is_named(tmp_path, case_path):
    (tmp_path / "dump.yaml").write_text("a: [unclosed\n")
    out = CliRunner().invoke(
        main, ["load", "--inventory", str(tmp_path / "dump.yaml"), "--case", str(case_path)]
    )
    assert out.exit_code == 2
    assert "dump.yaml: not a YAML or JSON manifest" in out.output


def test_clean_drops_server_fields():
    from kforensics.netpol.inventory import clean

    assert clean(NP)["metadata"] == {"name": "deny", "namespace": "shop"}


def test_a_dumps_kindless_list_items_take_the_lists_kind(tmp_path):
    from kforensics.ingest.manifests import manifest_objects

    # a PodList as the API returns it: items carry no kind; objects without a name are dropped
    dump = {"kind": "PodList", "items": [{"metadata": {"name": "p", "namespace": "n"}},
                                         {"metadata": {"namespace": "n"}}, "text"]}  # fmt: skip
    (tmp_path / "pods.json").write_text(json.dumps(dump))
    assert manifest_objects(tmp_path / "pods.json") == [
        {"metadata": {"name": "p", "namespace": "n"}, "kind": "Pod"}
    ]


def test_a_dump_that_cannot_be_decoded_is_named(tmp_path, case_path):
    (tmp_path / "dump.yaml").write_bytes(b"kind: Pod\nmetadata: {name: \xff}\n")
    out = CliRunner().invoke(
        main, ["load", "--inventory", str(tmp_path / "dump.yaml"), "--case", str(case_path)]
    )
    assert out.exit_code == 2
    assert "dump.yaml: not a YAML or JSON manifest: 'utf-8' codec can't decode" in out.output


def test_inventory_folders_and_globs_are_found_as_connlist_finds_them(tmp_path, case_path, con):
    dumps = tmp_path / "dumps"
    (dumps / "ns").mkdir(parents=True)
    (dumps / "ns" / "dark.yaml").write_text("kind: Namespace\nmetadata: {name: dark}\n")
    (dumps / "pods.json").write_text('{"kind": "Pod", "metadata": {"name": "x", "namespace": "d"}}')
    (dumps / "README.md").write_text("Taken with: [kubectl get -o yaml\n")  # not YAML
    (tmp_path / "extra.txt").write_text("kind: ConfigMap\nmetadata: {name: c, namespace: d}\n")
    out = CliRunner().invoke(
        main,
        ["load", "--inventory", str(dumps), "--inventory", str(tmp_path / "*.txt"),
         "--case", str(case_path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "inventory: 3 objects kept" in out.output
    rows = con().execute("SELECT kind, name FROM inventory ORDER BY kind").fetchall()
    assert rows == [("ConfigMap", "c"), ("Namespace", "dark"), ("Pod", "x")]


def test_an_inventory_path_that_names_nothing_is_an_error(tmp_path, case_path):
    out = CliRunner().invoke(
        main, ["load", "--inventory", str(tmp_path / "nope"), "--case", str(case_path)]
    )
    assert out.exit_code == 2
    assert f"{tmp_path / 'nope'}: no such file or folder" in out.output
    assert not case_path.exists()


@pytest.mark.parametrize("cache_bytes", [0, 128 << 20])
def test_a_timeline_gives_what_each_rebuild_gives_and_shares_nothing(
    sample_cases, monkeypatch, cache_bytes
):
    monkeypatch.setattr(inventory, "PARSED_CACHE_BYTES", cache_bytes)
    case = sample_cases.loaded("native")[0]
    times = [
        None,
        datetime(2026, 3, 14, 10, tzinfo=UTC),
        datetime(2026, 3, 14, 8, 3, tzinfo=UTC),
        datetime(2026, 3, 14, 10, 50, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
    ]
    con = connect(case)
    try:
        at_time = inventory.timeline(con)
        first = at_time(times[0])
        # what a consumer does to its inventory must not reach the next one
        first.get("Deployment", "payments", "payments-api")["spec"]["replicas"] = 99
        for when in times:
            got, want = at_time(when), reconstruct(con, when)
            assert (got.objects, got.evidence, got.unknown, got.refused) == (
                want.objects,
                want.evidence,
                want.unknown,
                want.refused,
            )
        end = at_time(None)
        assert end.get("Deployment", "payments", "payments-api")["spec"]["replicas"] == 2
        assert len(at_time(times[4]).objects) == 0
        assert len(at_time(times[2]).objects) < len(end.objects)
    finally:
        con.close()


def test_the_snapshots_of_many_times_come_from_one_pass(sample_cases, monkeypatch):
    case = sample_cases.loaded("native")[0]
    times = [
        datetime(2026, 3, 14, 10, 50, tzinfo=UTC),
        None,
        datetime(2026, 3, 14, 8, 3, tzinfo=UTC),
        datetime(2026, 3, 14, 10, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
    ]
    applied = []
    apply = inventory._Replay.apply
    monkeypatch.setattr(
        inventory._Replay, "apply", lambda self, i, row: applied.append(i) or apply(self, i, row)
    )
    con = connect(case)
    try:
        at_time = inventory.timeline(con)
        snaps = at_time.snapshots(times)
        # each change applied once, in time order: as many as one rebuild of the end applies
        assert applied == sorted(set(applied)) and len(applied) > 0
        one_pass = len(applied)
        applied.clear()
        at_time(None)
        assert len(applied) == one_pass
        assert sorted(snaps, key=str) == sorted(times, key=str)
        for when in times:
            want = at_time(when)
            got = snaps[when]
            assert got.at == when
            assert (got.objects, got.evidence, got.unknown, got.refused) == (
                want.objects,
                want.evidence,
                want.unknown,
                want.refused,
            )
        # a snapshot's objects are copies: the timeline's next pass is not changed by them
        snaps[None].get("Deployment", "payments", "payments-api")["spec"]["replicas"] = 99
        assert at_time(None).get("Deployment", "payments", "payments-api")["spec"]["replicas"] == 2
    finally:
        con.close()
