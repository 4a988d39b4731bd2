"""Typed host facts, the pure parsers that build them from command output, and the public NIC choice."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubeboot.errors import KubebootError

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Link kinds whose ``link`` field names the device they sit on (for a veth it names the peer instead).
STACKED_KINDS = frozenset({"vlan", "macvlan", "macvtap", "ipvlan", "ipvtap"})
# Link kinds that aggregate the devices enslaved to them (``master``).
AGGREGATE_KINDS = frozenset({"bridge", "bond", "team"})
# Packages discover reports; the first found of a group names the container runtime.
PACKAGES = (
    "containerd", "containerd.io", "cri-o", "docker-ce", "docker.io", "runc",
    "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni",
)
RUNTIME_PACKAGES = {"containerd": "containerd", "containerd.io": "containerd", "cri-o": "cri-o",
                    "docker-ce": "docker", "docker.io": "docker"}


class FactsError(KubebootError):
    """Output from a host that cannot be understood; the message says which part."""

    exit_code = 1


@dataclass(frozen=True)
class Address:
    """One address on an interface, as ``ip -j addr`` lists it."""

    family: str  # "inet" or "inet6"
    address: str
    prefixlen: int
    scope: str  # "global", "link", "host", ...
    secondary: bool = False

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class Interface:
    """A network interface: its name, MAC, kind and addresses."""

    name: str
    mac: str | None  # None for devices without a hardware address (tun, wireguard, ...)
    link_type: str  # "ether", "loopback", "none", ...
    kind: str  # linkinfo kind ("vlan", "bridge", "bond", "veth", ...) or "" for a plain device
    operstate: str
    mtu: int
    parent: str | None = None  # the device a vlan/macvlan sits on
    master: str | None = None  # the bridge or bond this device is enslaved to
    permanent_mac: str | None = None  # the burnt-in MAC when a bond changed the current one
    addresses: tuple[Address, ...] = ()

    @property
    def is_loopback(self) -> bool:
        return self.link_type == "loopback"

    @property
    def is_physical(self) -> bool:
        """A device that can be renamed as the host's public NIC: an Ethernet link that is not virtual glue."""
        return self.link_type == "ether" and self.kind in ("", "veth") and self.mac is not None


@dataclass(frozen=True)
class Route:
    """A default route."""

    family: str
    interface: str | None
    gateway: str | None
    metric: int = 0


@dataclass(frozen=True)
class OsRelease:
    id: str
    name: str
    version_id: str
    pretty_name: str
    id_like: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostFacts:
    """Everything discover learns about one host."""

    hostname: str
    fqdn: str
    os: OsRelease
    kernel: str
    arch: str
    cpus: int
    memory_kb: int
    swap_total_kb: int
    swaps: tuple[str, ...]
    interfaces: tuple[Interface, ...]
    default_routes: tuple[Route, ...]
    ssh_address: str | None  # the host's own address that the SSH session reached
    packages: dict[str, str] = field(default_factory=dict)  # installed package -> version

    def interface(self, name: str) -> Interface | None:
        return next((nic for nic in self.interfaces if nic.name == name), None)

    def interface_holding(self, address: str) -> Interface | None:
        wanted = _normalise_ip(address)
        return next((nic for nic in self.interfaces if any(a.address == wanted for a in nic.addresses)), None)

    @property
    def ssh_interface(self) -> Interface | None:
        return self.interface_holding(self.ssh_address) if self.ssh_address else None

    @property
    def container_runtime(self) -> str | None:
        return next((RUNTIME_PACKAGES[p] for p in RUNTIME_PACKAGES if p in self.packages), None)


@dataclass(frozen=True)
class NicChoice:
    """The public NIC discover chose (or why it chose none) and the node address on it."""

    interface: Interface | None
    reason: str  # how it was chosen, or why not
    node_ip: str | None = None

    @property
    def ok(self) -> bool:
        return self.interface is not None and self.interface.mac is not None


def _normalise_ip(text: str) -> str:
    """``10.0.0.1``, ``::ffff:10.0.0.1`` and ``fe80::1%eth0`` in the form ``ip`` prints them."""
    bare = text.strip().split("%", 1)[0]
    try:
        parsed = ipaddress.ip_address(bare)
    except ValueError:
        return bare
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def _load_json_list(text: str, what: str) -> list[dict[str, Any]]:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise FactsError(f"cannot parse `{what}` output as JSON ({exc.msg} at line {exc.lineno}); "
                         "iproute2 on the host may be too old for -j (needs 4.13 or later)") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise FactsError(f"`{what}` output is not a JSON list of objects")
    return data


