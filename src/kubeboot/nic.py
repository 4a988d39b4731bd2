"""Public NIC naming: which interface is the public one, and the files that make its new name stick.

Pure functions over what `ip -d -j address show` and `ip -j route show default` print on the host; the
`nic_rename` role gathers that output, calls these through the `kubeboot_nic_*` filters and writes the results.

Selection order (documented in the role's README):
1. ``public_nic_mac`` when it is set: the interface with that MAC;
2. else the interface holding ``ansible_host``'s address (when ``ansible_host`` is an IP address);
3. else the interface of the default route.
Anything ambiguous (two interfaces with the MAC or the address, default routes through two interfaces) or a MAC the
host does not have is refused with one line naming the host, the variable and the fix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubeboot.errors import UsageError
from kubeboot.inventory.syntax import interface_name, mac_address, normal_mac

# Link kinds (`ip -d` linkinfo.info_kind) that may be renamed: a physical NIC has none; veth is a sandbox node's NIC.
RENAMABLE_KINDS = (None, "veth")
LINK_DIR = "/etc/systemd/network"
LINK_PREFIX = "10-kubeboot-"
UDEV_DIR = "/etc/udev/rules.d"
CLOUD_INIT_FILE = "/etc/cloud/cloud.cfg.d/99-kubeboot-network.cfg"

# Network configuration stacks whose files may name an interface, by path pattern.
STACKS: dict[str, tuple[str, ...]] = {
    "ifupdown": (r"^/etc/network/interfaces$", r"^/etc/network/interfaces\.d/[^/]+$"),
    "netplan": (r"^/etc/netplan/[^/]+\.ya?ml$",),
    "networkmanager": (r"^/etc/NetworkManager/system-connections/[^/]+$",),
    "networkd": (r"^/etc/systemd/network/[^/]+\.(network|netdev)$",),
    "ifcfg": (r"^/etc/sysconfig/network-scripts/(ifcfg|route|route6|rule|rule6)-[^/]+$",),
    "udev": (r"^/etc/udev/rules\.d/70-persistent-net\.rules$",),
}
# ifcfg files are named after the interface they configure (ifcfg-eth0, route-eth0): they are renamed too.
IFCFG_NAME = re.compile(
    r"^(?P<dir>/etc/sysconfig/network-scripts/)(?P<kind>ifcfg|route|route6|rule|rule6)-(?P<name>.+)$"
)
# Characters that may be part of an interface name next to an occurrence; '.' and ':' separate a VLAN or alias suffix.
NAME_CHARS = r"A-Za-z0-9_\-"


class NicError(UsageError):
    """The public NIC cannot be chosen or renamed safely; nothing was changed."""


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    kind: str | None = None
    addresses: tuple[str, ...] = ()  # "address/prefix", global scope only
    link_type: str = "ether"


@dataclass(frozen=True)
class DefaultRoute:
    dev: str
    gateway: str | None = None
    family: str = "inet"


@dataclass
class Plan:
    """What the role does on one host: renames in order (a spare move first), and the public NIC's final name."""

    host: str
    target: str
    public: Interface
    reason: str
    renames: list[dict[str, str]] = field(default_factory=list)  # {old, new, mac}

    @property
    def mapping(self) -> dict[str, str]:
        return {r["old"]: r["new"] for r in self.renames}

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "target": self.target,
            "public": {"name": self.public.name, "mac": self.public.mac, "addresses": list(self.public.addresses)},
            "reason": self.reason,
            "renames": self.renames,
            "mapping": self.mapping,
            "pins": [{"name": self.target, "mac": self.public.mac}]
            + [{"name": r["new"], "mac": r["mac"]} for r in self.renames if r["new"] != self.target],
        }


def parse_addresses(text: str | list[Any]) -> list[Interface]:
    """Interfaces from `ip -d -j address show` (a JSON string or the parsed list)."""
    data = json.loads(text) if isinstance(text, str) else text
    interfaces = []
    for item in data:
        info = item.get("linkinfo") or {}
        addresses = tuple(
            f"{a['local']}/{a['prefixlen']}"
            for a in item.get("addr_info", [])
            if a.get("scope") == "global" and "local" in a
        )
        interfaces.append(Interface(
            name=str(item["ifname"]), mac=normal_mac(str(item.get("address", ""))), kind=info.get("info_kind"),
            addresses=addresses, link_type=str(item.get("link_type", "")),
        ))
    return interfaces


