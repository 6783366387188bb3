"""A generated week of audit logs around a sensitive database, and the day after it (seeded).

Eight days from 2026-05-04T00:00:00Z in the namespace `db`: on day 0 the StatefulSet
payments-db (labels tier: database, mounting secret payments-db-credentials) and its pods
payments-db-0 and payments-db-1, and the Deployment reporting with its pod; every hour the
operator pg-operator reads the database pods' logs, with noise on reporting and kubelets
watching secrets. Day 7 (from 2026-05-11T00:00:00Z) is the investigation window: a CI runner
reads payments-db-0's logs for the first time, alice execs into payments-db-1, bob reads
reporting's logs.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

START = datetime(2026, 5, 4, tzinfo=UTC)
WINDOW = datetime(2026, 5, 11, tzinfo=UTC)  # day 7
DAYS = 8
NS = "db"
OPERATOR = "system:serviceaccount:db:pg-operator"
CI = "system:serviceaccount:ci:runner"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
LOG_SHIPPER = "system:serviceaccount:db:log-shipper"
PROMETHEUS = "system:serviceaccount:monitoring:prometheus"
ADMIN = "admin@example.com"
STS_CONTROLLER = "system:serviceaccount:kube-system:statefulset-controller"
RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
NODES = ("system:node:ip-10-0-1-11", "system:node:ip-10-0-1-12")
DB_LABELS = {"app": "payments-db", "tier": "database"}
REPORTING_POD = "reporting-7c9d8f-abcde"
CI_READ_AT = datetime(2026, 5, 11, 3, 17, tzinfo=UTC)
ALICE_EXEC_AT = datetime(2026, 5, 11, 9, 42, tzinfo=UTC)
BOB_READ_AT = datetime(2026, 5, 11, 11, 5, tzinfo=UTC)


def rfc3339(t: datetime) -> str:
    """Return t as the API server writes it: RFC 3339 in UTC with microseconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Week:
    """The generated events in time order, and the audit IDs of the ones tests look for."""

    events: list[dict] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)  # what -> auditID

    def line(self, what: str, events: list[dict] | None = None) -> int:
        """Return the 1-based line of a marked event in events (default: the whole week)."""
        audit_id = self.marks[what]
        for n, ev in enumerate(self.events if events is None else events, 1):
            if ev["auditID"] == audit_id:
                return n
        raise KeyError(what)

    @property
    def before_window(self) -> list[dict]:
        """Return the events of days 0-6."""
        return [e for e in self.events if e["requestReceivedTimestamp"] < rfc3339(WINDOW)]

    @property
    def window(self) -> list[dict]:
        """Return the events of day 7."""
        return [e for e in self.events if e["requestReceivedTimestamp"] >= rfc3339(WINDOW)]


