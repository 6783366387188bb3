"""Benign background traffic: weighted request templates and the event stream they drive."""

from __future__ import annotations

import gzip
import random
from bisect import bisect
from collections.abc import Iterator
from datetime import datetime
from heapq import heappop, heappush
from itertools import islice
from pathlib import Path

from .objects import (
    deployment,
    endpointslice,
    lease_object,
    node_patch,
    persist,
    pod_binding,
    pod_objects,
)
from .shapes import native_line
from .world import (
    ALICE_R,
    BOB_R,
    CI_R,
    COORD,
    COREDNS_R,
    CREATE_Q,
    DISCOVERY_R,
    KCM_R,
    NAME_CHARS,
    NODES,
    PROM_R,
    PROXY_R,
    SCHED_R,
    START,
    T0,
    US,
    Pod,
    World,
    controller_reason,
    stamp,
    template,
    ts,
    uuid4,
)

_PROXY_SEL = "%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"


class _Templates:
    """Weighted request templates (cumulative weights for bisect)."""

    def __init__(self, w: World) -> None:
        self.w, self.tmpls, self.cum, self.total = w, [], [], 0.0

    def add(
        self, weight: float, actor: str, verb: str, uri: str, reason: str, **kw: object
    ) -> None:
        """Add a request template with a relative weight."""
        self.tmpls.append(template(self.w.actors[actor], verb, uri, reason, **kw))
        self.total += weight
        self.cum.append(self.total)

    def watch(self, weight: float, actor: str, path: str, reason: str, query: str = "") -> None:
        """Add a watch that runs for its timeoutSeconds."""
        r = self.w.r
        secs = r.randint(300, 599)
        q = f"allowWatchBookmarks=true{query}&resourceVersion={r.randint(1_700_000, 1_840_000)}"
        uri = f"{path}?{q}&timeout={secs // 60}m{secs % 60}s&timeoutSeconds={secs}&watch=true"
        self.add(weight, actor, "watch", uri, reason, ms=(secs * 1000, secs * 1000))