def _mac(value: object) -> str | None:
    if isinstance(value, str) and MAC_RE.match(value.lower()):
        return value.lower()
    return None


def parse_ip_addr(text: str) -> tuple[Interface, ...]:
    """Interfaces from ``ip -j -d addr show`` (``-d`` adds the link kind, parent and master)."""
    interfaces = []
    for item in _load_json_list(text, "ip -j -d addr"):
        name = item.get("ifname")
        if not isinstance(name, str):
            raise FactsError("`ip -j -d addr` lists an interface without ifname")
        linkinfo = item.get("linkinfo") if isinstance(item.get("linkinfo"), dict) else {}
        kind = str(linkinfo.get("info_kind", "")) if linkinfo else ""
        link_type = str(item.get("link_type", ""))
        addresses = []
        for info in item.get("addr_info", []):
            if not isinstance(info, dict) or info.get("family") not in ("inet", "inet6") or "local" not in info:
                continue
            addresses.append(Address(
                family=str(info["family"]), address=_normalise_ip(str(info["local"])),
                prefixlen=int(info.get("prefixlen", 0)), scope=str(info.get("scope", "global")),
                secondary=bool(info.get("secondary", False)),
            ))
        link = item.get("link")
        interfaces.append(Interface(
            name=name,
            mac=None if link_type == "loopback" else _mac(item.get("address")),
            link_type=link_type,
            kind=kind,
            operstate=str(item.get("operstate", "UNKNOWN")),
            mtu=int(item.get("mtu", 0)),
            parent=str(link) if kind in STACKED_KINDS and isinstance(link, str) else None,
            master=str(item["master"]) if isinstance(item.get("master"), str) else None,
            permanent_mac=_mac(item.get("permaddr")),
            addresses=tuple(addresses),
        ))
    return tuple(interfaces)


def parse_default_routes(text: str, family: str) -> tuple[Route, ...]:
    """Default routes from ``ip -j [-6] route show default``."""
    routes = []
    for item in _load_json_list(text, "ip -j route show default"):
        nexthops = item.get("nexthops")
        hops = nexthops if isinstance(nexthops, list) and nexthops else [item]
        for hop in hops:
            dev = hop.get("dev")
            gateway = hop.get("gateway")
            routes.append(Route(
                family=family, interface=str(dev) if isinstance(dev, str) else None,
                gateway=_normalise_ip(str(gateway)) if isinstance(gateway, str) else None,
                metric=int(item.get("metric", 0)),
            ))
    return tuple(sorted(routes, key=lambda r: r.metric))


def parse_os_release(text: str) -> OsRelease:
    """/etc/os-release: shell-style ``KEY=value`` lines, values optionally quoted."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value.replace('\\"', '"').replace("\\\\", "\\")
    if "ID" not in values:
        raise FactsError("/etc/os-release has no ID= line")
    return OsRelease(
        id=values["ID"], name=values.get("NAME", values["ID"]), version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", values["ID"])),
        id_like=tuple(values.get("ID_LIKE", "").split()),
    )


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as ``{field: kB}``."""
    result = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and parts and parts[0].isdigit():
            result[key.strip()] = int(parts[0])
    if "MemTotal" not in result:
        raise FactsError("/proc/meminfo has no MemTotal line")
    return result


def parse_swaps(text: str) -> tuple[str, ...]:
    """Active swap devices and files from /proc/swaps (its first line is a header)."""
    return tuple(line.split()[0] for line in text.splitlines()[1:] if line.strip())


def parse_packages(text: str) -> dict[str, str]:
    """Installed packages from ``NAME<TAB>VERSION<TAB>STATUS`` lines (dpkg-query or rpm -q with a format).

    dpkg reports removed-but-configured packages too (status ``rc``); only ``ii`` / ``installed`` count.
    """
    found = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue  # "package X is not installed" from rpm, blank lines
        name, version, status = (p.strip() for p in parts)
        name = name.split(":", 1)[0]  # dpkg's binary:Package may carry ":amd64"
        if name and version and status in ("ii", "installed"):
            found[name] = version
    return found


def parse_ssh_connection(text: str) -> str | None:
    """The server-side address from ``$SSH_CONNECTION`` (``client_ip client_port server_ip server_port``)."""
    parts = text.split()
    if len(parts) != 4:
        return None
    return _normalise_ip(parts[2])


