"""kubeboot.nic: choosing the public NIC, rendering each network stack's files, verifying the result."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kubeboot import nic, public_nic

MAC_PRIMARY = "52:54:00:00:00:01"
MAC_EXTRA = "52:54:00:00:00:02"


def link(name: str, mac: str, *addresses: str, kind: str | None = None, link_type: str = "ether") -> dict[str, Any]:
    item: dict[str, Any] = {"ifname": name, "address": mac, "link_type": link_type, "addr_info": []}
    for address in addresses:
        local, prefix = address.split("/")
        item["addr_info"].append({"family": "inet6" if ":" in local else "inet", "local": local,
                                  "prefixlen": int(prefix), "scope": "global"})
    item["addr_info"].append({"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"})
    if kind:
        item["linkinfo"] = {"info_kind": kind}
    return item


LO = link("lo", "00:00:00:00:00:00", link_type="loopback")
HOST = [LO, link("ens3", MAC_PRIMARY, "10.0.0.5/24"), link("enp0s8", MAC_EXTRA)]
DEFAULT = [{"dst": "default", "gateway": "10.0.0.1", "dev": "ens3", "protocol": "static"}]


def plan(addresses: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, **kwargs: str) -> nic.Plan:
    return nic.plan("node1", public_nic.parse_addresses(json.dumps(addresses)),
                    public_nic.parse_default_routes(json.dumps(DEFAULT if routes is None else routes)),
                    **{"target": "eth0", **kwargs})


# --- Selection ------------------------------------------------------------------------------------------------------


def test_mac_selects_its_nic_and_is_normalised() -> None:
    result = plan(HOST, mac=MAC_EXTRA.upper().replace(":", "-"), ansible_host="10.0.0.5")
    assert (result.public.name, result.reason) == ("enp0s8", "public_nic_mac")
    assert result.renames == [{"old": "enp0s8", "new": "eth0", "mac": MAC_EXTRA}]


def test_ansible_host_address_selects_its_nic() -> None:
    result = plan(HOST, routes=[], ansible_host="10.0.0.5")
    assert (result.public.name, result.reason) == ("ens3", "ansible_host")
    assert result.mapping == {"ens3": "eth0"}


def test_default_route_when_ansible_host_is_a_name_or_elsewhere() -> None:
    assert plan(HOST, ansible_host="node1.example.org").reason == "default route"
    assert plan(HOST, ansible_host="192.0.2.9").public.name == "ens3"
    assert plan(HOST).public.name == "ens3"


def test_already_named_needs_no_rename() -> None:
    host = [LO, link("eth0", MAC_PRIMARY, "10.0.0.5/24")]
    result = plan(host, routes=[{"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}], ansible_host="10.0.0.5")
    assert result.renames == []
    assert result.as_dict()["pins"] == [{"name": "eth0", "mac": MAC_PRIMARY}]


def test_holder_of_the_name_is_moved_to_a_spare_first() -> None:
    host = [LO, link("eth0", MAC_PRIMARY, "10.0.0.5/24"), link("kbspare0", "52:54:00:00:00:09"),
            link("enp0s8", MAC_EXTRA)]
    result = plan(host, mac=MAC_EXTRA)
    assert result.renames == [{"old": "eth0", "new": "kbspare1", "mac": MAC_PRIMARY},
                              {"old": "enp0s8", "new": "eth0", "mac": MAC_EXTRA}]
    assert result.as_dict()["pins"] == [{"name": "eth0", "mac": MAC_EXTRA}, {"name": "kbspare1", "mac": MAC_PRIMARY}]


def test_wrong_mac_is_refused_naming_host_variable_and_fix() -> None:
    with pytest.raises(nic.NicError) as error:
        plan(HOST, mac="52:54:00:aa:bb:cc")
    message = str(error.value)
    assert message.startswith("node1: public_nic_mac = 52:54:00:aa:bb:cc is not on this host")
    assert f"ens3={MAC_PRIMARY}, enp0s8={MAC_EXTRA}" in message
    assert "set public_nic_mac" in message
    assert "\n" not in message


def test_malformed_and_multicast_macs_are_refused() -> None:
    with pytest.raises(nic.NicError, match=r"^node1: public_nic_mac = 'nonsense' must be six"):
        plan(HOST, mac="nonsense")
    with pytest.raises(nic.NicError, match="multicast"):
        plan(HOST, mac="01:00:5e:00:00:01")


def test_mac_on_several_interfaces_is_ambiguous() -> None:
    host = [*HOST, link("bond0", MAC_EXTRA, kind="bond")]
    with pytest.raises(nic.NicError, match=r"^node1: public_nic_mac = .* is ambiguous: enp0s8, bond0"):
        plan(host, mac=MAC_EXTRA)


def test_address_on_two_interfaces_is_ambiguous() -> None:
    host = [LO, link("ens3", MAC_PRIMARY, "10.0.0.5/24"), link("enp0s8", MAC_EXTRA, "10.0.0.5/32")]
    with pytest.raises(nic.NicError, match=r"^node1: ansible_host = 10.0.0.5 is on ens3, enp0s8: .*public_nic_mac"):
        plan(host, ansible_host="10.0.0.5")


def test_default_routes_through_two_interfaces_are_ambiguous() -> None:
    routes = [*DEFAULT, {"dst": "default", "gateway": "10.1.0.1", "dev": "enp0s8", "metric": 200}]
    with pytest.raises(nic.NicError, match=r"default routes go through enp0s8, ens3"):
        plan(HOST, routes=routes)


def test_nothing_to_go_by_is_refused() -> None:
    with pytest.raises(nic.NicError, match=r"cannot tell the public NIC; set public_nic_mac"):
        plan(HOST, routes=[])


def test_bridge_holding_the_address_is_not_renamed() -> None:
    host = [LO, link("br0", MAC_PRIMARY, "10.0.0.5/24", kind="bridge"), link("enp0s8", MAC_EXTRA)]
    with pytest.raises(nic.NicError, match=r"ansible_host leads to br0, a bridge interface"):
        plan(host, ansible_host="10.0.0.5")


def test_name_held_by_a_virtual_interface_is_refused() -> None:
    host = [*HOST, link("eth0", "52:54:00:00:00:07", kind="vlan")]
    with pytest.raises(nic.NicError, match=r"public_nic_name = eth0 is held by vlan interface eth0"):
        plan(host, mac=MAC_EXTRA)


def test_invalid_target_name_is_refused() -> None:
    with pytest.raises(nic.NicError, match=r"public_nic_name = 'a-very-long-interface' is 21 characters"):
        plan(HOST, target="a-very-long-interface")


def test_sandbox_veth_is_renamable() -> None:
    host = [LO, link("eth0", MAC_PRIMARY, "10.0.0.5/24", kind="veth"), link("enp0s8", MAC_EXTRA, kind="veth")]
    assert plan(host, mac=MAC_EXTRA, target="pub0").renames[0]["new"] == "pub0"


def host_output(addresses: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, *,
                files: dict[str, tuple[str, str]] | None = None, ssh: str = "", initramfs: str = "",
                cloud_init: bool = False) -> str:
    """What nic.READ_SCRIPT prints on a host: sections, the files as "file MODE PATH" and base64."""
    sections = [("addr", json.dumps(addresses)), ("route4", json.dumps(DEFAULT if routes is None else routes)),
                ("route6", ""), ("ssh", ssh), ("kernel", "6.1.0-26-amd64"), ("initramfs", initramfs),
                ("cloud-init", "installed" if cloud_init else "")]
    for path, (mode, content) in (files or {}).items():
        encoded = base64.b64encode(content.encode()).decode()
        sections.append((f"file {mode} {path}", "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))))
    sections.append(("end", ""))
    return "".join(f"\n@@kubeboot {name}@@\n{text}\n" for name, text in sections)


def test_plan_host_returns_the_refusal_as_one_line() -> None:
    with pytest.raises(nic.NicError) as error:
        nic.plan_host("node1", host_output(HOST), target="eth0", mac="52:54:00:aa:bb:cc")
    assert str(error.value).startswith("node1: public_nic_mac")
    assert "\n" not in str(error.value)
    ok = nic.plan_host("node1", host_output(HOST, routes=[]), target="eth0", mac=MAC_EXTRA)
    assert ok["mapping"] == {"enp0s8": "eth0"}
    assert ok["summary"] == (f"node1: public NIC enp0s8 ({MAC_EXTRA}, chosen by public_nic_mac); "
                             "renames enp0s8 -> eth0, applied by reboot")


# --- Rendering: each stack's files ----------------------------------------------------------------------------------

SWAP = {"eth0": "kbspare0", "enp0s8": "eth0"}


def test_ifupdown() -> None:
    text = ("auto lo eth0\niface lo inet loopback\n\nallow-hotplug enp0s8\niface enp0s8 inet static\n"
            "    address 10.0.0.5/24\n    up ip route add 10.9.0.0/16 dev enp0s8\n\nauto enp0s8.100\n"
            "iface enp0s8.100 inet manual\n    vlan-raw-device enp0s8\niface eth0:1 inet static\n"
            "# veth0 and eth01 are other interfaces\n")
    changes = nic.rewrite_configs({"/etc/network/interfaces": text}, SWAP)
    assert changes == [{"path": "/etc/network/interfaces", "dest": "/etc/network/interfaces", "stack": "ifupdown",
                        "remove": False, "content": (
        "auto lo kbspare0\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet static\n"
        "    address 10.0.0.5/24\n    up ip route add 10.9.0.0/16 dev eth0\n\nauto eth0.100\n"
        "iface eth0.100 inet manual\n    vlan-raw-device eth0\niface kbspare0:1 inet static\n"
        "# veth0 and eth01 are other interfaces\n")}]
    assert nic.stack_of("/etc/network/interfaces.d/50-cloud-init") == "ifupdown"


def test_netplan() -> None:
    text = ("network:\n  version: 2\n  ethernets:\n    ens3:\n      match:\n        macaddress: 52:54:00:00:00:01\n"
            "      set-name: ens3\n      dhcp4: true\n  vlans:\n    vlan10:\n      id: 10\n      link: ens3\n")
    [change] = nic.rewrite_configs({"/etc/netplan/50-cloud-init.yaml": text}, {"ens3": "eth0"})
    assert change["stack"] == "netplan"
    assert change["content"] == text.replace("ens3", "eth0")
    assert "    eth0:\n" in change["content"] and "set-name: eth0" in change["content"]


def test_networkmanager_keyfile() -> None:
    text = ("[connection]\nid=Wired enp0s8\nuuid=0b6d8a38-35c1-4a8b-9d43-1234567890ab\ntype=ethernet\n"
            "interface-name=enp0s8\n\n[ipv4]\nmethod=auto\n")
    path = "/etc/NetworkManager/system-connections/enp0s8.nmconnection"
    [change] = nic.rewrite_configs({path: text}, SWAP)
    assert change["dest"] == path  # keyfiles are found by content, not by name
    assert "interface-name=eth0\n" in change["content"] and "id=Wired eth0\n" in change["content"]
    assert change["stack"] == "networkmanager"


def test_networkd() -> None:
    files = {"/etc/systemd/network/10-eth0.network": "[Match]\nName=eth0\n\n[Network]\nAddress=10.0.0.5/24\n",
             "/etc/systemd/network/20-vlan.netdev": "[NetDev]\nName=enp0s8.7\nKind=vlan\n",
             "/etc/systemd/network/30-other.network": "[Match]\nName=ens9\n"}
    changes = {c["path"]: c for c in nic.rewrite_configs(files, SWAP)}
    assert set(changes) == {"/etc/systemd/network/10-eth0.network", "/etc/systemd/network/20-vlan.netdev"}
    assert changes["/etc/systemd/network/10-eth0.network"]["content"].startswith("[Match]\nName=kbspare0\n")
    assert "Name=eth0.7" in changes["/etc/systemd/network/20-vlan.netdev"]["content"]


def test_ifcfg_files_are_renamed_with_their_interface() -> None:
    base = "/etc/sysconfig/network-scripts/"
    files = {base + "ifcfg-eth0": 'DEVICE=eth0\nNAME="System eth0"\nIPADDR=10.0.0.5\n',
             base + "ifcfg-enp0s8": 'DEVICE="enp0s8"\nHWADDR=52:54:00:00:00:02\nONBOOT=yes\n',
             base + "route-enp0s8": "10.9.0.0/16 via 10.0.0.1 dev enp0s8\n",
             base + "ifcfg-lo": "DEVICE=lo\n"}
    changes = {c["path"]: c for c in nic.rewrite_configs(files, SWAP)}
    assert changes[base + "ifcfg-eth0"]["dest"] == base + "ifcfg-kbspare0"
    assert changes[base + "ifcfg-eth0"]["content"] == 'DEVICE=kbspare0\nNAME="System kbspare0"\nIPADDR=10.0.0.5\n'
    assert changes[base + "ifcfg-enp0s8"]["dest"] == base + "ifcfg-eth0"
    assert changes[base + "ifcfg-enp0s8"]["content"].startswith('DEVICE="eth0"\n')
    assert changes[base + "route-enp0s8"]["dest"] == base + "route-eth0"
    # ifcfg-eth0 receives enp0s8's configuration, so only the old enp0s8 files are removed.
    assert not changes[base + "ifcfg-eth0"]["remove"]
    assert changes[base + "ifcfg-enp0s8"]["remove"] and changes[base + "route-enp0s8"]["remove"]
    assert base + "ifcfg-lo" not in changes


def test_legacy_persistent_net_rules() -> None:
    path = "/etc/udev/rules.d/70-persistent-net.rules"
    text = f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="{MAC_EXTRA}", NAME="enp0s8"\n'
    [change] = nic.rewrite_configs({path: text, "/etc/udev/rules.d/99-other.rules": 'NAME="enp0s8"\n'}, SWAP)
    assert change["stack"] == "udev" and change["content"].endswith('NAME="eth0"\n')


def test_files_not_naming_the_interfaces_are_left_alone() -> None:
    assert nic.rewrite_configs({"/etc/network/interfaces": "auto lo\niface lo inet loopback\n"}, SWAP) == []
    assert nic.rewrite_configs({"/etc/network/interfaces": "auto eth0\n"}, {}) == []


def test_link_file() -> None:
    assert nic.link_file_path("eth0") == "/etc/systemd/network/10-kubeboot-eth0.link"
    text = nic.render_link("52:54:00:AA:BB:CC", "eth0")
    assert text.splitlines()[1:] == ["[Match]", "MACAddress=52:54:00:aa:bb:cc", "", "[Link]", "Name=eth0"]


def test_udev_rule() -> None:
    assert nic.udev_rule_path("eth0") == "/etc/udev/rules.d/70-kubeboot-net-eth0.rules"
    assert nic.render_udev_rule(MAC_EXTRA, "eth0").splitlines()[1] == (
        f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="{MAC_EXTRA}", ATTR{{type}}=="1", NAME="eth0"')


def test_pinned_files_and_cloud_init() -> None:
    pins = [{"name": "eth0", "mac": MAC_EXTRA}, {"name": "kbspare0", "mac": MAC_PRIMARY}]
    paths = [f["path"] for f in nic.pinned_files(pins, udev_rule=True, cloud_init=True)]
    assert paths == ["/etc/systemd/network/10-kubeboot-eth0.link", "/etc/systemd/network/10-kubeboot-kbspare0.link",
                     "/etc/udev/rules.d/70-kubeboot-net-eth0.rules", "/etc/udev/rules.d/70-kubeboot-net-kbspare0.rules",
                     "/etc/cloud/cloud.cfg.d/99-kubeboot-network.cfg"]
    assert [f["path"] for f in nic.pinned_files(pins[:1], udev_rule=False)] == [nic.link_file_path("eth0")]
    assert nic.render_cloud_init().endswith("network: {config: disabled}\n")


def test_earlier_pins_that_contradict_the_new_ones_are_stale() -> None:
    files = {nic.link_file_path("pub0"): nic.render_link(MAC_EXTRA, "pub0"),
             nic.link_file_path("eth0"): nic.render_link(MAC_EXTRA, "eth0"),
             nic.link_file_path("kbspare0"): nic.render_link(MAC_PRIMARY, "kbspare0"),
             nic.udev_rule_path("eth0"): nic.render_udev_rule("52:54:00:00:00:09", "eth0"),
             "/etc/systemd/network/99-default.link": "[Link]\nNamePolicy=path\n"}
    assert nic.stale_pins(files, [{"name": "eth0", "mac": MAC_EXTRA}]) == [
        nic.link_file_path("pub0"), nic.udev_rule_path("eth0")]


def test_files_read_from_the_host_become_writes_and_removals() -> None:
    network = nic.parse_host(host_output(HOST, files={
        "/etc/systemd/network/10-eth0.network": ("600", "[Match]\nName=eth0\n"),
        "/etc/systemd/network/10-kubeboot-kbspare0.link": ("644", nic.render_link(MAC_PRIMARY, "kbspare0")),
        "/etc/network/if-up.d/x": ("755", "eth0\n")}))
    assert sorted(network.files) == ["/etc/systemd/network/10-eth0.network",
                                     "/etc/systemd/network/10-kubeboot-kbspare0.link"]  # if-up.d is no configuration
    assert network.files["/etc/systemd/network/10-eth0.network"] == nic.HostFile("0600", "[Match]\nName=eth0\n")
    the_plan = nic.Plan(host="node1", target="eth0", public=network.interfaces[2], reason="public_nic_mac",
                        renames=[{"old": "eth0", "new": "kbspare0", "mac": MAC_PRIMARY},
                                 {"old": "enp0s8", "new": "eth0", "mac": MAC_EXTRA}])
    writes, removals = nic.changed_files(the_plan, network.files, udev_rule=False, cloud_init=False)
    # The .link file for kbspare0 is already right and left out; eth0's is written; the networkd file keeps its mode.
    assert writes == [{"path": nic.link_file_path("eth0"), "content": nic.render_link(MAC_EXTRA, "eth0"),
                       "mode": "0644"},
                      {"path": "/etc/systemd/network/10-eth0.network", "content": "[Match]\nName=kbspare0\n",
                       "mode": "0600"}]
    assert removals == []
    assert nic.config_path("/etc/network/interfaces") and nic.config_path(nic.link_file_path("eth0"))
    assert not nic.config_path("/etc/network/if-up.d/x")


# --- Verification ---------------------------------------------------------------------------------------------------


def test_verify_accepts_a_correct_swap_and_names_what_is_wrong() -> None:
    before = [LO, link("eth0", MAC_PRIMARY, "10.0.0.5/24"), link("enp0s8", MAC_EXTRA)]
    routes_before = [{"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}]
    renames = plan(before, routes=routes_before, mac=MAC_EXTRA).renames
    good = [LO, link("kbspare0", MAC_PRIMARY, "10.0.0.5/24"), link("eth0", MAC_EXTRA)]
    good_routes = [{"dst": "default", "gateway": "10.0.0.1", "dev": "kbspare0"}]
    assert nic.verify("node1", renames=renames, addresses_before=json.dumps(before),
                      routes_before=json.dumps(routes_before), addresses_after=json.dumps(good),
                      routes_after=json.dumps(good_routes)) == []
    bad = [LO, link("kbspare0", MAC_PRIMARY), link("enp0s8", MAC_EXTRA)]
    assert nic.verify("node1", renames=renames, addresses_before=json.dumps(before),
                      routes_before=json.dumps(routes_before), addresses_after=json.dumps(bad),
                      routes_after="") == [
        "node1: kbspare0 (was eth0) lost 10.0.0.5/24",
        f"node1: eth0 should carry {MAC_EXTRA} but is missing",
        "node1: the default route via 10.0.0.1 dev kbspare0 is missing",
    ]