def background_templates(w: World, story: bool) -> _Templates:
    """Benign traffic of controllers, kubelets, add-ons, CI and humans; bench adds pod churn."""
    T = _Templates(w)
    add, watch = T.add, T.watch
    for lease, actor, reason in (
        ("kube-controller-manager", "kcm", KCM_R),
        ("kube-scheduler", "sched", SCHED_R),
    ):
        uri = f"/apis/{COORD}/v1/namespaces/kube-system/leases/{lease}?timeout=5s"
        req = lease_object(lease, "kube-system", w.uid("lease", lease))
        add(1.0, actor, "get", uri, reason, ms=(0.6, 2.5))
        add(1.0, actor, "update", uri, reason, req=req, ms=(2, 7))
    lease = "apiserver-" + w.uid("apiserver-lease").replace("-", "")[:26]
    req = lease_object(lease, "kube-system", w.uid("lease", lease))
    add(
        0.6,
        "apiserver",
        "update",
        f"/apis/{COORD}/v1/namespaces/kube-system/leases/{lease}",
        "",
        req=req,
    )
    for path in ("/api", "/apis"):
        add(
            0.4,
            "ctl:generic-garbage-collector",
            "get",
            f"{path}?timeout=32s",
            DISCOVERY_R,
            ms=(0.5, 3),
        )
    for node in NODES:
        k, req = f"kubelet:{node}", lease_object(node, "kube-node-lease", w.uid("lease", node))
        uri = f"/apis/{COORD}/v1/namespaces/kube-node-lease/leases/{node}?timeout=10s"
        add(1.0, k, "update", uri, "", req=req, ms=(2, 9))
        add(0.3, k, "get", f"/api/v1/nodes/{node}?resourceVersion=0&timeout=10s", "", ms=(0.5, 2))
        watch(0.03, k, "/api/v1/pods", "", f"&fieldSelector=spec.nodeName%3D{node}")
        watch(0.03, k, "/api/v1/nodes", "", f"&fieldSelector=metadata.name%3D{node}")
        if not story:  # the story sends node heartbeats on a schedule instead
            uri = f"/api/v1/nodes/{node}/status?timeout=10s"
            add(0.2, k, "patch", uri, "", req=node_patch(T0), ms=(4, 12))
    for p in w.apps:
        k = f"kubelet:{p.node}"
        add(0.12, k, "get", p.path, "", ms=(0.5, 2))
        ca = "&fieldSelector=metadata.name%3Dkube-root-ca.crt"
        watch(0.015, k, f"/api/v1/namespaces/{p.ns}/configmaps", "", ca)
        for _ in range(3):
            event = {
                "metadata": {"name": f"{p.name}.{w.r.getrandbits(64):016x}", "namespace": p.ns}
            }
            uri = f"/api/v1/namespaces/{p.ns}/events"
            add(0.03, k, "create", uri, "", code=201, req=event, ms=(1, 4))
        if not story:
            _, _, patch, running = pod_objects(w, p, T0)
            add(0.015, k, "patch", f"{p.path}/status", "", req=patch, resp=running, ms=(5, 15))
    for i in range(2):
        for path in (
            "/apis/discovery.k8s.io/v1/endpointslices",
            "/api/v1/services",
            "/api/v1/namespaces",
        ):
            watch(0.02, f"coredns:{i}", path, COREDNS_R)
    for node in NODES:
        path = "/apis/discovery.k8s.io/v1/endpointslices"
        watch(0.02, f"proxy:{node}", path, PROXY_R, f"&labelSelector={_PROXY_SEL}")
    for res in ("pods", "services", "endpoints"):
        add(
            0.12,
            "prometheus",
            "list",
            f"/api/v1/{res}?limit=500&resourceVersion=0",
            PROM_R,
            ms=(3, 18),
        )
        watch(0.01, "prometheus", f"/api/v1/{res}", PROM_R)
    for p in (w.pods[0], w.pods[3]):
        sl = endpointslice(w, p)
        uri = f"/apis/discovery.k8s.io/v1/namespaces/{p.ns}/endpointslices/{sl['metadata']['name']}"
        add(
            0.08,
            "ctl:endpointslice-controller",
            "update",
            uri,
            controller_reason("endpointslice-controller"),
            req=sl,
        )
    uri = "/api/v1/namespaces/shop/secrets?labelSelector=name%3Dstorefront%2Cowner%3Dhelm"
    add(0.05, "helm", "list", uri, CI_R)
    add(0.05, "ci", "get", "/apis/apps/v1/namespaces/shop/deployments/cart", CI_R)
    cart = w.apps[2]
    dep = deployment(cart, 1, "storefront")
    dep = persist(dep, w.uid("Deployment", "shop", "cart"), T0 + 250 * US, "helm", generation=1)
    ann = {"ci.acme.example/pipeline": "shop-nightly", "ci.acme.example/run": "8841"}
    dep["metadata"]["annotations"] |= ann
    uri = "/apis/apps/v1/namespaces/shop/deployments/cart?fieldManager=kubectl-annotate"
    add(
        0.03, "ci", "patch", uri, CI_R, req={"metadata": {"annotations": ann}}, resp=dep, ms=(6, 20)
    )
    cm = {"metadata": {"name": "storefront-flags", "namespace": "shop"}}
    add(
        0.03,
        "ci",
        "create",
        f"/api/v1/namespaces/shop/configmaps{CREATE_Q}",
        CI_R,
        code=201,
        req=cm,
    )
    for actor, reason, pods, x in (
        ("alice", ALICE_R, w.apps[:5], 1.0),
        ("bob", BOB_R, w.apps[:3], 0.8),
    ):
        for p in pods:
            add(
                0.03 * x,
                actor,
                "list",
                f"/api/v1/namespaces/{p.ns}/pods?limit=500",
                reason,
                ms=(2, 9),
            )
            add(0.02 * x, actor, "get", p.path, reason)
            uri = f"{p.path}/log?container={p.container}&tailLines=200"
            add(0.02 * x, actor, "get", uri, reason, ms=(20, 120))
            sel = f"involvedObject.name%3D{p.name}%2CinvolvedObject.namespace%3D{p.ns}"
            uri = f"/api/v1/namespaces/{p.ns}/events?fieldSelector={sel}&limit=500"
            add(0.01 * x, actor, "list", uri, reason)
        add(0.01, actor, "get", "/api?timeout=32s", DISCOVERY_R)
    add(0.006, "bob", "list", "/api/v1/namespaces/payments/secrets?limit=500", "", code=403)
    add(0.006, "bob", "list", "/api/v1/namespaces/kube-system/pods?limit=500", "", code=403)
    if not story:  # bench-only churn: short-lived CI job pods with full pod specs
        r, image, ctl = w.r, "ghcr.io/acme/builder:2026.03", "ctl:job-controller"
        for _ in range(32):
            sfx, node = "".join(r.choices(NAME_CHARS, k=5)), r.choice(list(NODES))
            ip = f"10.244.{r.randint(0, 2)}.{r.randint(100, 250)}"
            p = Pod("ci", "build", "job", sfx, node, ip, "deployer", "build", image, 8080)
            p.uid, p.vol, p.cid = uuid4(r), f"kube-api-access-{sfx}", f"{r.getrandbits(256):064x}"
            req, created, patch, running = pod_objects(w, p, T0)
            kw = {"code": 201, "req": req, "resp": created, "ms": (8, 25)}
            add(
                0.005,
                ctl,
                "create",
                "/api/v1/namespaces/ci/pods",
                controller_reason("job-controller"),
                **kw,
            )
            binding = pod_binding(p.name, "ci", p.uid, p.node)
            add(0.005, "bind", "create", f"{p.path}/binding", SCHED_R, code=201, req=binding)
            add(0.005, f"kubelet:{node}", "patch", f"{p.path}/status", "", req=patch, resp=running)
    return T