def parse_default_routes(text: str | list[Any], family: str = "inet") -> list[DefaultRoute]:
    """Default routes from `ip -j route show default` (a JSON string or the parsed list)."""
    data: list[Any] = (json.loads(text) if text.strip() else []) if isinstance(text, str) else text
    return [DefaultRoute(dev=str(r["dev"]), gateway=r.get("gateway"), family=family) for r in data if "dev" in r]


def _describe(interfaces: list[Interface]) -> str:
    shown = [f"{i.name}={i.mac}" for i in interfaces if i.link_type == "ether"]
    return ", ".join(shown) or "none"


def select_public_nic(
    host: str,
    interfaces: list[Interface],
    default_routes: list[DefaultRoute],
    *,
    mac: str = "",
    ansible_host: str = "",
) -> tuple[Interface, str]:
    """The public NIC and why it was chosen (the variable or fact that decided)."""
    if mac:
        problem = mac_address(mac)
        if problem:
            raise NicError(f"{host}: public_nic_mac = {mac!r} {problem}; set it to the MAC of the public NIC")
        wanted = normal_mac(mac)
        found = [i for i in interfaces if i.mac == wanted]
        if not found:
            raise NicError(
                f"{host}: public_nic_mac = {mac} is not on this host (its NICs: {_describe(interfaces)}); "
                "set public_nic_mac to one of them or remove it"
            )
        if len(found) > 1:
            names = ", ".join(i.name for i in found)
            raise NicError(
                f"{host}: public_nic_mac = {mac} is ambiguous: {names} all carry it (bond, bridge or VLAN); "
                "rename the physical NIC by hand or remove public_nic_mac"
            )
        return _renamable(host, found[0], "public_nic_mac"), "public_nic_mac"
    try:
        address = ipaddress.ip_address(ansible_host) if ansible_host else None
    except ValueError:
        address = None
    if address is not None:
        holders = [i for i in interfaces if any(ipaddress.ip_interface(a).ip == address for a in i.addresses)]
        if len(holders) > 1:
            names = ", ".join(i.name for i in holders)
            raise NicError(
                f"{host}: ansible_host = {ansible_host} is on {names}: cannot tell the public NIC; "
                "set public_nic_mac to its MAC"
            )
        if holders:
            return _renamable(host, holders[0], "ansible_host"), "ansible_host"
    devices = sorted({r.dev for r in default_routes})
    if len(devices) > 1:
        raise NicError(
            f"{host}: default routes go through {', '.join(devices)}: cannot tell the public NIC; "
            "set public_nic_mac to its MAC"
        )
    if not devices:
        raise NicError(
            f"{host}: no public_nic_mac, ansible_host {ansible_host or '(unset)'} is on no interface and there is "
            "no default route: cannot tell the public NIC; set public_nic_mac to its MAC"
        )
    found = [i for i in interfaces if i.name == devices[0]]
    if not found:
        raise NicError(f"{host}: the default route's interface {devices[0]} is not listed; set public_nic_mac")
    return _renamable(host, found[0], "default route"), "default route"


def _renamable(host: str, interface: Interface, variable: str) -> Interface:
    if interface.link_type != "ether" or interface.kind not in RENAMABLE_KINDS:
        kind = interface.kind or interface.link_type
        raise NicError(
            f"{host}: {variable} leads to {interface.name}, a {kind} interface, not a NIC; "
            "set public_nic_mac to the MAC of the physical NIC"
        )
    return interface


def spare_name(interfaces: list[Interface], prefix: str = "kbspare") -> str:
    taken = {i.name for i in interfaces}
    return next(f"{prefix}{n}" for n in range(100) if f"{prefix}{n}" not in taken)


