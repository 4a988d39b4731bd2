"""The real kubectl's drain, cordon and uncordon against the API server stand-in: the eviction subresource and
PodDisruptionBudgets (policy/v1) as a real API server and its disruption controller answer them."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from conftest import Cluster
from test_apiserver_kubectl import add_node

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels: {{app: {app}}}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: ReplicaSet, name: {app}-rs, uid: 6b1c7a52-0d6e-4d43-9d0a-{uid:012d}, controller: true}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]
"""

STATUS = {
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
    }
}


def add_pod(cluster: Cluster, name: str, app: str, node: str, uid: int, ready: bool = True) -> None:
    cluster.kubectl("create", "-f", "-", stdin=POD.format(name=name, app=app, node=node, uid=uid))
    if ready:
        cluster.kubectl("patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(STATUS))


def pdb(cluster: Cluster, name: str, app: str, **spec: object) -> None:
    body = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))


def pdb_status(cluster: Cluster, name: str) -> dict[str, object]:
    return dict(json.loads(cluster.kubectl("get", "pdb", name, "-o", "json").stdout)["status"])


def pods(cluster: Cluster) -> list[str]:
    out = cluster.kubectl("get", "pods", "-o", "jsonpath={.items[*].metadata.name}").stdout
    return sorted(out.split())


def test_pdb_status_follows_the_pods(cluster: Cluster) -> None:
    add_node(cluster, "w1")
    for i in range(3):
        add_pod(cluster, f"web-{i}", "web", "w1", i, ready=i < 2)
    pdb(cluster, "web-pdb", "web", minAvailable=1)
    st = pdb_status(cluster, "web-pdb")
    assert (st["expectedPods"], st["currentHealthy"], st["desiredHealthy"], st["disruptionsAllowed"]) == (3, 2, 1, 1)
    pdb(cluster, "web-pct", "other", maxUnavailable="50%")
    assert pdb_status(cluster, "web-pct")["expectedPods"] == 0
    table = cluster.kubectl("get", "pdb").stdout.splitlines()
    assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert table[1].split()[:4] == ["web-pct", "N/A", "50%", "0"]
    assert table[2].split()[:4] == ["web-pdb", "1", "N/A", "1"]


def test_eviction_refused_with_429_when_the_budget_allows_no_disruption(cluster: Cluster) -> None:
    add_node(cluster, "w1")
    add_pod(cluster, "db-0", "db", "w1", 10)
    pdb(cluster, "db-pdb", "db", minAvailable=1)
    assert pdb_status(cluster, "db-pdb")["disruptionsAllowed"] == 0
    ctx = ssl.create_default_context(cafile=str(cluster.root / "etc/kubernetes/pki/ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(*_admin_pem(cluster))
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "db-0"}}).encode()
    req = urllib.request.Request(
        f"https://127.0.0.1:{cluster.port}/api/v1/namespaces/default/pods/db-0/eviction",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(req, context=ctx, timeout=10)
        raise AssertionError("the eviction was allowed")
    except urllib.error.HTTPError as exc:
        assert exc.code == 429
        status = json.loads(exc.read())
    assert status["reason"] == "TooManyRequests"
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget db-pdb needs 1 healthy pods and has 1 currently",
        }
    ]
    assert pods(cluster) == ["db-0"]


def _admin_pem(cluster: Cluster) -> tuple[str, str]:
    import base64

    import yaml

    kc = yaml.safe_load(cluster.kubeconfig.read_text())
    user = kc["users"][0]["user"]
    cert = cluster.root / "admin.crt"
    key = cluster.root / "admin.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return str(cert), str(key)