def template_stream(
    T: _Templates, rng: random.Random, t: int, gap_us: float
) -> Iterator[tuple[int, int, dict]]:
    """Endless time-ordered (stage_us, request_us, event) tuples from weighted templates."""
    heap: list = []
    seq = 0
    tmpls, cum, total = T.tmpls, T.cum, T.total
    rand, expo, bits, lam = rng.random, rng.expovariate, rng.getrandbits, 1.0 / gap_us
    while True:
        t += int(expo(lam)) + 1
        while heap and heap[0][0] <= t:
            us, _, t0, ev = heappop(heap)
            yield us, t0, ev
        rr, rs, rc, lo, span = tmpls[bisect(cum, rand() * total)]
        h = f"{bits(128):032x}"
        aid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
        a = ts(t)
        yield t, t, rr | {"auditID": aid, "requestReceivedTimestamp": a, "stageTimestamp": a}
        dur = lo + int(rand() * span)
        if rs is not None:
            t1 = t + min(dur // 20, 4000) + 1
            heappush(heap, (t1, seq, t, stamp(rs, aid, a, ts(t1))))
            seq += 1
        heappush(heap, (t + dur, seq, t, stamp(rc, aid, a, ts(t + dur))))
        seq += 1


def background_events(n: int, seed: int, start: datetime, mean_gap: float = 0.02) -> Iterator[dict]:
    """Lazily yield n benign events in log order (nested dicts are shared: treat as read-only)."""
    T = background_templates(World(seed), story=False)
    t = int(start.timestamp() * US)
    for _, _, ev in islice(template_stream(T, random.Random(seed), t, mean_gap * US), n):
        yield ev


def write_native_lines(path: Path, n: int, seed: int = 1) -> int:
    """Write n background events as JSON lines (gzip if *.gz); return uncompressed bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as raw:
        gz = path.name.endswith(".gz")
        f = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
            if gz
            else raw
        )
        buf: list[bytes] = []
        for ev in background_events(n, seed, START):
            buf.append(native_line(ev))
            if len(buf) == 8192:
                written += f.write(b"".join(buf))
                buf.clear()
        written += f.write(b"".join(buf))
        if gz:
            f.close()
    return written
