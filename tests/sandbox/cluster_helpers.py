"""Helpers of the cluster-formation sandbox tests: the cluster as kubectl on the first control plane shows it."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from tests.conftest import Sandbox, recap, task_results

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


def kubectl_json(box: Sandbox, args: str) -> Any:
    return json.loads(box.ssh("cp1", f"{KUBECTL} {args} -o json").stdout)


def ready_nodes(box: Sandbox) -> set[str]:
    nodes = kubectl_json(box, "get nodes")["items"]
    return {n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])}


def assert_unchanged(output: str, hosts: set[str]) -> None:
    counts = recap(output)
    assert hosts <= set(counts)
    for host in hosts:
        assert counts[host]["changed"] == 0 and counts[host]["failed"] == 0, \
            f"{host}: {counts[host]}\n{task_results(output, ('changed', 'fatal', 'failed'))}"


ICMP_ECHO = (Path(__file__).parent / "scripts/icmp-echo.py").read_text()


def sandbox_image(box: Sandbox, node: str) -> str:
    """The pause image containerd runs pod sandboxes with on the node (the only image there is)."""
    out = box.ssh(node, "sed -n 's/^ *sandbox_image = \"\\(.*\\)\"/\\1/p' /etc/containerd/config.toml").stdout
    return out.strip()


def start_test_pods(box: Sandbox, nodes: list[str]) -> dict[str, str]:
    """One pod bound to each node (spec.nodeName), its one container from the pause image: pod name -> node."""
    image = sandbox_image(box, nodes[0])
    pods = {f"pod-test-{node}": node for node in nodes}
    manifest = "\n---\n".join(
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n"
        f"  labels:\n    app: kubeboot-pod-test\nspec:\n  nodeName: {node}\n"
        f"  containers:\n  - name: pause\n    image: {image}\n"
        for name, node in pods.items())
    box.ssh("cp1", f"echo {shlex.quote(manifest)} | {KUBECTL} apply -f -")
    return pods


def pod_ips(box: Sandbox, names: list[str], timeout: float = 180) -> dict[str, str]:
    """Wait until every named pod in default is Running with an address; name -> pod IP."""
    deadline = time.monotonic() + timeout
    while True:
        items = {p["metadata"]["name"]: p for p in kubectl_json(box, "-n default get pods")["items"]}
        ips = {n: items[n]["status"].get("podIP", "") for n in names
               if n in items and items[n].get("status", {}).get("phase") == "Running"}
        if all(ips.get(n) for n in names):
            return ips
        if time.monotonic() > deadline:
            raise AssertionError(f"pods not running with an address after {timeout:.0f}s: "
                                 f"{json.dumps({n: items.get(n, {}).get('status') for n in names})[:3000]}")
        time.sleep(2)


def pod_netns(box: Sandbox, node: str, ip: str) -> str:
    """The network namespace on the node that holds the pod address."""
    script = (f"for ns in $(ip netns list | cut -d' ' -f1); do "
              f"ip -n $ns -4 -o addr | grep -q ' {ip}/' && echo $ns; done")
    return box.ssh(node, script).stdout.strip()


def reaches(box: Sandbox, node: str, netns: str, ip: str) -> bool:
    """An ICMP echo from the pod's network namespace to ip gets its reply."""
    cmd = f"ip netns exec {netns} python3 -c {shlex.quote(ICMP_ECHO)} {ip}"
    return box.ssh(node, cmd, check=False).returncode == 0


def node_pod_cidrs(box: Sandbox) -> dict[str, str]:
    return {n["metadata"]["name"]: n["spec"].get("podCIDR", "") for n in kubectl_json(box, "get nodes")["items"]}


def sandbox_names(box: Sandbox, node: str) -> list[str]:
    """The pod sandboxes containerd runs on the node (crictl pods, through the CRI), by pod name."""
    pods = json.loads(box.ssh(node, "crictl pods -o json").stdout)
    return sorted(p["metadata"]["name"] for p in pods.get("items", []) if p.get("state") == "SANDBOX_READY")
