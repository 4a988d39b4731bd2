"""Cluster formation with site.yml on sandbox nodes running the stand-in (kubeadm, kubelet, API server, CNI).

pytestflan (1 control plane + 2 workers, flannel): converge, every node Ready, flannel's net-conf in the cluster is
ours, a second run and check mode change nothing; a third worker joins with every other host unchanged; a join made
to fail half-way by the stand-in's fault marker converges on a plain re-run. calico: test_cluster_calico.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Sandbox, recap
from tests.sandbox.cluster_helpers import assert_unchanged, kubectl_json, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

FLAN_SUBNET = "10.213.15.0/24"
FLAN_POD_SUBNET = "10.80.0.0/16"


@pytest.fixture(scope="module")
def flan(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestflan", "--layout", "1cp2w", "--standin", "--subnet", FLAN_SUBNET)
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(
        f"---\nkube_pod_subnet: {FLAN_POD_SUBNET}\nflannel_backend: vxlan-directrouting\n"
        "cluster_report_fetch_kubeconfig: true\n")
    return box


@pytest.fixture(scope="module")
def flan_runs(flan: Sandbox) -> dict[str, str]:
    first = flan.playbook("site.yml")
    second = flan.playbook("site.yml")
    check = flan.playbook("site.yml", "--check", "--diff")
    return {"first": first.stdout, "second": second.stdout, "check": check.stdout}


def test_flannel_cluster_converges_and_is_stable(flan: Sandbox, flan_runs: dict[str, str]) -> None:
    hosts = {"cp1", "worker1", "worker2"}
    assert all(recap(flan_runs["first"])[h]["changed"] > 0 for h in hosts)
    assert_unchanged(flan_runs["second"], hosts)
    assert_unchanged(flan_runs["check"], hosts)
    assert ready_nodes(flan) == hosts
    assert "pod network: flannel" in flan_runs["first"]
    fetched = flan.inventory.parent / "admin.conf"
    assert fetched.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("flan_runs")
def test_flannel_network_config_in_the_cluster_is_ours(flan: Sandbox) -> None:
    cm = kubectl_json(flan, "-n kube-flannel get configmap kube-flannel-cfg")
    conf = json.loads(cm["data"]["net-conf.json"])
    assert conf["Network"] == FLAN_POD_SUBNET
    assert conf["Backend"] == {"Type": "vxlan", "DirectRouting": True}
    assert conf["SubnetLen"] == 24
    ds = kubectl_json(flan, "-n kube-flannel get daemonset kube-flannel-ds")
    assert "--iface=eth0" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
    nodes = kubectl_json(flan, "get nodes")["items"]
    assert all(n["spec"]["podCIDR"].startswith("10.80.") for n in nodes)
    config = flan.ssh("cp1", "cat /etc/kubernetes/kubeadm-config.yaml").stdout
    assert f"podSubnet: \"{FLAN_POD_SUBNET}\"" in config


@pytest.mark.usefixtures("flan_runs")
def test_an_added_worker_joins_and_nothing_else_changes(flan: Sandbox) -> None:
    flan.up("--layout", "1cp3w", "--standin", "--subnet", FLAN_SUBNET)
    run = flan.playbook("site.yml")
    assert recap(run.stdout)["worker3"]["changed"] > 0
    assert_unchanged(run.stdout, {"cp1", "worker1", "worker2"})
    assert "worker3" in ready_nodes(flan)


@pytest.mark.usefixtures("flan_runs")
def test_a_join_failed_half_way_converges_on_a_plain_rerun(flan: Sandbox) -> None:
    flan.up("--layout", "1cp4w", "--standin", "--subnet", FLAN_SUBNET)
    flan.ssh("worker4", "mkdir -p /etc/kubeboot-standin/faults"
             " && echo kubelet-start > /etc/kubeboot-standin/faults/join")
    failed = flan.playbook("site.yml", check=False)
    assert failed.returncode != 0
    assert recap(failed.stdout)["worker4"]["failed"] == 1
    assert "fault injected by marker" in failed.stdout
    rerun = flan.playbook("site.yml")
    assert recap(rerun.stdout)["worker4"]["failed"] == 0
    assert "worker4" in ready_nodes(flan)
    assert flan.ssh("worker4", "cat /etc/kubernetes/kubeboot-join.state").stdout.strip() == "complete"