def test_drain_blocked_by_a_pdb_then_allowed(cluster: Cluster) -> None:
    add_node(cluster, "w1")
    add_node(cluster, "w2")
    add_pod(cluster, "web-0", "web", "w1", 20)
    add_pod(cluster, "web-1", "web", "w2", 21)
    add_pod(cluster, "cache-0", "cache", "w1", 22)
    pdb(cluster, "web-pdb", "web", minAvailable=2)
    d = cluster.kubectl("drain", "w1", "--timeout=8s", check=False)
    assert d.returncode != 0
    assert 'error when evicting pods/"web-0" -n "default"' in d.stderr, d.stderr
    assert "Cannot evict pod as it would violate the pod's disruption budget." in d.stderr
    assert "global timeout reached: 8s" in d.stderr, d.stderr
    # The pod outside the budget was evicted; the blocked one stays, and the node stays cordoned.
    assert pods(cluster) == ["web-0", "web-1"]
    node = json.loads(cluster.kubectl("get", "node", "w1", "-o", "json").stdout)
    assert node["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in cluster.kubectl("get", "node", "w1").stdout
    cluster.kubectl("uncordon", "w1")
    node = json.loads(cluster.kubectl("get", "node", "w1", "-o", "json").stdout)
    assert not node.get("spec", {}).get("unschedulable")
    # A budget that allows one disruption lets the drain through: one pod of two may go.
    pdb(cluster, "web-pdb", "web", minAvailable=1)
    d = cluster.kubectl("drain", "w1", "--timeout=20s", check=False)
    assert d.returncode == 0, d.stderr
    assert "pod/web-0 evicted" in d.stdout, d.stdout
    assert "node/w1 drained" in d.stdout
    assert pods(cluster) == ["web-1"]
    # Now the budget allows nothing more: draining the other node is blocked by it.
    assert pdb_status(cluster, "web-pdb")["disruptionsAllowed"] == 0
    d = cluster.kubectl("drain", "w2", "--timeout=3s", check=False)
    assert d.returncode != 0 and 'pods/"web-1"' in d.stderr
    cluster.kubectl("cordon", "w1")
    assert "SchedulingDisabled" in cluster.kubectl("get", "node", "w1").stdout


def test_drain_respects_unmanaged_pods_and_daemonsets_as_kubectl_does(cluster: Cluster) -> None:
    add_node(cluster, "w1")
    cluster.kubectl(
        "create",
        "-f",
        "-",
        stdin=POD.format(name="lonely", app="lonely", node="w1", uid=30).replace(
            "  ownerReferences:\n  - {apiVersion: apps/v1, kind: ReplicaSet, name: lonely-rs, "
            "uid: 6b1c7a52-0d6e-4d43-9d0a-000000000030, controller: true}\n",
            "",
        ),
    )
    d = cluster.kubectl("drain", "w1", "--timeout=5s", check=False)
    assert d.returncode != 0
    assert "cannot delete Pods that declare no controller (use --force to override): default/lonely" in d.stderr
    assert pods(cluster) == ["lonely"]
    d = cluster.kubectl("drain", "w1", "--force", "--timeout=10s", check=False)
    assert d.returncode == 0, d.stderr
    assert pods(cluster) == []


def test_eviction_dry_run_keeps_the_pod(cluster: Cluster) -> None:
    add_node(cluster, "w1")
    add_pod(cluster, "web-0", "web", "w1", 40)
    d = cluster.kubectl("drain", "w1", "--dry-run=server", "--timeout=10s", check=False)
    assert d.returncode == 0, d.stderr
    assert "evicting pod default/web-0 (server dry run)" in d.stdout, d.stdout
    assert pods(cluster) == ["web-0"]
    node = json.loads(cluster.kubectl("get", "node", "w1", "-o", "json").stdout)
    assert not node.get("spec", {}).get("unschedulable")


def test_drain_with_the_real_kubectl_1_32(cluster: Cluster) -> None:
    """The kubectl of a 1.32 control plane (before its upgrade) drains the same way."""
    kubectl = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")
    add_node(cluster, "w1")
    add_pod(cluster, "web-0", "web", "w1", 50)
    pdb(cluster, "web-pdb", "web", minAvailable=1)

    def drain(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "drain", "w1", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )

    version = subprocess.run([str(kubectl), "version", "--client"], capture_output=True, text=True, check=True)
    assert "Client Version: v1.32." in version.stdout
    blocked = drain("--timeout=3s")
    assert blocked.returncode != 0 and 'pods/"web-0" -n "default"' in blocked.stderr, blocked.stderr
    pdb(cluster, "web-pdb", "web", minAvailable=0)
    done = drain("--timeout=10s")
    assert done.returncode == 0, done.stderr
    assert pods(cluster) == []
