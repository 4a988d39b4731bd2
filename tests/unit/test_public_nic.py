"""One public NIC choice for discover and nic_rename: bonds, bridges and VLANs carry the public address, the choice is
the physical NIC under them, and nic_rename refuses (one line) what it cannot rename by MAC."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeboot import nic, public_nic
from tests.unit.test_discover_facts import BARE_METAL, BOND, LO, _nic

ROUTE_ENO1 = [{"dst": "default", "gateway": "198.51.100.1", "dev": "eno1"}]


def choose(interfaces: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None,
           **kwargs: Any) -> public_nic.NicChoice:
    return public_nic.choose_public_nic(public_nic.parse_addresses(json.dumps(interfaces)),
                                        public_nic.parse_default_routes(json.dumps(routes or [])), **kwargs)


def rename_plan(interfaces: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None,
                target: str = "eth0", **kwargs: Any) -> nic.Plan:
    return nic.plan("node1", public_nic.parse_addresses(json.dumps(interfaces)),
                    public_nic.parse_default_routes(json.dumps(routes or [])), target=target, **kwargs)


def test_a_vlan_carrying_the_address_leads_to_its_parent_which_nic_rename_refuses() -> None:
    choice = choose(BARE_METAL, ROUTE_ENO1, ansible_host="10.100.0.7")
    assert choice.interface is not None and choice.carrier is not None
    assert (choice.interface.name, choice.carrier.name, choice.by) == ("eno1", "eno1.100", "ansible_host")
    with pytest.raises(nic.NicError) as error:
        rename_plan(BARE_METAL, ROUTE_ENO1, ansible_host="10.100.0.7")
    assert str(error.value) == (
        "node1: ansible_host leads to eno1.100, a vlan interface over the NIC eno1, and nic_rename renames only a "
        "physical NIC that carries the public address itself (matched by its MAC); give eno1.100 the name eth0 "
        "(public_nic_name) in its network configuration by hand, or set nic_rename_confirm: false for node1")


def test_the_mac_discover_writes_for_a_bridge_port_is_refused_clearly_not_as_ambiguous() -> None:
    by_address = choose(BARE_METAL, ROUTE_ENO1, ansible_host="192.168.10.7")
    assert by_address.interface is not None and by_address.interface.name == "eno2"
    written = by_address.interface.hw_mac
    by_mac = choose(BARE_METAL, ROUTE_ENO1, mac=str(written))
    message = r"^node1: public_nic_mac leads to br0, a bridge interface over the NIC eno2,"
    assert by_mac.interface == by_address.interface and by_mac.carrier is not None and by_mac.carrier.name == "br0"
    with pytest.raises(nic.NicError, match=message):
        rename_plan(BARE_METAL, ROUTE_ENO1, mac=str(written))


def test_a_vlan_sharing_the_nics_mac_is_not_a_second_candidate() -> None:
    result = rename_plan(BARE_METAL, ROUTE_ENO1, mac="0c:c4:7a:10:20:30", ansible_host="198.51.100.7")
    assert result.renames == [{"old": "eno1", "new": "eth0", "mac": "0c:c4:7a:10:20:30"}]
    # ... and its configuration follows the NIC's new name.
    assert nic.rename_in_text("auto eno1.100\niface eno1.100 inet manual\n", result.mapping) == (
        "auto eth0.100\niface eth0.100 inet manual\n")


def test_a_bond_ports_burnt_in_mac_chooses_it_and_is_what_is_written_and_pinned() -> None:
    choice = choose(BOND, mac="0c:c4:7a:00:00:02", ansible_host="198.51.100.9")
    assert choice.interface is not None and choice.interface.name == "ens1f1"
    assert (choice.interface.mac, choice.interface.hw_mac) == ("0c:c4:7a:00:00:01", "0c:c4:7a:00:00:02")
    assert choice.carrier is not None and choice.carrier.name == "bond0" and choice.node_ip == "198.51.100.9"
    first = choose(BOND, mac="0c:c4:7a:00:00:01")  # the first port's MAC, which the bond and its other port took
    assert first.interface is not None and first.interface.name == "ens1f0"


def test_a_bond_already_named_public_nic_name_needs_nothing() -> None:
    result = rename_plan(BOND, target="bond0", ansible_host="198.51.100.9")
    assert (result.public.name, result.renames, result.pins) == ("bond0", [], [])
    with pytest.raises(nic.NicError, match=r"ansible_host leads to bond0, a bond interface with 2 ports"):
        rename_plan(BOND, ansible_host="198.51.100.9")


def test_the_ssh_address_decides_when_ansible_host_is_a_name() -> None:
    nics = [LO, _nic(2, "ens3", "52:54:00:00:00:01", [("10.0.0.5", 24)]),
            _nic(3, "ens4", "52:54:00:00:00:02", [("192.0.2.5", 24)])]
    routes = [{"dst": "default", "gateway": "192.0.2.1", "dev": "ens4"}]
    result = rename_plan(nics, routes, ansible_host="node1.example.org", ssh_address="10.0.0.5")
    assert (result.public.name, result.reason) == ("ens3", "SSH address")
    assert rename_plan(nics, routes, ansible_host="node1.example.org").public.name == "ens4"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"ansible_host": "198.51.100.7"}, "eno1"),
    ({"ssh_address": "198.51.100.7"}, "eno1"),
    ({"mac": "0C:C4:7A:10:20:30"}, "eno1"),
    ({}, "eno1"),
])
def test_discover_and_nic_rename_choose_the_same_nic(kwargs: dict[str, str], expected: str) -> None:
    choice = choose(BARE_METAL, ROUTE_ENO1, **kwargs)
    assert choice.interface is not None and choice.interface.name == expected
    assert rename_plan(BARE_METAL, ROUTE_ENO1, **kwargs).public.name == expected


def test_unreadable_output_is_one_error_type() -> None:
    with pytest.raises(public_nic.OutputError, match="iproute2"):
        public_nic.parse_addresses('Option "-j" is unknown, try "ip -help".')
    with pytest.raises(public_nic.OutputError, match="without ifname"):
        public_nic.parse_addresses([{"mtu": 1500}])


def test_a_default_route_through_a_bridge_is_followed_to_its_port_and_refused_for_renaming() -> None:
    routes = [{"dst": "default", "gateway": "192.168.10.1", "dev": "br0"}]
    choice = choose(BARE_METAL, routes)
    assert choice.interface is not None and choice.interface.name == "eno2"
    assert (choice.reason, choice.node_ip) == ("default route via br0", "192.168.10.7")
    with pytest.raises(nic.NicError, match=r"^node1: the default route leads to br0, a bridge interface over the NIC "
                                           r"eno2, and nic_rename renames only a physical NIC"):
        rename_plan(BARE_METAL, routes)
