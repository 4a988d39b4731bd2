"""discover's parsers and public NIC choice, fed with canned command output (iproute2 6.1 JSON)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from kubeboot import public_nic as pn
from kubeboot.discover import facts as f
from kubeboot.discover.gather import GATHER_SCRIPT, parse_output, split_sections

# `ip -j -d addr` from a network namespace with a veth pair, a bridge, secondary and IPv6 addresses (captured
# with iproute2 6.1, lifetimes and queue counters dropped). For veths `link` names the PEER, not a parent.
VETH_BRIDGE_ADDR = """[{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536,
"operstate": "UNKNOWN", "link_type": "loopback", "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00",
"addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo"},
{"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host"}]},
{"ifindex": 2, "link": "eth0", "ifname": "enp0s8", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
"master": "br0", "operstate": "UP", "link_type": "ether", "address": "52:54:00:aa:00:02",
"broadcast": "ff:ff:ff:ff:ff:ff", "linkinfo": {"info_kind": "veth", "info_slave_kind": "bridge",
"info_slave_data": {"state": "forwarding"}}, "addr_info": [{"family": "inet6", "local": "fe80::5054:ff:feaa:2",
"prefixlen": 64, "scope": "link", "tentative": true}]},
{"ifindex": 3, "link": "enp0s8", "ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
"operstate": "UP", "link_type": "ether", "address": "52:54:00:aa:00:01", "broadcast": "ff:ff:ff:ff:ff:ff",
"linkinfo": {"info_kind": "veth"}, "addr_info": [
{"family": "inet", "local": "203.0.113.10", "prefixlen": 24, "scope": "global", "label": "eth0"},
{"family": "inet", "local": "203.0.113.11", "prefixlen": 24, "scope": "global", "secondary": true, "label": "eth0"},
{"family": "inet6", "local": "2001:db8::10", "prefixlen": 64, "scope": "global", "nodad": true},
{"family": "inet6", "local": "fe80::5054:ff:feaa:1", "prefixlen": 64, "scope": "link", "tentative": true}]},
{"ifindex": 4, "ifname": "br0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
"operstate": "UP", "link_type": "ether", "address": "52:54:00:aa:00:02", "broadcast": "ff:ff:ff:ff:ff:ff",
"linkinfo": {"info_kind": "bridge", "info_data": {"stp_state": 0, "vlan_filtering": 0}}, "addr_info": [
{"family": "inet", "local": "192.168.50.5", "prefixlen": 24, "scope": "global", "label": "br0"},
{"family": "inet6", "local": "fe80::5054:ff:feaa:2", "prefixlen": 64, "scope": "link", "tentative": true}]}]"""


def _nic(index: int, name: str, mac: str | None, addrs: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
    info = []
    for address, prefix in addrs:
        family = "inet6" if ":" in address else "inet"
        scope = "link" if address.startswith("fe80") else "global"
        info.append({"family": family, "local": address, "prefixlen": prefix, "scope": scope})
    item: dict[str, Any] = {"ifindex": index, "ifname": name, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
                            "mtu": 1500, "operstate": "UP", "link_type": "ether", "addr_info": info, **extra}
    if mac is not None:
        item["address"] = mac
        item["broadcast"] = "ff:ff:ff:ff:ff:ff"
    return item


LO = {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536, "operstate": "UNKNOWN",
      "link_type": "loopback", "address": "00:00:00:00:00:00",
      "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]}

# A bare-metal host: two plain NICs (no linkinfo), a VLAN on eno1, a bridge over eno2, a tunnel without a MAC.
BARE_METAL = [
    LO,
    _nic(2, "eno1", "0c:c4:7a:10:20:30",
         [("198.51.100.7", 24), ("2001:db8:1::7", 64), ("fe80::ec4:7aff:fe10:2030", 64)]),
    _nic(3, "eno2", "0C:C4:7A:10:20:31", [], master="br0"),
    _nic(4, "eno1.100", "0c:c4:7a:10:20:30", [("10.100.0.7", 24)], link="eno1",
         linkinfo={"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100, "flags": ["REORDER_HDR"]}}),
    _nic(5, "br0", "0c:c4:7a:10:20:31", [("192.168.10.7", 24)], linkinfo={"info_kind": "bridge"}),
    {"ifindex": 6, "ifname": "wg0", "flags": ["POINTOPOINT", "UP"], "mtu": 1420, "operstate": "UNKNOWN",
     "link_type": "none", "linkinfo": {"info_kind": "wireguard"},
     "addr_info": [{"family": "inet", "local": "10.99.0.7", "prefixlen": 24, "scope": "global"}]},
]

# A bond of two NICs carrying the address; the second slave's MAC was changed by the bond (permaddr keeps it).
BOND = [
    LO,
    _nic(2, "ens1f0", "0c:c4:7a:00:00:01", [], master="bond0",
         linkinfo={"info_slave_kind": "bond", "info_slave_data": {"state": "ACTIVE"}}),
    _nic(3, "ens1f1", "0c:c4:7a:00:00:01", [], master="bond0", permaddr="0c:c4:7a:00:00:02",
         linkinfo={"info_slave_kind": "bond", "info_slave_data": {"state": "BACKUP"}}),
    _nic(4, "bond0", "0c:c4:7a:00:00:01", [("198.51.100.9", 24)], linkinfo={"info_kind": "bond"}),
]

OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
"""
UBUNTU_RELEASE = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n'
MEMINFO = ("MemTotal:        4028440 kB\nMemFree:          123456 kB\n"
           "SwapTotal:       2097148 kB\nSwapFree: 2097148 kB\n")
SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
         "/swap.img                               file\t\t2097148\t\t0\t\t-2\n")
DPKG = ("containerd\t1.6.20~ds1-1+b1\tii \nkubeadm\t1.31.2-1.1\tii \nkubelet\t1.31.2-1.1\tii \n"
        "kubectl\t1.31.2-1.1\trc \ncri-tools\t1.31.1-1.1\tii \n")
RPM = ("containerd.io\t1.7.22-3.1.el9\tinstalled\npackage cri-o is not installed\n"
       "kubelet\t1.30.5-150500.1.1\tinstalled\n")


def gather_output(addr: str | list[dict[str, Any]], *, route4: str = "", route6: str = "[]",
                  ssh: str = "", hostname: str = "node1", packages: str = DPKG, banner: str = "") -> str:
    """What GATHER_SCRIPT prints, assembled from sections."""
    addr_text = addr if isinstance(addr, str) else json.dumps(addr)
    sections = {
        "hostname": hostname, "fqdn": f"{hostname}.example.org", "os-release": OS_RELEASE,
        "kernel": "6.1.0-26-amd64", "arch": "x86_64", "cpus": "4", "meminfo": MEMINFO, "swaps": SWAPS,
        "addr": addr_text, "route4": route4, "route6": route6, "ssh": ssh, "packages": packages, "end": "",
    }
    return banner + "".join(f"\n@@kubeboot {name}@@\n{text}\n" for name, text in sections.items())


def bare_metal_facts(**kwargs: Any) -> f.HostFacts:
    defaults: dict[str, Any] = {
        "route4": '[{"dst":"default","gateway":"198.51.100.1","dev":"eno1","flags":[]}]',
        "ssh": "192.0.2.50 51234 198.51.100.7 22",
    }
    return parse_output(gather_output(BARE_METAL, **{**defaults, **kwargs}))