def plan(
    host: str,
    interfaces: list[Interface],
    default_routes: list[DefaultRoute],
    *,
    target: str,
    mac: str = "",
    ansible_host: str = "",
    spare_prefix: str = "kbspare",
) -> Plan:
    """Choose the public NIC and the renames that give it `target`, moving an interface that holds it aside."""
    problem = interface_name(target)
    if problem:
        raise NicError(f"{host}: public_nic_name = {target!r} {problem}; set a valid interface name such as eth0")
    public, reason = select_public_nic(host, interfaces, default_routes, mac=mac, ansible_host=ansible_host)
    result = Plan(host=host, target=target, public=public, reason=reason)
    if public.name == target:
        return result
    holder = next((i for i in interfaces if i.name == target), None)
    if holder is not None:
        if holder.link_type != "ether" or holder.kind not in RENAMABLE_KINDS:
            raise NicError(
                f"{host}: public_nic_name = {target} is held by {holder.kind or holder.link_type} interface "
                f"{target}, which cannot be moved aside; rename it by hand or choose another public_nic_name"
            )
        result.renames.append({"old": target, "new": spare_name(interfaces, spare_prefix), "mac": holder.mac})
    result.renames.append({"old": public.name, "new": target, "mac": public.mac})
    return result


def plan_from_output(
    host: str, addresses: str | list[Any], routes: str | list[Any], **kwargs: str
) -> dict[str, Any]:
    """The plan as a dict, or {"error": line} when it is refused (the role fails with that line)."""
    try:
        return plan(host, parse_addresses(addresses), parse_default_routes(routes), **kwargs).as_dict()
    except NicError as error:
        return {"error": str(error)}


# --- Rendering ----------------------------------------------------------------------------------------------------


def stack_of(path: str) -> str | None:
    for stack, patterns in STACKS.items():
        if any(re.match(p, path) for p in patterns):
            return stack
    return None


def rename_in_text(text: str, mapping: dict[str, str]) -> str:
    """Every whole-name occurrence of an old name replaced by its new one, all at once (so a swap works).

    A name counts when no other interface-name character touches it: `eth0`, `eth0.100` (VLAN), `eth0:1` (alias),
    `Name=eth0`, `"eth0"`, `[eth0]` and `/conf/eth0/` do; `veth0`, `eth01` and `eth0-x` do not.
    """
    if not mapping:
        return text
    names = "|".join(re.escape(n) for n in sorted(mapping, key=len, reverse=True))
    pattern = re.compile(rf"(?<![{NAME_CHARS}])({names})(?![{NAME_CHARS}])")
    return pattern.sub(lambda m: mapping[m[1]], text)


def rename_path(path: str, mapping: dict[str, str]) -> str:
    """ifcfg-OLD / route-OLD become ifcfg-NEW / route-NEW; other stacks keep their file names."""
    match = IFCFG_NAME.match(path)
    if match and match["name"] in mapping:
        return f"{match['dir']}{match['kind']}-{mapping[match['name']]}"
    return path


def rewrite_configs(files: dict[str, str], mapping: dict[str, str]) -> list[dict[str, Any]]:
    """For each network configuration file that names a renamed interface: where it goes and its new content.

    `files` maps path -> content. Returns [{path, dest, stack, content, remove}] for files that change; `remove` is
    true when the file moves (ifcfg) and nothing else is written to its old path.
    """
    changes: list[dict[str, Any]] = []
    for path in sorted(files):
        stack = stack_of(path)
        if stack is None:
            continue
        content = rename_in_text(files[path], mapping)
        dest = rename_path(path, mapping)
        if content != files[path] or dest != path:
            changes.append({"path": path, "dest": dest, "stack": stack, "content": content})
    dests = {c["dest"] for c in changes}
    for change in changes:
        change["remove"] = change["dest"] != change["path"] and change["path"] not in dests
    return changes


def link_file_path(name: str) -> str:
    return f"{LINK_DIR}/{LINK_PREFIX}{name}.link"


def render_link(mac: str, name: str) -> str:
    """A systemd .link file giving the NIC with `mac` the name `name` at every boot (udev, and the initramfs)."""
    return (
        "# Written by kubeboot (nic_rename): the NIC with this MAC is named " + name + " at boot.\n"
        f"[Match]\nMACAddress={normal_mac(mac)}\n\n[Link]\nName={name}\n"
    )


def udev_rule_path(name: str) -> str:
    return f"{UDEV_DIR}/70-kubeboot-net-{name}.rules"


