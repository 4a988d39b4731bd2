"""One fact, one variable: each node's pod range size set only as flannel_subnet_len reaches kubeadm, the controller
manager and flannel; set twice with two values, it is refused before any host changes.

pytestrange (1 control plane + 1 worker, flannel) on 10.213.22.0/24, the stand-in's kubeadm, kubelet and API server.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tests.conftest import Sandbox, recap
from tests.sandbox.cluster_helpers import assert_unchanged, kubectl_json, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.22.0/24"
POD_SUBNET = "10.81.0.0/16"
HOSTS = {"cp1", "worker1"}


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestrange", "--layout", "1cp1w", "--standin", "--subnet", SUBNET)
    group_vars = sandbox.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(f"---\nkube_pod_subnet: {POD_SUBNET}\nflannel_subnet_len: 25\n")
    return sandbox


@pytest.fixture(scope="module")
def runs(box: Sandbox) -> dict[str, str]:
    first = box.playbook("site.yml")
    second = box.playbook("site.yml")
    return {"first": first.stdout, "second": second.stdout}


def test_only_flannel_subnet_len_gives_every_node_a_25(box: Sandbox, runs: dict[str, str]) -> None:
    assert all(recap(runs["first"])[h]["changed"] > 0 for h in HOSTS)
    assert_unchanged(runs["second"], HOSTS)
    assert ready_nodes(box) == HOSTS
    # kubeadm: the controller manager's flag in the config kubeboot rendered and in its static pod.
    config = box.ssh("cp1", "cat /etc/kubernetes/kubeadm-config.yaml").stdout
    assert '- name: node-cidr-mask-size\n      value: "25"' in config, config
    manifest = box.ssh("cp1", "cat /etc/kubernetes/manifests/kube-controller-manager.yaml").stdout
    assert "--node-cidr-mask-size=25" in manifest, manifest
    # The controller manager gave each node a /25 of the pod range.
    for node in kubectl_json(box, "get nodes")["items"]:
        cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
        assert cidr.prefixlen == 25 and cidr.subnet_of(ipaddress.ip_network(POD_SUBNET)), node["spec"]
    # flannel hands out the same size.
    conf = json.loads(kubectl_json(box, "-n kube-flannel get configmap kube-flannel-cfg")["data"]["net-conf.json"])
    assert conf["SubnetLen"] == 25 and conf["Network"] == POD_SUBNET


@pytest.mark.usefixtures("runs")
def test_both_set_and_different_is_refused_before_any_host_changes(box: Sandbox) -> None:
    group_vars = box.inventory.parent / "group_vars" / "all.yml"
    original = group_vars.read_text()
    group_vars.write_text(original + "kube_node_cidr_mask_size: 24\n")
    try:
        refused = box.playbook("site.yml", check=False)
    finally:
        group_vars.write_text(original)
    assert refused.returncode != 0
    # The failed task shows its error lines in its message and again, wrapped, in its list of errors.
    expected = ("ERROR all: flannel_subnet_len = 25: differs from kube_node_cidr_mask_size (24): both name each "
                "node's pod range size; keep one of them")
    lines = {line.strip(" -'\"") for line in refused.stdout.splitlines() if line.strip(" -'\"").startswith("ERROR ")}
    assert expected in lines, refused.stdout[-3000:]
    assert all(expected.startswith(line) for line in lines), lines
    assert set(recap(refused.stdout)) == {"localhost"}