def test_script_is_one_posix_sh_program_covering_every_section() -> None:
    for command in ("ip -j -d addr show", "ip -j -4 route show default", "ip -j -6 route show default",
                    "/etc/os-release", "/proc/meminfo", "/proc/swaps", "nproc", "uname -r", "dpkg-query -W",
                    "rpm -q", "SSH_CONNECTION", "LC_ALL=C"):
        assert command in GATHER_SCRIPT
    for package in ("containerd", "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni"):
        assert package in GATHER_SCRIPT
    assert "bash" not in GATHER_SCRIPT and "[[" not in GATHER_SCRIPT


def test_sections_ignore_banner_text_before_the_first_marker() -> None:
    sections = split_sections(gather_output(BARE_METAL, banner="Welcome to node1!\n@@not a marker\n"))
    assert sections["hostname"] == "node1"
    assert sections["end"] == ""
    assert "Welcome" not in "".join(sections.values())


def test_full_output_parses_into_typed_facts() -> None:
    facts = bare_metal_facts()
    assert facts.hostname == "node1"
    assert facts.fqdn == "node1.example.org"
    assert (facts.os.id, facts.os.version_id) == ("debian", "12")
    assert facts.os.pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert (facts.kernel, facts.arch, facts.cpus) == ("6.1.0-26-amd64", "x86_64", 4)
    assert facts.memory_kb == 4028440
    assert facts.swap_total_kb == 2097148
    assert facts.swaps == ("/swap.img",)
    assert facts.ssh_address == "198.51.100.7"
    assert facts.ssh_interface is not None and facts.ssh_interface.name == "eno1"
    assert facts.packages == {"containerd": "1.6.20~ds1-1+b1", "kubeadm": "1.31.2-1.1", "kubelet": "1.31.2-1.1",
                              "cri-tools": "1.31.1-1.1"}  # kubectl is only "rc": removed, config left
    assert facts.container_runtime == "containerd"
    assert [r.interface for r in facts.default_routes] == ["eno1"]


def test_interfaces_keep_names_macs_kinds_and_stacking() -> None:
    nics = {nic.name: nic for nic in pn.parse_addresses(json.dumps(BARE_METAL))}
    assert list(nics) == ["lo", "eno1", "eno2", "eno1.100", "br0", "wg0"]
    assert nics["lo"].mac is None and nics["lo"].is_loopback
    assert nics["eno1"].mac == "0c:c4:7a:10:20:30" and nics["eno1"].kind == "" and nics["eno1"].is_physical
    assert nics["eno2"].mac == "0c:c4:7a:10:20:31"  # lower-cased
    assert nics["eno2"].master == "br0"
    assert (nics["eno1.100"].kind, nics["eno1.100"].parent) == ("vlan", "eno1")
    assert not nics["eno1.100"].is_physical
    assert nics["wg0"].mac is None and not nics["wg0"].is_physical
    assert [a.cidr for a in nics["eno1"].addresses] == ["198.51.100.7/24", "2001:db8:1::7/64",
                                                        "fe80::ec4:7aff:fe10:2030/64"]
    assert [a.family for a in nics["eno1"].addresses] == ["inet", "inet6", "inet6"]


def test_veth_link_names_a_peer_not_a_parent() -> None:
    nics = {nic.name: nic for nic in pn.parse_addresses(VETH_BRIDGE_ADDR)}
    assert nics["eth0"].parent is None
    assert nics["enp0s8"].parent is None and nics["enp0s8"].master == "br0"
    assert nics["eth0"].addresses[1].secondary
    assert nics["br0"].kind == "bridge"


def test_default_routes_ipv4_ipv6_multipath_and_none() -> None:
    v4 = pn.parse_default_routes('[{"dst":"default","gateway":"203.0.113.1","dev":"eth0","flags":[]}]', "inet")
    assert v4 == (pn.Route("inet", "eth0", "203.0.113.1", 0),)
    v6 = pn.parse_default_routes('[{"dst":"default","gateway":"fe80::1","dev":"eth0","metric":1024,"flags":[],'
                                '"pref":"medium"}]', "inet6")
    assert v6 == (pn.Route("inet6", "eth0", "fe80::1", 1024),)
    multipath = pn.parse_default_routes(
        '[{"dst":"default","metric":10,"flags":[],"nexthops":[{"gateway":"10.0.0.1","dev":"eno1","weight":1,'
        '"flags":[]},{"gateway":"10.1.0.1","dev":"eno2","weight":1,"flags":[]}]}]', "inet")
    assert [r.interface for r in multipath] == ["eno1", "eno2"]
    assert pn.parse_default_routes("", "inet") == ()
    assert pn.parse_default_routes("[]", "inet") == ()


