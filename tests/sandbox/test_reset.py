"""playbooks/reset.yml on sandbox nodes running the stand-in, whose pods are real pod sandboxes (containerd, runc)
with their network from the real bridge plugin: what a node is left with is what a real node is left with.

One 1cp2w sandbox (pytestreset, flannel vxlan), used in order:
- a pod on each worker: they reach each other through flannel.1; the bootstrap left cni0, the pods' veths and
  network namespaces, the leases, and the components' iptables chains;
- without reset_confirm nothing changes and the run stops with one line naming the variable;
- --limit one worker: only it is reset (nothing of Kubernetes left), the cluster keeps running, the operator's own
  iptables rule stays; its kubeadm reset is made to fail (fault marker) with a pod volume (tmpfs) mounted below
  /var/lib/kubelet, and the role unmounts and cleans up without it; the next site.yml joins it again;
- the operators' notes: a bare `kubeadm reset -f` everywhere and a new kube_pod_subnet leave cni0 with the old
  address, and the bridge plugin fails with `"cni0" already has an IP address different from ...`;
- reset all: the leftover check (scripts/k8s-leftovers.sh) finds nothing on any node, and a new site.yml with the
  new pod subnet gives every node a cni0 in it, without that error;
- after an init made to fail half-way (stand-in fault marker) the reset succeeds, leaves nothing, and a second
  reset reports changed=0.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sandbox, recap
from tests.sandbox.cluster_helpers import (
    KUBECTL,
    node_pod_cidrs,
    pod_ips,
    pod_netns,
    reaches,
    ready_nodes,
    start_test_pods,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.18.0/24"
POD_A = "10.70.0.0/16"
POD_B = "10.71.0.0/16"
HOSTS = {"cp1", "worker1", "worker2"}
LEFTOVERS = (Path(__file__).parent / "scripts/k8s-leftovers.sh").read_text()
CNI0_ERROR = '"cni0" already has an IP address different from'
CONFIRM = ("-e", "reset_confirm=true")


def leftovers(box: Sandbox, node: str) -> list[str]:
    return box.ssh(node, f"bash -c {shlex.quote(LEFTOVERS)}").stdout.splitlines()


def events(box: Sandbox) -> str:
    return box.ssh("cp1", f"{KUBECTL} get events -A -o jsonpath='{{.items[*].message}}'").stdout


def cni0(box: Sandbox, node: str) -> list[str]:
    found = box.ssh(node, "ip -j -4 addr show dev cni0", check=False)
    if found.returncode != 0:
        return []
    return [f"{a['local']}/{a['prefixlen']}" for i in json.loads(found.stdout) for a in i["addr_info"]]


def set_pod_subnet(box: Sandbox, subnet: str) -> None:
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(f"---\nkube_pod_subnet: {subnet}\n")


def assert_changed_only(output: str, changed: set[str], unchanged: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    counts = recap(output)
    for host in changed:
        assert counts[host]["changed"] > 0 and counts[host]["failed"] == 0, (host, counts, output[-4000:])
    for host in unchanged:
        assert host not in counts or counts[host]["changed"] == 0, (host, counts, output[-4000:])


def wait_for_event(box: Sandbox, text: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    found = events(box)
    while text not in found and time.monotonic() < deadline:
        time.sleep(2)
        found = events(box)
    return found


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestreset", "--layout", "1cp2w", "--standin", "--subnet", SUBNET)
    set_pod_subnet(sandbox, POD_A)
    sandbox.playbook("site.yml")
    return sandbox


@pytest.fixture(scope="module")
def worker_pods(box: Sandbox) -> dict[str, tuple[str, str]]:
    """A pod on each worker, so that the bridge plugin has made cni0 and its leases there: name -> (node, IP)."""
    pods = start_test_pods(box, ["worker1", "worker2"])
    ips = pod_ips(box, list(pods))
    return {name: (node, ips[name]) for name, node in pods.items()}


def test_pods_on_different_nodes_reach_each_other_over_vxlan(
    box: Sandbox, worker_pods: dict[str, tuple[str, str]]
) -> None:
    cidrs = node_pod_cidrs(box)
    route = box.ssh("worker1", f"ip -4 route show {cidrs['worker2']}").stdout
    assert "dev flannel.1" in route, route
    (one, (node1, ip1)), (two, (node2, ip2)) = sorted(worker_pods.items())
    assert reaches(box, node1, pod_netns(box, node1, ip1), ip2), f"{one} on {node1} cannot reach {two} at {ip2}"
    assert reaches(box, node2, pod_netns(box, node2, ip2), ip1), f"{two} on {node2} cannot reach {one} at {ip1}"


@pytest.mark.usefixtures("worker_pods")
def test_the_bootstrap_left_what_the_real_components_leave(box: Sandbox) -> None:
    found = leftovers(box, "worker1")
    for expected in ("path /etc/kubernetes", "path /var/lib/cni", "path /etc/cni/net.d", "link cni0",
                     "link flannel.1"):
        assert expected in found, found
    assert any(line.startswith("netns /run/netns/cni-") for line in found), found
    assert any(line.endswith("(on cni0)") for line in found), found
    assert any(line.startswith("pod ") for line in found), found
    assert any("FLANNEL-POSTRTG" in line for line in found), found
    assert any("KUBE-KUBELET-CANARY" in line for line in found), found
    assert any(":KUBE-SERVICES" in line for line in found), found


def test_without_reset_confirm_nothing_changes(box: Sandbox) -> None:
    run = box.playbook("playbooks/reset.yml", check=False)
    assert run.returncode != 0
    assert "Nothing was reset: set reset_confirm to true" in run.stdout
    assert all(c["changed"] == 0 for c in recap(run.stdout).values())
    assert ready_nodes(box) == HOSTS


def test_limit_one_worker_resets_only_it_and_site_joins_it_again(box: Sandbox) -> None:
    # A pod volume (tmpfs) that kubeadm reset does not get to (it fails), and the operator's own rule, which stays.
    box.ssh("worker2", "mkdir -p /var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache"
            " && mount -t tmpfs tmpfs /var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache"
            " && iptables -A INPUT -s 192.0.2.7/32 -m comment --comment operator -j ACCEPT"
            " && mkdir -p /etc/kubeboot-standin/faults && echo cleanup-node > /etc/kubeboot-standin/faults/reset")
    run = box.playbook("playbooks/reset.yml", "--limit", "worker2", *CONFIRM)
    counts = recap(run.stdout)
    assert set(counts) == {"worker2"}, counts
    assert counts["worker2"]["changed"] > 0
    assert "Drain the node" in run.stdout
    assert "kubeadm reset failed" in run.stdout and "Unmount the kubelet" in run.stdout
    assert leftovers(box, "worker2") == []
    assert "192.0.2.7" in box.ssh("worker2", "iptables-save -t filter").stdout
    assert ready_nodes(box) == {"cp1", "worker1"}
    assert leftovers(box, "worker1") != []
    again = box.playbook("site.yml")
    assert_changed_only(again.stdout, {"worker2"})
    assert recap(again.stdout)["worker1"]["changed"] == 0
    assert ready_nodes(box) == HOSTS


def test_bare_kubeadm_reset_and_a_new_pod_subnet_fail_on_cni0(box: Sandbox) -> None:
    for node in ("worker1", "worker2", "cp1"):
        box.ssh(node, "kubeadm reset -f")
    assert any(line.startswith("link cni0") for line in leftovers(box, "worker1"))
    set_pod_subnet(box, POD_B)
    box.playbook("site.yml")
    start_test_pods(box, ["worker1"])  # the first pod on the node needs cni0: the bridge plugin refuses it
    found = wait_for_event(box, CNI0_ERROR)
    assert CNI0_ERROR in found and 'plugin type="flannel" failed (add): failed to delegate add' in found, found
    assert all(a.startswith("10.70.") for a in cni0(box, "worker1"))


def test_reset_all_leaves_nothing_and_the_new_subnet_then_works(box: Sandbox) -> None:
    run = box.playbook("playbooks/reset.yml", *CONFIRM)
    assert_changed_only(run.stdout, HOSTS)
    for node in sorted(HOSTS):
        assert leftovers(box, node) == [], node
    box.playbook("site.yml")
    assert ready_nodes(box) == HOSTS
    pods = start_test_pods(box, sorted(HOSTS))
    ips = pod_ips(box, list(pods))
    assert CNI0_ERROR not in events(box)
    assert all(ip.startswith("10.71.") for ip in ips.values()), ips
    for node in sorted(HOSTS):
        assert [a[:6] for a in cni0(box, node)] == ["10.71."], node


def test_reset_after_a_half_finished_init_then_a_second_reset_changes_nothing(box: Sandbox) -> None:
    box.playbook("playbooks/reset.yml", *CONFIRM)
    box.ssh("cp1", "mkdir -p /etc/kubeboot-standin/faults && echo upload-config > /etc/kubeboot-standin/faults/init")
    failed = box.playbook("site.yml", check=False)
    assert failed.returncode != 0 and "fault injected by marker" in failed.stdout
    assert "path /etc/kubernetes" in leftovers(box, "cp1")
    reset = box.playbook("playbooks/reset.yml", *CONFIRM)
    assert recap(reset.stdout)["cp1"]["changed"] > 0
    for node in sorted(HOSTS):
        assert leftovers(box, node) == [], node
    second = box.playbook("playbooks/reset.yml", *CONFIRM)
    assert_changed_only(second.stdout, set(), HOSTS)
    check = box.playbook("playbooks/reset.yml", "--check", *CONFIRM)
    assert_changed_only(check.stdout, set(), HOSTS)
