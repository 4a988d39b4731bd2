"""What the CNI agents and the kubelet leave on a node, as the real components do: flanneld's and kube-proxy's
iptables chains and the kubelet's canaries; kubeadm reset keeps them. (cni0 and the IPAM state in /var/lib/cni are
the real bridge plugin's, on sandbox nodes: tests/sandbox/test_reset.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubeboot_standin import cni, netfilter
from test_units import FakeApi, flannel_objects, node


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBEBOOT_STANDIN_ROOT", str(tmp_path))
    f = tmp_path / "proc/sys/net/bridge/bridge-nf-call-iptables"
    f.parent.mkdir(parents=True)
    f.write_text("1\n")
    return tmp_path


def recorded(root: Path) -> dict[str, str]:
    return dict(json.loads((root / "run/kubeboot-standin/iptables.json").read_text()))


def kube_proxy_objects() -> dict[str, list[dict[str, Any]]]:
    return {"/apis/apps/v1/daemonsets": [{"metadata": {"name": "kube-proxy"}}],
            "/api/v1/configmaps": [{"metadata": {"name": "kube-proxy"},
                                    "data": {"config.conf": "kind: KubeProxyConfiguration\nclusterCIDR: x\n"}}]}


def test_flannel_sets_up_its_masquerade_chains(root: Path) -> None:
    api = FakeApi(flannel_objects(network="10.50.0.0/16"))
    cni.Agent("n1").sync(api, node("n1", "10.50.3.0/24"))
    rules = recorded(root)["flannel"]
    assert netfilter.chains(rules) == {"nat": ["FLANNEL-POSTRTG"], "filter": ["FLANNEL-FWD"]}
    assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in rules
    assert "-A FLANNEL-POSTRTG -s 10.50.3.0/24 -d 10.50.0.0/16" in rules
    cni.Agent("n1").sync(api, node("n1", "10.50.3.0/24"))  # a second sync changes nothing
    assert recorded(root)["flannel"] == rules


def test_kube_proxy_iptables_mode_chains(root: Path) -> None:
    cni.Agent("n3").sync(FakeApi(kube_proxy_objects()), node("n3", None))
    chains = netfilter.chains(recorded(root)["kube-proxy"])
    assert "KUBE-SERVICES" in chains["nat"] and "KUBE-FORWARD" in chains["filter"]
    assert chains["mangle"] == ["KUBE-PROXY-CANARY"]
    assert netfilter.ensure("kube-proxy", netfilter.KUBE_PROXY_IPTABLES) is False  # already there


def test_kubelet_canaries_are_in_mangle_nat_and_filter() -> None:
    assert netfilter.chains(netfilter.KUBELET_CANARY) == {
        t: ["KUBE-KUBELET-CANARY"] for t in ("mangle", "nat", "filter")}
