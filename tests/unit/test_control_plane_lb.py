"""The values derived for the keepalived VIP: router id, interface, priorities, the facts-based subnet check."""

from __future__ import annotations

from typing import Any

import pytest

from kubeboot import contract, derived


@pytest.mark.parametrize(("vip", "router_id"), [("192.0.2.100", 100), ("10.0.1.1", 1), ("10.0.1.255", 255),
                                                ("10.0.2.0", 255), ("2001:db8::1", None), ("", None)])
def test_router_id_derived_from_the_vip(vip: str, router_id: int | None) -> None:
    assert derived.derived_router_id(vip) == router_id


def test_router_id_setting_wins() -> None:
    base = {"kube_control_plane_vip": "192.0.2.100"}
    assert derived.vip_router_id({**base, "kube_control_plane_vip_router_id": ""}) == 100
    assert derived.vip_router_id({**base, "kube_control_plane_vip_router_id": "51"}) == 51


def test_vip_interface_defaults_to_the_public_nic_name() -> None:
    assert derived.vip_interface(contract.defaults()) == "eth0"
    assert derived.vip_interface({**contract.defaults(), "public_nic_name": "ens3"}) == "ens3"
    assert derived.vip_interface({**contract.defaults(), "kube_control_plane_vip_interface": "bond0"}) == "bond0"


def test_priorities_first_control_plane_highest() -> None:
    cps = ["cp1", "cp2", "cp3"]
    assert [derived.vip_priority(n, cps) for n in cps] == [200, 199, 198]
    assert derived.vip_priority("cp9", [f"cp{i}" for i in range(300)]) == 191
    assert derived.vip_priority("cp299", [f"cp{i}" for i in range(300)]) == 1


def facts(**interfaces: dict[str, Any]) -> dict[str, Any]:
    return {"interfaces": [*interfaces, "lo"], **{n.replace("-", "_"): v for n, v in interfaces.items()},
            "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}}}


ETH0 = {"ipv4": {"address": "10.213.53.11", "netmask": "255.255.255.0"}}


@pytest.mark.parametrize(("vip", "node_facts", "interface", "problem"), [
    ("10.213.53.100", facts(eth0=ETH0), "eth0", ""),
    ("10.213.54.100", facts(eth0=ETH0), "eth0",
     "is outside this control plane's subnet (10.213.53.0/24 on eth0): choose a free address of the control "
     "planes' subnet"),
    # the VIP interface does not exist yet (before the NIC rename): the NIC of the node address decides
    ("10.213.53.100", facts(ens3=ETH0), "eth0", ""),
    ("10.213.53.100", facts(ens3=ETH0, ens4={"ipv4": {"address": "172.16.0.5", "netmask": "255.255.0.0"}}), "ens4",
     "is outside this control plane's subnet (172.16.0.0/16 on ens4): choose a free address of the control "
     "planes' subnet"),
    # a secondary address's subnet counts; the VIP held by keepalived (a /32) is no conflict
    ("10.1.0.9", facts(eth0={**ETH0, "ipv4_secondaries": [{"address": "10.1.0.2", "netmask": "255.255.255.0"}]}),
     "eth0", ""),
    ("10.213.53.100", facts(eth0={**ETH0, "ipv4_secondaries": [{"address": "10.213.53.100",
                                                                 "netmask": "255.255.255.255"}]}), "eth0", ""),
    ("10.213.53.12", facts(eth0={**ETH0, "ipv4_secondaries": [{"address": "10.213.53.12",
                                                                "netmask": "255.255.255.0"}]}), "eth0",
     "is already an address of this node on eth0: choose an address no host uses"),
    # the holder of the old VIP (a /32) is told about its subnet only
    ("10.213.54.100", facts(eth0={**ETH0, "ipv4_secondaries": [{"address": "10.213.53.100",
                                                                 "netmask": "255.255.255.255"}]}), "eth0",
     "is outside this control plane's subnet (10.213.53.0/24 on eth0): choose a free address of the control "
     "planes' subnet"),
    ("10.213.53.100", {}, "eth0", ""),
    ("10.213.53.100", facts(), "eth0", ""),
])
def test_vip_subnet_problem(vip: str, node_facts: dict[str, Any], interface: str, problem: str) -> None:
    assert derived.vip_subnet_problem(vip, node_facts, interface, "10.213.53.11") == problem


def test_node_facts_carry_the_load_balancer() -> None:
    hostvars = {name: {"ansible_host": f"10.213.53.{11 + i}", "kube_control_plane_lb": "keepalived",
                       "kube_control_plane_vip": "10.213.53.100"} for i, name in enumerate(["cp1", "cp2", "w1"])}
    groups = {"kube_control_plane": ["cp1", "cp2"], "kube_node": ["w1"], "k8s_cluster": ["cp1", "cp2", "w1"]}
    values = derived.node_facts("cp2", hostvars, groups)
    assert values["cluster"]["endpoint"] == "10.213.53.100:8443"
    assert values["cluster"]["vip_router_id"] == 100
    assert values["cluster"]["control_planes"] == [{"name": "cp1", "address": "10.213.53.11"},
                                                   {"name": "cp2", "address": "10.213.53.12"}]
    assert values["node"]["vip_interface"] == "eth0" and values["node"]["vip_priority"] == 199