def test_ip_without_json_support_is_a_clear_error() -> None:
    with pytest.raises(f.FactsError, match="iproute2"):
        pn.parse_addresses('Option "-j" is unknown, try "ip -help".')
    with pytest.raises(f.FactsError, match=r"iproute2 4\.13"):
        parse_output(gather_output(""))


def test_missing_sections_name_what_is_missing() -> None:
    text = gather_output(BARE_METAL).split("@@kubeboot swaps@@")[0]
    with pytest.raises(f.FactsError, match="swaps, addr, route4, end"):
        parse_output(text)


def test_os_release_quotes_and_id_like() -> None:
    ubuntu = f.parse_os_release(UBUNTU_RELEASE)
    assert (ubuntu.id, ubuntu.version_id, ubuntu.id_like) == ("ubuntu", "24.04", ("debian",))
    assert f.parse_os_release("ID='rocky'\nVERSION_ID=\"9.4\"\n").version_id == "9.4"
    with pytest.raises(f.FactsError, match="no ID="):
        f.parse_os_release("NAME=Foo\n")


def test_memory_swaps_and_numbers() -> None:
    assert f.parse_meminfo(MEMINFO)["SwapTotal"] == 2097148
    assert f.parse_swaps("Filename\tType\tSize\tUsed\tPriority\n") == ()
    with pytest.raises(f.FactsError, match="MemTotal"):
        f.parse_meminfo("")
    with pytest.raises(f.FactsError, match="nproc"):
        f.parse_int("sh: nproc: not found", "nproc")


def test_rpm_packages_and_runtime() -> None:
    packages = f.parse_packages(RPM)
    assert packages == {"containerd.io": "1.7.22-3.1.el9", "kubelet": "1.30.5-150500.1.1"}
    facts = replace(bare_metal_facts(), packages=packages)
    assert facts.container_runtime == "containerd"
    assert replace(facts, packages={"docker.io": "20.10"}).container_runtime == "docker"
    assert replace(facts, packages={}).container_runtime is None


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.50 51234 198.51.100.7 22", "198.51.100.7"),
    ("2001:db8::50 51234 2001:db8:1:0::7 22", "2001:db8:1::7"),
    ("::ffff:192.0.2.50 51234 ::ffff:198.51.100.7 22", "198.51.100.7"),
    ("", None),
    ("garbage", None),
])
def test_ssh_connection_server_address(text: str, expected: str | None) -> None:
    assert pn.parse_ssh_connection(text) == expected


# ---- public NIC choice: public_nic_mac > SSH/ansible_host address > default route > ambiguous ----

def test_choice_follows_the_ssh_address() -> None:
    choice = f.choose_public_nic(bare_metal_facts())
    assert choice.ok and choice.interface is not None
    assert (choice.interface.name, choice.interface.mac, choice.node_ip) == ("eno1", "0c:c4:7a:10:20:30",
                                                                             "198.51.100.7")
    assert "SSH address" in choice.reason


def test_public_nic_mac_given_wins_over_the_ssh_address() -> None:
    choice = f.choose_public_nic(bare_metal_facts(), public_nic_mac="0C:C4:7A:10:20:31")
    assert choice.interface is not None and choice.interface.name == "eno2"
    assert choice.node_ip == "192.168.10.7"  # the address on br0, the bridge over eno2
    missing = f.choose_public_nic(bare_metal_facts(), public_nic_mac="02:00:00:00:00:99")
    assert not missing.ok and "02:00:00:00:00:99" in missing.reason