def parse_int(text: str, what: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit():
        raise FactsError(f"{what}: expected a number, got {stripped[:40]!r}")
    return int(stripped)


def _physical_under(facts: HostFacts, nic: Interface) -> tuple[Interface | None, str]:
    """The physical NIC carrying ``nic`` (itself, a VLAN's parent, a bridge's or bond's single port)."""
    seen: set[str] = set()
    current = nic
    while current.name not in seen:
        seen.add(current.name)
        if current.kind in STACKED_KINDS and current.parent:
            parent = facts.interface(current.parent)
            if parent is None:
                return None, f"{current.name} sits on {current.parent}, which the host does not list"
            current = parent
            continue
        if current.kind in AGGREGATE_KINDS:
            ports = [i for i in facts.interfaces if i.master == current.name and i.kind not in ("vlan", "tun")]
            physical = [p for p in ports if p.is_physical or p.kind in AGGREGATE_KINDS or p.kind in STACKED_KINDS]
            if len(physical) != 1:
                names = ", ".join(p.name for p in physical) or "none"
                return None, f"{current.kind} {current.name} has {len(physical)} ports ({names}); cannot tell which"
            current = physical[0]
            continue
        if current.is_physical:
            return current, ""
        return None, f"{current.name} is a {current.kind or current.link_type} device, not an Ethernet NIC"
    return None, f"{nic.name}: loop in the device stack"


def _node_ip(nic: Interface, holder: Interface | None, preferred: str | None) -> str | None:
    """The node address: the SSH/ansible_host address when it is on the NIC (or a device on it), else the first
    global IPv4 (primary before secondary), else the first global IPv6."""
    candidates = list(nic.addresses) + (list(holder.addresses) if holder is not None and holder is not nic else [])
    if preferred is not None and any(a.address == preferred for a in candidates):
        return preferred
    for family in ("inet", "inet6"):
        ordered = sorted((a for a in candidates if a.family == family and a.scope == "global"),
                         key=lambda a: a.secondary)
        if ordered:
            return ordered[0].address
    return None


def choose_public_nic(facts: HostFacts, *, public_nic_mac: str | None = None,
                      ansible_host: str | None = None) -> NicChoice:
    """Choose the public NIC in the order the nic_rename role documents.

    1. ``public_nic_mac`` given (an operator wrote it) -> the interface with that MAC;
    2. the interface holding the SSH address (or ``ansible_host`` when it is an address on the host);
    3. the interface of the default route, when all default routes agree;
    otherwise none, with the reason: an ambiguous host is reported, not guessed.
    A VLAN, bridge or bond is followed down to the single physical NIC under it.
    """
    if public_nic_mac:
        mac = public_nic_mac.lower()
        matches = [i for i in facts.interfaces if mac in (i.mac, i.permanent_mac) and i.is_physical]
        if not matches:
            return NicChoice(None, f"public_nic_mac {public_nic_mac} is on no Ethernet NIC of the host")
        given = matches[0]
        above = next((i for i in facts.interfaces if i.kind in AGGREGATE_KINDS and i.name == given.master), None)
        return NicChoice(given, "public_nic_mac from host_vars", _node_ip(given, above, facts.ssh_address))
    for address, label in ((ansible_host, "ansible_host"), (facts.ssh_address, "SSH address")):
        if not address:
            continue
        holder = facts.interface_holding(address)
        if holder is None or holder.is_loopback:
            continue
        nic, why = _physical_under(facts, holder)
        if nic is None:
            return NicChoice(None, f"{label} {address} is on {holder.name}: {why}")
        via = "" if nic is holder else f" via {holder.name}"
        return NicChoice(nic, f"holds the {label} {address}{via}", _node_ip(nic, holder, _normalise_ip(address)))
    devices = sorted({r.interface for r in facts.default_routes if r.interface and r.family == "inet"}) or sorted(
        {r.interface for r in facts.default_routes if r.interface})
    if len(devices) > 1:
        return NicChoice(None, f"default routes through {', '.join(devices)}: ambiguous, set public_nic_mac")
    if not devices:
        return NicChoice(None, "no SSH address on the host and no default route: set public_nic_mac")
    holder = facts.interface(devices[0])
    if holder is None:
        return NicChoice(None, f"default route through {devices[0]}, which the host does not list")
    nic, why = _physical_under(facts, holder)
    if nic is None:
        return NicChoice(None, f"default route through {holder.name}: {why}")
    via = "" if nic is holder else f" via {holder.name}"
    return NicChoice(nic, f"default route{via}", _node_ip(nic, holder, None))
