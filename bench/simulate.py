"""Containment simulation benchmark: a generated 5,000-pod inventory, class-based vs pairwise.

    python bench/simulate.py [--pods 5000] [--subset 300] [--seed 1]

Generates an inventory of `--pods` bare pods in 100 namespaces (team and env labels), each pod
one of 12 apps, 2 tiers and 2 versions, with a unique pod-template-hash no policy reads, named
ports by app; and 5 NetworkPolicies per namespace (default deny, allow from the same team or
the same app, a named-port rule, DNS and an ipBlock egress). Then, in this process:

- the remediation's simulation as `kforensics remediate` runs it (`netpol.remediation.simulate`:
  before and after a quarantine of 3 pods, every quarantine checked), evaluated per peer class;
- the baseline: pod pair by pod pair (`pairwise_connections`, before and after), on a random
  subset of `--subset` pods, with the class evaluation on that same subset for the same answer
  and the ratio there; the full inventory's pairwise time is extrapolated from the subset's time
  per evaluated pair (it is quadratic in the peers), and said to be so.

Goal (issue 13): a 5,000-pod inventory simulates in seconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kforensics.netpol.comparison import compare_clusters  # noqa: E402
from kforensics.netpol.evaluate import (  # noqa: E402
    cut_external,
    pairwise_connections,
    policy_blocks,
)
from kforensics.netpol.inventory import Inventory  # noqa: E402
from kforensics.netpol.model import Cluster, build_cluster  # noqa: E402
from kforensics.netpol.plan import QUARANTINE_LABEL, Remedy  # noqa: E402
from kforensics.netpol.remediation import evaluator_objects, simulate  # noqa: E402

NAMESPACES = 100
APPS = ("web", "api", "db", "cache", "queue", "worker", "auth", "search", "billing", "mail",
        "metrics", "batch")  # fmt: skip
PORTS = {"web": [("http", 8080)], "api": [("http", 8080), ("grpc", 9000)], "db": [("sql", 5432)],
         "cache": [("redis", 6379)], "metrics": [("metrics", 9090)]}  # fmt: skip
SECONDS_GOAL = 10


def _namespace(i: int) -> dict:
    labels = {"team": f"t{i % 10}", "env": ("prod", "staging", "dev")[i % 3]}
    return {"kind": "Namespace", "metadata": {"name": f"ns{i}", "labels": labels}}


def _pod(rnd: random.Random, n: int) -> dict:
    app = rnd.choice(APPS)
    labels = {"app": app, "tier": rnd.choice(("front", "back")), "version": rnd.choice("12"),
              "pod-template-hash": f"{rnd.getrandbits(40):010x}"}  # fmt: skip
    ports = [{"name": name, "containerPort": port} for name, port in PORTS.get(app, [])]
    ip = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
    return {
        "kind": "Pod",
        "metadata": {"name": f"{app}-{n}", "namespace": f"ns{rnd.randrange(NAMESPACES)}",
                     "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": ports}]},
        "status": {"podIP": ip},
    }  # fmt: skip


def _policies(i: int) -> list[dict]:
    ns = f"ns{i}"

    def policy(name: str, spec: dict) -> dict:
        return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}

    app = APPS[i % len(APPS)]
    return [
        policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("same-team", {
            "podSelector": {"matchLabels": {"tier": "front"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": f"t{i % 10}"}}}]}],
        }),
        policy(f"to-{app}", {
            "podSelector": {"matchLabels": {"app": app}},
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "api"]}]}},
                {"namespaceSelector": {"matchLabels": {"env": "prod"}},
                 "podSelector": {"matchLabels": {"version": "2"}}}],
                "ports": [{"port": "http"}, {"port": 5432}]}],
        }),
        policy("dns", {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 53},
                                  {"protocol": "TCP", "port": 53}]}],
        }),
        policy("egress-out", {
            "podSelector": {"matchLabels": {"tier": "back"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8",
                                                                     "169.254.0.0/16"]}}]},
                {"to": [{"podSelector": {}, "namespaceSelector": {"matchLabels": {"team": "t0"}}}]},
            ],
        }),
    ]  # fmt: skip


def inventory(pods: int, seed: int) -> Inventory:
    """Return the generated inventory: namespaces, pods, policies."""
    rnd = random.Random(seed)
    objects = [_namespace(i) for i in range(NAMESPACES)]
    objects += [_pod(rnd, n) for n in range(pods)]
    objects += [p for i in range(NAMESPACES) for p in _policies(i)]
    inv = Inventory(at=None)
    for o in objects:
        meta = o["metadata"]
        inv.objects[o["kind"], meta.get("namespace", ""), meta["name"]] = o
    return inv


def _quarantine(inv: Inventory, pods: list[tuple[str, str]]) -> list[Remedy]:
    remedies = []
    for ns in sorted({ns for ns, _ in pods}):
        spec = {"podSelector": {"matchLabels": {QUARANTINE_LABEL: "true"}},
                "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}  # fmt: skip
        meta = {"name": "kforensics-quarantine", "namespace": ns}
        policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": meta, "spec": spec}  # fmt: skip
        r = Remedy("quarantine", f"quarantine-{ns}", "bench", [], objects=[policy])
        r.quarantine = [p for p in pods if p[0] == ns]
        remedies.append(r)
    return remedies


def _subset(inv: Inventory, keep: set[tuple[str, str]]) -> Inventory:
    out = Inventory(at=None)
    out.objects = {k: o for k, o in inv.objects.items() if k[0] != "Pod" or k[1:] in keep}
    return out


def _pairs(before: Cluster, after: Cluster) -> int:
    """Return how many peer pairs a pairwise before/after comparison evaluates."""
    cut = [*before.policies, *after.policies]
    ins = len(cut_external(policy_blocks(cut, "Ingress")))
    outs = len(cut_external(policy_blocks(cut, "Egress")))
    return sum((ins + len(c.peers)) * (outs + len(c.peers)) - ins * outs - len(c.peers)
               for c in (before, after))  # fmt: skip


def _clusters(inv: Inventory, remedies: list[Remedy], fixes: list[dict]) -> tuple[Cluster, Cluster]:
    """Return the clusters before and after the proposals and fixes, as `simulate` builds them."""
    proposed = [o for r in remedies for o in r.objects] + fixes
    quarantined = {p for r in remedies for p in r.quarantine}
    before = build_cluster(evaluator_objects(inv, quarantined))
    after = build_cluster([*evaluator_objects(inv, quarantined, relabel=True), *proposed])
    return before, after


def _pairwise(inv: Inventory, remedies: list[Remedy], fixes: list[dict]) -> tuple[float, int, list]:
    """Return (seconds, pairs evaluated, changed pairs) of the pairwise comparison."""
    t = time.perf_counter()
    before, after = _clusters(inv, remedies, fixes)
    cut = [*before.policies, *after.policies]
    old = {(c.src, c.dst): c.conns for c in pairwise_connections(before, cut_with=cut)}
    new = {(c.src, c.dst): c.conns for c in pairwise_connections(after, cut_with=cut)}
    changes = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return time.perf_counter() - t, _pairs(before, after), changes


def main() -> int:
    """Run the benchmark; return 0 when the class simulation meets the goal, 1 when not."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--subset", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    inv = inventory(args.pods, args.seed)
    pods = sorted(k[1:] for k in inv.objects if k[0] == "Pod")
    rnd = random.Random(args.seed)
    quarantined = rnd.sample(pods, 3)
    remedies = _quarantine(inv, quarantined)
    policies = sum(1 for k in inv.objects if k[0] == "NetworkPolicy")
    print(f"inventory: {len(pods):,} pods, {NAMESPACES} namespaces, {policies} NetworkPolicies; "
          f"quarantine of {len(quarantined)} pods")  # fmt: skip

    t = time.perf_counter()
    sim = simulate(inv, remedies)
    full = time.perf_counter() - t
    if sim.error:
        print(f"simulation failed: {sim.error}")
        return 1
    before, after = _clusters(inv, remedies, sim.fixes)
    classes = len(compare_clusters(before, after).matrix.sources)
    print(f"class-based simulate, {len(pods):,} pods: {full:.2f} s ({classes} source classes "
          "with the external intervals, "
          f"{len(sim.changes):,} changed pairs, {len(sim.problems)} problems; "
          f"goal < {SECONDS_GOAL} s)")  # fmt: skip

    keep = set(rnd.sample(pods, min(args.subset, len(pods)))) | set(quarantined)
    small = _subset(inv, keep)
    t = time.perf_counter()
    small_sim = simulate(small, remedies)
    small_classes = time.perf_counter() - t
    pair_seconds, pairs, pair_changes = _pairwise(small, remedies, small_sim.fixes)
    same = [(c.src, c.dst) for c in small_sim.changes] == pair_changes
    print(f"subset of {len(keep)} pods: class-based {small_classes:.2f} s, pairwise "
          f"{pair_seconds:.2f} s ({pairs:,} pairs evaluated), ratio "
          f"{pair_seconds / small_classes:.1f}x; same changes: {same}")  # fmt: skip
    per_pair = pair_seconds / pairs
    estimate = per_pair * _pairs(before, after)
    print(f"pairwise on {len(pods):,} pods, extrapolated from the subset's "
          f"{per_pair * 1e6:.1f} us a pair ({_pairs(before, after):,} pairs): {estimate:,.0f} s; "
          f"class-based {full:.2f} s: ratio {estimate / full:,.0f}x")  # fmt: skip
    return 0 if full < SECONDS_GOAL and same else 1


if __name__ == "__main__":
    sys.exit(main())