def test_ssh_over_a_vlan_chooses_its_parent_nic() -> None:
    choice = f.choose_public_nic(bare_metal_facts(ssh="192.0.2.50 51234 10.100.0.7 22"))
    assert choice.interface is not None and choice.interface.name == "eno1"
    assert choice.node_ip == "10.100.0.7"
    assert "via eno1.100" in choice.reason


def test_ssh_over_a_bridge_chooses_its_single_port() -> None:
    choice = f.choose_public_nic(bare_metal_facts(ssh="192.0.2.50 51234 192.168.10.7 22"))
    assert choice.interface is not None and choice.interface.name == "eno2"
    assert choice.node_ip == "192.168.10.7"


def test_ssh_over_a_tunnel_is_reported_not_guessed() -> None:
    choice = f.choose_public_nic(bare_metal_facts(ssh="192.0.2.50 51234 10.99.0.7 22"))
    assert not choice.ok and "wg0" in choice.reason


def test_bond_with_two_ports_is_ambiguous_but_its_mac_can_be_given() -> None:
    facts = parse_output(gather_output(BOND, ssh="192.0.2.50 51234 198.51.100.9 22"))
    choice = f.choose_public_nic(facts)
    assert not choice.ok and "2 ports" in choice.reason and "ens1f0, ens1f1" in choice.reason
    given = f.choose_public_nic(facts, public_nic_mac="0c:c4:7a:00:00:02")  # the permanent MAC of ens1f1
    assert given.interface is not None and given.interface.name == "ens1f1"
    assert given.node_ip == "198.51.100.9"


def test_ansible_host_address_comes_before_the_ssh_address() -> None:
    choice = f.choose_public_nic(bare_metal_facts(), ansible_host="192.168.10.7")
    assert choice.interface is not None and choice.interface.name == "eno2"
    elsewhere = f.choose_public_nic(bare_metal_facts(), ansible_host="203.0.113.99")  # NAT: not on the host
    assert elsewhere.interface is not None and elsewhere.interface.name == "eno1"


def test_default_route_when_no_ssh_address_and_secondary_addresses_come_last() -> None:
    facts = parse_output(gather_output(VETH_BRIDGE_ADDR, ssh="",
                                       route4='[{"dst":"default","gateway":"203.0.113.1","dev":"eth0","flags":[]}]'))
    choice = f.choose_public_nic(facts)
    assert choice.interface is not None and choice.interface.name == "eth0"
    assert choice.node_ip == "203.0.113.10"
    assert choice.reason == "default route"


def test_no_ssh_address_and_no_default_route_is_ambiguous() -> None:
    facts = parse_output(gather_output(VETH_BRIDGE_ADDR, ssh="", route4="[]"))
    choice = f.choose_public_nic(facts)
    assert not choice.ok and "no default route" in choice.reason


def test_two_default_routes_through_different_nics_are_ambiguous() -> None:
    route = ('[{"dst":"default","gateway":"198.51.100.1","dev":"eno1","metric":100,"flags":[]},'
             '{"dst":"default","gateway":"192.168.10.1","dev":"br0","metric":200,"flags":[]}]')
    choice = f.choose_public_nic(bare_metal_facts(ssh="", route4=route))
    assert not choice.ok and "br0, eno1" in choice.reason


def test_ipv6_only_host_gets_an_ipv6_node_ip() -> None:
    nics = [LO, _nic(2, "eth0", "02:00:00:00:00:01", [("2001:db8::5", 64), ("fe80::1", 64)])]
    facts = parse_output(gather_output(nics, ssh="2001:db8::1 4000 2001:db8::5 22"))
    choice = f.choose_public_nic(facts)
    assert choice.node_ip == "2001:db8::5"
