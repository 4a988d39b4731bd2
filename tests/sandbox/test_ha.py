"""The highly available API endpoint on sandbox nodes: 3 control planes + 1 worker with kube_control_plane_lb
keepalived. The cluster forms through the VIP (kubeadm's config, every kubelet.conf and admin.conf name VIP:8443);
check mode runs clean; a fourth control plane is added to every haproxy (the run changes nothing else on the nodes
there were: it is their second run), and reset with --limit is taken out of them and of etcd again; an etcd restore
of the three control planes brings every member back, through the VIP; then, while a client keeps calling /readyz
through the VIP, the VIP holder is taken away, first by its API server failing (the stand-in's apiserver-down
marker), then by the node being powered off at once: each time the VIP moves and the API answers through it again.
The time without an answer and the failed calls are printed (benchmarks/failover_bench.py measures them over
several tries)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import yaml

from tests.conftest import Sandbox, kubeboot, recap, task_results
from tests.sandbox.cluster_helpers import KUBECTL, kubectl_json, ready_nodes
from tests.sandbox.ha_probe import Prober

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.53"
VIP = f"{SUBNET}.100"
PORT = 8443
ENDPOINT = f"{VIP}:{PORT}"
CONTROL_PLANES = ["cp1", "cp2", "cp3"]
# Built at the stand-in's 1.32 (v1.32.5) for the upgrade through the VIP (calico: the other modules' upgrade is
# flannel's).
LAYOUT = ("--layout", "3cp1w", "--standin", "--standin-minor", "1.32", "--subnet", f"{SUBNET}.0/24")
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
ETCDCTL = ("ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key")


def write_vars(box: Sandbox) -> None:
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(f"---\nkube_control_plane_lb: keepalived\nkube_control_plane_vip: {VIP}\n"
                                        "kube_cni: calico\n")


def holders(box: Sandbox, nodes: list[str]) -> list[str]:
    """The control planes that have the VIP on a NIC."""
    return [n for n in nodes if box.ssh(n, f"ip -o -4 addr show to {VIP}/32").stdout.strip()]


def backends(box: Sandbox, node: str) -> list[str]:
    return re.findall(r"^\s*server (\S+) ", box.ssh(node, f"cat {HAPROXY_CFG}").stdout, re.M)


def wait_for_one_holder(box: Sandbox, nodes: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = holders(box, nodes)
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, f"the VIP is held by {found or 'nobody'} after {timeout} s"
        time.sleep(1)


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestha", *LAYOUT)
    write_vars(sandbox)
    sandbox.playbook("site.yml")
    return sandbox


def test_the_cluster_forms_through_the_vip(box: Sandbox) -> None:
    assert ready_nodes(box) == {*CONTROL_PLANES, "worker1"}
    config = kubectl_json(box, "-n kube-system get configmap kubeadm-config")["data"]["ClusterConfiguration"]
    assert f"controlPlaneEndpoint: {ENDPOINT}" in config, config
    for node in [*CONTROL_PLANES, "worker1"]:
        kubeconfigs = ["kubelet.conf", *(["admin.conf"] if node in CONTROL_PLANES else [])]
        for name in kubeconfigs:
            server = box.ssh(node, f"sed -n 's/^ *server: //p' /etc/kubernetes/{name}").stdout.split()
            assert server == [f"https://{ENDPOINT}"], (node, name, server)
        assert box.ssh(node, "systemctl is-active keepalived haproxy", check=False).stdout.split() == (
            ["active", "active"] if node in CONTROL_PLANES else ["inactive", "inactive"])
    assert holders(box, CONTROL_PLANES) == ["cp1"]
    for cp in CONTROL_PLANES:
        assert backends(box, cp) == CONTROL_PLANES
        assert box.ssh(cp, "sysctl -n net.ipv4.ip_nonlocal_bind").stdout.strip() == "1"
    # The VIP is in the API server's certificate, and the API answers through it from every control plane.
    sans = box.ssh("cp2", "openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/pki/apiserver.crt").stdout
    assert f"IP Address:{VIP}" in sans, sans
    for cp in CONTROL_PLANES:
        assert box.ssh(cp, f"{KUBECTL} get --raw /readyz").stdout.strip() == "ok"
    # kubeboot status: who holds the VIP, and every haproxy's backends up.
    status = endpoint_status(box)
    assert status["holders"] == ["cp1"], status
    for view in status["control_planes"]:
        assert {b["name"]: b["status"] for b in view["backends"]} == dict.fromkeys(CONTROL_PLANES, "UP"), view


def endpoint_status(box: Sandbox) -> Any:
    """`kubeboot status --json`'s endpoint part, with the status exit 0 (no drift)."""
    out = kubeboot("status", "-i", str(box.inventory), "--json", check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return json.loads(out.stdout)["endpoint"]


def test_check_mode_runs_clean(box: Sandbox) -> None:
    run = box.playbook("site.yml", "--check")
    counts = recap(run.stdout)
    assert {*CONTROL_PLANES, "worker1"} <= set(counts)
    assert all(c["failed"] == 0 for c in counts.values()), task_results(run.stdout, ("fatal", "failed"))
    assert holders(box, CONTROL_PLANES) == ["cp1"]


def test_a_fourth_control_plane_with_limit_reaches_every_haproxy_and_reset_takes_it_out(box: Sandbox) -> None:
    """A control plane added with --limit: playbooks/api_endpoint.yml runs its roles on the new node only and writes
    the backends of the control planes outside the limit from there (delegated); reset.yml --limit takes it out of
    them again. (A full site.yml adding a control plane rewrites every haproxy through the roles themselves.)"""
    box.up("--layout", "4cp1w", *LAYOUT[2:])
    four = [*CONTROL_PLANES, "cp4"]
    keepalived_before = {cp: box.ssh(cp, "md5sum /etc/keepalived/keepalived.conf").stdout for cp in CONTROL_PLANES}
    run = box.playbook("playbooks/api_endpoint.yml", "--limit", "cp4")
    assert {h for h, c in recap(run.stdout).items() if c.get("ok", 0) or c.get("changed", 0)} <= {"cp4", "localhost"}
    for cp in four:
        assert backends(box, cp) == four, cp
    for cp in CONTROL_PLANES:
        assert box.ssh(cp, "md5sum /etc/keepalived/keepalived.conf").stdout == keepalived_before[cp], cp
        assert box.ssh(cp, "systemctl is-active haproxy").stdout.strip() == "active"
    assert holders(box, four) == ["cp1"]
    again = box.playbook("playbooks/api_endpoint.yml", "--limit", "cp4")
    assert recap(again.stdout)["cp4"]["changed"] == 0, task_results(again.stdout)

    reset = box.playbook("playbooks/reset.yml", "--limit", "cp4", "-e", "reset_confirm=true")
    assert set(recap(reset.stdout)) == {"cp4"}, recap(reset.stdout)
    for cp in CONTROL_PLANES:
        assert backends(box, cp) == CONTROL_PLANES, cp
    members = box.ssh("cp1", f"apt-get install -qq etcd-client >/dev/null 2>&1; {ETCDCTL} member list").stdout
    assert sorted(line.split(", ")[2] for line in members.splitlines()) == CONTROL_PLANES, members
    assert box.ssh("cp4", "test -e /etc/haproxy/haproxy.cfg || test -e /etc/keepalived/keepalived.conf",
                   check=False).returncode != 0
    assert holders(box, four) == ["cp1"]
    assert box.ssh("cp1", f"{KUBECTL} get nodes -o name").stdout.split() == [
        f"node/{n}" for n in [*CONTROL_PLANES, "worker1"]]
    # The operator's last step: cp4 leaves the inventory.
    inventory = yaml.safe_load(box.inventory.read_text())
    drop_host(inventory, "cp4")
    box.inventory.write_text(yaml.safe_dump(inventory))
    assert endpoint_status(box)["holders"] == ["cp1"]


def drop_host(tree: Any, name: str) -> None:
    """Remove a host from every hosts: mapping of an inventory tree."""
    if isinstance(tree, dict):
        hosts = tree.get("hosts")
        if isinstance(hosts, dict):
            hosts.pop(name, None)
        for value in tree.values():
            drop_host(value, name)


def test_a_restore_of_three_control_planes_brings_every_member_back(box: Sandbox) -> None:
    kept, later = ["keep-1", "keep-2"], ["after-backup-1"]
    for name in kept:
        box.ssh("cp1", f"{KUBECTL} -n default create configmap {name} --from-literal=name={name}")
    box.playbook("playbooks/etcd_backup.yml")
    snapshot = sorted((box.inventory.parent / "etcd-backups" / "kubernetes").glob("*.db"))[-1]
    box.ssh("cp1", f"{KUBECTL} -n default delete configmap {' '.join(kept)}")
    for name in later:
        box.ssh("cp1", f"{KUBECTL} -n default create configmap {name} --from-literal=name={name}")
    run = box.playbook("playbooks/etcd_restore.yml", "-e", f"etcd_restore_snapshot={snapshot}",
                       "-e", "etcd_restore_confirm=true", check=False)
    assert run.returncode == 0, task_results(run.stdout, ("fatal", "failed")) + run.stdout[-3000:]
    assert "members: cp1, cp2, cp3" in " ".join(run.stdout.split())
    members = box.ssh("cp1", f"{ETCDCTL} member list").stdout
    assert sorted(line.split(", ")[2] for line in members.splitlines()) == CONTROL_PLANES, members
    assert all(", started, " in line for line in members.splitlines()), members
    endpoints = ",".join(f"https://{box.nodes[cp]['address']}:2379" for cp in CONTROL_PLANES)
    health = box.ssh("cp1", f"{ETCDCTL.replace('--endpoints=https://127.0.0.1:2379', '')} "
                     f"--endpoints={endpoints} endpoint health")
    # etcdctl 3.4 prints the health of each endpoint on stderr
    assert (health.stdout + health.stderr).count("is healthy") == 3, health.stdout + health.stderr
    for cp in CONTROL_PLANES:
        server = f"--server=https://{box.nodes[cp]['address']}:6443"
        assert box.ssh(cp, f"{KUBECTL} {server} get --raw /readyz").stdout.strip() == "ok"
        out = box.ssh(cp, f"{KUBECTL} {server} -n default get configmaps -o name").stdout
        found = {line.removeprefix("configmap/") for line in out.split()}
        assert set(kept) <= found and not set(later) & found, (cp, found)
        assert len(box.ssh(cp, "ls -d /var/lib/etcd.before-restore-*").stdout.split()) == 1
    # Through the VIP again, held by one control plane.
    wait_for_one_holder(box, CONTROL_PLANES)
    assert box.ssh("worker1", "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get --raw /readyz").stdout.strip() \
        == "ok"


def test_an_upgrade_of_three_control_planes_keeps_the_api_answering_through_the_vip(box: Sandbox) -> None:
    """upgrade.yml from 1.32 to 1.33 with calico: apply on cp1, node on cp2 and cp3 one at a time, then worker1;
    a client calling the API through the VIP all along sees it answer at the end (the longest time without an
    answer is printed: each API server restarts once, haproxy takes it out of the backends meanwhile)."""
    target = box.inventory.parent / "v1.33.yml"
    target.write_text(yaml.safe_dump(box.releases["1.33"]))
    prober = Prober(VIP, PORT, interval=0.5, timeout=2.0, limit=3600.0)
    prober.start()
    try:
        run = box.playbook("playbooks/upgrade.yml", "-e", f"@{target}", timeout=3600)
    finally:
        outage = prober.stop_when_steady(time.monotonic(), steady=3.0)
    print(f"API through the VIP during the upgrade: {outage.line()}; errors: {outage.errors}")
    assert outage.answered_after and outage.calls > 100, outage
    # kubeadm's order: apply on cp1, then node on cp2 and cp3 one at a time, then the worker.
    order = re.findall(r"TASK \[kube_upgrade : Upgrade \| kubeadm upgrade (apply|node)[^\n]*\n+changed: \[(\w+)\]",
                       run.stdout)
    assert order == [("apply", "cp1"), ("node", "cp2"), ("node", "cp3"), ("node", "worker1")], order
    nodes = kubectl_json(box, "get nodes")["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == dict.fromkeys(
        [*CONTROL_PLANES, "worker1"], "v1.33.1")
    pods = kubectl_json(box, "-n kube-system get pods -l tier=control-plane")["items"]
    running = sorted((p["spec"]["nodeName"], p["metadata"]["labels"]["component"], p["spec"]["containers"][0]["image"]
                      .rsplit(":", 1)[1]) for p in pods if p["metadata"]["labels"]["component"] != "etcd")
    assert running == sorted((cp, component, "v1.33.1") for cp in CONTROL_PLANES
                             for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"))
    # Everything through the VIP still, and the inventory says the version the cluster runs from here on.
    assert holders(box, CONTROL_PLANES) and box.ssh(
        "worker1", "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get --raw /readyz").stdout.strip() == "ok"
    again = box.playbook("playbooks/upgrade.yml", "-e", f"@{target}")
    assert all(c["changed"] == 0 for c in recap(again.stdout).values()), task_results(again.stdout)


def take_the_vip_away(box: Sandbox, how: str) -> None:
    holder = wait_for_one_holder(box, CONTROL_PLANES)
    prober = Prober(VIP, PORT, interval=0.2, timeout=1.0, limit=120.0)
    prober.start()
    time.sleep(2)
    taken = time.monotonic()
    if how == "api-server-fails":
        box.ssh(holder, "mkdir -p /etc/kubeboot-standin/faults && echo 20 >/etc/kubeboot-standin/faults/apiserver-down")
    else:  # at once, as a power cut: no service is stopped, keepalived sends no goodbye
        box.ssh(holder, "systemctl poweroff --force --force", check=False)
    outage = prober.stop_when_steady(taken, steady=5.0)
    print(f"failover ({how}, from {holder}): {outage.line()}; errors: {outage.errors}")
    assert outage.answered_after, outage
    assert outage.calls > 10, outage
    others = [cp for cp in CONTROL_PLANES if cp != holder]
    new = wait_for_one_holder(box, others if how == "power-off" else CONTROL_PLANES)
    assert new != holder, f"the VIP stayed on {holder}"


def test_failover_when_the_holder_api_server_fails(box: Sandbox) -> None:
    take_the_vip_away(box, "api-server-fails")


def test_failover_when_the_holder_is_powered_off(box: Sandbox) -> None:
    take_the_vip_away(box, "power-off")
