"""deploy/cronjob.yaml: valid Kubernetes 1.30 objects (strict), and locked down as documented."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

CRONJOB = Path(__file__).resolve().parent.parent / "deploy" / "cronjob.yaml"


def documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d]


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_valid_for_1_30_strict(doc: dict) -> None:
    # strict: an unknown or misspelt field fails instead of being ignored by the API server
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_strict_validation_catches_a_typo() -> None:
    [cron] = [d for d in documents() if d["kind"] == "CronJob"]
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["securtyContext"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cron, "1.30", strict=True)


def test_runs_the_triage_report_locked_down() -> None:
    [cron] = [d for d in documents() if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    argv = container["command"] + container["args"]
    assert argv == [
        "kforensics", "report", "01_triage", "--case", "/data/case.duckdb",
        "--out", "/reports", "--fail-on", "high",
    ]  # fmt: skip
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"]["readOnly"] is True and "/reports" in mounts and "/tmp" in mounts
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {
        d["metadata"]["name"] for d in documents() if d["kind"] == "PersistentVolumeClaim"
    }
