"""Real pods under the stand-in: containerd's CRI runs every pod sandbox with runc, the CNI plugins give pods their
addresses, and pods on different nodes reach each other over the routes flannel's host-gw backend sets.

pytesthgw (1 control plane + 2 workers, flannel host-gw): after site.yml every node runs the pod sandboxes of the
pods it was given (static pods on the control plane, kube-proxy's and flannel's DaemonSet pods everywhere); a test
pod on each worker gets an address from its node's pod range, in a network namespace of its own with a veth on cni0,
and reaches the pod on the other worker; a deleted pod leaves neither its sandbox nor its address lease behind.
The vxlan backend's pod-to-pod path: tests/sandbox/test_reset.py.
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubeboot.sandbox import naming
from tests.conftest import Sandbox
from tests.sandbox.cluster_helpers import (
    KUBECTL,
    node_pod_cidrs,
    pod_ips,
    pod_netns,
    reaches,
    ready_nodes,
    sandbox_names,
    start_test_pods,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.45.0/24"
POD_SUBNET = "10.90.0.0/16"
HOSTS = {"cp1", "worker1", "worker2"}


@pytest.fixture(scope="module")
def hgw(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytesthgw", "--layout", "1cp2w", "--standin", "--subnet", SUBNET)
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(f"---\nkube_pod_subnet: {POD_SUBNET}\nflannel_backend: host-gw\n")
    box.playbook("site.yml")
    return box


@pytest.fixture(scope="module")
def test_pods(hgw: Sandbox) -> dict[str, tuple[str, str]]:
    """pod name -> (node, pod IP), one pod on each worker."""
    pods = start_test_pods(hgw, ["worker1", "worker2"])
    ips = pod_ips(hgw, list(pods))
    return {name: (node, ips[name]) for name, node in pods.items()}


def test_every_node_runs_the_pod_sandboxes_of_its_pods(hgw: Sandbox) -> None:
    assert ready_nodes(hgw) == HOSTS
    pods = json.loads(hgw.ssh("cp1", f"{KUBECTL} get pods -A -o json").stdout)["items"]
    for node in sorted(HOSTS):
        running = sandbox_names(hgw, node)
        bound = sorted(p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node)
        assert any(n.startswith("kube-proxy-") for n in bound) and any(n.startswith("kube-flannel-ds-") for n in bound)
        assert set(bound) <= set(running), (node, bound, running)
    control_plane = sandbox_names(hgw, "cp1")
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        assert f"{component}-cp1" in control_plane, control_plane
    # runc runs the pause process of each sandbox in the pod's cgroup, inside its own node's cgroup subtree
    assert int(hgw.ssh("worker1", "pgrep -cx pause").stdout) >= 2
    found = pause_processes_by_node(hgw.name)
    for node in sorted(HOSTS):
        assert len(found.get(node, [])) == len(sandbox_names(hgw, node)), (node, found)
        assert all("kubepods" in path for path in found[node]), found[node]


def pause_processes_by_node(sandbox: str) -> dict[str, list[str]]:
    """From the host: the pause processes whose cgroup (v1 memory hierarchy) lies in a node of this sandbox,
    by node, with that cgroup path."""
    out: dict[str, list[str]] = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != "pause":
                continue
            cgroups = (proc / "cgroup").read_text().splitlines()
        except OSError:
            continue
        memory = next((line.split(":", 2)[2] for line in cgroups if line.split(":")[1] == "memory"), "")
        for node in HOSTS:
            if f"/{naming.cgroup_name(sandbox, node)}/" in memory:
                out.setdefault(node, []).append(memory)
    return out


def test_a_pod_on_each_worker_gets_an_address_of_its_node_range(
    hgw: Sandbox, test_pods: dict[str, tuple[str, str]]
) -> None:
    cidrs = node_pod_cidrs(hgw)
    for name, (node, ip) in test_pods.items():
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidrs[node]), (name, ip, cidrs[node])
        netns = pod_netns(hgw, node, ip)
        assert netns.startswith("cni-"), netns
        veths = hgw.ssh(node, "ip -o link show master cni0").stdout
        assert "veth" in veths, veths
        lease = hgw.ssh(node, f"cat /var/lib/cni/networks/cbr0/{ip}").stdout
        assert lease.strip(), lease


def test_pods_on_different_nodes_reach_each_other_over_host_gw_routes(
    hgw: Sandbox, test_pods: dict[str, tuple[str, str]]
) -> None:
    cidrs = node_pod_cidrs(hgw)
    addresses = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
                 for n in json.loads(hgw.ssh("cp1", f"{KUBECTL} get nodes -o json").stdout)["items"]}
    route = hgw.ssh("worker1", f"ip -4 route show {cidrs['worker2']}").stdout
    assert f"via {addresses['worker2']}" in route and "flannel.1" not in route, route
    (one, (node1, ip1)), (two, (node2, ip2)) = sorted(test_pods.items())
    assert reaches(hgw, node1, pod_netns(hgw, node1, ip1), ip2), f"{one} on {node1} cannot reach {two} at {ip2}"
    assert reaches(hgw, node2, pod_netns(hgw, node2, ip2), ip1), f"{two} on {node2} cannot reach {one} at {ip1}"


def test_a_deleted_pod_leaves_no_sandbox_and_no_address_lease(
    hgw: Sandbox, test_pods: dict[str, tuple[str, str]]
) -> None:
    name, (node, ip) = sorted(test_pods.items())[0]
    hgw.ssh("cp1", f"{KUBECTL} -n default delete pod {name} --wait=false")
    deadline = time.monotonic() + 60
    while name in sandbox_names(hgw, node) and time.monotonic() < deadline:
        time.sleep(2)
    assert name not in sandbox_names(hgw, node)
    assert pod_netns(hgw, node, ip) == ""
    assert hgw.ssh(node, f"test -e /var/lib/cni/networks/cbr0/{ip}", check=False).returncode != 0
