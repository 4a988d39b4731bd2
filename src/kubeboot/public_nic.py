"""The host's public NIC: one parser of `ip -d -j address show` and `ip -j route show default`, one `Interface` type
and one choice, used by `kubeboot discover` and by the nic_rename role alike.

The choice, in this order (the nic_rename role's README documents it):
1. ``public_nic_mac`` when it is set: the NIC with that MAC (a bond port's burnt-in MAC counts);
2. else the interface holding ``ansible_host``'s address (when it is an address on the host);
3. else the interface holding the address the SSH session reached (when known);
4. else the interface of the default route (IPv4 first, else IPv6), when all default routes leave through one.

The interface found that way may be a VLAN, bond or bridge: it *carries* the public address, and it is followed down
to the one physical NIC under it (a VLAN's parent, a bond's or bridge's single port). The choice is that physical NIC
(whose MAC discover writes as ``public_nic_mac``) and the carrier (where ``node_ip`` lives). Anything ambiguous (two
NICs with the MAC or the address, default routes through two interfaces, a bond with two ports) or not Ethernet (a
tunnel) is refused with one line naming the variable and the fix; nothing is guessed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from kubeboot.errors import KubebootError
from kubeboot.inventory.syntax import mac_address, normal_mac

# Link kinds (`ip -d` linkinfo.info_kind) whose ``link`` field names the device they sit on (for a veth: its peer).
STACKED_KINDS = frozenset({"vlan", "macvlan", "macvtap", "ipvlan", "ipvtap"})
# Link kinds that aggregate the devices enslaved to them (``master``).
AGGREGATE_KINDS = frozenset({"bridge", "bond", "team"})
# Link kinds of a NIC that can be renamed by its MAC: a physical NIC has none; veth is a sandbox node's NIC.
PHYSICAL_KINDS = ("", "veth")


class OutputError(KubebootError):
    """Output from a host that cannot be understood; the message says which part."""

    exit_code = 1


@dataclass(frozen=True)
class Address:
    """One address on an interface, as ``ip -j address`` lists it."""

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
    """A network interface: its name, MAC, kind, place in the device stack and addresses."""

    name: str
    mac: str | None  # None for devices without a hardware address (loopback, tun, wireguard, ...)
    link_type: str  # "ether", "loopback", "none", ...
    kind: str  # linkinfo kind ("vlan", "bridge", "bond", "veth", ...) or "" for a plain device
    operstate: str = "UNKNOWN"
    mtu: int = 0
    parent: str | None = None  # the device a vlan/macvlan sits on
    master: str | None = None  # the bridge or bond this device is enslaved to
    permanent_mac: str | None = None  # the burnt-in MAC when a bond changed the current one
    addresses: tuple[Address, ...] = ()

    @property
    def is_loopback(self) -> bool:
        return self.link_type == "loopback"

    @property
    def is_physical(self) -> bool:
        """A NIC that can be renamed by its MAC: an Ethernet link that is not virtual glue."""
        return self.link_type == "ether" and self.kind in PHYSICAL_KINDS and self.mac is not None

    @property
    def hw_mac(self) -> str | None:
        """The MAC that identifies the NIC at boot: the burnt-in one when a bond changed the current one."""
        return self.permanent_mac or self.mac

    @property
    def global_cidrs(self) -> tuple[str, ...]:
        return tuple(a.cidr for a in self.addresses if a.scope == "global")

    @property
    def description(self) -> str:
        return f"a {self.kind or self.link_type} interface"


@dataclass(frozen=True)
class Route:
    """A default route (one per next hop of a multipath route)."""

    family: str
    interface: str | None
    gateway: str | None
    metric: int = 0


@dataclass(frozen=True)
class NicChoice:
    """The public NIC (or why there is none), the interface carrying the public address and the node address."""

    interface: Interface | None  # the physical NIC
    reason: str  # how it was chosen, or why not (one line naming the variable and the fix)
    node_ip: str | None = None
    by: str = ""  # public_nic_mac, ansible_host, SSH address or default route
    carrier: Interface | None = None  # the interface holding the public address: the NIC or a VLAN/bond/bridge on it
    # (also when refused because no single physical NIC is under it, such as a bond of two ports)

    @property
    def ok(self) -> bool:
        return self.interface is not None and self.interface.mac is not None


# --- Parsing --------------------------------------------------------------------------------------------------------


def normalise_ip(text: str) -> str:
    """``10.0.0.1``, ``::ffff:10.0.0.1`` and ``fe80::1%eth0`` in the form ``ip`` prints them."""
    bare = text.strip().split("%", 1)[0]
    try:
        parsed = ipaddress.ip_address(bare)
    except ValueError:
        return bare
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def _load_json_list(text: str | list[Any], what: str) -> list[dict[str, Any]]:
    if isinstance(text, str):
        stripped = text.strip()
        if not stripped:
            return []
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise OutputError(f"cannot parse `{what}` output as JSON ({exc.msg} at line {exc.lineno}); "
                              "iproute2 on the host may be too old for -j (needs 4.13 or later)") from exc
    else:
        data = text
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise OutputError(f"`{what}` output is not a JSON list of objects")
    return data


def _mac(value: object) -> str | None:
    if isinstance(value, str) and mac_address(value) is None:
        return normal_mac(value)
    return None


def parse_addresses(text: str | list[Any]) -> tuple[Interface, ...]:
    """Interfaces from ``ip -d -j address show`` (a JSON string or the parsed list; ``-d`` adds kind and master)."""
    interfaces = []
    for item in _load_json_list(text, "ip -d -j address show"):
        name = item.get("ifname")
        if not isinstance(name, str):
            raise OutputError("`ip -d -j address show` lists an interface without ifname")
        linkinfo = item.get("linkinfo") if isinstance(item.get("linkinfo"), dict) else {}
        kind = str(linkinfo.get("info_kind", "")) if linkinfo else ""
        link_type = str(item.get("link_type", ""))
        addresses = []
        for info in item.get("addr_info", []):
            if not isinstance(info, dict) or info.get("family") not in ("inet", "inet6") or "local" not in info:
                continue
            addresses.append(Address(
                family=str(info["family"]), address=normalise_ip(str(info["local"])),
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


def parse_default_routes(text: str | list[Any], family: str = "inet") -> tuple[Route, ...]:
    """Default routes from ``ip -j [-4|-6] route show default``, lowest metric first."""
    routes = []
    for item in _load_json_list(text, "ip -j route show default"):
        nexthops = item.get("nexthops")
        hops = nexthops if isinstance(nexthops, list) and nexthops else [item]
        for hop in hops:
            dev = hop.get("dev")
            gateway = hop.get("gateway")
            routes.append(Route(
                family=family, interface=str(dev) if isinstance(dev, str) else None,
                gateway=normalise_ip(str(gateway)) if isinstance(gateway, str) else None,
                metric=int(item.get("metric", 0)),
            ))
    return tuple(sorted(routes, key=lambda r: r.metric))


def parse_ssh_connection(text: str) -> str | None:
    """The server-side address from ``$SSH_CONNECTION`` (``client_ip client_port server_ip server_port``)."""
    parts = text.split()
    if len(parts) != 4:
        return None
    return normalise_ip(parts[2])


# --- The choice -----------------------------------------------------------------------------------------------------


class _Refused(Exception):
    """The choice is refused; the message is the reason; ``carrier`` the interface found, when one was."""

    def __init__(self, message: str, carrier: Interface | None = None, by: str = "") -> None:
        super().__init__(message)
        self.carrier, self.by = carrier, by


class _Stack:
    """The interfaces of one host, with the device stack (VLAN on NIC, NIC in bond, bond in bridge) between them."""

    def __init__(self, interfaces: tuple[Interface, ...] | list[Interface]) -> None:
        self.interfaces = tuple(interfaces)
        self.by_name = {i.name: i for i in self.interfaces}

    def ports(self, aggregate: Interface) -> list[Interface]:
        ports = [i for i in self.interfaces if i.master == aggregate.name and i.kind not in ("vlan", "tun")]
        return [p for p in ports if p.is_physical or p.kind in AGGREGATE_KINDS or p.kind in STACKED_KINDS]

    def physical_under(self, interface: Interface) -> Interface:
        """The one physical NIC carrying ``interface``: itself, a VLAN's parent, a bond's or bridge's single port.

        Refused with the rest of a sentence that starts "<interface>, a <kind> interface" (the stack down to the
        problem, then the problem)."""
        seen: set[str] = set()
        current = interface
        suffix = ""
        while current.name not in seen:
            seen.add(current.name)
            if current is not interface and not current.is_physical:
                suffix += f", {current.description}"
            if current.kind in STACKED_KINDS and current.parent:
                parent = self.by_name.get(current.parent)
                if parent is None:
                    raise _Refused(f"{suffix} on {current.parent}, which the host does not list")
                suffix += f" on {parent.name}"
                current = parent
                continue
            if current.kind in AGGREGATE_KINDS:
                ports = self.ports(current)
                if len(ports) != 1:
                    names = ", ".join(p.name for p in ports) or "none"
                    raise _Refused(f"{suffix} with {len(ports)} ports ({names}): cannot tell which is the public NIC")
                suffix += f" over {ports[0].name}"
                current = ports[0]
                continue
            if current.is_physical:
                return current
            raise _Refused(f"{suffix}, not an Ethernet NIC")
        raise _Refused(f"{suffix}: a loop in the device stack")

    def above(self, nic: Interface) -> list[Interface]:
        """Every interface stacked on ``nic``: VLANs on it, the bond or bridge it is a port of, VLANs on those..."""
        return [i for i in self.interfaces if i is not nic and self._reaches(i, nic, set())]

    def _reaches(self, upper: Interface, nic: Interface, seen: set[str]) -> bool:
        if upper is nic:
            return True
        if upper.name in seen:
            return False
        seen.add(upper.name)
        lower: list[Interface] = []
        if upper.kind in STACKED_KINDS and upper.parent in self.by_name:
            lower.append(self.by_name[upper.parent])
        if upper.kind in AGGREGATE_KINDS:
            lower += [i for i in self.interfaces if i.master == upper.name]
        return any(self._reaches(i, nic, seen) for i in lower)

    def top_master(self, nic: Interface) -> Interface:
        current = nic
        seen: set[str] = set()
        while current.master and current.master in self.by_name and current.name not in seen:
            seen.add(current.name)
            current = self.by_name[current.master]
        return current

    def holders(self, address: str) -> list[Interface]:
        wanted = normalise_ip(address)
        return [i for i in self.interfaces if not i.is_loopback and any(a.address == wanted for a in i.addresses)]


def _describe_nics(interfaces: tuple[Interface, ...]) -> str:
    shown = [f"{i.name}={i.hw_mac}" for i in interfaces if i.is_physical]
    return ", ".join(shown) or "none"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return False
    return True


def _node_ip(nic: Interface, carrier: Interface, preferred: list[str]) -> str | None:
    """The node address: an address the host was reached on when it is on the NIC (or the carrier), else the first
    global IPv4 (primary before secondary), else the first global IPv6."""
    candidates = list(carrier.addresses) + ([] if carrier is nic else list(nic.addresses))
    for address in preferred:
        if any(a.address == address for a in candidates):
            return address
    for family in ("inet", "inet6"):
        ordered = sorted((a for a in candidates if a.family == family and a.scope == "global"),
                         key=lambda a: a.secondary)
        if ordered:
            return ordered[0].address
    return None


def _by_mac(stack: _Stack, mac: str, addresses: list[str]) -> tuple[Interface, Interface]:
    """The NIC with ``mac`` and the interface carrying the public address on it."""
    problem = mac_address(mac)
    if problem:
        raise _Refused(f"public_nic_mac = {mac!r} {problem}; set it to the MAC of the public NIC")
    wanted = normal_mac(mac)
    nics = [i for i in stack.interfaces if i.is_physical and i.hw_mac == wanted]
    stacked = {i.name for nic in nics for i in stack.above(nic)}
    found = nics + [i for i in stack.interfaces if not i.is_physical and not i.is_loopback and i.mac == wanted
                    and i.name not in stacked]
    if not found:
        raise _Refused(f"public_nic_mac = {mac} is not on this host (its NICs: {_describe_nics(stack.interfaces)}); "
                       "set public_nic_mac to one of them or remove it")
    if len(found) > 1:
        names = ", ".join(i.name for i in found)
        raise _Refused(f"public_nic_mac = {mac} is ambiguous: {names} all carry it (bond, bridge or VLAN); "
                       "set public_nic_mac to the burnt-in MAC of the one physical NIC or remove it")
    if not found[0].is_physical:
        return _down(stack, found[0], "public_nic_mac", "public_nic_mac"), found[0]
    nic = found[0]
    on_nic = [nic, *stack.above(nic)]
    holder = next((i for address in addresses for i in stack.holders(address) if i in on_nic), None)
    if holder is not None:
        return nic, holder
    if nic.global_cidrs or not nic.master:
        return nic, nic
    return nic, stack.top_master(nic)


def _down(stack: _Stack, carrier: Interface, label: str, by: str) -> Interface:
    try:
        return stack.physical_under(carrier)
    except _Refused as refused:
        raise _Refused(f"{label} leads to {carrier.name}, {carrier.description}{refused}; "
                       "set public_nic_mac to the MAC of the public NIC", carrier, by) from None


def choose_public_nic(
    interfaces: tuple[Interface, ...] | list[Interface],
    default_routes: tuple[Route, ...] | list[Route],
    *,
    mac: str = "",
    ansible_host: str = "",
    ssh_address: str | None = None,
) -> NicChoice:
    """Choose the public NIC in the documented order; a refusal is a ``NicChoice`` that is not ``ok``."""
    stack = _Stack(interfaces)
    preferred = [normalise_ip(a) for a in (ansible_host, ssh_address or "") if a and _is_address(a)]
    try:
        if mac:
            nic, carrier = _by_mac(stack, mac, preferred)
            return _chosen(nic, carrier, "public_nic_mac", "public_nic_mac", preferred)
        for address, by, label in ((ansible_host, "ansible_host", "ansible_host"),
                                   (ssh_address or "", "SSH address", "the SSH address")):
            if not address or not _is_address(address):
                continue
            holders = stack.holders(address)
            if len(holders) > 1:
                names = ", ".join(i.name for i in holders)
                raise _Refused(f"{by} = {address} is on {names}: cannot tell the public NIC; "
                               "set public_nic_mac to its MAC")
            if holders:
                nic = _down(stack, holders[0], label, by)
                return _chosen(nic, holders[0], by, f"holds the {by} {normalise_ip(address)}", preferred)
        return _by_default_route(stack, default_routes, ansible_host, ssh_address, preferred)
    except _Refused as refused:
        return NicChoice(None, str(refused), by=refused.by, carrier=refused.carrier)


def _by_default_route(stack: _Stack, routes: tuple[Route, ...] | list[Route], ansible_host: str,
                      ssh_address: str | None, preferred: list[str]) -> NicChoice:
    devices = sorted({r.interface for r in routes if r.interface and r.family == "inet"}) or sorted(
        {r.interface for r in routes if r.interface})
    if len(devices) > 1:
        raise _Refused(f"default routes go through {', '.join(devices)}: cannot tell the public NIC; "
                       "set public_nic_mac to its MAC")
    if not devices:
        reached = (f"ansible_host {ansible_host or '(unset)'} and the SSH address {ssh_address} are" if ssh_address
                   else f"ansible_host {ansible_host or '(unset)'} is")
        raise _Refused(f"no public_nic_mac, {reached} on no interface and there is no default route: cannot tell "
                       "the public NIC; set public_nic_mac to its MAC")
    carrier = stack.by_name.get(devices[0])
    if carrier is None:
        raise _Refused(f"the default route's interface {devices[0]} is not listed; set public_nic_mac to its MAC")
    nic = _down(stack, carrier, "the default route", "default route")
    return _chosen(nic, carrier, "default route", "default route", preferred)


def _chosen(nic: Interface, carrier: Interface, by: str, reason: str, preferred: list[str]) -> NicChoice:
    via = "" if carrier is nic or by == "public_nic_mac" else f" via {carrier.name}"
    return NicChoice(nic, reason + via, _node_ip(nic, carrier, preferred), by=by, carrier=carrier)