def _pod_spec(secret: str | None) -> dict:
    spec: dict = {"containers": [{"name": "main", "image": "registry.example.com/app:1.0"}]}
    if secret:
        spec["containers"][0]["volumeMounts"] = [{"name": "creds", "mountPath": "/etc/creds"}]
        spec["volumes"] = [{"name": "creds", "secret": {"secretName": secret}}]
    return spec


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.week = Week()

    def add(self, at: datetime, user: str, verb: str, resource: str, name: str | None,
            *, sub: str | None = None, code: int = 200, uri: str | None = None,
            namespace: str | None = NS, level: str = "Metadata", response: dict | None = None,
            mark: str | None = None, group: str = "",
            groups: tuple[str, ...] = ()) -> dict:  # fmt: skip
        """Append one ResponseComplete event; return it."""
        audit_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        ref: dict = {"resource": resource, "namespace": namespace, "apiVersion": "v1"}
        if group:
            ref.update(apiGroup=group, apiVersion="v1")
        if name is not None:
            ref["name"] = name
        if sub is not None:
            ref["subresource"] = sub
        if uri is None:
            base = "/apis/apps/v1" if group == "apps" else "/api/v1"
            uri = f"{base}/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")
            uri += f"/{sub}" if sub else ""
        received = at + timedelta(microseconds=self.rng.randrange(1, 999_999))
        ev = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": {"username": user, "groups": list(groups) or ["system:authenticated"]},
            "sourceIPs": [f"10.0.{self.rng.randrange(1, 4)}.{self.rng.randrange(2, 250)}"],
            "userAgent": "kubectl/v1.30.1" if "@" in user else f"{user.rsplit(':', 1)[-1]}/1.0",
            "objectRef": ref,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": rfc3339(received),
            "stageTimestamp": rfc3339(received + timedelta(milliseconds=3)),
            "annotations": {"authorization.k8s.io/decision": "allow"},
        }
        if response is not None:
            ev["responseObject"] = response
        self.week.events.append(ev)
        if mark:
            self.week.marks[mark] = audit_id
        return ev

    def day0(self) -> None:
        t = START + timedelta(minutes=5)
        sts = {
            "kind": "StatefulSet", "apiVersion": "apps/v1",
            "metadata": {"name": "payments-db", "namespace": NS, "labels": {"app": "payments-db"}},
            "spec": {"replicas": 2, "serviceName": "payments-db",
                     "selector": {"matchLabels": dict(DB_LABELS)},
                     "template": {"metadata": {"labels": dict(DB_LABELS)},
                                  "spec": _pod_spec("payments-db-credentials")}},
        }  # fmt: skip
        self.add(t, ADMIN, "create", "statefulsets", None, code=201, level="RequestResponse",
                 response=sts, group="apps",
                 uri=f"/apis/apps/v1/namespaces/{NS}/statefulsets")  # fmt: skip
        for n in range(2):
            pod = {
                "kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": f"payments-db-{n}", "namespace": NS, "labels": dict(DB_LABELS),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                  "name": "payments-db", "controller": True,
                                                  "uid": f"0000000{n}-sts"}]},
                "spec": _pod_spec("payments-db-credentials"),
            }  # fmt: skip
            self.add(t + timedelta(seconds=10 + n), STS_CONTROLLER, "create", "pods", None,
                     code=201, level="RequestResponse", response=pod,
                     uri=f"/api/v1/namespaces/{NS}/pods")  # fmt: skip
        deploy = {
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "reporting", "namespace": NS, "labels": {"app": "reporting"}},
            "spec": {"selector": {"matchLabels": {"app": "reporting"}},
                     "template": {"metadata": {"labels": {"app": "reporting"}},
                                  "spec": _pod_spec(None)}},
        }  # fmt: skip
        self.add(t + timedelta(minutes=2), ADMIN, "create", "deployments", None, code=201,
                 level="RequestResponse", response=deploy, group="apps",
                 uri=f"/apis/apps/v1/namespaces/{NS}/deployments")  # fmt: skip
        pod = {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": REPORTING_POD, "namespace": NS,
                         "labels": {"app": "reporting", "pod-template-hash": "7c9d8f"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "reporting-7c9d8f", "controller": True,
                                              "uid": "00000009-rs"}]},
            "spec": _pod_spec(None),
        }  # fmt: skip
        self.add(t + timedelta(minutes=2, seconds=5), RS_CONTROLLER, "create", "pods", None,
                 code=201, level="RequestResponse", response=pod,
                 uri=f"/api/v1/namespaces/{NS}/pods")  # fmt: skip

    def hour(self, at: datetime) -> None:
        """The routine of one hour: the operator's reads, noise, kubelet watches."""
        rng = self.rng
        for n in range(2):
            pod = f"payments-db-{n}"
            self.add(at + timedelta(minutes=rng.randrange(10, 50)), OPERATOR, "get", "pods", pod,
                     sub="log", uri=f"/api/v1/namespaces/{NS}/pods/{pod}/log?container=main"
                     "&tailLines=200")  # fmt: skip
        # a plain read of a pod is not reaching into it
        self.add(at + timedelta(minutes=rng.randrange(50, 59)), OPERATOR, "get", "pods",
                 f"payments-db-{rng.randrange(2)}")  # fmt: skip
        for _ in range(2):
            self.add(at + timedelta(minutes=rng.randrange(0, 59)), LOG_SHIPPER, "get", "pods",
                     REPORTING_POD, sub="log")  # fmt: skip
        for node in NODES:
            self.add(at + timedelta(minutes=rng.randrange(0, 59)), node, "watch", "secrets", None,
                     uri=f"/api/v1/namespaces/{NS}/secrets?fieldSelector=metadata.name%3D"
                     "payments-db-credentials&watch=true",
                     groups=("system:nodes", "system:authenticated"))  # fmt: skip
        self.add(at + timedelta(minutes=rng.randrange(0, 59)), PROMETHEUS, "list", "pods", None,
                 namespace=None, uri="/api/v1/pods?limit=500")  # fmt: skip
        self.add(at + timedelta(minutes=rng.randrange(0, 59)),
                 "system:serviceaccount:db:reporting", "get", "configmaps",
                 "reporting-config")  # fmt: skip
        if at.hour == 10:  # carol's daily look inside reporting
            self.add(at + timedelta(minutes=30), CAROL, "create", "pods", REPORTING_POD,
                     sub="exec", code=101,
                     uri=f"/api/v1/namespaces/{NS}/pods/{REPORTING_POD}/exec?command=sh"
                     "&container=main&stdin=true&stdout=true&tty=true")  # fmt: skip

    def day7(self) -> None:
        self.add(CI_READ_AT, CI, "get", "pods", "payments-db-0", sub="log", mark="ci",
                 uri=f"/api/v1/namespaces/{NS}/pods/payments-db-0/log?container=main")  # fmt: skip
        self.add(ALICE_EXEC_AT, ALICE, "create", "pods", "payments-db-1", sub="exec", code=101,
                 mark="alice",
                 uri=f"/api/v1/namespaces/{NS}/pods/payments-db-1/exec?command=psql"
                 "&container=main&stdin=true&stdout=true&tty=true")  # fmt: skip
        self.add(BOB_READ_AT, BOB, "get", "pods", REPORTING_POD, sub="log", mark="bob")


def generate(seed: int = 12) -> Week:
    """Return the eight days of events, in time order (the same for the same seed)."""
    gen = _Gen(seed)
    gen.day0()
    for h in range(DAYS * 24):
        gen.hour(START + timedelta(hours=h))
    gen.day7()
    gen.week.events.sort(key=lambda e: e["requestReceivedTimestamp"])
    return gen.week


def write(events: list[dict], path: Path) -> Path:
    """Write events as JSON lines (the API server's log file); return path."""
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path