def render_udev_rule(mac: str, name: str) -> str:
    """A udev rule with the same effect as the .link file, for udev or an initramfs that read rules only."""
    return (
        "# Written by kubeboot (nic_rename): the NIC with this MAC is named " + name + " at boot.\n"
        f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="{normal_mac(mac)}", ATTR{{type}}=="1", '
        f'NAME="{name}"\n'
    )


def render_cloud_init() -> str:
    """Keeps cloud-init from writing the network configuration again (with the old name) at boot."""
    return (
        "# Written by kubeboot (nic_rename): the network configuration names the public NIC by its new name;\n"
        "# cloud-init must not regenerate it.\nnetwork: {config: disabled}\n"
    )


def pinned_files(pins: list[dict[str, str]], *, udev_rule: bool, cloud_init: bool = False) -> list[dict[str, str]]:
    """The files that pin each name to its MAC (and keep cloud-init from undoing it): [{path, content}]."""
    files = [{"path": link_file_path(p["name"]), "content": render_link(p["mac"], p["name"])} for p in pins]
    if udev_rule:
        files += [{"path": udev_rule_path(p["name"]), "content": render_udev_rule(p["mac"], p["name"])} for p in pins]
    if cloud_init:
        files.append({"path": CLOUD_INIT_FILE, "content": render_cloud_init()})
    return files


PIN_FILE = re.compile(
    rf"^({re.escape(LINK_DIR)}/{LINK_PREFIX}[^/]+\.link|{re.escape(UDEV_DIR)}/70-kubeboot-net-[^/]+\.rules)$"
)


def _pin_of(content: str) -> tuple[str, str] | None:
    """(mac, name) of one of our .link files or udev rules."""
    mac = re.search(r"^MACAddress=(\S+)|ATTR\{address\}==\"([^\"]+)\"", content, re.M)
    name = re.search(r"^Name=(\S+)|NAME=\"([^\"]+)\"", content, re.M)
    if not mac or not name:
        return None
    return normal_mac(mac[1] or mac[2]), name[1] or name[2]


def stale_pins(files: dict[str, str], pins: list[dict[str, str]]) -> list[str]:
    """Our earlier pinning files that contradict the new pins (same MAC, other name; or same name, other MAC)."""
    wanted = {(normal_mac(p["mac"]), p["name"]) for p in pins}
    macs = {mac for mac, _ in wanted}
    names = {name for _, name in wanted}
    stale = []
    for path in sorted(files):
        pin = _pin_of(files[path]) if PIN_FILE.match(path) else None
        if pin and pin not in wanted and (pin[0] in macs or pin[1] in names):
            stale.append(path)
    return stale


# --- Verification ---------------------------------------------------------------------------------------------------


def verify(
    host: str,
    *,
    renames: list[dict[str, str]],
    addresses_before: str | list[Any],
    routes_before: str | list[Any],
    addresses_after: str | list[Any],
    routes_after: str | list[Any],
) -> list[str]:
    """What is wrong after the renames (empty when all is right): each new name carries its MAC and the addresses the
    interface had under its old name, and every default route is still there (through the renamed interface)."""
    problems = []
    mapping = {r["old"]: r["new"] for r in renames}
    previous = {i.name: i for i in parse_addresses(addresses_before)}
    now = {i.name: i for i in parse_addresses(addresses_after)}
    for rename in renames:
        got = now.get(rename["new"])
        if got is None or got.mac != normal_mac(rename["mac"]):
            shown = f"carries {got.mac}" if got else "is missing"
            problems.append(f"{host}: {rename['new']} should carry {rename['mac']} but {shown}")
            continue
        old = previous.get(rename["old"])
        missing = sorted(set(old.addresses if old else ()) - set(got.addresses))
        if missing:
            problems.append(f"{host}: {rename['new']} (was {rename['old']}) lost {', '.join(missing)}")
    current = {(r.dev, r.gateway) for r in parse_default_routes(routes_after)}
    for route in parse_default_routes(routes_before):
        expected = (mapping.get(route.dev, route.dev), route.gateway)
        if expected not in current:
            problems.append(f"{host}: the default route via {route.gateway} dev {expected[0]} is missing")
    return problems
